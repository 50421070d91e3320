"""Paper-scale MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 through torchvision.

The data live under a configured `root` in torchvision's standard layout:

    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte        (or the .gz downloads)
    <root>/FashionMNIST/raw/...                                           (same names)
    <root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    <root>/cifar-100-python/{train,test,meta}

`download: true` lets torchvision fetch missing files into root inside the job;
`download: false` uses only what is there.  Either way a missing data set raises
DatasetNotFoundError naming the data set, the folder looked at and how to provide it.
`check_dataset_available` runs the same existence check without reading any data
(and without network: with download true the download is left to the job), so the
workflow can fail before any job starts.

Integrity: torchvision verifies CIFAR files against fixed md5 sums when it loads them
(the check function only tests existence, to stay cheap); MNIST idx files are not
hashed by torchvision.  Gzipped idx files placed by hand are decompressed next to
themselves, as torchvision's own download does.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torchvision.datasets
from torch.utils.data import Dataset
from torchvision.datasets.utils import check_integrity

from .errors import DatasetIntegrityError, DatasetNotFoundError
from .transforms import resolve_transform

_IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class _DatasetInfo:
    title: str
    class_name: str  # attribute of torchvision.datasets
    layout: str  # "idx" or "cifar"
    archive: str  # what a user downloads by hand

    @property
    def dataset_class(self) -> type:
        return getattr(torchvision.datasets, self.class_name)


_DATASETS = {
    "mnist": _DatasetInfo(
        "MNIST", "MNIST", "idx", "the four *-ubyte.gz files of MNIST"
    ),
    "fashion_mnist": _DatasetInfo(
        "Fashion-MNIST",
        "FashionMNIST",
        "idx",
        "the four *-ubyte.gz files of Fashion-MNIST",
    ),
    "cifar10": _DatasetInfo("CIFAR-10", "CIFAR10", "cifar", "cifar-10-python.tar.gz"),
    "cifar100": _DatasetInfo(
        "CIFAR-100", "CIFAR100", "cifar", "cifar-100-python.tar.gz"
    ),
}
_ALIASES = {
    "fashionmnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar_10": "cifar10",
    "cifar_100": "cifar100",
}
DATASET_NAMES = tuple(_DATASETS)


def canonical_name(name: str) -> str:
    """The registry name for `name` ("CIFAR-10" -> "cifar10", "FashionMNIST" -> "fashion_mnist")."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _DATASETS:
        raise ValueError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}"
        )
    return key


def dataset_folder(name: str, root: str | os.PathLike) -> Path:
    """The folder torchvision reads `name` from under `root`."""
    info = _DATASETS[canonical_name(name)]
    root = Path(root).expanduser().absolute()
    if info.layout == "idx":
        return root / info.class_name / "raw"
    return root / info.dataset_class.base_folder


def files_used(
    name: str, root: str | os.PathLike, train: bool | None = None
) -> list[Path]:
    """The files a loader of `name` reads for the train (True) or test (False) part; None: both."""
    info = _DATASETS[canonical_name(name)]
    folder = dataset_folder(name, root)
    parts = (True, False) if train is None else (bool(train),)
    if info.layout == "idx":
        return [folder / filename for part in parts for filename in _IDX_FILES[part]]
    cls = info.dataset_class
    batches = [
        entry[0]
        for part in parts
        for entry in (cls.train_list if part else cls.test_list)
    ]
    return [folder / filename for filename in batches + [cls.meta["filename"]]]


def _required_with_md5(
    name: str, root: str | os.PathLike
) -> list[tuple[Path, str | None]]:
    """Every file torchvision needs to construct the data set (both parts), with its md5 if checked."""
    info = _DATASETS[canonical_name(name)]
    if info.layout == "idx":
        return [(path, None) for path in files_used(name, root)]
    cls = info.dataset_class
    folder = dataset_folder(name, root)
    entries = [
        (folder / filename, md5) for filename, md5 in cls.train_list + cls.test_list
    ]
    return entries + [(folder / cls.meta["filename"], cls.meta["md5"])]


def _is_present(path: Path, layout: str) -> bool:
    if path.is_file():
        return True
    return layout == "idx" and path.with_name(path.name + ".gz").is_file()


def missing_files(name: str, root: str | os.PathLike) -> list[Path]:
    """Required files that are absent (a .gz twin counts as present for idx files)."""
    layout = _DATASETS[canonical_name(name)].layout
    return [
        path
        for path, _ in _required_with_md5(name, root)
        if not _is_present(path, layout)
    ]


def _layout_hint(name: str, root: Path) -> str:
    info = _DATASETS[canonical_name(name)]
    if info.layout == "idx":
        names = ", ".join(f for part in (True, False) for f in _IDX_FILES[part])
        return f"place {names} (or their .gz downloads) under {root / info.class_name / 'raw'}/"
    cls = info.dataset_class
    listing = ", ".join(
        [entry[0] for entry in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    )
    return (
        f"extract {info.archive} into {root} so that {root / cls.base_folder}/ holds {listing} "
        f"(or put {info.archive} itself into {root} and set download: true; torchvision then only "
        f"extracts it, without network, when its md5 matches)"
    )


def _missing_message(name: str, root: Path, missing: list[Path]) -> str:
    info = _DATASETS[canonical_name(name)]
    folder = dataset_folder(name, root)
    shown = ", ".join(str(path.relative_to(folder)) for path in missing)
    return (
        f"{info.title} not found: looked in {folder} and it lacks {shown}. "
        f"To provide it, set download: true in the config (the job then downloads it into {root}), "
        f"or {_layout_hint(name, root)}."
    )


def check_dataset_available(name: str, root: str | os.PathLike, download: bool) -> None:
    """Raise DatasetNotFoundError now if loading `name` from `root` would fail for lack of files.

    Reads no data and uses no network: with download true it only validates the name,
    since the download itself happens in the job.
    """
    name = canonical_name(name)
    if download:
        return
    root = Path(root).expanduser().absolute()
    missing = missing_files(name, root)
    if missing:
        raise DatasetNotFoundError(_missing_message(name, root, missing))


def _decompress_idx_files(name: str, root: Path, download: bool) -> None:
    """Decompress hand-placed .gz idx files whose plain twin is missing (write-then-rename).

    A broken .gz (e.g. an interrupted download) is left to torchvision when download is
    on, which fetches it again because its md5 does not match; otherwise it is an error.
    """
    for path in files_used(name, root):
        gz_path = path.with_name(path.name + ".gz")
        if path.is_file() or not gz_path.is_file():
            continue
        partial = path.with_name(path.name + ".partial")
        try:
            with gzip.open(gz_path, "rb") as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
        except (EOFError, gzip.BadGzipFile) as error:
            partial.unlink(missing_ok=True)
            if download:
                continue
            raise DatasetIntegrityError(
                f"{_DATASETS[name].title}: {gz_path} is not a complete gzip file ({error}); replace it with "
                f"the official download, or delete it and set download: true"
            ) from error
        os.replace(partial, path)


def _corrupt_files(name: str, root: Path) -> list[Path]:
    return [
        path
        for path, md5 in _required_with_md5(name, root)
        if md5 is not None and not check_integrity(str(path), md5)
    ]


def _without_md5(cls):
    """The CIFAR class with its md5s removed: torchvision then checks only that the
    files exist."""
    return type(
        cls.__name__,
        (cls,),
        {
            "train_list": [[name, None] for name, _ in cls.train_list],
            "test_list": [[name, None] for name, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


def _paths_under(root: Path) -> set[Path] | None:
    """Every path under ``root`` now (None: ``root`` does not exist yet)."""
    if not root.exists():
        return None
    return {root, *root.rglob("*")}


def _remove_created(root: Path, existed: set[Path] | None) -> None:
    """Remove what appeared under ``root`` since ``existed`` was taken (``root`` too
    if it did not exist), deepest first."""
    before = existed or set()
    created = [p for p in _paths_under(root) or () if p not in before]
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def torchvision_dataset(
    name: str,
    root: str | os.PathLike,
    train: bool = True,
    download: bool = False,
    transform: str | Callable | None = None,
    verify_checksums: bool = True,
) -> Dataset:
    """The torchvision data set `name` (train or test part) from `root`.

    `verify_checksums` false skips torchvision's md5 check of the CIFAR files, for copies
    in the standard layout that are not the official files (converted or synthetic data);
    the run record still holds their checksums.

    `transform` is a callable, a name from transforms.TRANSFORM_NAMES, or None.
    The returned data set has an extra attribute `files_used` (list of Paths) for
    checksums in run records.
    """
    name = canonical_name(name)
    info = _DATASETS[name]
    root = Path(root).expanduser().absolute()
    transform = resolve_transform(transform)
    check_dataset_available(name, root, download)
    existed = _paths_under(root) if download else None
    if info.layout == "idx":
        _decompress_idx_files(name, root, download)
    dataset_class = info.dataset_class
    if not verify_checksums and info.layout != "idx":
        dataset_class = _without_md5(dataset_class)
    try:
        dataset = dataset_class(
            str(root), train=train, download=download, transform=transform
        )
    except Exception as error:  # torchvision reports missing files, bad md5s and failed downloads with assorted types
        missing = missing_files(name, root)
        if missing and download:
            # a failed download leaves nothing behind that was not there before
            _remove_created(root, existed)
            folder = dataset_folder(name, root)
            shown = ", ".join(str(path.relative_to(folder)) for path in missing)
            raise DatasetNotFoundError(
                f"{info.title} could not be downloaded into {root} ({type(error).__name__}: {error}); "
                f"{folder} still lacks {shown}. Without network here, get {info.archive} on a machine "
                f"with network and {_layout_hint(name, root)}."
            ) from error
        if missing:
            raise DatasetNotFoundError(_missing_message(name, root, missing)) from error
        corrupt = _corrupt_files(name, root)
        if corrupt:
            shown = ", ".join(str(path) for path in corrupt)
            raise DatasetIntegrityError(
                f"{info.title} files are present but fail torchvision's md5 check: {shown}. They are "
                f"truncated or not the official files; delete them and set download: true, or "
                f"{_layout_hint(name, root)}."
            ) from error
        raise
    dataset.files_used = files_used(name, root, train)
    return dataset
