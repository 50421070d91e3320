"""The paper's constants for the credit targets (credit_assignment.md "Targets", §4, §7,
§9, §10): the rule variants the targets run, their labels, which models go with which
data set, and what the paper and the spec publish. No torch.

Published numbers. The spec does not reproduce the ImageNet table of the paper (§10:
"must be taken from the PDF and entered into the paper-results config"), so
``PUBLISHED_IMAGENET`` holds no value until someone enters them from arXiv 2003.01513;
the table prints "not entered" instead of a number, never a guess. What the spec does
state is entered: the qualitative results of §10 per rule, the checkpoints the
original project released (which rule x model runs the paper trained), and the
external MNIST reference of §10 (another paper's public code, MNIST 784-500-10).
"""

from __future__ import annotations

# Rule variants of the targets: (learning rule of weightspace.credit.rules, whether its
# alignment signals use noise inputs). WM and IA use N(0, 1) inputs by default (the
# spec's quick column); WM with real inputs is the extra row of the instability (§12.7).
VARIANTS: dict[str, tuple[str, bool]] = {
    "backprop": ("backprop", False),
    "feedback": ("feedback", False),
    "mirror": ("mirror", True),
    "information": ("information", True),
    "symmetric": ("symmetric", False),
    "activation": ("activation", False),
    "kolen_pollack": ("kolen_pollack", False),
    "mirror_real_inputs": ("mirror", False),
}
# the spec's table order: BP, FA, WM, IA, SA, AA, KP, then the extra row
VARIANT_ORDER = tuple(VARIANTS)
LABELS = {
    "backprop": "BP",
    "feedback": "FA",
    "mirror": "WM",
    "information": "IA",
    "symmetric": "SA",
    "activation": "AA",
    "kolen_pollack": "KP",
    "mirror_real_inputs": "WM (real inputs)",
}
# §4 "Class": local rules use only what the backward synapse can see
LOCAL = ("feedback", "mirror", "information", "mirror_real_inputs")
NON_LOCAL = ("symmetric", "activation", "kolen_pollack")
# rules whose backward weights follow an alignment loss or a tied update (FA stays at
# its random init; BP has no separate backward weights)
ALIGNING = ("mirror", "information", "symmetric", "activation", "kolen_pollack")

# models per data set: the quick models at 28x28 on the MNIST subset, the ImageNet
# ResNets v1 at 224 (v2 needs Inception preprocessing at 299, not provided)
QUICK_MODELS = ("mlp", "resnet_v1_tiny")
IMAGENET_MODELS = tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152, 200))
MODELS = {"mnist_subset": QUICK_MODELS, "imagenet": IMAGENET_MODELS}
NUM_CLASSES = {"mnist_subset": 10, "imagenet": 1000}
MNIST_SIDE = 28  # the quick images are MNIST_SIDE x MNIST_SIDE
IN_CHANNELS = {"mnist_subset": 1, "imagenet": 3}
MODEL_LABELS = {
    "mlp": "MLP 784-256-256-10",
    "resnet_v1_tiny": "ResNet-v1-tiny",
    **{f"resnet{d}": f"ResNet-{d}" for d in (18, 34, 50, 101, 152, 200)},
}

# ImageNet top-1 / top-5 (%) of the paper, {(variant, model): (top1, top5)}: not in
# the spec (see the module docstring); enter them from the PDF to fill the columns.
PUBLISHED_IMAGENET: dict[tuple[str, str], tuple[float | None, float | None]] = {}

# What §10 states per rule (the table prints it beside our numbers).
PUBLISHED_RESULT = {
    "backprop": "reference",
    "feedback": "a row of the ImageNet table (§10 states no claim about it)",
    "mirror": "competitive with BP on ResNet-18 after TPE tuning; the tuning does not transfer to ResNet-50",
    "information": "transfers without re-tuning; gap to BP widens with depth",
    "symmetric": "matches BP on deep ResNets (up to ResNet-152v2)",
    "activation": "matches BP on deep ResNets (up to ResNet-152v2)",
    "kolen_pollack": "classic non-local rule, BP-level (Akrout et al.)",
    "mirror_real_inputs": "unstable: fixed point inflated by the input covariance (§4, §12.7)",
}
# Checkpoints the original project released (§9): which rule x model runs the paper has.
RELEASED_CHECKPOINTS = {
    "symmetric": ("resnet18", "resnet50", "resnet50v2", "resnet101v2", "resnet152v2"),
    "activation": ("resnet18", "resnet50", "resnet50v2", "resnet101v2", "resnet152v2"),
    "information": ("resnet18", "resnet50", "resnet50v2", "resnet101v2", "resnet152v2"),
    "mirror": ("resnet18",),
}
# §10's external reference: Akrout et al.'s public code, MNIST 784-500-10, batch 128;
# test accuracy % after the stated epochs and the hidden->output / input->hidden angles.
MNIST_REFERENCE = {
    "feedback": {"top1": 97.8, "epochs": 400, "angles": (40.0,)},
    "mirror": {"top1": 98.5, "epochs": 400, "angles": (12.8, 3.8)},
    "kolen_pollack": {"top1": 98.2, "epochs": 80, "angles": (26.0, 5.0)},
}


def rule_of(variant: str) -> str:
    return VARIANTS[variant][0]


def uses_noise_inputs(variant: str) -> bool:
    return VARIANTS[variant][1]


def label(variant: str) -> str:
    return LABELS[variant]


def published(variant: str, model: str) -> tuple[float | None, float | None]:
    return PUBLISHED_IMAGENET.get((variant, model), (None, None))
