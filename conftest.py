"""Root pytest configuration: skip the torch-only subpackages' doctests where torch is absent."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob += ["hvpseries/nn/*", "hvpseries/optim/*"]
