"""Holzmüller & Steinwart, "Training Two-Layer ReLU Networks with Gradient Descent is Inconsistent".

Modules, following the specification's sections:
- `mc1d` (a package), `criterion`, `ckernel`: the vectorised 1-D Monte Carlo, its
  sufficient convergence criterion and its C step (§2);
- `mc_summary`, `statistics`: combining Monte Carlo chunks, p_cross with Wilson
  intervals, claims (§2.7);
- `kinks`: kink distances under uniform bias initialisation
  (relu_fig_kink_distributions);
- `distributions`, `batched`, `star`, `star_summary`: the star data set and its NTK-step
  training (§4);
- `setups` (a package), `setups_summary`: the bias-init / parameterisation / optimiser
  grid of v3 Section 10 (§5);
- `examples`: the 1-D example nets of relu_fig_examples;
- `config`: the semantic checks of the relu config; `jobs`: the cut of the experiments
  into jobs; `shared`: what the experiments share (Adam's constants, dtypes, the base
  of the config dataclasses).
"""
