"""The learning-rate sweep of one distribution (the relu_setups_job): every
configuration of the grid, trained in batches, with the refinement around each setting's
best grid lr."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from weightspace.relu.jobs import SETUPS_PROTOCOL
from weightspace.relu.setups.config import SetupConfig, base_lr, refined_lr_grid
from weightspace.relu.setups.grid import run_setup_grid
from weightspace.relu.setups.result import SetupResult
from weightspace.relu.setups.selection import best_lr_result


def run_distribution(
    settings: Mapping,
    distribution: str,
    seed: int,
    *,
    device="cpu",
    done: Sequence[Mapping] = (),
    save: Callable[[list[dict]], None] | None = None,
    log: Callable[..., None] | None = None,
) -> list[dict]:
    """Every configuration of the setups grid for one distribution, as ``SetupResult.to_dict()``
    entries (plus their ``stage``, "grid" or "refine") in grid order.

    Per (parameterisation, optimiser): the learning-rate grid base·lr_factor^k × bias inits, trained
    as batched models of at most ``max_batch_nets`` nets, then, if ``refine_exponents`` has non-zero
    entries, the refinement best·2^(k/8) around each bias init's best grid lr. ``settings`` holds the
    relu.setups config keys. ``done`` are entries of an interrupted run: they are not trained again.
    ``save(entries)`` gets all finished entries after every batch (for a checkpoint); ``log(fmt,
    *args)`` reports progress.
    """
    log = log or (lambda *args: None)

    def key(param, opt, bias, lr):
        return (param, opt, bias, repr(float(lr)))

    done = list(done)
    finished = {
        key(
            e["config"]["parameterisation"],
            e["config"]["optimizer"],
            e["config"]["bias_init"],
            e["config"]["lr"],
        ): e
        for e in done
    }
    per_batch = max(1, settings["max_batch_nets"] // settings["nets"])

    def train(base, pending, stage):
        """Results of (bias_init, lr) settings of one (parameterisation, optimiser), in order."""
        todo = [
            s
            for s in pending
            if key(base.parameterisation, base.optimizer, *s) not in finished
        ]
        for start in range(0, len(todo), per_batch):
            batch = todo[start : start + per_batch]

            def progress(info, start=start, batch=batch):
                if (
                    info["step"] % (info["steps"] // 4 or 1) == 0
                    or info["step"] == info["steps"]
                ):
                    log(
                        "%s/%s %s, configurations %d-%d of %d: step %d/%d, %d stopped (NaN), best "
                        "valid RMSE %.4g",
                        base.parameterisation,
                        base.optimizer,
                        stage,
                        start + 1,
                        start + len(batch),
                        len(todo),
                        info["step"],
                        info["steps"],
                        info["stopped"],
                        info["best_valid_rmse_min"],
                    )

            for result in run_setup_grid(
                base, batch, seed, device=device, progress=progress
            ):
                c = result.config
                entry = result.to_dict() | {"stage": stage}
                finished[key(c.parameterisation, c.optimizer, c.bias_init, c.lr)] = (
                    entry
                )
                done.append(entry)
            if save is not None:
                save(done)
        return [
            SetupResult.from_dict(
                finished[key(base.parameterisation, base.optimizer, *s)]
            )
            for s in pending
        ]

    protocol = {k: settings[k] for k in ("steps", *SETUPS_PROTOCOL)}
    refine = [k for k in settings["refine_exponents"] if k != 0]
    order = []
    for param in settings["parameterisations"]:
        for opt in settings["optimizers"]:
            base = SetupConfig(
                parameterisation=param,
                optimizer=opt,
                distribution=distribution,
                n_nets=settings["nets"],
                **protocol,
            )
            centre = base_lr(opt, param)
            grid = [
                (b, centre * settings["lr_factor"] ** k)
                for b in settings["bias_inits"]
                for k in settings["lr_exponents"]
            ]
            results = train(base, grid, "grid")
            order += [key(param, opt, *s) for s in grid]
            if refine:
                finer = []
                for b in settings["bias_inits"]:
                    best = best_lr_result(r for r in results if r.config.bias_init == b)
                    if best is not None:
                        finer += [
                            (b, lr) for lr in refined_lr_grid(best.config.lr, refine)
                        ]
                train(base, finer, "refine")
                order += [key(param, opt, *s) for s in finer]
    return [finished[k] for k in dict.fromkeys(order)]
