"""High-pass residual filters.

Generators leave their traces in the high frequencies; a residual removes the
scene content so those traces can be measured. Three families are provided:

* :func:`laplacian` - the 4-neighbour discrete Laplacian.
* :func:`cross_difference` - the 2x2 cross-difference filter used by
  Synthbuster: Q. Bammey, "Synthbuster: Towards Detection of Diffusion Model
  Generated Images", IEEE Open Journal of Signal Processing, 2023.
* :func:`srm_residuals` - a small bank of rich-model (SRM) kernels from
  J. Fridrich and J. Kodovsky, "Rich Models for Steganalysis of Digital
  Images", IEEE TIFS 7(3), 2012 (the 3x3 "KB" and 5x5 "KV" kernels and
  first/second-order differences).

All filters are "valid" correlations: no padding is invented, so the output
is smaller than the input by the kernel size minus one. Inputs are never
modified.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CROSS_DIFFERENCE_KERNEL",
    "LAPLACIAN_KERNEL",
    "SRM_KERNELS",
    "correlate_valid",
    "cross_difference",
    "laplacian",
    "luminance",
    "srm_residuals",
]

LAPLACIAN_KERNEL = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
CROSS_DIFFERENCE_KERNEL = np.array([[1, -1], [-1, 1]], dtype=np.float32)

#: Named SRM kernels (Fridrich & Kodovsky 2012), each normalised by its usual quantisation step.
SRM_KERNELS: dict[str, np.ndarray] = {
    "first_order_h": np.array([[0, 0, 0], [0, -1, 1], [0, 0, 0]], dtype=np.float32),
    "second_order_h": np.array([[0, 0, 0], [1, -2, 1], [0, 0, 0]], dtype=np.float32) / 2.0,
    "kb3": np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], dtype=np.float32) / 4.0,
    "kv5": np.array(
        [
            [-1, 2, -2, 2, -1],
            [2, -6, 8, -6, 2],
            [-2, 8, -12, 8, -2],
            [2, -6, 8, -6, 2],
            [-1, 2, -2, 2, -1],
        ],
        dtype=np.float32,
    )
    / 12.0,
}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _check_image(image: np.ndarray, min_side: int) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got shape {image.shape}")
    if image.shape[0] < min_side or image.shape[1] < min_side:
        raise ValueError(
            f"image is {image.shape[1]}x{image.shape[0]}; this filter needs at least {min_side}x{min_side} pixels"
        )
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image dtype must be floating point in [0, 1], got {image.dtype}")
    return image.astype(np.float32, copy=False)


def luminance(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image.

    Args:
        image: ``float`` array ``(H, W, 3)`` in ``[0, 1]``, or ``(H, W)`` (returned as float32).

    Returns:
        ``float32`` array ``(H, W)``.
    """
    img = _check_image(image, 1)
    if img.ndim == 2:
        return img.copy()
    if img.shape[2] != 3:
        raise ValueError(f"image must have 3 channels, got {img.shape[2]}")
    return img @ _LUMA


def correlate_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid-mode 2-D correlation applied to each channel.

    Args:
        image: ``float`` array ``(H, W)`` or ``(H, W, C)``.
        kernel: ``(kh, kw)`` array.

    Returns:
        ``float32`` array ``(H - kh + 1, W - kw + 1[, C])``.
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got shape {k.shape}")
    kh, kw = k.shape
    img = _check_image(image, max(kh, kw))
    h, w = img.shape[0] - kh + 1, img.shape[1] - kw + 1
    out = np.zeros((h, w) + img.shape[2:], dtype=np.float32)
    scratch: np.ndarray | None = None
    for i in range(kh):
        for j in range(kw):
            c = k[i, j]
            view = img[i : i + h, j : j + w]
            # +-1 taps add or subtract in place (bit-identical to adding c * x, without a temporary)
            if c == 1.0:
                out += view
            elif c == -1.0:
                out -= view
            elif c != 0.0:
                if scratch is None:
                    scratch = np.empty_like(out)
                np.multiply(view, c, out=scratch)
                out += scratch
    return out


def laplacian(image: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian residual.

    Args:
        image: ``float`` array ``(H, W)`` or ``(H, W, C)`` in ``[0, 1]``, H, W >= 3.

    Returns:
        ``float32`` array ``(H - 2, W - 2[, C])``.
    """
    return correlate_valid(image, LAPLACIAN_KERNEL)


def cross_difference(image: np.ndarray) -> np.ndarray:
    """Synthbuster's cross-difference residual ``x[i,j] - x[i,j+1] - x[i+1,j] + x[i+1,j+1]``.

    Its frequency response is ``4 sin(pi u) sin(pi v)``: it removes every
    horizontal and vertical structure, including constant rows and columns,
    and keeps the diagonal high frequencies where resampling periodicities
    show (Bammey 2023).

    Args:
        image: ``float`` array ``(H, W)`` or ``(H, W, C)`` in ``[0, 1]``, H, W >= 2.

    Returns:
        ``float32`` array ``(H - 1, W - 1[, C])``.
    """
    return correlate_valid(image, CROSS_DIFFERENCE_KERNEL)


def srm_residuals(image: np.ndarray, *, kernels: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Apply a bank of SRM kernels.

    Args:
        image: ``float`` array ``(H, W)`` or ``(H, W, C)`` in ``[0, 1]``, H, W >= 5.
        kernels: Names from :data:`SRM_KERNELS`; all by default.

    Returns:
        Mapping from kernel name to ``float32`` residual cropped to the common
        shape ``(H - 4, W - 4[, C])`` so the maps align pixel for pixel.

    Raises:
        ValueError: If a kernel name is unknown.
    """
    names = tuple(SRM_KERNELS) if kernels is None else kernels
    unknown = [n for n in names if n not in SRM_KERNELS]
    if unknown:
        raise ValueError(f"unknown SRM kernel(s) {unknown}; allowed: {sorted(SRM_KERNELS)}")
    img = _check_image(image, 5)
    h, w = img.shape[0] - 4, img.shape[1] - 4
    out: dict[str, np.ndarray] = {}
    for name in names:
        k = SRM_KERNELS[name]
        r = correlate_valid(img, k)
        # centre-crop each map so that all maps are aligned on the same pixels
        oy = (r.shape[0] - h) // 2
        ox = (r.shape[1] - w) // 2
        out[name] = r[oy : oy + h, ox : ox + w]
    return out
