"""Detector protocol, result dataclass and registry (timm-style).

A detector turns one :class:`forensics.io.LoadedImage` into a
:class:`DetectorResult`. Detectors are registered by name with
:func:`register_detector` and built with :func:`create_detector`; tiny
``test_*`` variants are registered for fast tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, runtime_checkable

from forensics.io import LoadedImage

__all__ = [
    "Claim",
    "Detector",
    "DetectorResult",
    "create_detector",
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


_REGISTRY: dict[str, Callable[..., Detector]] = {}
#: Names whose detectors split into ``prepare`` + ``score_batch`` (see :func:`register_detector`).
_BATCHABLE: set[str] = set()


def register_detector(name: str, *, batchable: bool = False) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Decorator registering a detector factory under ``name``.

    Args:
        name: Registry name.
        batchable: The detector has ``prepare(image)`` and ``score_batch(inputs)``,
            and its factory accepts ``prepare_only=True`` (build without the
            network), so engines can cut inputs in workers and batch the network.
    """

    def deco(fn: Callable[..., Detector]) -> Callable[..., Detector]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"detector {name!r} is already registered")
        _REGISTRY[name] = fn
        if batchable:
            _BATCHABLE.add(name)
        return fn

    return deco


def is_batchable(name: str) -> bool:
    """Whether the detector registered as ``name`` was registered ``batchable``."""
    _ensure_builtin()
    return name in _BATCHABLE


def _ensure_builtin() -> None:
    # Importing the package registers its built-in detectors (lazily, on first use).
    import detectors  # noqa: F401

    detectors._load_builtin()


def list_detectors(pattern: str | None = None) -> list[str]:
    """Names of registered detectors, sorted; ``pattern`` is an fnmatch filter."""
    import fnmatch

    _ensure_builtin()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered detector."""
    _ensure_builtin()
    return name in _REGISTRY


def create_detector(name: str, **kwargs: Any) -> Detector:
    """Build a registered detector.

    Args:
        name: Registry name, e.g. ``"spectral"`` or ``"test_spectral"``.
        **kwargs: Passed to the detector's factory.

    Raises:
        ValueError: If ``name`` is not registered; the message lists the known names.
    """
    _ensure_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**kwargs)
