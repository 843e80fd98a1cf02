"""Core tier: array-API backend helpers, the vector space, results and scalar checks.

Imports nothing else from hvpseries.
"""
