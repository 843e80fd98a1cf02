"""Front-end tier: ``funm``, ``abs_inv``, ``solve`` and friends, which pick a method.

Imports from the method tiers (``krylov``, ``series``, ``acceleration``) and below.
"""
