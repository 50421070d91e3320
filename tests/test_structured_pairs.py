"""The mnist_pairs feature set (weightspace.structured.pairs): the quick 100-class proxy of a
pretrained classifier's last layer."""

import numpy as np
import pytest

from weightspace.structured.features import FeatureSet, check_predictions
from weightspace.structured.pairs import draw_pairs, pair_data, pair_feature_set

CFG = {
    "train_pairs": 3000,
    "test_pairs": 600,
    "epochs": 15,
    "batch_size": 128,
    "lr": 0.01,
    "weight_decay": 0.0,
}


def _single(seed=0, n_train=400, n_test=200, dim=12):
    """Single-example features whose class sits in its own coordinates: linearly separable."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, dim)) * 3
    parts = {}
    for part, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 10
        parts[part] = (
            (centres[y] + rng.standard_normal((n, dim))).astype(np.float32),
            y,
        )
    empty = np.zeros((0, 0), np.float32)
    return FeatureSet(
        x_train=parts["train"][0],
        y_train=parts["train"][1],
        x_test=parts["test"][0],
        y_test=parts["test"][1],
        weight=np.zeros((10, dim), np.float32),
        bias=np.zeros(10, np.float32),
        head_weight=empty,
        head_bias=np.zeros(0, np.float32),
        pred_train=np.zeros(n_train, np.int64),
        pred_test=np.zeros(n_test, np.int64),
    )


def test_pairs_concatenate_features_and_number_ordered_classes():
    single = _single()
    first, second = draw_pairs(400, 50, np.random.default_rng(1))
    x, y = pair_data(single.x_train, single.y_train, first, second, 10)
    assert x.shape == (50, 24) and x.dtype == np.float32
    assert np.array_equal(x[:, :12], single.x_train[first])
    assert np.array_equal(x[:, 12:], single.x_train[second])
    assert np.array_equal(y, 10 * single.y_train[first] + single.y_train[second])
    with pytest.raises(ValueError, match="at least one"):
        draw_pairs(0, 5, np.random.default_rng(0))


def test_pair_feature_set_trains_a_100_class_last_layer():
    single = _single()
    fs = pair_feature_set(single, CFG, seed=3)
    assert fs.shape == (100, 24) and not fs.has_head
    assert len(fs.y_train) == 3000 and len(fs.y_test) == 600
    assert set(np.unique(fs.y_train)) == set(range(100))  # ~30 pairs per class
    # Test pairs come from held-out examples only.
    test_rows = {row.tobytes() for row in single.x_test}
    assert all(row[:12].tobytes() in test_rows for row in fs.x_test)
    # The classes are separable in the features: the trained layer is far above chance
    # (1 %) and its stored predictions are its own.
    check = check_predictions(fs)
    assert check["train_accuracy"] > 0.8 and check["test_accuracy"] > 0.6
    # The accuracy needs both digits' directions: a rank-10 truncation loses most of it.
    u, s, vt = np.linalg.svd(fs.weight.astype(np.float64), full_matrices=False)
    low = (u[:, :10] * s[:10]) @ vt[:10]
    assert fs.accuracy("test", low) < check["test_accuracy"] - 0.2
    again = pair_feature_set(single, CFG, seed=3)
    assert np.array_equal(again.weight, fs.weight)
    assert not np.array_equal(pair_feature_set(single, CFG, seed=4).y_train, fs.y_train)
