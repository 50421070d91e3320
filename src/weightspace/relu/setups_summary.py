"""Results of the setups grid → relu_fig_setups and relu_table_setups (spec Section 5).

A job file holds every configuration trained for one distribution (the learning-rate grid and,
if configured, its refinement) as ``SetupResult.to_dict()`` entries with a ``stage`` key. From
those, the best-validation learning rate per (parameterisation, optimiser, bias init,
distribution) is selected (``setups.best_by_setting``); the figure shows each bias init's mean
test RMSE relative to the zero init against d, the table the means ± std/√(P−1) per column.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from weightspace.pipeline.chunks import check_chunks
from weightspace.relu.distributions import get_distribution
from weightspace.relu.setups import (
    METRICS,
    SetupResult,
    mean_and_se,
    relative_curves,
    setups_table,
)

PARAM_LABELS = {"kaiming": "He", "ntk": "NTK"}
OPT_LABELS = {"gd": "SGD", "gd-mom": "SGDM", "adam": "Adam"}
# The original's names (eval_nn_setups.get_latex_name), as plain text and as LaTeX.
BIAS_LABELS = {
    "zero": "Zero",
    "pytorch": "PyTorch",
    "unif": "U(1)",
    "unif-pos": "U+(1)",
    "unif-neg": "U-(1)",
    "kink-neg-unif": "Uk-(1)",
    "kink-neg-point": "Xk-",
}
BIAS_LATEX = {
    "zero": "Zero",
    "pytorch": "PyTorch",
    "unif": r"$U(1)$",
    "unif-pos": r"$U_+(1)$",
    "unif-neg": r"$U_-(1)$",
    "kink-neg-unif": r"$U_{k-}(1)$",
    "kink-neg-point": r"$X_{k-}$",
}


def setting_label(
    parameterisation: str, optimizer: str, bias_init: str, latex: bool = False
) -> str:
    bias = (BIAS_LATEX if latex else BIAS_LABELS)[bias_init]
    return "/".join([PARAM_LABELS[parameterisation], OPT_LABELS[optimizer], bias])


def distribution_label(name: str, latex: bool = False) -> str:
    dist = get_distribution(name)
    sub = "ex" if dist.kind == "ex" else str(dist.dim)
    if latex:
        return r"$P^{\mathrm{data}}_{" + (r"\mathrm{ex}" if sub == "ex" else sub) + "}$"
    return f"P_{sub}"


def rad_dims(distributions: Iterable[str]) -> list[int]:
    """The input dimensions d of the rad-distr-d distributions, ascending."""
    return sorted(
        get_distribution(d).dim
        for d in distributions
        if get_distribution(d).kind == "rad"
    )


# ---------------------------------------------------------------------------------------------
# Loading and flat tables


def job_documents(
    documents: Iterable[Mapping],
    distributions: Sequence[str] | None = None,
    what: str = "setups jobs",
) -> list[Mapping]:
    """The documents of the setups jobs, each distribution once (``what`` names them in
    the message); with ``distributions``, exactly those."""
    documents = list(documents)
    check_chunks([doc["distribution"] for doc in documents], distributions, what)
    return documents


def load_job(document: Mapping) -> list[SetupResult]:
    return [SetupResult.from_dict(entry) for entry in document["results"]]


def best_results(document: Mapping) -> dict[tuple, SetupResult]:
    """The best-learning-rate results of the aggregate's document, keyed by setting."""
    return {
        r.config.setting: r for r in map(SetupResult.from_dict, document["results"])
    }


def results_frame(documents: Iterable[Mapping]) -> pd.DataFrame:
    """One row per trained configuration (every lr, every stage) with mean and std of each
    metric over nets."""
    rows = []
    for doc in documents:
        for entry in doc["results"]:
            r = SetupResult.from_dict(entry)
            c = r.config
            row = {
                "distribution": c.distribution,
                "parameterisation": c.parameterisation,
                "optimizer": c.optimizer,
                "bias_init": c.bias_init,
                "lr": c.lr,
                "stage": entry.get("stage", "grid"),
                "status": r.status,
                "n_nets": r.n_nets,
                "aborted_at_step": r.aborted_at_step,
            }
            for metric in METRICS:
                row[metric] = r.mean(metric)
                row[f"{metric}_std"] = r.std(metric)
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Figure


def figure_frame(
    best: Mapping[tuple, SetupResult],
    parameterisations: Sequence[str],
    optimizers: Sequence[str],
    bias_inits: Sequence[str],
    dims: Sequence[int],
    metric: str = "best_test_rmse",
) -> pd.DataFrame:
    """The numbers behind relu_fig_setups: per panel, bias init and d, the mean RMSE relative to
    the zero init's and its SE (both divided by the zero init's mean), with the absolute values
    and the selected lr."""
    rows = []
    for param in parameterisations:
        for opt in optimizers:
            curves = relative_curves(best, param, opt, bias_inits, dims, metric=metric)
            for bias in bias_inits:
                for d, rel, rel_se in zip(
                    dims, curves[bias]["mean"], curves[bias]["se"]
                ):
                    r = best.get((param, opt, bias, f"rad-distr-{d}"))
                    mean, se = (
                        mean_and_se(r, metric)
                        if r is not None
                        else (math.nan, math.nan)
                    )
                    rows.append(
                        {
                            "parameterisation": param,
                            "optimizer": opt,
                            "bias_init": bias,
                            "d": d,
                            "relative_mean": rel,
                            "relative_se": rel_se,
                            "mean": mean,
                            "se": se,
                            "lr": r.config.lr if r is not None else math.nan,
                            "n_nets": r.n_nets if r is not None else 0,
                        }
                    )
    return pd.DataFrame(rows)


def _panel(frame, param, opt):
    return frame[(frame["parameterisation"] == param) & (frame["optimizer"] == opt)]


def _at(frame, param, opt, bias, d, column="relative_mean"):
    sel = _panel(frame, param, opt)
    sel = sel[(sel["bias_init"] == bias) & (sel["d"] == d)]
    return float(sel[column].iloc[0]) if len(sel) else math.nan


def figure_claims(frame: pd.DataFrame) -> list[dict]:
    """The spec's expected message, checked where the grid has the ingredients: zero bias init
    with SGD suffers most in low d; the kink-aware init and Adam help; the differences shrink
    as d grows."""
    dims = sorted(frame["d"].unique())
    params = list(dict.fromkeys(frame["parameterisation"]))
    opts = list(dict.fromkeys(frame["optimizer"]))
    inits = list(dict.fromkeys(frame["bias_init"]))
    others = [b for b in inits if b != "zero"]
    d0, d1 = dims[0], dims[-1]
    published = (
        "v3 Section 10: zero bias init with SGD suffers most in low d (kinks trapped at 0); "
        "kink-aware inits and Adam help; differences shrink as d grows"
    )
    out = []
    if "gd" in opts and others:
        parts, holds = [], True
        for param in params:
            rel = {b: _at(frame, param, "gd", b, d0) for b in others}
            holds &= all(v < 1.0 for v in rel.values())
            parts.append(
                f"{PARAM_LABELS[param]}/SGD: "
                + ", ".join(f"{BIAS_LABELS[b]} {v:.2f}" for b, v in rel.items())
            )
        out.append(
            {
                "claim": f"with SGD every other bias init beats the zero init at d = {d0} "
                "(relative mean test RMSE < 1)",
                "published": published,
                "reproduced": "; ".join(parts),
                "holds": bool(holds),
            }
        )
    if "gd" in opts and "kink-neg-unif" in inits:
        parts, holds = [], True
        for param in params:
            rel = _at(frame, param, "gd", "kink-neg-unif", d0)
            se = _at(frame, param, "gd", "kink-neg-unif", d0, "relative_se")
            holds &= rel + 2 * se < 1.0
            parts.append(f"{PARAM_LABELS[param]}/SGD: {rel:.2f} ± {2 * se:.2f}")
        out.append(
            {
                "claim": f"the kink-aware init Uk-(1) beats the zero init with SGD at d = {d0} "
                "by more than 2 SE",
                "published": published,
                "reproduced": "; ".join(parts),
                "holds": bool(holds),
            }
        )
    if "gd" in opts and "adam" in opts and "zero" in inits:
        parts, holds = [], True
        for param in params:
            sgd = _at(frame, param, "gd", "zero", d0, "mean")
            adam = _at(frame, param, "adam", "zero", d0, "mean")
            holds &= adam < sgd
            parts.append(f"{PARAM_LABELS[param]}: SGD {sgd:.3f}, Adam {adam:.3f}")
        out.append(
            {
                "claim": f"Adam lowers the zero init's test RMSE against SGD at d = {d0}",
                "published": published,
                "reproduced": "; ".join(parts),
                "holds": bool(holds),
            }
        )
    if "gd" in opts and others and d1 != d0:
        parts, holds = [], True
        for param in params:
            spread = {
                d: max(abs(math.log(_at(frame, param, "gd", b, d))) for b in others)
                for d in (d0, d1)
            }
            holds &= spread[d1] < spread[d0]
            parts.append(
                f"{PARAM_LABELS[param]}/SGD: max |log rel. RMSE| {spread[d0]:.2f} at "
                f"d = {d0}, {spread[d1]:.2f} at d = {d1}"
            )
        out.append(
            {
                "claim": "differences between bias inits shrink as d grows (SGD)",
                "published": published,
                "reproduced": "; ".join(parts),
                "holds": bool(holds),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Table


def ordered_table(
    best: Mapping[tuple, SetupResult],
    parameterisations: Sequence[str],
    optimizers: Sequence[str],
    bias_inits: Sequence[str],
    distributions: Sequence[str],
    metric: str = "best_test_rmse",
) -> list[dict]:
    """``setups_table`` rows in the config's order (parameterisation, optimiser, bias init)."""
    rows = {
        (r["parameterisation"], r["optimizer"], r["bias_init"]): r
        for r in setups_table(best, distributions, metric=metric)
    }
    return [
        rows[key]
        for key in (
            (p, o, b) for p in parameterisations for o in optimizers for b in bias_inits
        )
        if key in rows
    ]


def table_frame(rows: Sequence[Mapping], distributions: Sequence[str]) -> pd.DataFrame:
    """Wide CSV form: per row the setting, and per distribution mean, SE, ×10⁴ values, shade
    and lr (empty where a result is missing)."""
    out = []
    for row in rows:
        flat = {
            "parameterisation": row["parameterisation"],
            "optimizer": row["optimizer"],
            "bias_init": row["bias_init"],
            "label": setting_label(
                row["parameterisation"], row["optimizer"], row["bias_init"]
            ),
        }
        for dist in distributions:
            cell = row["cells"].get(dist, {})
            for key in ("mean", "se", "mean_scaled", "se_scaled", "shade", "lr"):
                flat[f"{dist}:{key}"] = cell.get(key, np.nan)
        out.append(flat)
    return pd.DataFrame(out)


def shade_rgb(shade: float) -> tuple[int, int, int]:
    """LaTeX's red!<shade>: shade % red mixed with white."""
    s = min(max(float(shade), 0.0), 100.0) / 100.0
    return 255, round(255 * (1 - s)), round(255 * (1 - s))


def table_html(
    rows: Sequence[Mapping], distributions: Sequence[str], caption: str
) -> str:
    """An HTML fragment (a <table>), cells shaded like the LaTeX table."""
    head = "".join(
        f"<th>{html.escape(distribution_label(d))}<br><small>{html.escape(d)}</small></th>"
        for d in distributions
    )
    lines = [
        f"<table class='relu-setups'><caption>{html.escape(caption)}</caption>",
        f"<tr><th>Param/Opt/Bias-init</th>{head}</tr>",
    ]
    for row in rows:
        label = setting_label(
            row["parameterisation"], row["optimizer"], row["bias_init"]
        )
        cells = []
        for dist in distributions:
            cell = row["cells"].get(dist)
            if cell is None:
                cells.append("<td></td>")
                continue
            r, g, b = shade_rgb(cell["shade"])
            cells.append(
                f"<td style='background:rgb({r},{g},{b});text-align:right' "
                f"title='lr {cell['lr']:.4g}'>{cell['mean_scaled']} &plusmn; "
                f"{cell['se_scaled']}</td>"
            )
        lines.append(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            + "".join(cells)
            + "</tr>"
        )
    lines.append("</table>")
    return "\n".join(lines) + "\n"


def table_latex(rows: Sequence[Mapping], distributions: Sequence[str]) -> str:
    """The original's tabular (nn_results_latex.txt): \\cellcolor{red!<shade>} $mean \\pm se$ (×10⁴);
    needs \\usepackage[table]{xcolor}."""
    lines = [
        r"\begin{tabular}{" + "c" * (len(distributions) + 1) + "}",
        " & ".join(
            ["Param/Opt/Bias-init"]
            + [distribution_label(d, latex=True) for d in distributions]
        )
        + r"\\"
        + "\n"
        + r"\hline",
    ]
    for row in rows:
        parts = [
            setting_label(
                row["parameterisation"], row["optimizer"], row["bias_init"], latex=True
            )
        ]
        for dist in distributions:
            cell = row["cells"].get(dist)
            parts.append(
                ""
                if cell is None
                else r"\cellcolor{red!"
                + str(cell["shade"])
                + "} "
                + f"${cell['mean_scaled']} \\pm {cell['se_scaled']}$"
            )
        lines.append(" & ".join(parts) + r"\\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def table_claims(rows: Sequence[Mapping], distributions: Sequence[str]) -> list[dict]:
    """In the 1-D columns (ex-distr and the smallest rad-distr d) the zero init is the worst
    SGD row of its parameterisation, and the spread of a rad-distr column (worst / best row)
    shrinks from the smallest to the largest d."""
    published = "v3 Section 10 table (best_test_rmse x 1e4 of the best-validation lr)"
    dims = rad_dims(distributions)
    low_cols = [d for d in distributions if d == "ex-distr"]
    if dims:
        low_cols.append(f"rad-distr-{dims[0]}")
    out = []
    params = list(dict.fromkeys(r["parameterisation"] for r in rows))
    for dist in low_cols:
        parts, holds, checked = [], True, False
        for param in params:
            sgd = [
                r
                for r in rows
                if r["parameterisation"] == param
                and r["optimizer"] == "gd"
                and dist in r["cells"]
            ]
            zero = [r for r in sgd if r["bias_init"] == "zero"]
            if len(sgd) < 2 or not zero:
                continue
            checked = True
            worst = max(sgd, key=lambda r: r["cells"][dist]["mean"])
            holds &= worst["bias_init"] == "zero"
            parts.append(
                f"{PARAM_LABELS[param]}/SGD: Zero {zero[0]['cells'][dist]['mean_scaled']}, "
                f"worst {BIAS_LABELS[worst['bias_init']]} "
                f"{worst['cells'][dist]['mean_scaled']}"
            )
        if checked:
            out.append(
                {
                    "claim": f"zero bias init is the worst SGD row in the {dist} column",
                    "published": published,
                    "reproduced": "; ".join(parts) + " (x 1e-4)",
                    "holds": bool(holds),
                }
            )
    if len(dims) >= 2:
        spread = {}
        for d in (dims[0], dims[-1]):
            means = [
                r["cells"][f"rad-distr-{d}"]["mean"]
                for r in rows
                if f"rad-distr-{d}" in r["cells"]
            ]
            spread[d] = max(means) / min(means)
        out.append(
            {
                "claim": "the spread of the rad-distr columns (worst/best row) shrinks with d",
                "published": published,
                "reproduced": f"worst/best {spread[dims[0]]:.2f} at d = {dims[0]}, "
                f"{spread[dims[-1]]:.2f} at d = {dims[-1]}",
                "holds": bool(spread[dims[-1]] < spread[dims[0]]),
            }
        )
    return out
