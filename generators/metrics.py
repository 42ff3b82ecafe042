"""Full-reference image quality: PSNR and SSIM (Wang et al., "Image Quality
Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004).

Inputs are ``float32`` ``(H, W, 3)`` arrays in ``[0, 1]`` of the same shape.
SSIM uses an 11x11 Gaussian window with sigma 1.5, K1=0.01, K2=0.03 and a data
range of 1, computed per channel and averaged (as ``skimage`` with
``gaussian_weights=True, channel_axis=-1``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["psnr", "ssim"]


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for a data range of 1 (``inf`` when equal)."""
    _check(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity in ``[-1, 1]`` (1: identical)."""
    import cv2

    _check(a, b)
    c1, c2 = 0.01**2, 0.03**2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    vals = []
    for ch in range(a.shape[2]):
        x = np.ascontiguousarray(a[..., ch], dtype=np.float32)
        y = np.ascontiguousarray(b[..., ch], dtype=np.float32)
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        num = (2 * mx * my + c1) * (2 * sxy + c2)
        den = (mx * mx + my * my + c1) * (sxx + syy + c2)
        m = (num / den)[5:-5, 5:-5] if min(x.shape) > 10 else num / den
        vals.append(float(np.mean(m, dtype=np.float64)))
    return float(np.mean(vals))
