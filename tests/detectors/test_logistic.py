from __future__ import annotations

import numpy as np
import pytest

from detectors.logistic import fit_logistic_regression


def _problem(seed: int, n: int = 300, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    x = rng.normal(0, 1, (n, d)) + 1.5 * y[:, None]
    return np.hstack([x, np.ones((n, 1))]), y


@pytest.mark.parametrize("weighted", [False, True])
def test_solution_is_the_stationary_point(weighted: bool) -> None:
    x, y = _problem(0)
    reg = np.r_[np.full(3, 0.5), 0.0]
    w = np.where(y == 1, 2.0, 1.0) if weighted else None
    beta = fit_logistic_regression(x, y, reg=reg, sample_weight=w)
    p = 1 / (1 + np.exp(-(x @ beta)))
    ww = np.ones_like(y) if w is None else w
    grad = x.T @ (ww * (p - y)) + reg * beta
    assert np.abs(grad).max() < 1e-9
    assert np.all(beta[:3] > 0)  # every feature is higher on positives


def test_penalty_shrinks_and_weights_matter() -> None:
    x, y = _problem(1)
    loose = fit_logistic_regression(x, y, reg=np.r_[np.full(3, 1e-3), 0.0])
    tight = fit_logistic_regression(x, y, reg=np.r_[np.full(3, 100.0), 0.0])
    assert np.linalg.norm(tight[:3]) < np.linalg.norm(loose[:3])
    heavy = fit_logistic_regression(x, y, reg=np.r_[np.full(3, 1.0), 0.0], sample_weight=np.where(y == 1, 5.0, 1.0))
    plain = fit_logistic_regression(x, y, reg=np.r_[np.full(3, 1.0), 0.0])
    assert heavy[-1] > plain[-1]  # up-weighting positives raises the intercept


def test_validation() -> None:
    x, y = _problem(2)
    with pytest.raises(ValueError, match="reg"):
        fit_logistic_regression(x, y, reg=np.ones(2))
    with pytest.raises(ValueError, match="only 0 and 1"):
        fit_logistic_regression(x, y * 2, reg=np.ones(4))
    with pytest.raises(ValueError, match="sample_weight"):
        fit_logistic_regression(x, y, reg=np.ones(4), sample_weight=-np.ones_like(y))
