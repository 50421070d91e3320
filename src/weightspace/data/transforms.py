"""The standard image transforms of the paper specs, selectable by name.

- "mnist": ToTensor (MNIST / Fashion-MNIST, teleport and credit-assignment specs).
- "cifar_train": RandomCrop(32, padding=4) -> RandomHorizontalFlip -> ToTensor -> Normalize
  with the CIFAR-10 statistics below (teleport spec; CIFAR-100 reuses them).
- "cifar_test": ToTensor -> the same Normalize.
- "imagenet_train": RandomResizedCrop(224, scale (0.08, 1), ratio (3/4, 4/3)) -> flip ->
  ToTensor -> ImageNet Normalize (credit-assignment spec, Inception-style crop).
- "imagenet_eval": Resize(256) -> CenterCrop(224) -> ToTensor -> ImageNet Normalize.
- "imagenet_features": ToTensor -> Resize(256) (shorter side, no crop) -> ImageNet Normalize
  (structured-matrices feature extraction, one image per forward).
"""

from __future__ import annotations

from collections.abc import Callable

from torchvision import transforms as T

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _mnist() -> Callable:
    return T.ToTensor()


def _cifar_train() -> Callable:
    return T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def _cifar_test() -> Callable:
    return T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])


def _imagenet_train() -> Callable:
    return T.Compose(
        [
            T.RandomResizedCrop(224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _imagenet_eval() -> Callable:
    return T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _imagenet_features() -> Callable:
    return T.Compose(
        [T.ToTensor(), T.Resize(256), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


_TRANSFORMS: dict[str, Callable[[], Callable]] = {
    "mnist": _mnist,
    "cifar_train": _cifar_train,
    "cifar_test": _cifar_test,
    "imagenet_train": _imagenet_train,
    "imagenet_eval": _imagenet_eval,
    "imagenet_features": _imagenet_features,
}
TRANSFORM_NAMES = tuple(_TRANSFORMS)


def standard_transform(name: str) -> Callable:
    """A fresh transform pipeline for one of TRANSFORM_NAMES."""
    try:
        return _TRANSFORMS[name]()
    except KeyError:
        raise ValueError(
            f"unknown transform {name!r}; choose one of {', '.join(TRANSFORM_NAMES)}"
        ) from None


def resolve_transform(transform: str | Callable | None) -> Callable | None:
    """A transform given by name, as a callable, or None (no transform)."""
    if transform is None or callable(transform):
        return transform
    if isinstance(transform, str):
        return standard_transform(transform)
    raise TypeError(
        f"transform must be a name, a callable or None, got {type(transform).__name__}"
    )
