"""Network builders shared by the papers, and a registry of them by name."""

from .cnn import small_cnn
from .densenet import DenseBlock, DenseLayer, Transition, densenet
from .init import INIT_SCHEMES, initialize_weights
from .layers import ACTIVATIONS, Add, Concat, as_hw, make_activation
from .mlp import mlp
from .registry import MODELS, build_model, count_parameters, model_names
from .resnet import BasicBlock, Bottleneck, ResNet, resnet
from .vgg import VGG_CONFIGS, vgg

__all__ = [
    "ACTIVATIONS",
    "INIT_SCHEMES",
    "MODELS",
    "VGG_CONFIGS",
    "Add",
    "BasicBlock",
    "Bottleneck",
    "Concat",
    "DenseBlock",
    "DenseLayer",
    "ResNet",
    "Transition",
    "as_hw",
    "build_model",
    "count_parameters",
    "densenet",
    "initialize_weights",
    "make_activation",
    "mlp",
    "model_names",
    "resnet",
    "small_cnn",
    "vgg",
]
