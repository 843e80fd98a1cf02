"""Operator tier: the ``LinearOperator`` base, its algebra, and the concrete operators.

Imports only from the core tier.
"""
