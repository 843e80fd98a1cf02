"""Sphinx configuration for the hvpseries documentation."""

import hvpseries

project = "hvpseries"
author = "hvpseries developers"
copyright = "2026, hvpseries developers"
version = release = hvpseries.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
intersphinx_mapping = {}
templates_path = []
exclude_patterns = ["_build", "generated/*.inc", "scripts"]
html_theme = "alabaster"
html_static_path = ["_static"]
nitpicky = False
