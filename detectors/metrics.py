"""Binary detection metrics: AUC, AP, balanced accuracy, TPR at fixed FPR, ECE.

AUC is the Mann-Whitney statistic (ties count one half). ECE is the expected
calibration error with equal-width bins: C. Guo et al., "On Calibration of
Modern Neural Networks", ICML 2017.

Thresholds at a target false-positive rate follow one rule everywhere
(:func:`threshold_at_fpr`): an image is flagged when its score is ``>=`` the
threshold, and the threshold is the smallest value at which the fraction of
real scores ``>=`` it is at most the target (tied reals count against it). TPR
at 1% FPR is measured at that threshold, so with fewer than 100 negatives it
is the TPR strictly above the highest-scoring negative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["BinaryMetrics", "auc", "average_precision", "binary_metrics", "ece", "roc_curve", "threshold_at_fpr", "tpr_at_fpr"]


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {p.shape}")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 (real) or 1 (AI)")
    return y, p


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve; NaN when one class is missing."""
    y, p = _check(y, p)
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    # average ranks for ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr)``, from (0, 0) to (1, 1), one step per distinct score."""
    y, p = _check(y, p)
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    distinct = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]
    tp = np.cumsum(ys)[distinct]
    fp = np.cumsum(1 - ys)[distinct]
    npos, nneg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    return np.r_[0.0, fp / nneg], np.r_[0.0, tp / npos]


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise)."""
    y, p = _check(y, p)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    ys = y[order]
    tp = np.cumsum(ys)
    prec = tp / np.arange(1, len(ys) + 1)
    return float((prec * ys).sum() / ys.sum())


def threshold_at_fpr(real_scores: np.ndarray, *, target_fpr: float) -> float:
    """The decision threshold that keeps the false-positive rate on ``real_scores`` at or below ``target_fpr``.

    The rule: an image is flagged when ``score >= threshold``, and the
    threshold is the smallest float64 such that the fraction of real scores
    ``>=`` it is at most ``target_fpr``. With ``k`` the largest count with
    ``k / n <= target_fpr`` (at most ``k`` reals may be flagged), that is the
    next float above the ``(k + 1)``-th highest real score: every real tied
    with that score stays below the threshold, so ties never push the
    false-positive rate over the target. ``target_fpr = 0`` puts the
    threshold just above the highest real score.

    The result can exceed 1 when a real scored exactly 1; callers that store
    thresholds in ``[0, 1]`` clamp it (and those reals are then flagged).

    Args:
        real_scores: ``(n,)`` scores of real (negative) images, any float
            range, ``n >= 1``, no NaN.
        target_fpr: Target false-positive rate, in ``[0, 1)``.

    Returns:
        The threshold, a Python ``float``.

    Raises:
        ValueError: If ``target_fpr`` is outside ``[0, 1)``, or ``real_scores``
            is empty or holds NaN.
    """
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    neg = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())
    n = len(neg)
    if n == 0:
        raise ValueError("threshold_at_fpr needs at least one real score, got none")
    if np.isnan(neg).any():
        raise ValueError(f"real_scores hold {int(np.isnan(neg).sum())} NaN value(s)")
    k = int(np.floor(target_fpr * n))  # reals allowed at or above the threshold
    # floor(target * n) can land one short (0.29 * 100 = 28.999...); k / n <= target is the test itself
    while k + 1 < n and (k + 1) / n <= target_fpr:
        k += 1
    while k > 0 and k / n > target_fpr:
        k -= 1
    return float(np.nextafter(neg[n - 1 - k], np.inf))


def tpr_at_fpr(y: np.ndarray, p: np.ndarray, *, fpr: float = 0.01) -> float:
    """TPR at :func:`threshold_at_fpr` of the negatives for ``fpr`` (``>=`` the threshold counts as positive)."""
    y, p = _check(y, p)
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    neg, pos = p[y == 0], p[y == 1]
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    return float((pos >= threshold_at_fpr(neg, target_fpr=fpr)).mean())


def ece(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins."""
    y, p = _check(y, p)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / len(y))


@dataclass(frozen=True)
class BinaryMetrics:
    """Metrics of one score on one labelled set (positives = AI)."""

    n_pos: int
    n_neg: int
    auc: float
    ap: float
    balanced_accuracy: float
    tpr_at_1pct_fpr: float
    threshold: float
    tpr: float
    fpr: float
    ece: float

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-safe dict (NaN -> None)."""
        return {k: (None if isinstance(v, float) and np.isnan(v) else (round(v, 6) if isinstance(v, float) else v)) for k, v in asdict(self).items()}


def binary_metrics(y: np.ndarray, p: np.ndarray, *, threshold: float) -> BinaryMetrics:
    """All metrics at once; ``threshold`` is the shipped ``likely_ai`` score (>= counts as AI)."""
    y, p = _check(y, p)
    pos, neg = p[y == 1], p[y == 0]
    tpr = float((pos >= threshold).mean()) if len(pos) else float("nan")
    fpr = float((neg >= threshold).mean()) if len(neg) else float("nan")
    return BinaryMetrics(
        n_pos=int(len(pos)),
        n_neg=int(len(neg)),
        auc=auc(y, p),
        ap=average_precision(y, p),
        balanced_accuracy=float((tpr + (1 - fpr)) / 2),
        tpr_at_1pct_fpr=tpr_at_fpr(y, p, fpr=0.01),
        threshold=float(threshold),
        tpr=tpr,
        fpr=fpr,
        ece=ece(y, p),
    )
