from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.metrics import auc, average_precision, binary_metrics, ece, threshold_at_fpr, tpr_at_fpr


def test_auc_known_cases() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert auc([0, 0, 1], [0.1, 0.4, 0.3]) == 0.5
    assert math.isnan(auc([1, 1], [0.1, 0.2]))


def test_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200), 1)  # with ties
    pos, neg = p[y == 1], p[y == 0]
    ref = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert auc(y, p) == pytest.approx(ref)


def test_tpr_at_fpr_uses_highest_negative_when_few() -> None:
    y = [0] * 10 + [1] * 4
    p = [0.1] * 9 + [0.6] + [0.5, 0.7, 0.8, 0.9]
    assert tpr_at_fpr(y, p, fpr=0.01) == 0.75


def test_ece_and_ap() -> None:
    assert ece([0, 1], [0.0, 1.0]) == 0.0
    assert ece([0, 0], [1.0, 1.0]) == 1.0
    assert average_precision([0, 1, 1], [0.1, 0.9, 0.8]) == 1.0


def test_binary_metrics_dict() -> None:
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], threshold=0.65)
    d = m.to_dict()
    assert d["fpr"] == 0.0 and d["tpr"] == 1.0 and d["balanced_accuracy"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        binary_metrics([0, 1], [0.5], threshold=0.5)


def _fpr(neg, t: float) -> float:
    return float((np.asarray(neg) >= t).mean())


def test_threshold_at_fpr_n_times_target_integer() -> None:
    neg = np.arange(1, 11) / 10  # 0.1 .. 1.0; 10 * 0.2 = 2 reals may be flagged
    t = threshold_at_fpr(neg, target_fpr=0.2)
    assert t == np.nextafter(0.8, np.inf)  # just above the 3rd highest: 0.9 and 1.0 flagged
    assert _fpr(neg, t) == 0.2
    assert _fpr(neg, np.nextafter(t, -np.inf)) > 0.2  # the smallest such value


def test_threshold_at_fpr_n_times_target_not_integer() -> None:
    neg = np.arange(1, 11) / 10  # 10 * 0.25 = 2.5: still only 2 may be flagged
    t = threshold_at_fpr(neg, target_fpr=0.25)
    assert t == np.nextafter(0.8, np.inf)
    assert _fpr(neg, t) <= 0.25
    assert threshold_at_fpr(neg, target_fpr=0.05) == np.nextafter(1.0, np.inf)  # 0.5 -> none flagged


def test_threshold_at_fpr_float_product_below_integer() -> None:
    neg = np.arange(100) / 100  # 0.29 * 100 = 28.999999999999996 in float; 29 reals are allowed
    assert 0.29 * 100 < 29
    t = threshold_at_fpr(neg, target_fpr=0.29)
    assert _fpr(neg, t) == 0.29
    assert _fpr(neg, np.nextafter(t, -np.inf)) > 0.29


def test_threshold_at_fpr_ties_count_against_threshold() -> None:
    # 2 of 10 may be flagged, but the 2nd and 3rd highest tie: flagging the tie would make 3
    neg = [0.1] * 7 + [0.5, 0.5, 0.9]
    t = threshold_at_fpr(neg, target_fpr=0.2)
    assert t == np.nextafter(0.5, np.inf)
    assert _fpr(neg, t) == 0.1
    # all tied: nothing can be flagged without flagging all
    assert _fpr([0.3] * 5, threshold_at_fpr([0.3] * 5, target_fpr=0.5)) == 0.0


def test_threshold_at_fpr_target_zero_and_range() -> None:
    neg = [0.2, 0.7, 0.4]
    t = threshold_at_fpr(neg, target_fpr=0.0)
    assert t == np.nextafter(0.7, np.inf) and _fpr(neg, t) == 0.0
    assert threshold_at_fpr([0.5], target_fpr=0.99) == np.nextafter(0.5, np.inf)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"target_fpr must be in \[0, 1\)"):
            threshold_at_fpr(neg, target_fpr=bad)
    with pytest.raises(ValueError, match="at least one"):
        threshold_at_fpr([], target_fpr=0.1)
    with pytest.raises(ValueError, match="NaN"):
        threshold_at_fpr([0.1, float("nan")], target_fpr=0.1)


def test_threshold_at_fpr_random_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        neg = np.round(rng.random(n), 1)  # many ties
        target = float(rng.choice([0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9]))
        t = threshold_at_fpr(neg, target_fpr=target)
        # the smallest candidate: just above some real score, or the lowest real itself
        cands = sorted({float(v) for v in neg} | {float(np.nextafter(v, np.inf)) for v in neg})
        best = min(c for c in cands if _fpr(neg, c) <= target)
        assert t == best, (neg, target)


def test_tpr_at_fpr_matches_threshold_rule() -> None:
    y = [0] * 10 + [1] * 4
    p = [0.1] * 8 + [0.5, 0.5] + [0.5, 0.6, 0.8, 0.9]
    t = threshold_at_fpr(np.array(p[:10]), target_fpr=0.1)  # the tied 0.5s stay below
    assert tpr_at_fpr(y, p, fpr=0.1) == 0.75 == float((np.array(p[10:]) >= t).mean())
