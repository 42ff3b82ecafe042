"""Fitting the fusion, the calibration map and the decision thresholds.

* Fusion of the pixel detectors' logits (late fusion), one of two rules:
  ``logistic``, a logistic regression with non-negative weights (a detector
  is never read against its own direction; one that would need a negative
  weight is dropped), or ``max``, the largest of the detectors' own
  Platt-calibrated logits, for detectors that are specialists of different
  generator families (one fires, the others stay silent). The rule is chosen
  with the map, by log-loss on the held-out half.
* Calibration map: Platt scaling (J. Platt, "Probabilistic outputs for
  support vector machines", 1999) or isotonic regression by pool-adjacent-
  violators (B. Zadrozny and C. Elkan, "Transforming classifier scores into
  accurate multiclass probability estimates", KDD 2002). Both are fitted on
  one half of the calibration split and compared on the other half by
  log-loss; the better one is refitted on the whole split.
* Thresholds: ``likely_ai`` is the smallest score that keeps the false
  positive rate on the calibration reals at or below ``target_fpr``;
  ``likely_real`` is the largest score that keeps the miss rate on the
  calibration AI images at or below ``target_miss``.

Only the calibration split is ever seen here. The sha256 of every
calibration file is stored in the result so that the evaluation harness can
refuse to report on them (leakage guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from detectors.fusion import Calibration
from detectors.metrics import ece

__all__ = ["CalibrationFit", "detector_logits", "fit_calibration", "fit_isotonic", "fit_platt", "fusion_logits", "log_loss", "thresholds_for"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy, with probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit_platt(z: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, iterations: int = 100) -> dict[str, Any]:
    """Platt scaling ``P = sigmoid(a z + b)`` on fused logits ``z`` (Newton's method).

    Returns:
        ``{"kind": "platt", "a": float, "b": float}``.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = np.stack([z, np.ones_like(z)], axis=1)
    beta = _logistic(x, y, np.full(2, l2), iterations=iterations)
    return {"kind": "platt", "a": float(beta[0]), "b": float(beta[1])}


def _logistic(x: np.ndarray, y: np.ndarray, reg: np.ndarray, *, iterations: int = 100, jitter: float = 0.0) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; ``reg`` per coefficient, ``jitter`` on the Hessian diagonal."""
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ beta, -50, 50)))
        g = x.T @ (p - y) + reg * beta
        h = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg + jitter)
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Isotonic (non-decreasing) regression of ``y`` on ``z`` by pool-adjacent-violators.

    Returns:
        ``{"kind": "isotonic", "x": [...], "y": [...]}``: block centres and
        values, interpolated linearly (and clamped) between them.
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
    xs = [b[2] / b[1] for b in blocks]
    vs = [min(max(b[0] / b[1], _EPS), 1 - _EPS) for b in blocks]
    return {"kind": "isotonic", "x": xs, "y": vs}


def apply_map(score_map: dict[str, Any], z: np.ndarray) -> np.ndarray:
    """Apply a calibration map to fused logits ``z``; returns probabilities in ``[0, 1]``."""
    z = np.asarray(z, dtype=np.float64)
    if score_map["kind"] == "platt":
        return 1 / (1 + np.exp(-np.clip(score_map["a"] * z + score_map["b"], -50, 50)))
    if score_map["kind"] == "isotonic":
        return np.interp(z, np.asarray(score_map["x"]), np.asarray(score_map["y"]))
    if score_map["kind"] == "identity":
        return 1 / (1 + np.exp(-np.clip(z, -50, 50)))
    raise ValueError(f"unknown calibration map kind {score_map['kind']!r}; allowed: platt, isotonic, identity")


def thresholds_for(y: np.ndarray, p: np.ndarray, *, target_fpr: float, target_miss: float) -> tuple[float, float]:
    """``(likely_ai, likely_real)`` on calibrated scores ``p`` for the two targets.

    ``likely_ai`` is just above the ``ceil((1 - target_fpr) n)``-th real score,
    so at most ``target_fpr`` of the reals reach it; ``likely_real`` is the
    largest AI score below which at most ``target_miss`` of the AI images fall.
    ``likely_real`` is clamped to ``likely_ai``.
    """
    if not 0 <= target_fpr < 1 or not 0 <= target_miss < 1:
        raise ValueError(f"targets must be in [0, 1), got fpr={target_fpr}, miss={target_miss}")
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    reals = np.sort(p[y == 0])
    ais = np.sort(p[y == 1])
    if len(reals) == 0 or len(ais) == 0:
        raise ValueError("calibration needs both real and AI images")
    k = int(np.floor(target_fpr * len(reals)))  # reals allowed at or above the threshold
    above = reals[len(reals) - 1 - k]
    t_ai = float(np.nextafter(above, np.inf)) if k == 0 else float(reals[len(reals) - k])
    t_ai = min(t_ai, 1.0)
    m = int(np.floor(target_miss * len(ais)))  # AI images allowed at or below the threshold
    t_real = float(np.nextafter(ais[0], -np.inf)) if m == 0 else float(ais[m - 1])
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


def detector_logits(scores: np.ndarray, fusion: dict[str, Any]) -> np.ndarray:
    """Each detector's own Platt-calibrated logit under a ``max`` fusion.

    Args:
        scores: ``(N, K)`` P(AI), NaN where a detector gave no score.
        fusion: A fitted fusion with ``rule == "max"``.

    Returns:
        ``float64`` ``(N, K)``; ``-inf`` where a detector gave no score.
    """
    a = np.asarray(fusion["weights"], dtype=np.float64)
    b = np.asarray(fusion["biases"], dtype=np.float64)
    return np.where(~np.isnan(scores), _logit(scores) * a + b, -np.inf)


def fusion_logits(scores: np.ndarray, fusion: dict[str, Any]) -> np.ndarray:
    """Fused logits ``(N,)`` of ``(N, K)`` scores (NaN = no score) under a fitted fusion."""
    if fusion.get("rule", "logistic") == "max":
        out = detector_logits(scores, fusion).max(axis=1)
        return np.where(np.isfinite(out), out, 0.0)
    w = np.asarray(fusion["weights"], dtype=np.float64)
    z = np.where(~np.isnan(scores), _logit(scores), 0.0)
    return (z * w).sum(axis=1) + fusion["bias"]


def _fit_fusion(scores: np.ndarray, y: np.ndarray, detectors: Sequence[str], *, rule: str = "logistic", l2: float = 1.0) -> dict[str, Any]:
    """Fit a fusion rule on ``(N, K)`` scores (NaN = no score, which adds no evidence).

    ``logistic``: non-negative weights by an active set (the most negative
    weight is dropped and the rest refitted until none is negative).
    ``max``: per detector, Platt scaling of its logit (a detector whose slope
    comes out negative is dropped); the fused logit is the largest.
    """
    if rule not in ("logistic", "max"):
        raise ValueError(f"rule must be 'logistic' or 'max', got {rule!r}")
    z = np.where(np.isnan(scores), 0.0, _logit(scores))
    k = z.shape[1]
    if rule == "max":
        a, b = np.zeros(k), np.zeros(k)
        for j in range(k):
            m = ~np.isnan(scores[:, j])
            if len(set(y[m])) == 2:
                fit = fit_platt(z[m, j], y[m])
                a[j], b[j] = max(fit["a"], 0.0), fit["b"]
        return {"rule": "max", "detectors": list(detectors), "weights": a.tolist(), "biases": b.tolist()}
    if k == 1:
        return {"rule": "logistic", "detectors": list(detectors), "weights": [1.0], "bias": 0.0}
    active = list(range(k))
    while True:
        x = np.hstack([z[:, active], np.ones((len(z), 1))])
        reg = np.full(x.shape[1], l2)
        reg[-1] = 0
        beta = _logistic(x, y, reg, jitter=1e-9)
        worst = int(np.argmin(beta[:-1]))
        if beta[worst] >= 0 or len(active) == 1:
            break
        del active[worst]
    w = np.zeros(k)
    w[active] = np.maximum(beta[:-1], 0.0)
    return {"rule": "logistic", "detectors": list(detectors), "weights": w.tolist(), "bias": float(beta[-1])}


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
        fusion_rule: ``"auto"`` (choose by validation log-loss), ``"logistic"`` or ``"max"``.
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
    if fusion_rule not in ("auto", "logistic", "max"):
        raise ValueError(f"fusion_rule must be 'auto', 'logistic' or 'max', got {fusion_rule!r}")
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
    rules = ("logistic", "max") if fusion_rule == "auto" else (fusion_rule,)
    maps = ("platt", "isotonic") if method == "auto" else (method,)
    validation: dict[str, dict[str, float]] = {}
    for rule in rules:
        fz = fusion_logits(scores, _fit_fusion(scores[fit & fm], y[fit & fm], detectors, rule=rule))
        for kind in ("platt", "isotonic"):
            m = fit_platt(fz[fit], y[fit]) if kind == "platt" else fit_isotonic(fz[fit], y[fit])
            pv = apply_map(m, fz[val])
            validation[f"{rule}+{kind}"] = {"log_loss": log_loss(y[val], pv), "ece": ece(y[val], pv)}
    chosen = min((f"{r}+{k}" for r in rules for k in maps), key=lambda c: validation[c]["log_loss"])
    rule, kind = chosen.split("+")
    # refit on the whole calibration split
    fusion = _fit_fusion(scores[fm], y[fm], detectors, rule=rule)
    z = fusion_logits(scores, fusion)
    score_map = fit_platt(z, y) if kind == "platt" else fit_isotonic(z, y)
    p = apply_map(score_map, z)
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
