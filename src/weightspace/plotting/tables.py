"""Tables of the targets, rendered as HTML (report) and LaTeX (papers)."""

from __future__ import annotations

import pandas as pd


def render_table(df: pd.DataFrame, caption: str) -> tuple[str, str]:
    """(HTML, LaTeX) renderings of a table, floats with 4 significant digits."""
    fmt = {c: "{:.4g}".format for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    html = f"<p>{caption}</p>\n" + df.to_html(index=False, formatters=fmt, border=0)
    tex = df.to_latex(index=False, formatters=fmt, caption=caption.replace("_", r"\_"))
    return html, tex
