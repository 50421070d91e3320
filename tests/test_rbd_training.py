"""Training with SGD, RBD, FPD and NES (weightspace.rbd.training): the coarse ordering of
a short run, the original's stale FPD coordinates, and the NES update's formula."""

import math

import torch

from weightspace.data.quick import digits
from weightspace.models import build_model, initialize_weights
from weightspace.rbd.directions import DirectionKey, draw
from weightspace.rbd.training import Method, Trainer, parameter_layout

torch.set_num_threads(1)


def _fc(seed=0):
    torch.manual_seed(seed)
    model = build_model("mlp", in_channels=1, image_size=8)
    return initialize_weights(model, "xavier_uniform")  # Keras: Glorot, zero biases


def _stream(x, y, seed=0, batch=32):
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y) - batch + 1, batch):
            yield x[order[i : i + batch]], y[order[i : i + batch]]


def test_layout_follows_registration_order_and_layers():
    sizes, layers = parameter_layout(_fc())
    assert sizes == [64 * 128, 128, 128 * 10, 10] and layers == [0, 0, 1, 1]


def test_short_run_orders_sgd_above_rbd_above_fpd_above_chance():
    # sklearn's digits (8x8): D = 9,610; 10 passes of batch 32; RBD/FPD with the
    # FC-MNIST preset eta = 1 and d = 50 (cos ~ sqrt(50 / 9,610) = 0.07)
    split = digits()
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train).long()
    xt, yt = torch.from_numpy(split.x_test), torch.from_numpy(split.y_test).long()
    accuracy = {}
    for method in (
        Method("sgd", 0.125),
        Method("rbd", 1.0, d=50),
        Method("fpd", 1.0, d=50),
        Method("rbd", 1.0, d=10),
    ):
        model = _fc()
        trainer = Trainer(model, method, seed=1)
        batches = _stream(x, y)
        rows = [trainer.step(batches) for _ in range(450)]
        with torch.no_grad():
            accuracy[(method.name, method.d)] = float(
                (model(xt).argmax(1) == yt).float().mean()
            )
        if method.name != "sgd":
            mean_cos = sum(r["cosine"] for r in rows) / len(rows)
            assert abs(mean_cos - math.sqrt(method.d / 9_610)) < 0.3 * mean_cos
    assert accuracy[("sgd", 250)] > accuracy[("rbd", 50)] > accuracy[("fpd", 50)] > 0.2
    assert accuracy[("rbd", 50)] > accuracy[("rbd", 10)]


def test_stale_fpd_takes_the_gradient_one_step_late():
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    batches = iter(lambda: (x, y), None)
    trainer = Trainer(_fc(), Method("fpd", 1.0, d=20, fpd_stale_coordinates=True), 1)
    trainer.step(batches)
    first = trainer._stale.clone()
    trainer.step(batches)
    # at eta = 1 the forward pass of step 2 sees theta_1 + Phi c_0 = theta_0
    torch.testing.assert_close(trainer._stale, first, rtol=1e-4, atol=1e-7)
    clean = Trainer(_fc(), Method("fpd", 1.0, d=20), 1)
    clean.step(batches)
    clean.step(batches)
    assert not torch.allclose(clean._stale, first, rtol=1e-3, atol=0)


def test_nes_update_is_the_ranked_sum_of_its_offspring_noise():
    x = torch.randn(6, 32, 1, 8, 8)
    y = torch.randint(0, 10, (6, 32))
    d, sigma, lr = 6, 0.01, 0.5
    model = _fc()
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    size = before.numel()
    key = DirectionKey(3, 0)
    losses = []
    for i in range(d):  # each offspring on its own batch
        eps = draw(key, i, 1, size)[0]
        probe = _fc()
        torch.nn.utils.vector_to_parameters(before + sigma * eps, probe.parameters())
        with torch.no_grad():
            losses.append(float(torch.nn.functional.cross_entropy(probe(x[i]), y[i])))
    order = sorted(range(d), key=lambda i: -losses[i])  # highest loss ranks 0
    utility = {i: rank / (d - 1) - 0.5 for rank, i in enumerate(order)}
    expected = before + lr / (sigma * d) * sum(
        utility[i] * draw(key, i, 1, size)[0] / math.sqrt(size) for i in range(d)
    )
    trainer = Trainer(model, Method("nes", lr, d=d, nes_sigma=sigma), seed=3)
    trainer.step(iter(zip(x, y)))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-7)
    assert trainer.images == d * 32 and trainer.updates == 1


def test_train_method_records_validation_cosines_and_budget():
    split = digits()
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train).long()
    val = (torch.from_numpy(split.x_test), torch.from_numpy(split.y_test).long())
    from weightspace.rbd.training import train_method

    run = train_method(_fc(), Method("rbd", 1.0, d=50), 1, _stream(x, y), val, 2, 40)
    assert run["status"] == "completed" and run["updates"] == 80
    assert run["images"] == 80 * 32 and run["parameters"] == 9_610
    first, last = run["history"][0], run["history"][-1]
    assert [e["epoch"] for e in run["history"]] == [0, 1, 2]
    assert last["val_acc"] > first["val_acc"]
    assert 0 < last["cosine_min"] <= last["cosine_mean"] <= last["cosine_max"] < 1
    nes = train_method(_fc(), Method("nes", 1.0, d=10), 1, _stream(x, y), val, 1, 3)
    assert nes["updates"] == 3 and nes["images"] == 3 * 10 * 32  # declared budget


def test_fpd_with_its_projection_in_memory_takes_the_same_steps():
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    params = []
    for keep in (True, False):
        model = _fc()
        trainer = Trainer(
            model,
            Method("fpd", 1.0, d=30, chunk=8, keep_projection_in_memory=keep),
            seed=5,
        )
        batches = iter(lambda: (x, y), None)
        for _ in range(5):
            trainer.step(batches)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=1e-5, atol=1e-7)


def test_in_process_workers_apply_the_sum_of_all_workers_steps():
    batches = [
        (torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))) for _ in range(6)
    ]
    model = _fc()
    trainer = Trainer(model, Method("rbd", 0.5, d=12, workers=3), seed=4)
    assert trainer.scalars_per_step == 3 * 12
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    row = trainer.step(iter(batches[:3]), verify_copies=True)
    assert row["copies_identical"] and trainer.images == 3 * 16
    # the same update by hand: each worker's gradient on its own batch, summed steps
    reference = _fc()
    grads = []
    for x, y in batches[:3]:
        reference.zero_grad()
        torch.nn.functional.cross_entropy(reference(x), y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in reference.parameters()]))
    total, scalars = trainer.bases.workers_step(grads, 0)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert scalars == 36 and torch.equal(after, before - 0.5 * total)
    # one worker is plain RBD
    single = Trainer(_fc(), Method("rbd", 0.5, d=12, workers=1), seed=4)
    assert "copies_identical" not in single.step(iter(batches[:1]), verify_copies=True)


def test_workers_only_with_rbd():
    import pytest

    with pytest.raises(ValueError, match="only with rbd"):
        Method("fpd", 1.0, workers=2)
