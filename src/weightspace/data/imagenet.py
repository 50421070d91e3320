"""ImageNet (ILSVRC2012) from a user-given folder.

Accepted layouts of <root>/<split>/ (split is usually "train" or "val"):

1. class folders (ImageFolder style): <root>/<split>/<wnid>/<image>, e.g. train/n01440764/x.JPEG;
2. flat (the official validation archive): <root>/<split>/<image> with one label per image in
   a ground-truth file, ILSVRC2012_validation_ground_truth.txt: one 1-based ILSVRC2012 class id
   per line, in sorted filename order.  The ids are mapped to WordNet ids with a class list
   (lines "wnid ilsvrc_id [name [output_index]]", e.g. labels/all_imagenet_classes.txt of the
   structured-matrices project, or any mapping {ilsvrc_id: wnid}).

Labels: without a subset, label = position of the wnid in the sorted list of wnids (the
class-folder names, or all wnids of the class list for the flat layout), which is the
torchvision output index order, so both layouts label alike.  With `class_subset` (a list
of wnids, or a class-list file read in file order) only those classes are kept and the
label is the position in the subset.

Files used (for checksums): the class folders read, or the flat folder plus the
ground-truth and class-list files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, pil_loader

from .errors import DatasetLayoutError, DatasetNotFoundError
from .transforms import resolve_transform

GROUND_TRUTH_NAME = "ILSVRC2012_validation_ground_truth.txt"
_LAYOUT_HELP = (
    "expected either class folders <root>/{split}/<wnid>/<images> (ImageFolder layout) or a flat "
    "<root>/{split}/ of images with a ground-truth file ("
    + GROUND_TRUTH_NAME
    + ") and a class list"
)


@dataclass(frozen=True)
class ImageNetClass:
    """One line of a class list: WordNet id, 1-based ILSVRC2012 id, name, torchvision output index."""

    wnid: str
    ilsvrc_id: int
    name: str = ""
    output_index: int = -1


def read_class_list(path: str | os.PathLike) -> list[ImageNetClass]:
    """Read a class list file ("wnid ilsvrc_id [name [output_index]]" per line) in file order."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"ImageNet class list not found at {path}")
    classes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            classes.append(
                ImageNetClass(
                    wnid=fields[0],
                    ilsvrc_id=int(fields[1]),
                    name=fields[2] if len(fields) > 2 else "",
                    output_index=int(fields[3]) if len(fields) > 3 else -1,
                )
            )
        except (IndexError, ValueError):
            raise DatasetLayoutError(
                f"{path}:{number}: expected 'wnid ilsvrc_id [name [output_index]]', got {line!r}"
            ) from None
    return classes


class ImageListDataset(Dataset):
    """Images given as (path, label) pairs, loaded as RGB PIL images and transformed."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        transform: Callable | None = None,
        files_used: Sequence[Path] = (),
    ) -> None:
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.classes = list(classes)
        self.class_to_idx = {wnid: index for index, wnid in enumerate(self.classes)}
        self.transform = transform
        self.files_used = list(files_used)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = pil_loader(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _scan_split(root: Path, split: str) -> tuple[Path, list[str], list[str]]:
    """(split folder, sorted subfolder names, sorted image file names) of one split, top level only."""
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"ImageNet root {root} does not exist or is not a folder; set the ImageNet path in the "
            f"config to a folder holding {split}/ ({_LAYOUT_HELP.format(split=split)})"
        )
    folder = root / split
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"ImageNet split folder {folder} does not exist; {_LAYOUT_HELP.format(split=split)}"
        )
    subfolders, images = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                subfolders.append(entry.name)
            elif entry.is_file() and _is_image(entry.name):
                images.append(entry.name)
    if not subfolders and not images:
        raise DatasetNotFoundError(
            f"ImageNet split folder {folder} holds no class folders and no images; "
            f"{_LAYOUT_HELP.format(split=split)}"
        )
    if subfolders and images:
        raise DatasetLayoutError(
            f"ImageNet split folder {folder} mixes class folders ({len(subfolders)}) and loose images "
            f"({len(images)}); use one layout: {_LAYOUT_HELP.format(split=split)}"
        )
    return folder, sorted(subfolders), sorted(images)


def _subset_wnids(
    class_subset: Sequence[str] | Sequence[ImageNetClass] | str | os.PathLike | None,
) -> list[str] | None:
    if class_subset is None:
        return None
    if isinstance(class_subset, (str, os.PathLike)):
        wnids = [entry.wnid for entry in read_class_list(class_subset)]
    else:
        wnids = [
            entry.wnid if isinstance(entry, ImageNetClass) else str(entry)
            for entry in class_subset
        ]
    if not wnids:
        raise ValueError(
            "class_subset is empty; give at least one wnid or leave it unset for all classes"
        )
    duplicates = sorted({w for w in wnids if wnids.count(w) > 1})
    if duplicates:
        raise ValueError(
            f"class_subset lists these wnids more than once: {', '.join(duplicates)}"
        )
    return wnids


def _id_to_wnid(class_list) -> dict[int, str]:
    if isinstance(class_list, (str, os.PathLike)):
        class_list = read_class_list(class_list)
    if isinstance(class_list, Mapping):
        return {int(key): str(value) for key, value in class_list.items()}
    return {entry.ilsvrc_id: entry.wnid for entry in class_list}


def _find_ground_truth(
    root: Path, split: str, ground_truth: str | os.PathLike | None
) -> Path:
    candidates = (
        [Path(ground_truth)]
        if ground_truth is not None
        else [
            root / GROUND_TRUTH_NAME,
            root / split / GROUND_TRUTH_NAME,
            root / "ILSVRC2012_devkit_t12" / "data" / GROUND_TRUTH_NAME,
        ]
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(
        f"ImageNet {split}/ under {root} is a flat folder of images, which needs the ground-truth file "
        f"{GROUND_TRUTH_NAME} (one 1-based class id per line, in sorted filename order); looked at {looked}. "
        f"Copy it there from the ILSVRC2012 devkit, give its path, or sort the images into <wnid>/ folders"
    )


def _require_class_list(root: Path, split: str, class_list) -> None:
    if class_list is None:
        raise DatasetNotFoundError(
            f"ImageNet {split}/ under {root} is a flat folder of images: give a class list (file with "
            f"'wnid ilsvrc_id ...' lines, or a mapping ilsvrc_id -> wnid) to turn its ground-truth ids into classes"
        )
    if isinstance(class_list, (str, os.PathLike)) and not Path(class_list).is_file():
        raise DatasetNotFoundError(f"ImageNet class list not found at {class_list}")


def check_imagenet_available(
    root: str | os.PathLike,
    splits: Sequence[str] = ("train", "val"),
    class_subset=None,
    class_list=None,
    ground_truth: str | os.PathLike | None = None,
) -> None:
    """Raise now if imagenet_folder would fail for a missing folder, class or label file.

    Looks only at the top level of each split (no per-image listing), so it is cheap
    even for the full data set.
    """
    root = Path(root).expanduser().absolute()
    wnids = _subset_wnids(class_subset)
    for split in splits:
        folder, subfolders, _images = _scan_split(root, split)
        if subfolders:
            if wnids is not None:
                _check_subset_folders(folder, subfolders, wnids)
        else:
            _find_ground_truth(root, split, ground_truth)
            _require_class_list(root, split, class_list)


def _check_subset_folders(
    folder: Path, subfolders: list[str], wnids: list[str]
) -> None:
    present = set(subfolders)
    absent = [w for w in wnids if w not in present]
    if absent:
        raise DatasetNotFoundError(
            f"ImageNet class folders missing in {folder}: {', '.join(absent[:10])}"
            f"{' ...' if len(absent) > 10 else ''} ({len(absent)} of the {len(wnids)} subset classes); "
            f"check the class subset or complete the data set"
        )


def _images_below(folder: Path) -> list[str]:
    paths = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        paths.extend(
            os.path.join(dirpath, name) for name in sorted(filenames) if _is_image(name)
        )
    return paths


def imagenet_folder(
    root: str | os.PathLike,
    split: str = "train",
    class_subset=None,
    class_list=None,
    ground_truth: str | os.PathLike | None = None,
    transform: str | Callable | None = None,
) -> ImageListDataset:
    """ImageNet split `split` of `root` as a Dataset of (image, label); see the module docstring."""
    root = Path(root).expanduser().absolute()
    transform = resolve_transform(transform)
    wnids = _subset_wnids(class_subset)
    folder, subfolders, images = _scan_split(root, split)
    if subfolders:
        classes = wnids if wnids is not None else subfolders
        if wnids is not None:
            _check_subset_folders(folder, subfolders, wnids)
        samples, empty = [], []
        for label, wnid in enumerate(classes):
            paths = _images_below(folder / wnid)
            if not paths:
                empty.append(wnid)
            samples.extend((path, label) for path in paths)
        if empty:
            raise DatasetNotFoundError(
                f"ImageNet class folders without images in {folder}: {', '.join(empty[:10])}"
                f"{' ...' if len(empty) > 10 else ''}; every <wnid>/ folder needs at least one image "
                f"({', '.join(IMG_EXTENSIONS)})"
            )
        return ImageListDataset(
            samples, classes, transform, [folder / wnid for wnid in classes]
        )

    ground_truth_path = _find_ground_truth(root, split, ground_truth)
    _require_class_list(root, split, class_list)
    id_to_wnid = _id_to_wnid(class_list)
    lines = [
        line.strip()
        for line in ground_truth_path.read_text().splitlines()
        if line.strip()
    ]
    if len(lines) != len(images):
        raise DatasetLayoutError(
            f"{ground_truth_path} has {len(lines)} labels but {folder} holds {len(images)} images; "
            f"the file needs exactly one class id per image, in sorted filename order"
        )
    classes = wnids if wnids is not None else sorted(set(id_to_wnid.values()))
    label_of = {wnid: index for index, wnid in enumerate(classes)}
    unknown_subset = [w for w in classes if w not in set(id_to_wnid.values())]
    if unknown_subset:
        raise DatasetLayoutError(
            f"class subset wnids not in the class list: {', '.join(unknown_subset[:10])}; "
            f"use a class list that covers all classes of the ground-truth file"
        )
    samples = []
    for number, (image_name, line) in enumerate(zip(images, lines), start=1):
        try:
            wnid = id_to_wnid[int(line)]
        except (ValueError, KeyError):
            raise DatasetLayoutError(
                f"{ground_truth_path}:{number}: class id {line!r} is not an id of the class list"
            ) from None
        if wnid in label_of:
            samples.append((str(folder / image_name), label_of[wnid]))
    files = [folder, ground_truth_path]
    if isinstance(class_list, (str, os.PathLike)):
        files.append(Path(class_list).absolute())
    return ImageListDataset(samples, classes, transform, files)
