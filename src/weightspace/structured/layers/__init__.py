"""Trainable layers y = W̃u + b with structured weight matrices (spec §4), one module
per structure, all on one base class (`base.StructuredLayer`: construction, bias,
counts):

- `sss.SSSLayer` (its state recursion and adjoint in `scan`), `low_rank.LowRankLayer`,
- `psm.PSMLayer`, `displacement.TLLayer` and `displacement.LDRLayer`,
- `hierarchical.HMatLayer` (HODLR, HEDLR and H-matrices).

Every forward pass works on the structure's own parameters and never forms W̃.
"""
