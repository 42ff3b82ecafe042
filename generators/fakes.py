"""Aligned fakes from real tiles, and the calibration fakes made from them.

One implementation serves both users of aligned fakes: ``detect calibrate``
(:func:`make_calibration_fakes`, below) and the CNN detector's training data
(:mod:`detectors.cnn_training.sources`). :func:`photo_tiles` cuts textured
native-resolution tiles from a real photo on its JPEG grid and reads its JPEG
quality; :func:`aligned_fake` turns a tile into the generator's version of it
(a VAE round trip, or SDEdit regeneration).

``detect calibrate`` fits the fusion and the thresholds on the calibration
split's real photos and AI images, plus images this module makes:

* **samples** from noise (DDIM), and
* **reconstructions** (a VAE round trip) of native-resolution tiles of the
  calibration split's own real photos, each paired with the real tile it came
  from, so that the pair differs only by the generator (aligned data, as in
  B-Free: Guillaro et al., CVPR 2025; Rajan et al., 2025).

Every file is written as a JPEG at the quality estimated from a calibration
real photo (a reconstruction and its real tile at that photo's own quality),
so that "has a camera-like JPEG history" cannot separate the classes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from datasets.samples import Sample

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from generators.models import GeneratorModels
    from generators.pipeline import LatentDiffusionPipeline

__all__ = [
    "AlignedSpec",
    "FakeSet",
    "PhotoTiles",
    "aligned_fake",
    "generator_pipeline",
    "make_calibration_fakes",
    "match_low_frequency_colour",
    "photo_tiles",
]

#: JPEG quality used when no calibration real photo is a JPEG.
DEFAULT_QUALITY = 92


@dataclass(frozen=True)
class FakeSet:
    """What :func:`make_calibration_fakes` wrote.

    Attributes:
        samples: New labelled samples (AI images and, for reconstructions,
            their real tiles), in a deterministic order.
        weights_sha256: Hash of the generator weights used.
        seconds: Wall time spent making them.
    """

    samples: list[Sample]
    weights_sha256: str
    seconds: float


@dataclass(frozen=True)
class AlignedSpec:
    """How an aligned fake is made from a real tile.

    Attributes:
        mode: ``"reconstruct"`` (VAE round trip) or ``"regenerate"`` (SDEdit:
            Meng et al., ICLR 2022).
        strength: SDEdit strength in ``(0, 1]`` (``regenerate`` only).
        steps: DDIM steps of the regeneration, >= 1 (``regenerate`` only).
    """

    mode: str = "reconstruct"
    strength: float = 0.3
    steps: int = 20

    def __post_init__(self) -> None:
        if self.mode not in ("reconstruct", "regenerate"):
            raise ValueError(f"mode must be 'reconstruct' or 'regenerate', got {self.mode!r}")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    @property
    def name(self) -> str:
        """``reconstruct`` or ``regenerate_s<strength>_n<steps>`` (cache folder names)."""
        return "reconstruct" if self.mode == "reconstruct" else f"regenerate_s{self.strength:g}_n{self.steps}"


@dataclass(frozen=True)
class PhotoTiles:
    """Tiles of one real photo and its JPEG quality.

    Attributes:
        tiles: ``float32`` ``(S, S, 3)`` copies in ``[0, 1]``, most textured first.
        quality: Estimated IJG quality of the file, or ``None`` (not a JPEG, or unknown).
    """

    tiles: list[np.ndarray]
    quality: int | None


def match_low_frequency_colour(fake: np.ndarray, real: np.ndarray, *, sigma: float = 4.0) -> np.ndarray:
    """Give an aligned fake its real photo's low-frequency chroma, keeping the fake's fine detail.

    The bundled f=8 autoencoders desaturate (median HSV saturation of their
    reconstructions 0.16-0.17 against 0.26 for the photos they reconstruct)
    and shift hues. Left alone, a detector trained on them learns "grey means
    AI", which would flag dull real photos. In YCbCr (ITU-R BT.601), the
    fake's chroma is replaced below the scale ``sigma`` by the real's:
    ``C = C_fake - G(C_fake) + G(C_real)`` with a Gaussian ``G`` of ``sigma``
    pixels. Luma is untouched. With ``sigma = 4`` the Gaussian passes
    ``exp(-2 pi^2 sigma^2 f^2)`` = 0.7% of the amplitude at ``f = 1/8``
    cycles per pixel, so the decoder's period-8 (and finer) traces stay the
    fake's own.

    Args:
        fake: ``(H, W, 3)`` ``uint8`` or float in ``[0, 1]``; an aligned version of ``real``.
        real: The same shape and dtype kind.
        sigma: Gaussian scale in pixels, in ``(0, 64]``.

    Returns:
        ``float32`` ``(H, W, 3)`` in ``[0, 1]``. Neither input is modified.

    Raises:
        ValueError: If the shapes differ or ``sigma`` is out of range.
    """
    from scipy.ndimage import gaussian_filter

    if fake.shape != real.shape or fake.ndim != 3 or fake.shape[2] != 3:
        raise ValueError(f"fake and real must be equal (H, W, 3) arrays, got {fake.shape} and {real.shape}")
    if not 0 < sigma <= 64:
        raise ValueError(f"sigma must be in (0, 64], got {sigma}")

    def as_float(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    f, r = as_float(fake), as_float(real)
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32)
    fy, ry = f @ m.T, r @ m.T
    for c in (1, 2):
        fy[..., c] = fy[..., c] - gaussian_filter(fy[..., c], sigma, mode="reflect") + gaussian_filter(ry[..., c], sigma, mode="reflect")
    return np.clip(fy @ np.linalg.inv(m).T.astype(np.float32), 0.0, 1.0).astype(np.float32)


def photo_tiles(path: str | os.PathLike[str], *, size: int, k: int, align: int = 8, min_side: int = 8) -> PhotoTiles:
    """The ``k`` most textured native-resolution tiles of a photo, on its JPEG grid.

    Tiles come from :func:`forensics.crops.native_tiles` (origins snapped to
    multiples of ``align``, so the camera's 8x8 JPEG grid stays in place).

    Args:
        path: Image file (pixels only: metadata is not read here).
        size: Tile side (clamped to the photo's short side), >= 8.
        k: Most tiles, >= 0 (0: only the quality).
        align: Grid of the tile origins, >= 1.
        min_side: Photos with a region side below this give no tile.

    Raises:
        ValueError: If the file cannot be decoded (see :func:`forensics.io.load_image`).
    """
    from forensics.crops import native_tiles
    from forensics.io import load_image
    from forensics.jpeg import jpeg_info

    img = load_image(path)
    info = jpeg_info(img.data) if img.format in ("JPEG", "MPO") else None
    quality = int(info.quality) if info is not None and info.quality is not None else None
    small = min(min(r.shape[:2]) for r in img.regions) < min_side
    tiles = [] if k < 1 or small else native_tiles(img.regions, size=size, k=k, align=align)
    return PhotoTiles(tiles, quality)


def generator_pipeline(models: "GeneratorModels") -> "LatentDiffusionPipeline":
    """A pipeline for aligned fakes, with the zoo's reconstruction tiles for this autoencoder.

    The tile side and overlap come from the :mod:`generators.zoo` decoder of
    the same layout (64/16 px for f=2, 256/32 px for f=8), so that every path
    that reconstructs photos tiles them the same way; an unknown layout keeps
    the pipeline's defaults.
    """
    from generators.pipeline import LatentDiffusionPipeline
    from generators.zoo import decoder_specs

    layout = (models.downsample_factor, models.config.autoencoder.latent_channels)
    spec = next((s for s in decoder_specs() if s.kind == "autoencoder_kl" and (s.downsample_factor, s.latent_channels) == layout), None)
    tiles = {} if spec is None else {"tile_size": spec.tile_size, "tile_overlap": spec.tile_overlap}
    return LatentDiffusionPipeline(models, **tiles)


def aligned_fake(
    pipe: "LatentDiffusionPipeline",
    tile: np.ndarray,
    spec: AlignedSpec,
    *,
    generator: "torch.Generator | None" = None,
) -> np.ndarray:
    """The generator's version of a real tile: same size, same content, the generator's pixels.

    Args:
        pipe: The generator.
        tile: ``float32`` ``(H, W, 3)`` in ``[0, 1]`` (not modified).
        spec: Reconstruction or regeneration settings.
        generator: Seeds the regeneration's noise (``regenerate`` only).

    Returns:
        ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
    """
    x = np.ascontiguousarray(tile, dtype=np.float32)
    if spec.mode == "reconstruct":
        return pipe.reconstruct(x).image
    return pipe.regenerate(x, strength=spec.strength, steps=spec.steps, generator=generator).image


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _save_jpeg(arr: np.ndarray, path: Path, quality: int) -> None:
    from PIL import Image

    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(arr).save(tmp, format="JPEG", quality=int(quality), subsampling=2)
    os.replace(tmp, path)


def _seed_of(key: str, base: int) -> int:
    return (int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") + base) % (2**31)


def make_calibration_fakes(
    reals: Sequence[Sample],
    out_dir: str | os.PathLike[str],
    *,
    n_samples: int = 16,
    n_reconstruct: int = 16,
    size: int = 256,
    steps: int = 50,
    tile: int = 384,
    seed: int = 0,
    weights: str | None = None,
    device: str = "auto",
    log: Callable[[str], None] = lambda s: None,
) -> FakeSet:
    """Make fresh AI images (and aligned real tiles) with the bundled generator.

    Args:
        reals: The calibration split's real photos (their JPEG qualities set the
            outputs'; the first ``n_reconstruct`` of them, in path order, give
            one tile each for reconstruction).
        out_dir: Folder to write into (created).
        n_samples: Samples from noise, >= 0.
        n_reconstruct: Reconstructed tiles, >= 0 (at most one per real photo).
        size: Side of the samples in pixels.
        steps: DDIM steps of the samples, >= 1.
        tile: Side of the native-resolution tiles cut from the real photos
            (smaller photos give their largest square).
        seed: Base seed; each sample's generator is seeded from it and its index.
        weights: Generator weights folder (default: the shipped one).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        log: Receives progress messages.

    Returns:
        A :class:`FakeSet`; AI samples have generator ``"bundled_sample"`` or
        ``"bundled_reconstruct"``, real tiles have source ``"bundled_tile"``.

    Raises:
        ValueError: On a negative count, ``steps < 1`` or ``tile < 64``.
    """
    import time

    import torch

    from generators.models import load_models
    if n_samples < 0 or n_reconstruct < 0:
        raise ValueError(f"counts must be >= 0, got n_samples={n_samples}, n_reconstruct={n_reconstruct}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if tile < 64:
        raise ValueError(f"tile must be >= 64, got {tile}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = load_models(weights, device=device)
    pipe = generator_pipeline(models)
    log(f"generator weights {models.source} (sha256 {str(models.weights_sha256)[:12]}...) on {models.device}")

    ordered = sorted(reals, key=lambda s: s.path)
    qualities: list[int] = []
    tiles: list[tuple[str, np.ndarray, int]] = []
    for s in ordered:
        try:
            pt = photo_tiles(s.path, size=tile, k=1 if len(tiles) < n_reconstruct else 0, align=8, min_side=64)  # on the camera's JPEG grid
        except Exception as exc:  # noqa: BLE001 - a bad calibration file is skipped, named
            log(f"{s.path}: skipped ({exc})")
            continue
        if pt.quality is not None:
            qualities.append(pt.quality)
        if pt.tiles:
            tiles.append((Path(s.path).stem, pt.tiles[0], pt.quality or DEFAULT_QUALITY))
    if not qualities:
        qualities = [DEFAULT_QUALITY]

    made: list[Sample] = []
    for i in range(n_samples):
        g = torch.Generator(device=models.device).manual_seed(_seed_of(f"sample{i}", seed))
        img = pipe.sample(1, size=size, steps=steps, generator=g).images[0]
        q = qualities[i % len(qualities)]
        p = out / f"bundled_sample_{i:04d}_q{q}.jpg"
        _save_jpeg(_u8(img), p, q)
        made.append(Sample(str(p), "ai", "bundled_sample", "bundled_generator"))
        log(f"samples: {i + 1}/{n_samples}")
    for j, (stem, real_tile, q) in enumerate(tiles):
        rec = aligned_fake(pipe, real_tile, AlignedSpec("reconstruct"))
        pr, pf = out / f"tile_{stem}_q{q}.jpg", out / f"bundled_reconstruct_{stem}_q{q}.jpg"
        _save_jpeg(_u8(real_tile), pr, q)
        _save_jpeg(_u8(rec), pf, q)
        made.append(Sample(str(pr), "real", None, "bundled_tile"))
        made.append(Sample(str(pf), "ai", "bundled_reconstruct", "bundled_generator"))
        log(f"reconstructions: {j + 1}/{len(tiles)}")
    return FakeSet(made, str(models.weights_sha256), time.perf_counter() - t0)
