"""Solve tier: checks of a linear system, right-hand-side scaling and the symmetry probe.

Imports only from the core and operator tiers.
"""
