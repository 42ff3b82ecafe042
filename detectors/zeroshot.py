"""Zero-shot detector (ZED-style): how much more predictable an image is than real photos let it be.

Method (Cozzolino et al., ECCV 2024), in a CPU-sized form:

* **A coder of real photos only.** A small multi-resolution lossless coder
  (:mod:`detectors.zed_model`) is trained on real photographs alone, across
  the JPEG/resize/sharpen/re-export range they circulate in
  (:mod:`detectors.zed_training`). At each of ``n_scales`` scales it predicts
  every full-resolution pixel's luma and chroma from the 2x-coarser image,
  with a discretized logistic distribution. No generated image is ever
  trained on, so it cannot learn, or miss, a particular generator.
* **Actual minus expected cost.** For every pixel the coder gives its actual
  coding cost ``-log2 p(x)`` and the cost it expects, the entropy of its own
  distribution there. On real photos the two agree on average; generated
  images are smoother than their coarse content announces, so at the fine
  scales they cost less than expected. The gap ``delta = NLL - entropy`` (bits
  per pixel) is averaged over square blocks (``block`` pixels at full
  resolution, halving per scale).
* **Features per image, per scale** (:data:`FEATURE_NAMES`): the mean of
  delta, the spread (standard deviation) of the block means, and the fraction
  of surprisingly predictable blocks, whose delta is below ``tau`` (the 5th
  percentile of real photos' blocks, measured on held-out training photos).
* **A tiny calibrated map.** A logistic regression of those features, fitted
  on the calib split only (where fakes are allowed), gives P(AI); the
  detector's threshold is its 1% false-positive point on calib real photos.
  The evidence keeps each crop's place and mean delta per scale: a coarse map
  of where the image is surprisingly predictable.
* **Bounded work.** As the other pixel detectors, it never resizes: it cuts
  ``n_crops`` textured full-resolution crops of ``crop_size`` pixels
  (:func:`forensics.crops.select_crops`, ranked on a 2x or 4x decimated view
  of large images so the ranking stays cheap).

torch is imported only when a detector is built (see :mod:`detectors.zed_model`),
so importing this module stays light.

References:
    D. Cozzolino, G. Poggi, M. Niessner, L. Verdoliva, "Zero-Shot Detection of
    AI-Generated Images" (ZED), ECCV 2024.
    S. Cao, C.-Y. Wu, P. Kraehenbuehl, "Lossless Image Compression through
    Super-Resolution" (SReC), arXiv:2004.02872, 2020.
    T. Salimans, A. Karpathy, X. Chen, D. P. Kingma, "PixelCNN++", ICLR 2017
    (discretized logistic likelihood).
    Related, also real-only: D. Karageorgiou, S. Papadopoulos, I. Kompatsiaris,
    E. Gavves, "Any-Resolution AI-Generated Image Detection by Spectral
    Learning" (SPAI), CVPR 2025 (masked spectral reconstruction of real images).
"""

from __future__ import annotations

import math

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from detectors.base import DetectorResult, register_detector
from detectors.zed_config import CONFIG_FORMAT, FEATURE_NAMES, ZedConfig, ZedScoreMap, ZedWeightsError, feature_names, read_config
from forensics.crops import CropBox, select_crops
from forensics.io import LoadedImage

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "CONFIG_FORMAT",
    "FEATURE_NAMES",
    "MIN_SIDE",
    "SHIPPED_CONFIG",
    "ZedConfig",
    "ZedDetector",
    "ZedFeatures",
    "ZedScoreMap",
    "ZedWeightsError",
    "block_deltas",
    "crop_surprise",
    "feature_names",
    "image_features",
    "read_config",
    "select_zed_crops",
    "shipped_config_path",
    "to_levels",
    "ycocg_pyramid",
    "ycocg_r",
]

#: The shipped config, beside its ``.safetensors`` and the model card.
SHIPPED_CONFIG = "zed_v1.json"
#: Smallest image side the detector analyses; smaller images are ``not_applicable``.
MIN_SIDE = 64


def shipped_config_path(name: str = SHIPPED_CONFIG) -> Path:
    """Path of a config JSON shipped in ``detectors/weights/``."""
    return Path(str(resources.files("detectors").joinpath("weights", name)))


# -- pixels: levels, colour transform, pyramid (numpy, no torch) -----------------


def to_levels(pixels: np.ndarray) -> np.ndarray:
    """8-bit levels of float pixels (the loader's ``v / 255``, recovered exactly).

    Args:
        pixels: ``float32`` ``(..., 3)`` in ``[0, 1]``.

    Returns:
        ``uint8`` array of the same shape.
    """
    return (np.clip(pixels, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def ycocg_r(rgb: np.ndarray) -> np.ndarray:
    """Lossless YCoCg-R transform (Malvar and Sullivan, 2003) of 8-bit RGB.

    Args:
        rgb: Integer array ``(..., 3)`` with values in ``[0, 255]``.

    Returns:
        ``int16`` ``(..., 3)``: Y in ``[0, 255]``, Co and Cg in ``[-255, 255]``.
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"rgb must have 3 channels last, got shape {rgb.shape}")
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    y = t + (cg >> 1)
    return np.stack([y, co, cg], axis=-1)


def ycocg_pyramid(crops: np.ndarray, n_scales: int) -> list[np.ndarray]:
    """YCoCg-R images of a batch of crops at ``n_scales + 1`` resolutions.

    Level ``s + 1`` is the rounded mean of each 2x2 block of level ``s`` in RGB
    (an 8-bit image itself), then transformed; level 0 is the crop.

    Args:
        crops: ``uint8`` ``(B, S, S, 3)`` with ``S`` a multiple of ``2 ** n_scales``.
        n_scales: Number of 2x reductions, >= 1.

    Returns:
        ``[x_0, ..., x_n]``, ``int16`` ``(B, S / 2^s, S / 2^s, 3)``.

    Raises:
        ValueError: On a wrong dtype or shape.
    """
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3:
        raise ValueError(f"crops must be uint8 (B, S, S, 3), got {crops.dtype} {crops.shape}")
    if n_scales < 1 or crops.shape[1] % (2**n_scales) or crops.shape[2] % (2**n_scales):
        raise ValueError(f"crop sides {crops.shape[1:3]} must be multiples of 2**n_scales = {2**n_scales}")
    rgb = [crops.astype(np.int32)]
    for _ in range(n_scales):
        x = rgb[-1]
        b, h, w, _c = x.shape
        rgb.append((x.reshape(b, h // 2, 2, w // 2, 2, 3).sum(axis=(2, 4)) + 2) // 4)
    return [ycocg_r(x) for x in rgb]


# -- crops ---------------------------------------------------------------------


def _decimation(regions: Sequence[np.ndarray]) -> int:
    """How much to decimate large images to rank crops: 1 up to 2 MP, 2 up to 8 MP, else 4."""
    n = sum(r.shape[0] * r.shape[1] for r in regions)
    return 1 if n <= 2_000_000 else 2 if n <= 8_000_000 else 4


def select_zed_crops(regions: Sequence[np.ndarray], *, crop_size: int, n_crops: int, unit: int) -> list[CropBox]:
    """Textured full-resolution crops (:func:`forensics.crops.select_crops`), side a multiple of ``unit``.

    Large images are ranked on a view decimated 2x (above 2 MP) or 4x (above
    8 MP), so the ranking costs a fraction of a full pass; the crops are then
    cut from the full-resolution pixels.

    Args:
        regions: Full-resolution regions, ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
        crop_size: Wanted side, a multiple of ``unit``.
        n_crops: Most crops, >= 1.
        unit: The side is rounded down to a multiple of this (:attr:`ZedConfig.unit`).

    Returns:
        Between 1 and ``n_crops`` boxes of one side, most textured first.

    Raises:
        ValueError: If the smallest region side is below ``4 * unit``.
    """
    short = min(min(r.shape[0], r.shape[1]) for r in regions)
    side = min(crop_size, short) // unit * unit
    if side < 4 * unit:
        raise ValueError(f"regions must be at least {4 * unit} px on a side, got {short}")
    f = _decimation(regions)
    while f > 1 and (side // f < 8 or side % f):
        f //= 2
    if f == 1:
        return select_crops(regions, size=side, k=n_crops)
    views = [r[::f, ::f] for r in regions]
    out = []
    for b in select_crops(views, size=side // f, k=n_crops):
        h, w = regions[b.region].shape[:2]
        out.append(CropBox(b.region, min(b.top * f, h - side), min(b.left * f, w - side), side, b.energy))
    return out


# -- features (numpy) ------------------------------------------------------------


def block_deltas(nll: np.ndarray, expected: np.ndarray, block: int) -> np.ndarray:
    """Mean of ``nll - expected`` over each ``block`` x ``block`` block of each crop.

    Args:
        nll: ``float32`` ``(B, H, W)`` actual cost, bits per pixel; ``H, W`` multiples of ``block``.
        expected: Same shape, the expected cost.
        block: Block side, >= 1.

    Returns:
        ``float64`` ``(B, H / block, W / block)``.
    """
    if nll.shape != expected.shape or nll.ndim != 3:
        raise ValueError(f"nll and expected must be equal (B, H, W) arrays, got {nll.shape} and {expected.shape}")
    b, h, w = nll.shape
    if block < 1 or h % block or w % block:
        raise ValueError(f"block must be >= 1 and divide {h}x{w}, got {block}")
    d = (nll.astype(np.float64) - expected).reshape(b, h // block, block, w // block, block)
    return d.mean(axis=(2, 4))


def image_features(blocks: Sequence[np.ndarray], tau: Sequence[float] | None) -> np.ndarray:
    """The feature vector of one image from its per-scale block deltas.

    Args:
        blocks: Per scale, ``(B, h, w)`` block means of delta over the image's crops.
        tau: Per scale, the "surprisingly predictable" block threshold, or ``None`` (``frac`` is NaN).

    Returns:
        ``float64`` ``(3 * n_scales,)``: per scale mean, standard deviation, and
        fraction of blocks below ``tau`` (see :func:`feature_names`).
    """
    out = []
    for s, b in enumerate(blocks):
        v = np.asarray(b, dtype=np.float64).ravel()
        out += [float(v.mean()), float(v.std()), float(np.mean(v < tau[s])) if tau is not None else float("nan")]
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class ZedFeatures:
    """What the coder measured on one image.

    Attributes:
        values: ``float64`` ``(3 * n_scales,)``, named by :func:`feature_names`.
        blocks: Per scale, ``float64`` ``(B, h, w)`` block means of delta (bits/pixel).
        crop_delta: ``float64`` ``(B, n_scales)``: each crop's mean delta per scale.
        boxes: The crops, region coordinates.
        nll: ``float64`` ``(n_scales,)``: mean actual cost per scale (bits/pixel).
        expected: ``float64`` ``(n_scales,)``: mean expected cost per scale.
    """

    values: np.ndarray
    blocks: tuple[np.ndarray, ...]
    crop_delta: np.ndarray
    boxes: tuple[CropBox, ...]
    nll: np.ndarray
    expected: np.ndarray


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


class ZedDetector:
    """Scores P(AI) from how much more predictable an image is than the coder of real photos expects.

    Args:
        weights: Config JSON naming the ``.safetensors`` weights; defaults to
            the shipped ``detectors/weights/zed_v1.json``. Ignored when ``model`` is given.
        model: A ready coder (:func:`detectors.zed_model.build_model`); needs ``config``.
        config: Its :class:`ZedConfig`.
        threshold: Override of the config's threshold, in ``[0, 1]``.
        n_crops: Override of the config's crop count, >= 1.
        num_threads: If given, ``torch.set_num_threads`` for this process.

    Raises:
        detectors.zed_config.ZedWeightsError: If the weights are missing or corrupt.
    """

    name = "zed"

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        model: torch.nn.Module | None = None,
        config: ZedConfig | None = None,
        threshold: float | None = None,
        n_crops: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        import torch

        from detectors.zed_model import load_zed

        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        if model is not None:
            if config is None:
                raise ValueError("a model needs its config")
            self.model = model.cpu().eval()
        else:
            self.model, config = load_zed(weights if weights is not None else shipped_config_path())
        changes = {k: v for k, v in (("threshold", threshold), ("n_crops", n_crops)) if v is not None}
        self.config = config.with_(**changes) if changes else config
        self.version = self.config.version
        self.threshold = float(self.config.threshold)

    def features(self, image: LoadedImage) -> ZedFeatures:
        """Measure one image (at least ``MIN_SIDE`` on both sides).

        Raises:
            ValueError: If the image is smaller than ``MIN_SIDE`` on a side.
        """
        from detectors.zed_model import costs

        if min(image.width, image.height) < MIN_SIDE:
            raise ValueError(f"image must be at least {MIN_SIDE}x{MIN_SIDE} px, got {image.width}x{image.height}")
        cfg = self.config
        boxes = select_zed_crops(image.regions, crop_size=cfg.crop_size, n_crops=cfg.n_crops, unit=cfg.unit)
        crops = np.stack([to_levels(image.regions[b.region][b.top : b.top + b.size, b.left : b.left + b.size]) for b in boxes])
        return self.features_of_crops(crops, boxes=tuple(boxes), _costs=costs)

    def features_of_crops(self, crops: np.ndarray, *, boxes: tuple[CropBox, ...] = (), _costs: Any = None) -> ZedFeatures:
        """Measure a batch of ``uint8`` ``(B, S, S, 3)`` crops of one image (``S`` a multiple of :attr:`ZedConfig.unit`).

        Raises:
            ValueError: On a wrong dtype or shape, or a side that is not a multiple of the unit.
        """
        if _costs is None:
            from detectors.zed_model import costs as _costs
        cfg = self.config
        if crops.ndim != 4 or crops.shape[1] % cfg.unit or crops.shape[2] % cfg.unit:
            raise ValueError(f"crops must be (B, S, S, 3) with S a multiple of {cfg.unit}, got shape {crops.shape}")
        per_scale = _costs(self.model, ycocg_pyramid(crops, cfg.n_scales))
        side = crops.shape[1]
        blocks = tuple(block_deltas(nll, ent, min(cfg.block_side(s), side >> s)) for s, (nll, ent) in enumerate(per_scale))
        return ZedFeatures(
            values=image_features(blocks, cfg.tau),
            blocks=blocks,
            crop_delta=np.stack([b.mean(axis=(1, 2)) for b in blocks], axis=1),
            boxes=boxes,
            nll=np.array([float(n.mean()) for n, _ in per_scale]),
            expected=np.array([float(e.mean()) for _, e in per_scale]),
        )

    def score_features(self, values: np.ndarray) -> tuple[float, float]:
        """``(logit, P(AI))`` of a feature vector: the score map, else ``-d0_mean`` (uncalibrated)."""
        m = self.config.score_map
        z = float(m.logit(values)) if m is not None else -float(values[0])
        return z, _sigmoid(z)

    def analyze(self, image: LoadedImage) -> DetectorResult:
        """Score one image; images below ``MIN_SIDE`` on a side are not applicable. Does not modify ``image``."""
        t0 = time.perf_counter()
        if min(image.width, image.height) < MIN_SIDE:
            return DetectorResult(
                name=self.name,
                version=self.version,
                status="not_applicable",
                threshold=self.threshold,
                message=f"image is {image.width}x{image.height}; the zero-shot detector needs at least {MIN_SIDE}x{MIN_SIDE}",
                time_s=time.perf_counter() - t0,
            )
        f = self.features(image)
        z, p = self.score_features(f.values)
        names = feature_names(self.config.n_scales)
        at = [image.region_origin(b.region) for b in f.boxes]
        evidence: dict[str, Any] = {
            "features": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(names, f.values)},
            "logit": round(z, 4),
            "nll_bits": [round(float(v), 4) for v in f.nll],
            "expected_bits": [round(float(v), 4) for v in f.expected],
            "crop_size": f.boxes[0].size,
            "n_crops": len(f.boxes),
            "crops": [[b.region, b.top, b.left] for b in f.boxes],
            "crop_delta": [[round(float(v), 4) for v in row] for row in f.crop_delta],
        }
        if all(o is not None for o in at):
            evidence["crops_in_image"] = [[int(o[0] + b.top), int(o[1] + b.left)] for o, b in zip(at, f.boxes)]  # type: ignore[index]
        d0 = float(f.values[0])
        how = "less" if d0 < 0 else "more"
        expl = [
            f"Zero-shot coder of real photos on {len(f.boxes)} full-resolution {f.boxes[0].size}px crops: at full resolution the "
            f"pixels cost {abs(d0):.3f} bits/pixel {how} than the coder expects. This and 8 more coding-cost features "
            f"go through a map fitted on calibration images; on the shared data the raw difference alone does not "
            f"separate generated images from real photos."
        ]
        return DetectorResult(
            name=self.name,
            version=self.version,
            status="ok",
            score=min(max(p, 0.0), 1.0),
            threshold=self.threshold,
            evidence=evidence,
            explanations=tuple(expl),
            time_s=time.perf_counter() - t0,
        )


#: Bits/pixel of coding-cost difference per unit of the display logit of :func:`crop_surprise`.
SURPRISE_SCALE = 0.5


def crop_surprise(evidence: dict[str, Any]) -> tuple[Any, ...]:
    """Each crop's full-resolution coding-cost difference as a display value, read from a ``zed`` result's evidence.

    The value is ``sigmoid(-delta / SURPRISE_SCALE)`` of the crop's mean
    (actual - expected) cost at the finest scale, in bits/pixel: above 0.5 where
    the crop is *more predictable* than the coder expects, which ZED reads as a
    sign of generation. It is a feature shown for an analyst, not the detector's
    score (the calibrated map of all nine features is).

    Args:
        evidence: ``DetectorResult.evidence`` of ``zed`` (or its JSON form).

    Returns:
        :class:`detectors.cnn.CropScore` per crop (``logit`` = ``-delta / SURPRISE_SCALE``,
        ``p`` its sigmoid), or ``()`` when the evidence lacks crop places or deltas.
    """
    from detectors.cnn import CropScore

    deltas, places, size = evidence.get("crop_delta"), evidence.get("crops_in_image"), evidence.get("crop_size")
    if not isinstance(deltas, list) or not isinstance(places, list) or not deltas or len(deltas) != len(places):
        return ()
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return ()
    out = []
    for row, place in zip(deltas, places):
        if not isinstance(row, list) or not row or not isinstance(place, list) or len(place) != 2:
            return ()
        d, (top, left) = row[0], place
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
            return ()
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (top, left)):
            return ()
        z = -float(d) / SURPRISE_SCALE
        out.append(CropScore(top=top, left=left, size=size, logit=z, p=1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))))
    return tuple(out)


#: The tiny coder of the ``test_zed`` variant (random init, seeded) and its fixed map.
TEST_CONFIG: dict[str, Any] = {
    "channels": 8,
    "depth": 1,
    "n_scales": 2,
    "crop_size": 64,
    "n_crops": 2,
    "block": 8,
    "tau": [-0.5, -0.5],
    "threshold": 0.5,
    "version": "zed-test-random",
}


def tiny_config(**changes: Any) -> ZedConfig:
    """The ``test_zed`` description (with a map reading ``-d0_mean``), with optional changes."""
    names = feature_names(int(changes.get("n_scales", TEST_CONFIG["n_scales"])))
    smap = ZedScoreMap(names, (0.0,) * len(names), (1.0,) * len(names), (-1.0,) + (0.0,) * (len(names) - 1), 0.0)
    return ZedConfig.from_dict({**TEST_CONFIG, "score_map": smap.to_dict(), **changes})


@register_detector("zed", kind="pixel")
def _zed(**kwargs: Any) -> ZedDetector:
    return ZedDetector(**kwargs)


@register_detector("test_zed", kind="pixel")
def _test_zed(*, seed: int = 0, **kwargs: Any) -> ZedDetector:
    """Tiny variant for fast tests: 8-channel coder at 2 scales, random init from ``seed``."""
    from detectors.zed_model import build_model

    config = kwargs.pop("config", None) or tiny_config()
    model = kwargs.pop("model", None) or build_model(config, seed=seed)
    return ZedDetector(model=model, config=config, **kwargs)
