"""Writers of tiny data sets in the standard on-disk layouts, for tests of weightspace.data.

Each writer returns the arrays it wrote, so tests can check that the loaders read back
exactly those pixels and labels.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
from PIL import Image

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_bytes(path: Path, payload: bytes, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def write_idx_images(path: Path, images: np.ndarray, compress: bool = False) -> None:
    """IDX3 file: magic 0x00000803 (uint8, 3 dims), big-endian sizes, then the pixels."""
    count, rows, cols = images.shape
    header = struct.pack(">IIII", 0x00000803, count, rows, cols)
    _write_bytes(path, header + images.astype(np.uint8).tobytes(), compress)


def write_idx_labels(path: Path, labels: np.ndarray, compress: bool = False) -> None:
    """IDX1 file: magic 0x00000801 (uint8, 1 dim), big-endian count, then the labels."""
    header = struct.pack(">II", 0x00000801, len(labels))
    _write_bytes(path, header + labels.astype(np.uint8).tobytes(), compress)


def make_idx_root(
    root: Path, class_name: str, compress: bool = False, seed: int = 0
) -> dict:
    """<root>/<class_name>/raw/ with 5 train and 3 test 28x28 images; returns {part: (images, labels)}."""
    rng = np.random.default_rng(seed)
    written = {}
    for part, count in (("train", 5), ("test", 3)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        image_name, label_name = IDX_NAMES[part]
        write_idx_images(root / class_name / "raw" / image_name, images, compress)
        write_idx_labels(root / class_name / "raw" / label_name, labels, compress)
        written[part] = (images, labels)
    return written


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def make_cifar10_root(root: Path, per_batch: int = 2, seed: int = 0) -> dict:
    """cifar-10-batches-py/ with 5 train batches, a test batch and batches.meta.

    Rows are 3072 bytes: the red, green and blue 32x32 planes in row-major order, as in
    the official files.  Returns {"train"/"test": (rows uint8 (N, 3072), labels), "md5": {file: md5}}.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    parts = {"train": ([], []), "test": ([], [])}
    for filename in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        _pickle(
            folder / filename,
            {"batch_label": filename, "data": rows, "labels": labels, "filenames": []},
        )
        part = "test" if filename == "test_batch" else "train"
        parts[part][0].append(rows)
        parts[part][1].extend(labels)
    _pickle(
        folder / "batches.meta",
        {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072},
    )
    written = {
        part: (np.vstack(rows), np.array(labels))
        for part, (rows, labels) in parts.items()
    }
    written["md5"] = {path.name: md5_of(path) for path in folder.iterdir()}
    return written


def make_cifar100_root(root: Path, count: int = 4, seed: int = 1) -> dict:
    """cifar-100-python/ with train, test (fine and coarse labels) and meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    written = {}
    for part in ("train", "test"):
        rows = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=count)]
        _pickle(
            folder / part,
            {
                "data": rows,
                "fine_labels": fine,
                "coarse_labels": [v // 5 for v in fine],
                "filenames": [],
            },
        )
        written[part] = (rows, np.array(fine))
    _pickle(
        folder / "meta",
        {
            "fine_label_names": [f"fine{i}" for i in range(100)],
            "coarse_label_names": [],
        },
    )
    written["md5"] = {path.name: md5_of(path) for path in folder.iterdir()}
    return written


def patch_cifar_md5(monkeypatch, cls, md5: dict) -> None:
    """Make torchvision's md5 lists of `cls` expect the fake files (the test's own files)."""
    monkeypatch.setattr(
        cls, "train_list", [[name, md5[name]] for name, _ in cls.train_list]
    )
    monkeypatch.setattr(
        cls, "test_list", [[name, md5[name]] for name, _ in cls.test_list]
    )
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})


def cifar_row_to_hwc(row: np.ndarray) -> np.ndarray:
    return row.reshape(3, 32, 32).transpose(1, 2, 0)


def write_png(path: Path, rgb: tuple[int, int, int], size: int = 4) -> np.ndarray:
    """A solid-colour RGB PNG (lossless, so the pixels read back exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[...] = rgb
    pixels[0, 0] = (
        rgb[2],
        rgb[1],
        rgb[0],
    )  # one distinct pixel so orientation errors show
    Image.fromarray(pixels).save(path)
    return pixels


def block_network(monkeypatch) -> None:
    """Make every socket connection and name lookup fail at once."""

    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
