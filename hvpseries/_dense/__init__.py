"""Dense method tier: f(A) b by a full eigendecomposition of a small explicit matrix.

Imports only from the core, operator and solve tiers.
"""
