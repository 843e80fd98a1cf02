"""Application tier: the ``hvpseries`` command line and its solve and train commands.

The top tier: it may import anything in hvpseries, and nothing imports it.
"""
