"""Shared figure helpers: one style, PDF plus a PNG twin, written atomically."""

from weightspace.plotting.figures import new_figure, save_figure

__all__ = ["new_figure", "save_figure"]
