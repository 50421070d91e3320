"""Neural teleportation (Armenta et al.), teleport.md: change-of-basis symmetries of
ordinary PyTorch models, and the experiments of Figs 4 to 11.

- `model` (`TeleportableModel`), `cob` (`sample_cob`): teleport any traced model (§1-§5);
- `controls`: what a training run does before its first step (teleport, pseudo-teleport,
  same distribution and our controls, §7 and §12);
- `micro`, `flatness`, `gradients`, `histograms`: Figs 4, 5, 7 and 11; `training`,
  `datasets`, `networks`: the training matrix of Figs 6, 8, 9 and 10;
- `convergence`, `summaries`: the figures' summaries and claims (no torch);
- `config`, `jobs`: the semantic checks of the teleport config and the cut into jobs
  (no torch: the workflow reads them when it is parsed).

Attributes load their module on first use, so importing the package imports no torch.
"""

from weightspace.lazy import lazy_attributes

_LAZY = {
    "cob": ["SAMPLING_TYPES", "sample_cob"],
    "model": ["TeleportableModel", "TeleportError"],
}
__all__ = ["SAMPLING_TYPES", "TeleportError", "TeleportableModel", "sample_cob"]
__getattr__ = lazy_attributes(__name__, _LAZY, globals())
