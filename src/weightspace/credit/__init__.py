"""Credit assignment without weight symmetry (Kunin et al.), credit_assignment.md:
layers with separate backward weights and the learning rules that align them.

- `layers`: dense / conv layers whose backward pass uses B, and the conversion of any
  torchvision-style model (§2);
- `primitives`: the five alignment primitives and the per-layer signals (§2, §3);
- `rules`: the learning rules, coefficient and loss-rate schedules (§4, §5, §12);
- `optim`: optimisers, learning-rate schedule, forward-kernel L2, noisy updates (§5, §6);
- `metrics`: weight, projection, gradient and true-gradient angles, norms (§2, §11);
- `models`: the ResNets v1 / v2 and the quick MLP and ResNet-v1-tiny (§7);
- `training`: one optimisation step under a rule;
- `runs`: one training run of the targets (protocol, evaluation, noisy updates,
  checkpoint state through a callback);
- `datasets`: the quick MNIST subset and ImageNet behind one batch interface;
- `presets`: the rule variants of the targets, labels and what the paper publishes;
- `jobs`, `config`: how the targets are cut into jobs and the config checks (no torch);
- `summaries`: the targets' tables and claims (no torch).

Attributes load their module on first use, so importing the package imports no torch.
"""

from weightspace.lazy import lazy_attributes

_LAZY = {
    "layers": [
        "FeedbackConv2d",
        "FeedbackLinear",
        "convert_to_feedback",
        "feedback_layers",
    ],
    "metrics": ["angle", "layer_probes", "weight_angles", "weight_norms"],
    "models": [
        "MODEL_NAMES",
        "build_model",
        "count_backward_parameters",
        "count_forward_parameters",
        "quick_mlp",
        "resnet_v1",
        "resnet_v1_tiny",
        "resnet_v2",
    ],
    "optim": ["NoisyUpdates", "forward_l2_penalty", "learning_rate", "make_optimizer"],
    "primitives": ["AlignmentOptions"],
    "rules": [
        "RULES",
        "CoefficientSchedule",
        "LearningRule",
        "RateSchedule",
        "make_rule",
    ],
    "training": ["train_step"],
}
__all__ = sorted(name for names in _LAZY.values() for name in names)
__getattr__ = lazy_attributes(__name__, _LAZY, globals())
