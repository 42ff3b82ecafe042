"""Detectors: everything that turns evidence into a score.

Use :func:`create_detector` to build one by name and :func:`list_detectors` to
see what is registered (``kind="pixel"`` or ``"provenance"``). Built-in
detectors are registered on the first registry lookup, when
:mod:`detectors.base` imports the modules named in
:data:`detectors.base.BUILTIN_MODULES`, so importing this package has no side
effects beyond defining names.
"""

from __future__ import annotations

from detectors.base import (
    Detector,
    DetectorKind,
    DetectorResult,
    create_detector,
    detector_kind,
    is_batchable,
    is_registered,
    list_detectors,
    register_detector,
)

__all__ = [
    "Detector",
    "DetectorKind",
    "DetectorResult",
    "create_detector",
    "detector_kind",
    "is_batchable",
    "is_registered",
    "list_detectors",
    "register_detector",
]
