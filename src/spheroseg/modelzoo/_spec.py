"""The optional ``bioimageio`` extra: import it with a message that says how to install it."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRA_HINT = 'install the optional extra: pip install -e ".[bioimageio]" (bioimageio.spec, bioimageio.core)'


def require(module: str) -> ModuleType:
    """Import a module of the bioimageio extra, or raise RuntimeError naming the extra.

    Raises
    ------
    RuntimeError
        If the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise RuntimeError(f"{module} must be installed to read or write bioimage.io packages, "
                           f"got none; {EXTRA_HINT}") from err
