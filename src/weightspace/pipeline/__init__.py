"""Glue between the Snakemake workflow and the science code: target registry, config, code hashes."""
