"""Data for weightspace: quick-scale embedded sets, synthetic data, paper-scale loaders, seeds, checksums.

Quick scale (no downloads): `mnist_subset`, `digits`, `random_images`, `random_image_split`.
Paper scale: `torchvision_dataset` (MNIST, Fashion-MNIST, CIFAR-10/100), `imagenet_folder`,
`load_pretrained`; each has a `check_*` twin that fails fast, before any job starts.
"""

from weightspace.lazy import lazy_attributes

from .checksums import (
    array_checksum,
    file_checksums,
    sha256_directory_listing,
    sha256_file,
)
from .errors import (
    DatasetIntegrityError,
    DatasetLayoutError,
    DatasetNotFoundError,
    PretrainedWeightsNotFoundError,
)
from .normalization import NormalizationStats, fit_normalization, normalize_split
from .quick import (
    DIGITS_SEED,
    MNIST_SUBSET_SEED,
    digits,
    mnist_subset,
    stratified_split,
)
from .seeds import derive_seed, numpy_rng, seed_sequence, torch_generator
from .splits import ArraySplit, tensor_dataset
from .synthetic import random_image_split, random_images

# The paper-scale loaders import torchvision (seconds): loaded on first use, so that jobs which
# only need seeds or the quick data start fast.
_LAZY = {
    "imagenet": [
        "ImageListDataset",
        "ImageNetClass",
        "check_imagenet_available",
        "imagenet_folder",
        "read_class_list",
    ],
    "pretrained": [
        "PretrainedSource",
        "check_pretrained_available",
        "hub_checkpoint_path",
        "load_pretrained",
        "pretrained_source",
        "resolve_weights",
    ],
    "torchvision_sets": [
        "DATASET_NAMES",
        "canonical_name",
        "check_dataset_available",
        "dataset_folder",
        "files_used",
        "missing_files",
        "torchvision_dataset",
    ],
    "transforms": [
        "CIFAR_MEAN",
        "CIFAR_STD",
        "IMAGENET_MEAN",
        "IMAGENET_STD",
        "TRANSFORM_NAMES",
        "standard_transform",
    ],
}
__getattr__ = lazy_attributes(__name__, _LAZY, globals())

__all__ = [
    "ArraySplit",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "DATASET_NAMES",
    "DIGITS_SEED",
    "DatasetIntegrityError",
    "DatasetLayoutError",
    "DatasetNotFoundError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageListDataset",
    "ImageNetClass",
    "MNIST_SUBSET_SEED",
    "NormalizationStats",
    "PretrainedSource",
    "PretrainedWeightsNotFoundError",
    "TRANSFORM_NAMES",
    "array_checksum",
    "canonical_name",
    "check_dataset_available",
    "check_imagenet_available",
    "check_pretrained_available",
    "dataset_folder",
    "derive_seed",
    "digits",
    "file_checksums",
    "files_used",
    "fit_normalization",
    "hub_checkpoint_path",
    "imagenet_folder",
    "load_pretrained",
    "missing_files",
    "mnist_subset",
    "normalize_split",
    "numpy_rng",
    "pretrained_source",
    "random_image_split",
    "random_images",
    "read_class_list",
    "resolve_weights",
    "seed_sequence",
    "sha256_directory_listing",
    "sha256_file",
    "standard_transform",
    "stratified_split",
    "tensor_dataset",
    "torch_generator",
    "torchvision_dataset",
]
