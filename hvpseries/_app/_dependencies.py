"""Optional dependencies of ``hvpseries train`` and ``hvpseries demo``, imported lazily.

PyTorch (extra ``torch``) for everything that trains, scikit-learn (extra ``examples``) for the
bundled ``digits`` and ``diabetes`` data, matplotlib (extra ``plot``) for the curves. A missing
one raises :class:`MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, extra: str, purpose: str) -> Any:
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"sklearn.datasets"``.
    extra : str
        The hvpseries extra that installs it, e.g. ``"examples"``.
    purpose : str
        What needs it, for the message, e.g. ``"--dataset digits"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        When the import fails.

    Examples
    --------
    >>> require("json", "none", "this example").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        message = (
            f"{purpose} needs {package}, which is not installed or failed to import "
            f"({error}); install it with: pip install 'hvpseries[{extra}]'"
        )
        raise MissingDependencyError(message) from error
