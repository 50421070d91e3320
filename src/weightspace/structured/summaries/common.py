"""What the target summaries share: one claim row and a table rendered as HTML and
LaTeX (both shared modules, re-exported here)."""

from __future__ import annotations

from weightspace.pipeline.claims import claim
from weightspace.plotting.tables import render_table

__all__ = ["claim", "render_table"]
