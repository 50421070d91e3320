"""Holzmüller & Steinwart, "Training Two-Layer ReLU Networks with Gradient Descent is Inconsistent".

Modules, following the specification's sections:
- `mc1d`, `criterion`: the vectorised 1-D Monte Carlo and its sufficient convergence criterion (§2);
- `mc_summary`: combining Monte Carlo chunks, p_cross with Wilson intervals, claims (§2.7);
- `kinks`: kink distances under uniform bias initialisation (relu_fig_kink_distributions);
- `distributions`, `batched`, `star`: the star data set and its NTK-step training (§4);
- `setups`: the bias-init / parameterisation / optimiser grid of v3 Section 10 (§5).
"""
