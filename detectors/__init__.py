"""Detectors: everything that turns evidence into a score.

Use :func:`create_detector` to build one by name and :func:`list_detectors` to
see what is registered. Built-in detectors are registered lazily on first use,
so importing this package has no side effects beyond defining names.
"""

from __future__ import annotations

import importlib

from detectors.base import (
    Detector,
    DetectorResult,
    create_detector,
    is_batchable,
    is_registered,
    list_detectors,
    register_detector,
)

__all__ = [
    "Detector",
    "DetectorResult",
    "create_detector",
    "is_batchable",
    "is_registered",
    "list_detectors",
    "register_detector",
]

#: Modules whose import registers the built-in detectors.
_BUILTIN_MODULES = ("detectors.spectral", "detectors.provenance", "detectors.testing", "detectors.cnn")
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside the module
                raise
