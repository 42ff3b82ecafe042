"""Compare the project's Newton solver (detectors.logistic) with scipy.optimize's trust-exact on the same objective.

300 synthetic problems shaped like the three uses: Platt scaling (one logit and
an offset, L2 1e-3 on both), the logistic fusion (1-5 detector logits, L2 1 on
the weights, free bias, Hessian jitter 1e-9) and the spectral model
(standardised features, class-balance weights). Prints the largest relative
coefficient difference and the largest gradient norm each solver leaves.

    python benchmarks/logistic_vs_scipy.py
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from detectors.logistic import fit_logistic_regression


def scipy_fit(x: np.ndarray, y: np.ndarray, reg: np.ndarray, w: np.ndarray, jitter: float) -> np.ndarray:
    scale = float(w.sum())

    def f(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ beta
        val = float(w @ (np.logaddexp(0.0, z) - y * z)) + 0.5 * float(reg @ (beta * beta))
        return val / scale, (x.T @ (w * (expit(z) - y)) + reg * beta) / scale

    def h(beta: np.ndarray) -> np.ndarray:
        p = expit(x @ beta)
        return ((x * (w * p * (1 - p))[:, None]).T @ x + np.diag(reg + jitter)) / scale

    return minimize(f, np.zeros(x.shape[1]), jac=True, hess=h, method="trust-exact", options={"gtol": 1e-12, "maxiter": 200}).x


def main() -> None:
    rng = np.random.default_rng(0)
    worst, g_newton, g_scipy = 0.0, 0.0, 0.0
    for trial in range(300):
        n, d = int(rng.integers(20, 600)), int(rng.integers(1, 6))
        y = (rng.random(n) < 0.5).astype(float)
        if len(set(y)) < 2:
            continue
        x = rng.normal(0, 1, (n, d)) + rng.uniform(0.2, 4) * y[:, None] * rng.normal(1, 0.3, d)
        kind = trial % 3
        w = np.ones(n)
        if kind == 0:
            xx, reg, jit = np.stack([x[:, 0], np.ones(n)], 1), np.full(2, 1e-3), 0.0
        elif kind == 1:
            xx, reg, jit = np.hstack([x, np.ones((n, 1))]), np.r_[np.ones(d), 0.0], 1e-9
        else:
            xx, reg, jit = np.hstack([(x - x.mean(0)) / x.std(0), np.ones((n, 1))]), np.r_[np.ones(d), 0.0], 1e-9
            w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
        a = fit_logistic_regression(xx, y, reg=reg, sample_weight=w, jitter=jit)
        b = scipy_fit(xx, y, reg, w, jit)
        worst = max(worst, float(np.abs(a - b).max() / max(1.0, np.abs(a).max())))
        grad = lambda beta, xx=xx, w=w, y=y, reg=reg: float(np.abs(xx.T @ (w * (expit(xx @ beta) - y)) + reg * beta).max())  # noqa: E731
        g_newton, g_scipy = max(g_newton, grad(a)), max(g_scipy, grad(b))
    print(f"largest relative coefficient difference: {worst:.2e}")
    print(f"largest |gradient| left: Newton {g_newton:.2e}, scipy trust-exact {g_scipy:.2e}")


if __name__ == "__main__":
    main()
