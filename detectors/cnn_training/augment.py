"""Paired augmentation: one draw of parameters, applied identically to a real and its fake.

Each training pair gets one draw (resize 0.5-1.5 with a random
interpolation, unsharp mask, blur, a re-export as JPEG 4:2:0/4:4:4, WebP,
double JPEG or PNG, a final JPEG 30-100 or lossless, crop offsets), applied
to both members, so that the augmentation cannot separate the classes
(B-Free: Guillaro et al., "A Bias-Free Training Paradigm for More General
AI-generated Image Detection", CVPR 2025). Built on the
``make_params``/``apply`` transforms of :mod:`datasets.perturbations`.

Processing is not evidence: with ``real_only_p`` the real member alone also
gets one sharpen or re-export, so that processed real photos are seen with
the real label too, not only as half of a pair processed alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datasets.perturbations import GaussianBlur, Jpeg, RandomResize, Reencode, Sharpen, crop
from detectors.cnn_training.config import AugmentConfig
from forensics.crops import texture_energy

__all__ = ["PairedAugment"]


class PairedAugment:
    """One draw of augmentation parameters, applied identically to a real and a fake.

    Order: crop a window at native resolution (large enough for the rescale),
    rescale, blur, JPEG or lossless, then cut the final ``crop_size`` square at
    the same relative offset, so the JPEG grid phase varies.

    Args:
        config: Ranges and probabilities.
        crop_size: Side of the final crops, >= 8.
    """

    def __init__(self, config: AugmentConfig, *, crop_size: int) -> None:
        if crop_size < 8:
            raise ValueError(f"crop_size must be >= 8, got {crop_size}")
        self.config = config
        self.crop_size = crop_size
        lo, hi = config.resize_range
        self.resize = RandomResize(lo, hi, p=config.resize_p, interpolations=config.interpolations)
        self.blur = GaussianBlur(*config.blur_sigma, p=config.blur_p)
        self.jpeg = Jpeg(*config.jpeg_quality, p=config.jpeg_p)
        self.sharpen = Sharpen(config.sharpen_radius, config.sharpen_percent, p=config.sharpen_p)
        self.reencode = Reencode(config.reencode_kinds, *config.reencode_quality, p=config.reencode_p)
        self._real_sharpen = Sharpen(config.sharpen_radius, config.sharpen_percent, p=1.0)
        self._real_reencode = Reencode(config.reencode_kinds, *config.reencode_quality, p=1.0)

    def _window(self, img: np.ndarray, side: int, rng: np.random.Generator) -> tuple[int, int, int]:
        h, w = img.shape[:2]
        side = min(side, h, w)
        best: tuple[float, int, int] | None = None
        for _ in range(self.config.texture_tries):
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            e = float(texture_energy(img[top : top + side, left : left + side]).mean()) if self.config.texture_tries > 1 else 0.0
            if best is None or e > best[0]:
                best = (e, top, left)
        assert best is not None
        return best[1], best[2], side

    def make_params(self, real: np.ndarray, fake: np.ndarray, rng: np.random.Generator, *, aligned: bool = True) -> dict[str, Any]:
        """Draw the parameters for one pair.

        Args:
            real: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
            fake: ``float32`` ``(H', W', 3)``; the same shape when ``aligned``.
            rng: The run's generator.
            aligned: The fake is a version of the real: one window position for both.

        Returns:
            A JSON-serialisable dict: ``resize``, ``blur``, ``jpeg`` (shared by both),
            ``window_real``/``window_fake`` ``(top, left, side)`` and ``offset`` (fractions).
        """
        if aligned and real.shape != fake.shape:
            raise ValueError(f"an aligned pair needs equal shapes, got {real.shape} and {fake.shape}")
        rz = self.resize.make_params(real, rng)
        scale = rz["scale"] if rz["apply"] else 1.0
        side = math.ceil((self.crop_size + 8) / scale) + 2
        win_r = self._window(real, side, rng)
        win_f = win_r if aligned else self._window(fake, side, rng)
        params = {
            "resize": rz,
            "blur": self.blur.make_params(real, rng),
            "jpeg": self.jpeg.make_params(real, rng),
            "window_real": win_r,
            "window_fake": win_f,
            "offset": (float(rng.random()), float(rng.random())),
        }
        if self.config.sharpen_p > 0 or self.config.reencode_p > 0 or self.config.real_only_p > 0:
            # Drawn only when enabled, so that older configs keep their exact RNG sequence.
            params["sharpen"] = self.sharpen.make_params(real, rng)
            params["reencode"] = self.reencode.make_params(real, rng)
            real_only = None
            if rng.random() < self.config.real_only_p:
                if rng.random() < 0.5:
                    real_only = {"sharpen": self._real_sharpen.make_params(real, rng)}
                else:
                    real_only = {"reencode": self._real_reencode.make_params(real, rng)}
            params["real_only"] = real_only
        return params

    def apply(self, img: np.ndarray, params: dict[str, Any], *, member: str) -> np.ndarray:
        """Apply drawn parameters to one member (``"real"`` or ``"fake"``).

        Returns:
            ``float32`` ``(crop_size, crop_size, 3)`` in ``[0, 1]``.
        """
        top, left, side = params[f"window_{member}"]
        x = crop(img, top, left, side, side)
        x = self.resize.apply(x, params["resize"])
        if "sharpen" in params:
            x = self.sharpen.apply(x, params["sharpen"])
        x = self.blur.apply(x, params["blur"])
        extra = params.get("real_only") if member == "real" else None
        if extra and "sharpen" in extra:
            x = self._real_sharpen.apply(x, extra["sharpen"])
        if "reencode" in params:
            x = self.reencode.apply(x, params["reencode"])
        if extra and "reencode" in extra:
            x = self._real_reencode.apply(x, extra["reencode"])
        x = self.jpeg.apply(x, params["jpeg"])
        s = self.crop_size
        h, w = x.shape[:2]
        if h < s or w < s:  # tiny source: pad by reflection (never happens with tiles >= 2 * crop)
            x = np.pad(x, ((0, max(0, s - h)), (0, max(0, s - w)), (0, 0)), mode="reflect")
            h, w = x.shape[:2]
        fy, fx = params["offset"]
        t, l = int(fy * (h - s + 1)) if h > s else 0, int(fx * (w - s + 1)) if w > s else 0
        return np.ascontiguousarray(x[t : t + s, l : l + s], dtype=np.float32)

    def __call__(self, real: np.ndarray, fake: np.ndarray, rng: np.random.Generator, *, aligned: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Draw once and apply to both: ``(real_crop, fake_crop, params)``."""
        p = self.make_params(real, fake, rng, aligned=aligned)
        return self.apply(real, p, member="real"), self.apply(fake, p, member="fake"), p
