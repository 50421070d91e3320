"""Pretrained torchvision classifiers from the torch hub cache, a download, or a local file.

Weights are named through torchvision's weights API ("IMAGENET1K_V1", "DEFAULT" or
"ResNet18_Weights.IMAGENET1K_V1").  torchvision keeps downloaded weights in
<torch.hub.get_dir()>/checkpoints/<file name of the weights URL>, i.e.
$TORCH_HOME/hub/checkpoints/ (default ~/.cache/torch/hub/checkpoints/).  A file found
there is used without network; otherwise, with download allowed, torchvision fetches
it, and a failed download raises PretrainedWeightsNotFoundError naming the
architecture, the cache path, the file name and the ways to provide the file.

`local_file` is a state_dict saved with torch.save: either the file torchvision
downloads (e.g. resnet18-f37072fd.pth) or model.state_dict() of a model built by this
module.  It is loaded into the architecture as the weights would configure it (class
count from the weights' categories; GoogLeNet and Inception-v3 with transform_input
and the auxiliary heads, as torchvision's builders do).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision.models
from torch import nn
from torchvision.models import WeightsEnum

from .errors import PretrainedWeightsNotFoundError

# Builders that load the auxiliary heads with the weights: (aux module names, kept by default).
_AUX_HEADS = {
    "googlenet": (("aux1", "aux2"), False),
    "inception_v3": (("AuxLogits",), True),
}


@dataclass(frozen=True)
class PretrainedSource:
    """Where pretrained weights come from: a local file or the torch hub cache file."""

    arch: str
    weights: (
        str | None
    )  # "ResNet18_Weights.IMAGENET1K_V1", or None for a local file of a plain model
    path: Path
    url: str | None
    available: bool  # the file exists now (no download needed)

    def record(self) -> dict:
        return {
            "arch": self.arch,
            "weights": self.weights,
            "path": str(self.path),
            "url": self.url,
        }


def _check_arch(arch: str) -> str:
    known = torchvision.models.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown torchvision architecture {arch!r}{hint} (see torchvision.models.list_models())"
        )
    return arch


def resolve_weights(arch: str, weights: str | WeightsEnum | None) -> WeightsEnum | None:
    """The weights enum member for `arch`, or None."""
    _check_arch(arch)
    if weights is None:
        return None
    enum_class = torchvision.models.get_model_weights(arch)
    if isinstance(weights, WeightsEnum):
        member = weights
    elif isinstance(weights, str):
        member_name = weights.split(".")[-1]
        if "." in weights and weights.split(".")[0] != enum_class.__name__:
            raise ValueError(
                f"weights {weights!r} are not weights of {arch} (those are {enum_class.__name__}.*)"
            )
        try:
            member = enum_class[member_name]
        except KeyError:
            choices = ", ".join(enum_class.__members__)
            raise ValueError(
                f"{arch} has no weights {weights!r}; choose one of {choices}"
            ) from None
    else:
        raise TypeError(
            f"weights must be a name, a torchvision WeightsEnum or None, got {type(weights).__name__}"
        )
    if not isinstance(member, enum_class):
        raise ValueError(
            f"weights {member} are not weights of {arch} (those are {enum_class.__name__}.*)"
        )
    return member


def hub_checkpoint_path(url: str) -> Path:
    """Where torch.hub caches the file downloaded from `url` (honours TORCH_HOME now)."""
    return (
        Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    )


def pretrained_source(
    arch: str,
    weights: str | WeightsEnum | None = "IMAGENET1K_V1",
    local_file: str | os.PathLike | None = None,
) -> PretrainedSource:
    """Resolve names and paths without reading or downloading anything."""
    member = resolve_weights(arch, weights)
    weights_name = (
        f"{type(member).__name__}.{member.name}" if member is not None else None
    )
    if local_file is not None:
        path = Path(local_file).expanduser().absolute()
        return PretrainedSource(arch, weights_name, path, None, path.is_file())
    if member is None:
        raise ValueError(
            f"nothing pretrained to load for {arch}: weights is None and no local_file was given; "
            f"name weights (e.g. 'IMAGENET1K_V1') or give local_file, or build an untrained model "
            f"with torchvision.models.get_model({arch!r}, weights=None)"
        )
    path = hub_checkpoint_path(member.url)
    return PretrainedSource(arch, weights_name, path, member.url, path.is_file())


def _cache_fix(source: PretrainedSource) -> str:
    filename = source.path.name
    torch_home = os.environ.get("TORCH_HOME")
    home_note = (
        f"TORCH_HOME={torch_home}" if torch_home else "TORCH_HOME unset, default cache"
    )
    return (
        f"looked for {filename} at {source.path} ({home_note}). Fix: download {source.url} on a machine "
        f"with network and put {filename} at that path, or set TORCH_HOME to a folder whose "
        f"hub/checkpoints/ holds it, or give local_file: <path to the .pth state_dict>"
    )


def check_pretrained_available(
    arch: str,
    weights: str | WeightsEnum | None = "IMAGENET1K_V1",
    local_file: str | os.PathLike | None = None,
    download: bool = True,
) -> PretrainedSource:
    """Raise now if load_pretrained could not find the weights; never downloads.

    With download true a missing cache file is fine (the job downloads it); a missing
    local_file is always an error.
    """
    source = pretrained_source(arch, weights, local_file)
    if source.available:
        return source
    if local_file is not None:
        raise PretrainedWeightsNotFoundError(
            f"local weights file for {arch} not found at {source.path}; fix the local_file path, or leave "
            f"local_file unset to use the torchvision weights {source.weights or '(none named)'} "
            f"from the torch hub cache"
        )
    if not download:
        raise PretrainedWeightsNotFoundError(
            f"pretrained weights {source.weights} for {arch} are not in the torch hub cache and download is off: "
            + _cache_fix(source)
            + ", or allow the download"
        )
    return source


def _model_for_local_state(
    arch: str, member: WeightsEnum | None, state: dict
) -> nn.Module:
    kwargs = {}
    if member is not None:
        kwargs["num_classes"] = len(member.meta["categories"])
        if arch in _AUX_HEADS:
            kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    model = torchvision.models.get_model(arch, weights=None, **kwargs)
    if member is not None and arch in _AUX_HEADS:
        aux_modules, keep_by_default = _AUX_HEADS[arch]
        has_aux_weights = any(key.split(".")[0] in aux_modules for key in state)
        if not (has_aux_weights and keep_by_default):
            # torchvision drops these heads after loading; a state_dict saved from such a model lacks them.
            model.aux_logits = False
            for module_name in aux_modules:
                setattr(model, module_name, None)
            state = {
                k: v for k, v in state.items() if k.split(".")[0] not in aux_modules
            }
    model.load_state_dict(state)
    return model


def load_pretrained(
    arch: str,
    weights: str | WeightsEnum | None = "IMAGENET1K_V1",
    local_file: str | os.PathLike | None = None,
    download: bool = True,
) -> nn.Module:
    """A torchvision model with pretrained weights (cache, download or local_file), in eval mode on CPU."""
    source = check_pretrained_available(arch, weights, local_file, download)
    member = resolve_weights(arch, weights)
    if local_file is not None:
        state = torch.load(source.path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(
                f"{source.path} does not hold a state_dict (got {type(state).__name__}); save model.state_dict()"
            )
        try:
            model = _model_for_local_state(arch, member, state)
        except RuntimeError as error:
            raise ValueError(
                f"{source.path} does not fit {arch} with weights {source.weights}: {error}. Save the state_dict "
                f"of the same architecture (set weights to None for a state_dict of a plain {arch})"
            ) from error
    else:
        try:
            model = torchvision.models.get_model(arch, weights=member)
        except (
            Exception
        ) as error:  # urllib, socket and hash errors all mean the same here
            if hub_checkpoint_path(member.url).is_file():
                if source.available:
                    raise RuntimeError(
                        f"cached weights for {arch} at {source.path} could not be loaded ({error}); the file "
                        f"is probably truncated: delete it so it is downloaded again, or replace it"
                    ) from error
                raise
            raise PretrainedWeightsNotFoundError(
                f"pretrained weights {source.weights} for {arch} could not be downloaded "
                f"({type(error).__name__}: {error}); " + _cache_fix(source)
            ) from error
    return model.eval()
