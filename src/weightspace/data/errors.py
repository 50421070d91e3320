"""Errors raised by the data loaders.

All "not found" errors subclass FileNotFoundError, so callers that only care that
something is missing can catch that; the messages always name the data set (or
architecture), the exact path that was looked at and how to provide the files.
"""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not on disk (and could not be downloaded)."""


class DatasetIntegrityError(DatasetNotFoundError):
    """Data set files are present but fail the checksum torchvision expects."""


class DatasetLayoutError(ValueError):
    """Files are present but do not follow the expected layout (e.g. label counts differ)."""


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither cached nor downloadable nor given as a local file."""
