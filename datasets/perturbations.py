"""Perturbations applied identically to both classes: JPEG, resize, blur, sharpening, re-encoding, crop.

Design follows torchvision.transforms.v2: each transform validates its options
in ``__init__``, draws its random parameters from a passed
``numpy.random.Generator`` in :meth:`make_params`, and calls a deterministic
kernel function (``jpeg_compress``, ``resize``, ``gaussian_blur``, ``crop``).
Applying the same parameters to a real photo and to its AI counterpart keeps
the classes aligned, so a detector cannot learn format or size shortcuts
(B-Free, Guillaro et al., CVPR 2025; Rajan et al., "On the Effectiveness of
Dataset Alignment for Fake Image Detection", 2025).

All images are ``float32`` arrays ``(H, W, 3)`` in ``[0, 1]``; inputs are
never modified.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

__all__ = [
    "Compose",
    "GaussianBlur",
    "INTERPOLATIONS",
    "Jpeg",
    "RandomCrop",
    "RandomResize",
    "Reencode",
    "Sharpen",
    "REENCODINGS",
    "crop",
    "gaussian_blur",
    "jpeg_compress",
    "named_perturbation",
    "reencode",
    "resize",
    "unsharp_mask",
    "to_uint8",
]

INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _check(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be an array of shape (H, W, 3), got {getattr(img, 'shape', type(img))}")


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round a ``[0, 1]`` float image to ``uint8``."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def jpeg_compress(img: np.ndarray, quality: int, *, subsampling: int = 2) -> np.ndarray:
    """Encode to JPEG in memory with Pillow (libjpeg) and decode again.

    Args:
        img: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
        quality: 1..100 (IJG scale).
        subsampling: Pillow chroma subsampling: 0 (4:4:4), 1 (4:2:2), 2 (4:2:0).

    Returns:
        ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
    """
    _check(img)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if subsampling not in (0, 1, 2):
        raise ValueError(f"subsampling must be 0, 1 or 2, got {subsampling}")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def resize(img: np.ndarray, scale: float, *, interpolation: str = "bicubic") -> np.ndarray:
    """Rescale by a factor with Pillow (8-bit round trip, as a real re-save would do).

    Args:
        img: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
        scale: Factor in ``(0, 4]``.
        interpolation: One of :data:`INTERPOLATIONS`.

    Returns:
        ``float32`` ``(round(H*scale), round(W*scale), 3)`` in ``[0, 1]``, at least 1x1.
    """
    _check(img)
    if not 0 < scale <= 4:
        raise ValueError(f"scale must be in (0, 4], got {scale}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}")
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = Image.fromarray(to_uint8(img)).resize(size, INTERPOLATIONS[interpolation])
    return np.asarray(out, dtype=np.float32) / np.float32(255.0)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with Pillow (``sigma`` in pixels, in ``[0, 10]``; 0 returns a copy)."""
    _check(img)
    if not 0 <= sigma <= 10:
        raise ValueError(f"sigma must be in [0, 10], got {sigma}")
    if sigma == 0:
        return img.copy()
    out = Image.fromarray(to_uint8(img)).filter(ImageFilter.GaussianBlur(radius=float(sigma)))
    return np.asarray(out, dtype=np.float32) / np.float32(255.0)


def unsharp_mask(img: np.ndarray, *, radius: float, percent: int, threshold: int = 0) -> np.ndarray:
    """Unsharp mask with Pillow, as photo editors and design tools apply on export.

    Args:
        img: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
        radius: Blur radius in pixels, in ``(0, 10]``.
        percent: Strength in percent, in ``[0, 500]``.
        threshold: Smallest 8-bit difference that is sharpened, in ``[0, 255]``.

    Returns:
        ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
    """
    _check(img)
    if not 0 < radius <= 10:
        raise ValueError(f"radius must be in (0, 10], got {radius}")
    if not 0 <= percent <= 500:
        raise ValueError(f"percent must be in [0, 500], got {percent}")
    if not 0 <= threshold <= 255:
        raise ValueError(f"threshold must be in [0, 255], got {threshold}")
    f = ImageFilter.UnsharpMask(radius=float(radius), percent=int(percent), threshold=int(threshold))
    return np.asarray(Image.fromarray(to_uint8(img)).filter(f), dtype=np.float32) / np.float32(255.0)


#: Re-encodings of :func:`reencode`: what images go through on the web and in tools.
REENCODINGS = ("jpeg420", "jpeg444", "webp", "double_jpeg", "png")


def reencode(img: np.ndarray, kind: str, *, quality: int = 85, second_quality: int = 75) -> np.ndarray:
    """Encode and decode once more, in memory, as a re-export would.

    Args:
        img: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
        kind: One of :data:`REENCODINGS`: JPEG 4:2:0 or 4:4:4, WebP (lossy),
            JPEG at ``quality`` then again at ``second_quality``, or PNG (an 8-bit round trip).
        quality: 1..100, for every lossy kind.
        second_quality: 1..100, the second save of ``double_jpeg``.

    Returns:
        ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
    """
    _check(img)
    if kind not in REENCODINGS:
        raise ValueError(f"kind must be one of {REENCODINGS}, got {kind!r}")
    if kind == "jpeg420":
        return jpeg_compress(img, quality, subsampling=2)
    if kind == "jpeg444":
        return jpeg_compress(img, quality, subsampling=0)
    if kind == "double_jpeg":
        return jpeg_compress(jpeg_compress(img, quality), second_quality)
    if kind == "png":
        return to_uint8(img).astype(np.float32) / np.float32(255.0)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="WEBP", quality=int(quality), method=4)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def crop(img: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Crop at native resolution; the box must lie inside the image. Returns a copy."""
    _check(img)
    h, w = img.shape[:2]
    if not (0 <= top and 0 <= left and height > 0 and width > 0 and top + height <= h and left + width <= w):
        raise ValueError(f"crop box top={top} left={left} {width}x{height} is outside the {w}x{h} image")
    return img[top : top + height, left : left + width].copy()


class _Transform:
    """Base: ``__call__(img, rng)`` = ``apply(img, make_params(img, rng))``."""

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(img, self.make_params(img, rng))


@dataclass(frozen=True)
class Jpeg(_Transform):
    """JPEG re-compression with probability ``p`` and quality in ``[q_min, q_max]``."""

    q_min: int = 30
    q_max: int = 100
    p: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.q_min <= self.q_max <= 100:
            raise ValueError(f"need 1 <= q_min <= q_max <= 100, got {self.q_min}, {self.q_max}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"apply": bool(rng.random() < self.p), "quality": int(rng.integers(self.q_min, self.q_max + 1))}

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return jpeg_compress(img, params["quality"]) if params["apply"] else img


@dataclass(frozen=True)
class RandomResize(_Transform):
    """Rescale by a factor in ``[s_min, s_max]`` with a random interpolation, with probability ``p``."""

    s_min: float = 0.5
    s_max: float = 1.5
    p: float = 1.0
    interpolations: tuple[str, ...] = ("bilinear", "bicubic", "lanczos")

    def __post_init__(self) -> None:
        if not 0 < self.s_min <= self.s_max <= 4:
            raise ValueError(f"need 0 < s_min <= s_max <= 4, got {self.s_min}, {self.s_max}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        bad = [i for i in self.interpolations if i not in INTERPOLATIONS]
        if bad or not self.interpolations:
            raise ValueError(f"interpolations must be from {sorted(INTERPOLATIONS)}, got {self.interpolations}")

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "apply": bool(rng.random() < self.p),
            "scale": float(rng.uniform(self.s_min, self.s_max)),
            "interpolation": self.interpolations[int(rng.integers(len(self.interpolations)))],
        }

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        if not params["apply"]:
            return img
        return resize(img, params["scale"], interpolation=params["interpolation"])


@dataclass(frozen=True)
class GaussianBlur(_Transform):
    """Gaussian blur with sigma in ``[sigma_min, sigma_max]``, with probability ``p``."""

    sigma_min: float = 0.1
    sigma_max: float = 1.5
    p: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.sigma_min <= self.sigma_max <= 10:
            raise ValueError(f"need 0 <= sigma_min <= sigma_max <= 10, got {self.sigma_min}, {self.sigma_max}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"apply": bool(rng.random() < self.p), "sigma": float(rng.uniform(self.sigma_min, self.sigma_max))}

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return gaussian_blur(img, params["sigma"]) if params["apply"] else img


@dataclass(frozen=True)
class RandomCrop(_Transform):
    """Crop ``size x size`` at native resolution (the whole image if smaller)."""

    size: int = 512

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        h, w = img.shape[:2]
        ch, cw = min(h, self.size), min(w, self.size)
        return {
            "top": int(rng.integers(0, h - ch + 1)),
            "left": int(rng.integers(0, w - cw + 1)),
            "height": ch,
            "width": cw,
        }

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return crop(img, params["top"], params["left"], params["height"], params["width"])


@dataclass(frozen=True)
class Sharpen(_Transform):
    """Unsharp mask with probability ``p``, radius and strength drawn from ranges."""

    radius: tuple[float, float] = (0.5, 2.0)
    percent: tuple[int, int] = (30, 150)
    p: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.radius[0] <= self.radius[1] <= 10:
            raise ValueError(f"radius range must lie in (0, 10], got {self.radius}")
        if not 0 <= self.percent[0] <= self.percent[1] <= 500:
            raise ValueError(f"percent range must lie in [0, 500], got {self.percent}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "apply": bool(rng.random() < self.p),
            "radius": float(rng.uniform(*self.radius)),
            "percent": int(rng.integers(self.percent[0], self.percent[1] + 1)),
            "threshold": int(rng.integers(0, 4)),
        }

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        if not params["apply"]:
            return img
        return unsharp_mask(img, radius=params["radius"], percent=params["percent"], threshold=params["threshold"])


@dataclass(frozen=True)
class Reencode(_Transform):
    """A re-export with probability ``p``: one of :data:`REENCODINGS` at a quality in ``[q_min, q_max]``."""

    kinds: tuple[str, ...] = REENCODINGS
    q_min: int = 70
    q_max: int = 95
    p: float = 1.0

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in REENCODINGS]
        if bad or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {REENCODINGS}, got {self.kinds}")
        if not 1 <= self.q_min <= self.q_max <= 100:
            raise ValueError(f"need 1 <= q_min <= q_max <= 100, got {self.q_min}, {self.q_max}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "apply": bool(rng.random() < self.p),
            "kind": self.kinds[int(rng.integers(len(self.kinds)))],
            "quality": int(rng.integers(self.q_min, self.q_max + 1)),
            "second_quality": int(rng.integers(self.q_min, self.q_max + 1)),
        }

    def apply(self, img: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        if not params["apply"]:
            return img
        return reencode(img, params["kind"], quality=params["quality"], second_quality=params["second_quality"])


@dataclass(frozen=True)
class Compose(_Transform):
    """Apply transforms in order, each drawing its own parameters from the same RNG."""

    transforms: tuple[_Transform, ...]

    def make_params(self, img: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        raise TypeError("Compose draws parameters step by step; call it directly")

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            img = t(img, rng)
        return img


def named_perturbation(name: str, img: np.ndarray) -> np.ndarray:
    """Apply a named deterministic evaluation perturbation.

    Args:
        name: ``none``, ``jpegQ`` (e.g. ``jpeg75``), ``resizeS`` (e.g.
            ``resize0.5``, bicubic) or ``blurS`` (e.g. ``blur1``, sigma in pixels).
        img: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.

    Raises:
        ValueError: For an unknown name, listing the allowed forms.
    """
    if name == "none":
        return img
    try:
        if name.startswith("jpeg"):
            return jpeg_compress(img, int(name[4:]))
        if name.startswith("resize"):
            return resize(img, float(name[6:]), interpolation="bicubic")
        if name.startswith("blur"):
            return gaussian_blur(img, float(name[4:]))
    except ValueError as exc:
        raise ValueError(f"bad perturbation {name!r}: {exc}") from None
    raise ValueError(f"unknown perturbation {name!r}; allowed: none, jpegQ, resizeS, blurS (e.g. jpeg75, resize0.5, blur1)")
