"""Neural teleportation (Armenta et al.), teleport.md: change-of-basis symmetries of
ordinary PyTorch models."""

from weightspace.teleport.cob import SAMPLING_TYPES, sample_cob
from weightspace.teleport.model import TeleportableModel, TeleportError

__all__ = ["SAMPLING_TYPES", "TeleportError", "TeleportableModel", "sample_cob"]
