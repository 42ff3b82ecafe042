from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.metrics import auc, average_precision, binary_metrics, ece, tpr_at_fpr


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
