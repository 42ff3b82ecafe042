"""Shared pieces of the speed benchmarks (``cnn_speed.py``, ``zed_speed.py``): median timing and a test image.

Imported by those scripts when run as ``python benchmarks/NAME.py`` (their folder is then on ``sys.path``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

__all__ = ["SIZES", "median_time", "test_image"]

#: Image sizes ``(height, width)`` the speed benchmarks time: 0.26 MP, 0.79 MP, 12 MP.
SIZES = [(512, 512), (768, 1024), (3000, 4000)]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` in seconds, after one warm-up call."""
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def test_image(h: int, w: int, seed: int, *, quantize: bool = False) -> np.ndarray:
    """A photo-like ``float32`` ``(h, w, 3)`` image in ``[0, 1]``: smooth colour field, edges, noise.

    Args:
        h: Height in pixels.
        w: Width in pixels.
        seed: Seeds the noise.
        quantize: Round the values to the 8-bit grid, as a decoded file's are.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32) / max(h, w)
    base = 0.5 + 0.25 * np.sin(6 * xx + 3 * yy)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    img = np.clip(base + rng.normal(0, 0.05, (h, w, 3)).astype(np.float32), 0, 1).astype(np.float32)
    return (np.round(img * 255) / 255).astype(np.float32) if quantize else img
