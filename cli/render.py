"""Encode small ``uint8`` arrays as ``data:`` URIs for self-contained reports.

Only Pillow and numpy are used; nothing is written to disk.
"""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["crop_center", "fit_long_side", "jpeg_data_uri", "png_data_uri"]


def _to_image(arr: np.ndarray):  # -> PIL.Image.Image
    """A Pillow image from a ``uint8`` grey ``(h, w)`` / ``(h, w, 1)`` or RGB(A) array."""
    from PIL import Image

    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        mode = "L"
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        mode = "RGB" if a.shape[2] == 3 else "RGBA"
    else:
        raise ValueError(f"expected an (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"empty image of shape {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a), mode=mode)


def fit_long_side(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so that the long side is at most ``max_side``.

    Args:
        arr: ``uint8`` grey or RGB array.
        max_side: Largest allowed side in pixels.

    Returns:
        The array itself when it already fits, else a resized ``uint8`` copy.
    """
    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return arr
    from PIL import Image

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(_to_image(arr).resize(size, Image.Resampling.BOX))


def crop_center(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Centre crop to at most ``max_side`` pixels per side, keeping pixel-level texture.

    Used for noise residuals, whose look is destroyed by resampling.
    """
    h, w = arr.shape[:2]
    ch, cw = min(h, max_side), min(w, max_side)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return arr[y0 : y0 + ch, x0 : x0 + cw]


def png_data_uri(arr: np.ndarray) -> str:
    """Encode a ``uint8`` grey or RGB(A) array as a ``data:image/png;base64,...`` URI.

    Args:
        arr: ``uint8`` array of shape ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)``.

    Raises:
        TypeError: If the array is not ``uint8``.
        ValueError: If the shape is not an image shape.
    """
    buf = io.BytesIO()
    _to_image(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_data_uri(arr: np.ndarray, quality: int = 82) -> str:
    """Encode a ``uint8`` grey or RGB array as a ``data:image/jpeg;base64,...`` URI.

    Much smaller than PNG for photographic thumbnails. An alpha channel is dropped.

    Args:
        arr: ``uint8`` array of shape ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)``.
        quality: JPEG quality, 1-95.
    """
    img = _to_image(arr)
    if img.mode == "RGBA":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality), optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
