"""weightspace: reproducing five papers on neural-network weight space."""

__version__ = "0.1.0"
