"""Detector protocol, result dataclass and registry (timm-style).

A detector turns one :class:`forensics.io.LoadedImage` into a
:class:`DetectorResult`. Detectors are registered by name with
:func:`register_detector` and built with :func:`create_detector`; tiny
``test_*`` variants are registered for fast tests.
"""

from __future__ import annotations

import fnmatch
import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, runtime_checkable

from forensics.io import LoadedImage

__all__ = [
    "Claim",
    "BUILTIN_MODULES",
    "Detector",
    "DetectorKind",
    "DetectorResult",
    "DetectorSpec",
    "create_detector",
    "detector_kind",
    "is_batchable",
    "is_registered",
    "list_detectors",
    "register_detector",
]

#: What a provenance detector asserts about the file's origin.
Claim = Literal["ai_generated", "ai_edited", "camera", "none"]
#: How much a claim weighs. ``proof``: verified AI claim, enough for ``ai_confirmed``.
#: ``strong``: near-certain but unverified. ``weak``: a hint, shown, never decisive.
Strength = Literal["proof", "strong", "weak", "none"]
Status = Literal["ok", "not_applicable", "error"]


@dataclass(frozen=True)
class DetectorResult:
    """What one detector found in one image.

    Attributes:
        name: Registry name of the detector, e.g. ``"spectral"``.
        version: Version of the detector and its weights, e.g. ``"spectral-v1"``.
        status: ``ok``; ``not_applicable`` when the detector has nothing to say
            (e.g. image too small, no metadata); ``error`` when it failed.
        score: P(AI) in ``[0, 1]`` from pixel evidence, or ``None`` when the
            detector gives no score (provenance readers, not-applicable).
        threshold: The score at or above which this detector alone would say
            ``likely_ai``, or ``None``.
        claim: For provenance detectors: what the file claims about its origin.
        strength: How much the claim weighs (see :data:`Strength`).
        evidence: JSON-serialisable details (features, fields read, bits matched).
        explanations: Plain-language sentences for a human reader.
        message: Error or not-applicable reason, else ``None``.
        time_s: Wall time spent in the detector, in seconds.
    """

    name: str
    version: str
    status: Status = "ok"
    score: float | None = None
    threshold: float | None = None
    claim: Claim = "none"
    strength: Strength = "none"
    evidence: dict[str, Any] = field(default_factory=dict)
    explanations: tuple[str, ...] = ()
    message: str | None = None
    time_s: float = 0.0

    def __post_init__(self) -> None:
        if self.score is not None and not (0.0 <= self.score <= 1.0 and not math.isnan(self.score)):
            raise ValueError(f"score must be in [0, 1], got {self.score!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form used in scan records."""
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "score": None if self.score is None else round(float(self.score), 6),
            "threshold": self.threshold,
            "claim": self.claim,
            "strength": self.strength,
            "evidence": self.evidence,
            "explanations": list(self.explanations),
            "message": self.message,
            "time_s": round(float(self.time_s), 6),
        }


@runtime_checkable
class Detector(Protocol):
    """Anything with a ``name``, a ``version`` and an ``analyze`` method."""

    name: str
    version: str

    def analyze(self, image: LoadedImage) -> DetectorResult:
        """Analyse one loaded image. Must not modify ``image``."""
        ...


#: What a detector reads. ``pixel``: the decoded pixels, giving a P(AI) score that the
#: calibration fuses (and that the stability check re-scores). ``provenance``: what the
#: file says about its origin (metadata, manifests, watermarks), giving a claim, no score.
DetectorKind = Literal["pixel", "provenance"]
_KINDS: tuple[str, ...] = ("pixel", "provenance")


@dataclass(frozen=True)
class DetectorSpec:
    """A registry entry.

    Attributes:
        name: Registry name.
        factory: Builds the detector from keyword options.
        kind: What the detector reads (see :data:`DetectorKind`).
        batchable: The detector has ``prepare(image)`` and ``score_batch(inputs)``,
            and its factory accepts ``prepare_only=True`` (build without the network).
    """

    name: str
    factory: Callable[..., Detector]
    kind: DetectorKind
    batchable: bool = False


_REGISTRY: dict[str, DetectorSpec] = {}

#: Modules whose import registers the built-in detectors (each calls :func:`register_detector`).
#: Imported by name on the first registry lookup, so importing ``detectors`` stays cheap and this
#: module needs no import of the detector modules (which import it).
BUILTIN_MODULES: tuple[str, ...] = ("detectors.spectral", "detectors.provenance", "detectors.testing", "detectors.cnn", "detectors.zeroshot")
_builtin_loaded = False


def register_detector(
    name: str, *, kind: DetectorKind = "provenance", batchable: bool = False
) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Decorator registering a detector factory under ``name``.

    Args:
        name: Registry name.
        kind: ``"pixel"`` for a detector that scores pixels (its score is fused
            and re-scored by the stability check), ``"provenance"`` (the default)
            for one that reads what the file declares and gives no score.
        batchable: The detector has ``prepare(image)`` and ``score_batch(inputs)``,
            and its factory accepts ``prepare_only=True`` (build without the
            network), so engines can cut inputs in workers and batch the network.

    Raises:
        ValueError: If ``kind`` is unknown or ``name`` is already registered to another factory.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")

    def deco(fn: Callable[..., Detector]) -> Callable[..., Detector]:
        old = _REGISTRY.get(name)
        if old is not None and old.factory is not fn:
            raise ValueError(f"detector {name!r} is already registered")
        _REGISTRY[name] = DetectorSpec(name, fn, kind, batchable)
        return fn

    return deco


def _ensure_registered() -> None:
    """Import the built-in detector modules once, which registers their detectors."""
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside the module
                _builtin_loaded = False
                raise


def _spec(name: str) -> DetectorSpec:
    _ensure_registered()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_detectors(pattern: str | None = None, *, kind: DetectorKind | None = None) -> list[str]:
    """Names of registered detectors, sorted.

    Args:
        pattern: An fnmatch filter on the name, e.g. ``"test_*"``.
        kind: Only detectors of this kind (``"pixel"`` or ``"provenance"``).
    """
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    _ensure_registered()
    names = sorted(n for n, spec in _REGISTRY.items() if kind is None or spec.kind == kind)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def detector_kind(name: str) -> DetectorKind:
    """The kind the detector ``name`` was registered with.

    Raises:
        ValueError: If ``name`` is not registered.
    """
    return _spec(name).kind


def is_batchable(name: str) -> bool:
    """Whether the detector registered as ``name`` was registered ``batchable`` (False if unknown)."""
    _ensure_registered()
    spec = _REGISTRY.get(name)
    return spec is not None and spec.batchable


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered detector."""
    _ensure_registered()
    return name in _REGISTRY


def create_detector(name: str, **kwargs: Any) -> Detector:
    """Build a registered detector.

    Args:
        name: Registry name, e.g. ``"spectral"`` or ``"test_spectral"``.
        **kwargs: Passed to the detector's factory.

    Raises:
        ValueError: If ``name`` is not registered; the message lists the known names.
    """
    return _spec(name).factory(**kwargs)
