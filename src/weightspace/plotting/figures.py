"""Figure creation and saving. matplotlib is imported lazily (with the Agg backend) so that
importing weightspace never needs a display or pays matplotlib's import time."""

from __future__ import annotations

from pathlib import Path

from weightspace.provenance.atomic import atomic_path

PNG_DPI = 150


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(
    ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kw
):
    plt = _pyplot()
    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "savefig.bbox": "tight",
            "pdf.fonttype": 42,
        }
    )
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kw)


def save_figure(fig, pdf: str | Path, png: str | Path) -> None:
    """Save the figure as PDF and PNG, each atomically, then close it."""
    plt = _pyplot()
    # Fixed metadata keeps the PDF bytes independent of the date it was made.
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None})
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)
    plt.close(fig)
