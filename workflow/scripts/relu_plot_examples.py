"""relu_fig_examples: (a) median retrained ex-distr nets of the named setups; (b) one m = 16 net
trained by GD on the six points: loss − 1.0, function snapshots, kink movement; (c) the Adam
reference net with equidistant kinks against a GD net from zero biases."""

import numpy as np
import pandas as pd

from weightspace.pipeline.job import script_job
from weightspace.plotting import new_figure, save_figure
from weightspace.provenance.atomic import atomic_path, atomic_write_json, read_json
from weightspace.relu.examples import claims, plot_rows
from weightspace.relu.setups_summary import setting_label

sm = snakemake  # noqa: F821 (injected by Snakemake)
with script_job(sm) as job:
    doc = read_json(sm.input.result)
    fig, axes = new_figure(ncols=3, nrows=2, width=3.0, height=2.7)
    gs = axes[0, 0].get_gridspec()
    axes[0, 0].remove()
    axes[0, 1].remove()
    ax_a = fig.add_subplot(gs[0, :2])

    a = doc["retrained"]
    ax_a.plot(
        a["data_x"],
        a["data_y"],
        "x",
        color="0.3",
        ms=2.5,
        mew=0.6,
        label="training data",
    )
    ax_a.plot(
        a["grid"], a["target"], color="0.6", lw=0.8, ls="--", label="noise-free target"
    )
    for k, net in enumerate(a["nets"]):
        s = net["setting"]
        ax_a.plot(
            a["grid"],
            net["f"],
            color=f"C{k}",
            lw=1.3,
            label=f"{setting_label(s['parameterisation'], s['optimizer'], s['bias_init'])} "
            f"(lr {net['lr']:.3g}, valid RMSE {net['valid_rmse']:.3f})",
        )
    ax_a.set_xlabel("x")
    ax_a.set_ylabel("y")
    ax_a.set_title(
        f"(a) ex-distr: median of {a['n_nets']} nets on one data set, "
        f"{a['steps']:,} steps",
        fontsize=8,
    )
    ax_a.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)

    r = doc["reference"]
    ax_c = axes[0, 2]
    ax_c.plot(r["x"], r["y"], "x", color="0.3", ms=2.5, mew=0.6, label="data")
    ax_c.plot(
        r["grid"],
        r["gd_zero_bias"]["f"],
        color="C0",
        lw=1.2,
        label=f"GD, zero biases (loss {r['gd_zero_bias']['loss'][-1]:.3f})",
    )
    good = r["adam_equidistant"]
    ax_c.plot(
        r["grid"],
        good["f"],
        color="C2",
        lw=1.2,
        label=f"Adam, equidistant kinks (loss {good['loss'][-1]:.3f})",
    )
    kinks = np.asarray(good["final_kinks"])
    inside = np.abs(kinks) <= max(np.abs(r["grid"]))
    ax_c.plot(
        kinks[inside],
        np.interp(kinks[inside], r["grid"], good["f"]),
        ".",
        color="C2",
        ms=5,
    )
    ax_c.set_xlabel("x")
    ax_c.set_title(
        f"(c) m = {len(kinks)}, per-side linear loss {r['linear_loss']:.3f}", fontsize=8
    )
    ax_c.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2))

    t = doc["trace"]
    excess = np.asarray(t["loss"]) - t["linear_loss"]
    ax = axes[1, 0]
    positive = excess > 0
    ax.semilogy(np.asarray(t["step"])[positive], excess[positive], "k", lw=1.0)
    ax.set_xlabel("epoch k")
    ax.set_ylabel(r"$L_D(W_k) - 1.0$")
    ax.set_title(
        f"(b) six points, m = {len(t['kinks'][0])}, GD step {t['lr']:g}", fontsize=8
    )

    ax = axes[1, 1]
    ax.plot(t["x"], t["y"], "k.", ms=5, label="data")
    styles = ["--", "-", "-"]
    colours = ["k", "0.6", "C3"]
    for k, (epoch, snap) in enumerate(
        sorted(t["snapshots"].items(), key=lambda kv: int(kv[0]))
    ):
        ax.plot(
            snap["x"],
            snap["f"],
            ls=styles[min(k, 2)],
            color=colours[min(k, 2)],
            lw=0.9,
            label=f"epoch {int(epoch):,}",
        )
    last = t["snapshots"][str(max(map(int, t["snapshots"])))]
    ax.plot(last["x"][1:-1], last["f"][1:-1], ".", color="C3", ms=3)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=6)

    ax = axes[1, 2]
    kink_track = np.asarray(t["kinks"])
    ax.plot(t["step"], kink_track, "k", lw=0.5)
    ax.set_xlabel("epoch k")
    ax.set_ylabel(r"kink $-b_{i,k}/a_{i,k}$")
    ax.set_ylim(min(-1.05, kink_track.min() * 1.1), max(1.05, kink_track.max() * 1.1))
    ax.axhline(1.0, color="C3", lw=0.6, ls=":")
    ax.axhline(-1.0, color="C3", lw=0.6, ls=":")

    fig.tight_layout()
    save_figure(fig, sm.output.pdf, sm.output.png)
    with atomic_path(sm.output.csv) as tmp:
        pd.DataFrame(plot_rows(doc)).to_csv(tmp, index=False, float_format="%.8g")
    result = claims(doc)
    job.record.metrics["claims_hold"] = sum(c["holds"] is True for c in result)
    atomic_write_json(sm.output.claims, result)
