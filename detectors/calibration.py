"""The fitted calibration of the verdict, and how it is fitted.

A :class:`Calibration` is the state that turns the pixel detectors' scores
into one calibrated P(AI) and the two thresholds on it. It is read from and
written to ``detectors/weights/calibration.json``; :mod:`detectors.fusion`
applies it to decide the label.

* Fusion of the pixel detectors' logits (late fusion), one of two rules:
  :class:`LogisticFusion`, a logistic regression with non-negative weights (a
  detector is never read against its own direction; one that would need a
  negative weight is dropped), or :class:`MaxFusion`, the largest of the
  detectors' own Platt-calibrated logits, for detectors that are specialists
  of different generator families (one fires, the others stay silent). The
  rule is chosen with the map, by log-loss on the held-out half.
* Calibration map of the fused logit: :class:`PlattMap` (J. Platt,
  "Probabilistic outputs for support vector machines", 1999) or
  :class:`IsotonicMap`, isotonic regression by pool-adjacent-violators (B.
  Zadrozny and C. Elkan, "Transforming classifier scores into accurate
  multiclass probability estimates", KDD 2002). Both are fitted on one half of
  the calibration split and compared on the other half by log-loss; the better
  one is refitted on the whole split.
* Thresholds (:func:`thresholds_for`): ``likely_ai`` by
  :func:`detectors.metrics.threshold_at_fpr` on the calibration reals for
  ``target_fpr``; ``likely_real`` by the same rule mirrored, for
  ``target_miss`` on the calibration AI images.

Only the calibration split is ever seen here. The sha256 of every
calibration file is stored in the result so that the evaluation harness can
refuse to report on them (leakage guard).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, Union

import numpy as np

from detectors.base import DetectorResult
from detectors.logistic import fit_logistic_regression
from detectors.metrics import ece, threshold_at_fpr

__all__ = [
    "Calibration",
    "CalibrationFit",
    "FusionRule",
    "HingeFusion",
    "IdentityMap",
    "IsotonicMap",
    "LogisticFusion",
    "MaxFusion",
    "PlattMap",
    "ScoreMap",
    "fit_calibration",
    "fit_isotonic",
    "fit_platt",
    "fusion_from_dict",
    "load_calibration",
    "log_loss",
    "score_map_from_dict",
    "thresholds_for",
]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -50, 50)))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy, with probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


# ---------------------------------------------------------------------------
# Calibration maps: fused logit -> P(AI)


@dataclass(frozen=True)
class PlattMap:
    """Platt scaling ``P = sigmoid(a z + b)`` of the fused logit ``z``.

    Attributes:
        a: Slope.
        b: Offset.
    """

    a: float
    b: float
    kind: ClassVar[str] = "platt"

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """``float64`` P(AI) in ``[0, 1]``, the shape of ``z``."""
        return _sigmoid(self.a * np.asarray(z, dtype=np.float64) + self.b)

    def to_dict(self) -> dict[str, Any]:
        """The ``score_map`` block of the calibration file."""
        return {"kind": self.kind, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class IsotonicMap:
    """A non-decreasing step map, interpolated linearly between block centres and clamped beyond them.

    Attributes:
        x: Block centres (fused logits), non-decreasing, at least one.
        y: P(AI) of each block, non-decreasing, in ``[0, 1]``.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    kind: ClassVar[str] = "isotonic"

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or not self.x:
            raise ValueError(f"isotonic map needs x and y of one non-zero length, got {len(self.x)} and {len(self.y)}")
        if any(not 0.0 <= v <= 1.0 for v in self.y):
            raise ValueError(f"isotonic map values must be in [0, 1], got {list(self.y)}")

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """``float64`` P(AI) in ``[0, 1]``, the shape of ``z``."""
        return np.interp(np.asarray(z, dtype=np.float64), np.asarray(self.x), np.asarray(self.y))

    def to_dict(self) -> dict[str, Any]:
        """The ``score_map`` block of the calibration file."""
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y)}


@dataclass(frozen=True)
class IdentityMap:
    """``P = sigmoid(z)``: the fused logit read as it is."""

    kind: ClassVar[str] = "identity"

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """``float64`` P(AI) in ``[0, 1]``, the shape of ``z``."""
        return _sigmoid(np.asarray(z, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        """The ``score_map`` block of the calibration file."""
        return {"kind": self.kind}


ScoreMap = Union[PlattMap, IsotonicMap, IdentityMap]


def score_map_from_dict(d: Mapping[str, Any]) -> ScoreMap:
    """Read a ``score_map`` block (``{"kind": "platt" | "isotonic" | "identity", ...}``).

    Raises:
        ValueError: On an unknown ``kind`` or a missing field.
    """
    kind = d.get("kind")
    if kind == "platt":
        return PlattMap(a=float(d["a"]), b=float(d["b"]))
    if kind == "isotonic":
        return IsotonicMap(x=tuple(float(v) for v in d["x"]), y=tuple(float(v) for v in d["y"]))
    if kind == "identity":
        return IdentityMap()
    raise ValueError(f"unknown calibration map kind {kind!r}; allowed: platt, isotonic, identity")


# ---------------------------------------------------------------------------
# Fusion rules: (N, K) detector scores -> (N,) fused logits


def _check_lengths(detectors: tuple[str, ...], **cols: tuple[float, ...]) -> None:
    if not detectors or len(set(detectors)) != len(detectors):
        raise ValueError(f"a fusion needs distinct detector names, got {list(detectors)}")
    for name, col in cols.items():
        if len(col) != len(detectors):
            raise ValueError(f"fusion {name} has {len(col)} entries for {len(detectors)} detectors")


@dataclass(frozen=True)
class LogisticFusion:
    """Logistic late fusion: ``z = sum_k w_k logit(s_k) + bias``; a detector without a score adds nothing.

    Attributes:
        detectors: Fused detector names, in column order.
        weights: One non-negative weight per detector.
        bias: Intercept.
    """

    detectors: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    rule: ClassVar[str] = "logistic"

    def __post_init__(self) -> None:
        _check_lengths(self.detectors, weights=self.weights)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Fused logits.

        Args:
            scores: ``(N, K)`` P(AI) in the order of :attr:`detectors`, NaN where a detector gave no score.

        Returns:
            ``float64`` ``(N,)``.
        """
        scores = np.asarray(scores, dtype=np.float64)
        z = np.where(~np.isnan(scores), _logit(scores), 0.0)
        return (z * np.asarray(self.weights, dtype=np.float64)).sum(axis=1) + self.bias

    def to_dict(self) -> dict[str, Any]:
        """The ``fusion`` block of the calibration file."""
        return {"rule": self.rule, "detectors": list(self.detectors), "weights": list(self.weights), "bias": self.bias}

    def describe(self) -> str:
        """One line for calibration cards."""
        parts = ", ".join(f"{n} {w:.3f}" for n, w in zip(self.detectors, self.weights))
        return f"logistic late fusion with non-negative weights: {parts}; bias {self.bias:.3f}"


@dataclass(frozen=True)
class MaxFusion:
    """Max fusion: ``z = max_k (a_k logit(s_k) + b_k)`` over the detectors that gave a score.

    Attributes:
        detectors: Fused detector names, in column order.
        weights: Per-detector Platt slopes ``a_k`` (0 drops a detector).
        biases: Per-detector Platt offsets ``b_k``.
    """

    detectors: tuple[str, ...]
    weights: tuple[float, ...]
    biases: tuple[float, ...]
    rule: ClassVar[str] = "max"

    def __post_init__(self) -> None:
        _check_lengths(self.detectors, weights=self.weights, biases=self.biases)

    def detector_logits(self, scores: np.ndarray) -> np.ndarray:
        """Each detector's own Platt-calibrated logit.

        Args:
            scores: ``(N, K)`` P(AI) in the order of :attr:`detectors`, NaN where a detector gave no score.

        Returns:
            ``float64`` ``(N, K)``; ``-inf`` where a detector gave no score.
        """
        scores = np.asarray(scores, dtype=np.float64)
        a = np.asarray(self.weights, dtype=np.float64)
        b = np.asarray(self.biases, dtype=np.float64)
        return np.where(~np.isnan(scores), _logit(scores) * a + b, -np.inf)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Fused logits ``(N,)`` (0 where no detector scored); ``scores`` as in :meth:`detector_logits`."""
        out = self.detector_logits(scores).max(axis=1)
        return np.where(np.isfinite(out), out, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The ``fusion`` block of the calibration file."""
        return {"rule": self.rule, "detectors": list(self.detectors), "weights": list(self.weights), "biases": list(self.biases)}

    def describe(self) -> str:
        """One line for calibration cards."""
        parts = ", ".join(f"{n} ({a:.3f} z {b:+.3f})" for n, a, b in zip(self.detectors, self.weights, self.biases))
        return f"max of the detectors' Platt-calibrated logits: {parts}"


@dataclass(frozen=True)
class HingeFusion:
    """One-sided logistic fusion: ``z = bias + sum_k w_k max(0, logit(s_k) - c_k)``.

    Each detector can only add evidence of AI, measured from its own centre
    ``c_k`` (the median logit of the calibration reals it scored). A detector
    that scores an image as *more* real than a typical real photo adds
    nothing, so a detector whose evidence is inverted on some generator (it
    ranks those images as more real than reals) cannot pull the verdict
    towards ``likely_real``; ``likely_real`` then means that no detector has
    evidence beyond what real photos show. A detector without a score adds nothing.

    Attributes:
        detectors: Fused detector names, in column order.
        weights: One non-negative weight per detector.
        centres: Per-detector logit ``c_k`` below which it adds nothing.
        bias: Intercept (the fused logit of an image no detector finds suspicious).
    """

    detectors: tuple[str, ...]
    weights: tuple[float, ...]
    centres: tuple[float, ...]
    bias: float
    rule: ClassVar[str] = "hinge"

    def __post_init__(self) -> None:
        _check_lengths(self.detectors, weights=self.weights, centres=self.centres)
        if any(w < 0 for w in self.weights):
            raise ValueError(f"hinge fusion weights must be non-negative, got {self.weights}")

    def features(self, scores: np.ndarray) -> np.ndarray:
        """``(N, K)`` one-sided evidence ``max(0, logit(s_k) - c_k)``, 0 where a detector gave no score."""
        scores = np.asarray(scores, dtype=np.float64)
        z = np.where(~np.isnan(scores), _logit(scores), -np.inf)
        return np.maximum(z - np.asarray(self.centres, dtype=np.float64), 0.0)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Fused logits ``(N,)``; ``scores`` as in :meth:`LogisticFusion.__call__`."""
        return self.features(scores) @ np.asarray(self.weights, dtype=np.float64) + self.bias

    def to_dict(self) -> dict[str, Any]:
        """The ``fusion`` block of the calibration file."""
        return {"rule": self.rule, "detectors": list(self.detectors), "weights": list(self.weights),
                "centres": list(self.centres), "bias": self.bias}  # fmt: skip

    def describe(self) -> str:
        """One line for calibration cards."""
        parts = ", ".join(f"{n} {w:.3f} above {c:+.2f}" for n, w, c in zip(self.detectors, self.weights, self.centres))
        return f"one-sided logistic fusion (each detector only adds evidence of AI above its real-photo median logit): {parts}; bias {self.bias:.3f}"


FusionRule = Union[LogisticFusion, MaxFusion, HingeFusion]


def fusion_from_dict(d: Mapping[str, Any]) -> FusionRule:
    """Read a ``fusion`` block (``rule`` ``logistic``, the default when absent, ``max`` or ``hinge``).

    Raises:
        ValueError: On an unknown ``rule``, a missing field or mismatched lengths.
    """
    rule = d.get("rule", "logistic")
    names = tuple(str(n) for n in d["detectors"])
    if rule == "logistic":
        return LogisticFusion(names, tuple(float(v) for v in d["weights"]), float(d["bias"]))
    if rule == "max":
        return MaxFusion(names, tuple(float(v) for v in d["weights"]), tuple(float(v) for v in d["biases"]))
    if rule == "hinge":
        return HingeFusion(names, tuple(float(v) for v in d["weights"]), tuple(float(v) for v in d["centres"]), float(d["bias"]))
    raise ValueError(f"unknown fusion rule {rule!r}; allowed: logistic, max, hinge")


# ---------------------------------------------------------------------------
# The calibration


@dataclass(frozen=True)
class Calibration:
    """Fusion, calibration map and thresholds on the fused P(AI).

    Attributes:
        name: Identifier of the calibration, e.g. ``"fused"``.
        version: Version string named in every report.
        likely_ai: Scores >= this are ``likely_ai``; chosen for ``target_fpr`` on real photos.
        likely_real: Scores <= this are ``likely_real``; chosen for ``target_miss`` on AI images.
        target_fpr: The false-positive rate the ``likely_ai`` threshold was fitted for.
        target_miss: The miss rate the ``likely_real`` threshold was fitted for.
        fitted_on: Description of the calibration data.
        fusion: The fusion of the pixel detectors' logits, or ``None`` for the plain mean of their scores.
        score_map: The map applied to the fused logit, or ``None`` (then the logit's sigmoid).
        calibration_hashes: sha256 of every file the calibration saw (leakage guard).
    """

    name: str
    version: str
    likely_ai: float
    likely_real: float
    target_fpr: float = 0.01
    target_miss: float = 0.05
    fitted_on: str = ""
    fusion: FusionRule | None = None
    score_map: ScoreMap | None = None
    calibration_hashes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.likely_real <= self.likely_ai <= 1.0:
            raise ValueError(
                f"need 0 <= likely_real <= likely_ai <= 1, got likely_real={self.likely_real}, likely_ai={self.likely_ai}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibration":
        """Build from the calibration file's JSON object (see :meth:`to_json`).

        Raises:
            KeyError, TypeError, ValueError: On a missing field or an invalid value.
        """
        fusion = d.get("fusion")
        score_map = d.get("score_map")
        return cls(
            name=d["name"],
            version=d["version"],
            likely_ai=float(d["likely_ai"]),
            likely_real=float(d["likely_real"]),
            target_fpr=float(d.get("target_fpr", 0.01)),
            target_miss=float(d.get("target_miss", 0.05)),
            fitted_on=str(d.get("fitted_on", "")),
            fusion=None if fusion is None else fusion_from_dict(fusion),
            score_map=None if score_map is None else score_map_from_dict(score_map),
            calibration_hashes=tuple(d.get("calibration_hashes", ())),
        )

    def _header(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "likely_ai": self.likely_ai,
            "likely_real": self.likely_real,
            "target_fpr": self.target_fpr,
            "target_miss": self.target_miss,
            "fitted_on": self.fitted_on,
        }

    def to_dict(self) -> dict[str, object]:
        """The ``calibration`` block of records and summaries (without the hash list)."""
        d: dict[str, object] = self._header()
        d["map"] = None if self.score_map is None else self.score_map.kind
        d["fused_detectors"] = None if self.fusion is None else list(self.fusion.detectors)
        return d

    def to_json(self) -> str:
        """The complete calibration file (the schema :meth:`from_dict` and :func:`load_calibration` read)."""
        d: dict[str, Any] = self._header()
        d["fusion"] = None if self.fusion is None else self.fusion.to_dict()
        d["score_map"] = None if self.score_map is None else self.score_map.to_dict()
        d["calibration_hashes"] = list(self.calibration_hashes)
        return json.dumps(d, indent=1)

    def fused_score(self, results: Sequence[DetectorResult]) -> float | None:
        """Fused, calibrated P(AI) from the pixel detectors' scores, or ``None`` if none scored.

        Without a fitted fusion, or when none of its detectors scored, the
        scores are averaged. With one, the fused detectors' scores are combined
        by its rule and mapped by :attr:`score_map`; a detector that gave no
        score adds nothing.
        """
        scored = _scored(results)
        if not scored:
            return None
        if self.fusion is None or not any(n in scored for n in self.fusion.detectors):
            return sum(scored.values()) / len(scored)
        z = self.fusion(self._score_row(scored))
        m = self.score_map if self.score_map is not None else IdentityMap()
        return float(m(z)[0])

    def pixel_evidence(self, results: Sequence[DetectorResult]) -> list[tuple[str, float]]:
        """Each fused detector's own calibrated P(AI) under a max fusion, strongest first.

        Empty for other fusion rules, or when no fused detector scored.
        """
        if not isinstance(self.fusion, MaxFusion):
            return []
        z = self.fusion.detector_logits(self._score_row(_scored(results)))[0]
        out = [
            (name, float(_sigmoid(zk))) for name, zk, a in zip(self.fusion.detectors, z, self.fusion.weights) if np.isfinite(zk) and a > 0
        ]
        return sorted(out, key=lambda t: -t[1])

    def _score_row(self, scored: dict[str, float]) -> np.ndarray:
        """``(1, K)`` scores in the fusion's detector order, NaN where missing."""
        assert self.fusion is not None
        return np.array([[scored.get(n, np.nan) for n in self.fusion.detectors]], dtype=np.float64)


def _scored(results: Sequence[DetectorResult]) -> dict[str, float]:
    return {r.name: float(r.score) for r in results if r.status == "ok" and r.score is not None}


def load_calibration(path: str | Path | None = None) -> Calibration:
    """Load a calibration JSON file; the shipped one when ``path`` is ``None``.

    Raises:
        ValueError: If the file lacks a field or has out-of-range values, naming the file.
    """
    if path is None:
        text = resources.files("detectors").joinpath("weights", "calibration.json").read_text(encoding="utf-8")
        where = "shipped calibration"
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    try:
        return Calibration.from_dict(json.loads(text))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: invalid calibration file: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------
# Fitting


def fit_platt(z: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, iterations: int = 100) -> PlattMap:
    """Platt scaling ``P = sigmoid(a z + b)`` on fused logits ``z`` (:mod:`detectors.logistic`)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = np.stack([z, np.ones_like(z)], axis=1)
    beta = fit_logistic_regression(x, y, reg=np.full(2, l2), iterations=iterations)
    return PlattMap(a=float(beta[0]), b=float(beta[1]))


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> IsotonicMap:
    """Isotonic (non-decreasing) regression of ``y`` on ``z`` by pool-adjacent-violators.

    Returns:
        Block centres and values (clipped to ``[1e-6, 1 - 1e-6]``), interpolated
        linearly (and clamped) between them.
    """
    order = np.argsort(z, kind="mergesort")
    zs = np.asarray(z, dtype=np.float64)[order]
    ys = np.asarray(y, dtype=np.float64)[order]
    # blocks: [sum_y, weight, sum_z]
    blocks: list[list[float]] = []
    for zi, yi in zip(zs, ys):
        blocks.append([yi, 1.0, zi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, w, zz = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w
            blocks[-1][2] += zz
    xs = tuple(float(b[2] / b[1]) for b in blocks)
    vs = tuple(float(min(max(b[0] / b[1], _EPS), 1 - _EPS)) for b in blocks)
    return IsotonicMap(x=xs, y=vs)


def thresholds_for(y: np.ndarray, p: np.ndarray, *, target_fpr: float, target_miss: float) -> tuple[float, float]:
    """``(likely_ai, likely_real)`` on calibrated scores ``p`` for the two targets.

    ``likely_ai`` is :func:`detectors.metrics.threshold_at_fpr` of the reals'
    scores (``score >= likely_ai`` flags at most ``target_fpr`` of them; tied
    reals count against it), clamped to 1. ``likely_real`` is the same rule
    mirrored on the AI images: the largest value with at most ``target_miss``
    of them at or below it, clamped to ``[0, likely_ai]``.
    """
    if not 0 <= target_fpr < 1 or not 0 <= target_miss < 1:
        raise ValueError(f"targets must be in [0, 1), got fpr={target_fpr}, miss={target_miss}")
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    reals, ais = p[y == 0], p[y == 1]
    if len(reals) == 0 or len(ais) == 0:
        raise ValueError("calibration needs both real and AI images")
    t_ai = min(threshold_at_fpr(reals, target_fpr=target_fpr), 1.0)
    t_real = -threshold_at_fpr(-ais, target_fpr=target_miss)  # score <= t_real  <=>  -score >= -t_real
    t_real = max(0.0, min(t_real, t_ai))
    return t_ai, t_real


@dataclass(frozen=True)
class CalibrationFit:
    """A fitted calibration and how it was chosen.

    Attributes:
        calibration: The result, ready to save.
        validation: Log-loss and ECE of each candidate ``"<rule>+<map>"`` on the
            validation half (e.g. ``"logistic+platt"``, ``"max+isotonic"``).
        chosen: The chosen ``"<rule>+<map>"``.
    """

    calibration: Calibration
    validation: dict[str, dict[str, float]]
    chosen: str


def _fit_fusion(scores: np.ndarray, y: np.ndarray, detectors: Sequence[str], *, rule: str = "logistic", l2: float = 1.0) -> FusionRule:
    """Fit a fusion rule on ``(N, K)`` scores (NaN = no score, which adds no evidence).

    ``logistic``: non-negative weights by an active set (the most negative
    weight is dropped and the rest refitted until none is negative).
    ``max``: per detector, Platt scaling of its logit (a detector whose slope
    comes out negative is dropped); the fused logit is the largest.
    ``hinge``: each detector's centre is the median logit of the reals it
    scored; non-negative weights on the one-sided evidence, by the same active set.
    """
    if rule not in ("logistic", "max", "hinge"):
        raise ValueError(f"rule must be 'logistic', 'max' or 'hinge', got {rule!r}")
    names = tuple(detectors)
    z = np.where(np.isnan(scores), 0.0, _logit(scores))
    k = z.shape[1]
    if rule == "hinge":
        centres = np.zeros(k)
        for j in range(k):
            m = ~np.isnan(scores[:, j]) & (y == 0)
            centres[j] = float(np.median(_logit(scores[m, j]))) if m.any() else 0.0
        feats = HingeFusion(names, (0.0,) * k, tuple(float(c) for c in centres), 0.0).features(scores)
        w, bias = _nonnegative_logistic(feats, y, l2=l2)
        return HingeFusion(names, tuple(float(v) for v in w), tuple(float(c) for c in centres), bias)
    if rule == "max":
        a, b = np.zeros(k), np.zeros(k)
        for j in range(k):
            m = ~np.isnan(scores[:, j])
            if len(set(y[m])) == 2:
                fit = fit_platt(z[m, j], y[m])
                a[j], b[j] = max(fit.a, 0.0), fit.b
        return MaxFusion(names, tuple(float(v) for v in a), tuple(float(v) for v in b))
    if k == 1:
        return LogisticFusion(names, (1.0,), 0.0)
    w, bias = _nonnegative_logistic(z, y, l2=l2)
    return LogisticFusion(names, tuple(float(v) for v in w), bias)


def _nonnegative_logistic(x: np.ndarray, y: np.ndarray, *, l2: float) -> tuple[np.ndarray, float]:
    """Logistic regression with non-negative slopes by an active set: ``(weights (K,), bias)``.

    The most negative slope is dropped and the rest refitted until none is negative.
    """
    k = x.shape[1]
    active = list(range(k))
    while True:
        xa = np.hstack([x[:, active], np.ones((len(x), 1))])
        reg = np.full(xa.shape[1], l2)
        reg[-1] = 0
        beta = fit_logistic_regression(xa, y, reg=reg, jitter=1e-9)
        worst = int(np.argmin(beta[:-1]))
        if beta[worst] >= 0 or len(active) == 1:
            break
        del active[worst]
    w = np.zeros(k)
    w[active] = np.maximum(beta[:-1], 0.0)
    return w, float(beta[-1])


def fit_calibration(
    scores: np.ndarray,
    y: np.ndarray,
    *,
    detectors: Sequence[str],
    validation_mask: np.ndarray,
    file_hashes: Sequence[str],
    target_fpr: float = 0.01,
    target_miss: float = 0.05,
    method: str = "auto",
    fusion_rule: str = "auto",
    fusion_mask: np.ndarray | None = None,
    name: str = "fused",
    version: str = "calib-v2",
    fitted_on: str = "",
) -> CalibrationFit:
    """Fit fusion, calibration map and thresholds.

    Args:
        scores: ``(N, K)`` P(AI) of the K pixel detectors (NaN where a detector gave none).
        y: ``(N,)`` labels, 1 = AI.
        detectors: The K detector names, in column order.
        validation_mask: ``(N,)`` bool; True rows form the validation half used
            to choose the map (group them by file so one image is not on both sides).
        file_hashes: sha256 of every calibration file (stored for the leakage guard).
        target_fpr: Target false-positive rate on reals for ``likely_ai``, in ``[0, 1)``.
        target_miss: Target miss rate on AI images for ``likely_real``, in ``[0, 1)``.
        method: ``"auto"`` (choose by validation log-loss), ``"platt"`` or ``"isotonic"``.
        fusion_rule: ``"auto"`` (choose between ``hinge`` and ``max`` by validation
            log-loss: neither lets one detector's low score pull the verdict
            towards real), ``"hinge"``, ``"max"`` or ``"logistic"`` (two-sided: only on request).
        fusion_mask: ``(N,)`` bool; only these rows fit the fusion weights (default:
            all). The map and the thresholds always use every row. Used to keep
            images that some detector was trained on (the bundled generator's)
            from setting the weights between detectors.
        name: Calibration name.
        version: Version string reports will show.
        fitted_on: Description of the data.

    Returns:
        A :class:`CalibrationFit`.
    """
    if method not in ("auto", "platt", "isotonic"):
        raise ValueError(f"method must be 'auto', 'platt' or 'isotonic', got {method!r}")
    if fusion_rule not in ("auto", "logistic", "max", "hinge"):
        raise ValueError(f"fusion_rule must be 'auto', 'logistic', 'max' or 'hinge', got {fusion_rule!r}")
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != y.shape[0] or scores.shape[1] != len(detectors):
        raise ValueError(f"scores must be (N, {len(detectors)}) matching y, got {scores.shape} and {y.shape}")
    val = np.asarray(validation_mask, dtype=bool)
    fit = ~val
    if len(set(y[fit])) < 2 or len(set(y[val])) < 2:
        raise ValueError("both halves of the calibration set need real and AI images")
    fm = np.ones(len(y), dtype=bool) if fusion_mask is None else np.asarray(fusion_mask, dtype=bool)
    if fm.shape != y.shape or len(set(y[fm & fit])) < 2:
        raise ValueError("fusion_mask must be (N,) and select real and AI rows in the fitting half")
    rules = ("hinge", "max") if fusion_rule == "auto" else (fusion_rule,)
    maps = ("platt", "isotonic") if method == "auto" else (method,)
    validation: dict[str, dict[str, float]] = {}
    for rule in rules:
        fz = _fit_fusion(scores[fit & fm], y[fit & fm], detectors, rule=rule)(scores)
        for kind in ("platt", "isotonic"):
            m = fit_platt(fz[fit], y[fit]) if kind == "platt" else fit_isotonic(fz[fit], y[fit])
            pv = m(fz[val])
            validation[f"{rule}+{kind}"] = {"log_loss": log_loss(y[val], pv), "ece": ece(y[val], pv)}
    chosen = min((f"{r}+{k}" for r in rules for k in maps), key=lambda c: validation[c]["log_loss"])
    rule, kind = chosen.split("+")
    # refit on the whole calibration split
    fusion = _fit_fusion(scores[fm], y[fm], detectors, rule=rule)
    z = fusion(scores)
    score_map: ScoreMap = fit_platt(z, y) if kind == "platt" else fit_isotonic(z, y)
    p = score_map(z)
    t_ai, t_real = thresholds_for(y, p, target_fpr=target_fpr, target_miss=target_miss)
    cal = Calibration(
        name=name,
        version=version,
        likely_ai=round(t_ai, 6) if round(t_ai, 6) >= t_ai else t_ai,
        likely_real=t_real,
        target_fpr=target_fpr,
        target_miss=target_miss,
        fitted_on=fitted_on,
        fusion=fusion,
        score_map=score_map,
        calibration_hashes=tuple(sorted(set(file_hashes))),
    )
    return CalibrationFit(cal, validation, chosen)
