"""Training of the zero-shot coder on real photos only, and the fit of its calibrated map.

``detect train --config configs/zed_v1.json`` (a config with ``"kind": "zed"``)
runs :func:`train`:

1. **Data.** Full-resolution tiles of the *real* photos of the train split of
   the configured manifests (never an AI image), cut at offsets that are
   multiples of 8 so a camera's JPEG grid stays in place, half of them the
   most textured tiles of the photo (where the detector will look), half at
   seeded random places. A hash of the file name holds ``val_fraction`` of the
   photos out: they measure the validation cost and set ``tau``. Tiles are
   cached under ``cache_dir``.
2. **Robustness by augmentation.** Each training patch is drawn from a tile
   through the range real photos circulate in: a rescale by 0.5-1.0, an
   unsharp mask (:class:`datasets.perturbations.Sharpen`), JPEG at quality
   60-100, a re-export (:class:`datasets.perturbations.Reencode`: JPEG 4:2:0 /
   4:4:4, WebP, double JPEG, PNG), each with its own probability. The coder
   thus learns what processed real photos cost, so a JPEG-compressed or
   resized real photo is not "surprisingly predictable" because of it. (The
   expected cost is not conditioned on the estimated JPEG quality.)
3. **Optimisation.** The loss is the mean coding cost in bits per value over
   all scales (each scale weighted alike); AdamW with a linear warm-up and a
   cosine decay (:mod:`generators.optimization`); seeded (the data RNG's state
   is checkpointed), resumable (:mod:`generators.training_utils`), stopped
   with a checkpoint by ``--max-minutes``; one JSON object per log line in
   ``OUT/log.jsonl``.
4. **Finalize** (once all steps are done): ``tau`` per scale, the 5th
   percentile of the held-out real photos' block deltas; the features of the
   **calib** split (real and AI images of the manifests, under the named
   perturbations, applied to the whole file as ``detect eval`` does); the
   logistic map fitted on them (class-balanced); the threshold at 1%
   false positives on the calib reals; the weights and config written to
   ``export``.

This module imports torch only inside :func:`train` and the helpers that run the coder.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.perturbations import REENCODINGS, INTERPOLATIONS, Reencode, Sharpen, jpeg_compress, resize
from detectors.zeroshot import ZedConfig, ZedDetector, feature_names, to_levels

if TYPE_CHECKING:  # pragma: no cover
    from datasets.samples import Sample

__all__ = [
    "ZedAugmentConfig",
    "ZedDataConfig",
    "ZedFinalizeConfig",
    "ZedScheduleConfig",
    "ZedTrainConfig",
    "ZedTrainResult",
    "augment_patch",
    "features_for_samples",
    "load_zed_train_config",
    "perturbed_file",
    "synthetic_photos",
    "train",
]

_CKPT = "checkpoint"


def _from_dict(cls: type, d: dict[str, Any], where: str) -> Any:
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    return cls(**d)


def _prob(where: str, v: float) -> None:
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{where} must be in [0, 1], got {v}")


@dataclass(frozen=True)
class ZedAugmentConfig:
    """What each training patch of a real photo may go through (each step with its own probability).

    Attributes:
        resize_p: Probability of a rescale by a factor in ``resize_range``.
        resize_range: ``[lo, hi]`` within ``(0, 1]`` (never upscaled).
        interpolations: Pillow interpolations drawn uniformly.
        sharpen_p: Probability of an unsharp mask (radius and strength drawn from the ranges).
        sharpen_radius: Radius range in pixels.
        sharpen_percent: Strength range in percent.
        jpeg_p: Probability of a JPEG save at a quality in ``jpeg_quality``.
        jpeg_quality: ``[lo, hi]`` in 1..100.
        reencode_p: Probability of a re-export (after the JPEG step) as one of ``reencode_kinds``.
        reencode_kinds: Among :data:`datasets.perturbations.REENCODINGS`.
        reencode_quality: Their quality range ``[lo, hi]``.
    """

    resize_p: float = 0.4
    resize_range: tuple[float, float] = (0.5, 1.0)
    interpolations: tuple[str, ...] = ("bilinear", "bicubic", "lanczos")
    sharpen_p: float = 0.15
    sharpen_radius: tuple[float, float] = (0.5, 2.0)
    sharpen_percent: tuple[int, int] = (30, 150)
    jpeg_p: float = 0.6
    jpeg_quality: tuple[int, int] = (60, 100)
    reencode_p: float = 0.15
    reencode_kinds: tuple[str, ...] = REENCODINGS
    reencode_quality: tuple[int, int] = (70, 95)

    def __post_init__(self) -> None:
        for name in ("resize_range", "interpolations", "sharpen_radius", "sharpen_percent", "jpeg_quality", "reencode_kinds", "reencode_quality"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("resize_p", "sharpen_p", "jpeg_p", "reencode_p"):
            _prob(f"augment.{name}", getattr(self, name))
        lo, hi = self.resize_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment.resize_range must satisfy 0 < lo <= hi <= 1, got {self.resize_range}")
        if not self.interpolations or any(i not in INTERPOLATIONS for i in self.interpolations):
            raise ValueError(f"augment.interpolations must be among {sorted(INTERPOLATIONS)}, got {self.interpolations}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"augment.jpeg_quality must satisfy 1 <= lo <= hi <= 100, got {self.jpeg_quality}")
        Sharpen(radius=self.sharpen_radius, percent=self.sharpen_percent)  # validates the ranges
        Reencode(kinds=self.reencode_kinds, q_min=self.reencode_quality[0], q_max=self.reencode_quality[1])


@dataclass(frozen=True)
class ZedDataConfig:
    """Where the real photos come from.

    Attributes:
        kind: ``manifest`` (the real photos of ``manifest``) or ``synthetic``
            (seeded textured images: smoke runs and tests, no files needed).
        manifest: One dataset spec or a list (:func:`datasets.samples.load_datasets`).
        split: The split whose real photos are trained on (``train``).
        val_fraction: Share of those photos held out (by file-name hash), in ``[0, 1)``.
        tile_size: Side of the cached full-resolution tiles (clamped to the photo), >= 32.
        tiles_per_image: Tiles per photo, >= 1 (half the most textured, half random).
        cache_dir: Where the tiles are cached (reused while the inputs are the same).
        synthetic_n: Synthetic photos (``kind == "synthetic"``), >= 2.
        synthetic_size: Their side, >= 64.
    """

    kind: str = "manifest"
    manifest: str | tuple[str, ...] = ("../shared/data/manifest.json", "../shared/data2/manifest.json")
    split: str = "train"
    val_fraction: float = 0.15
    tile_size: int = 256
    tiles_per_image: int = 8
    cache_dir: str = "runs/zed-data"
    synthetic_n: int = 8
    synthetic_size: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.manifest, str):
            object.__setattr__(self, "manifest", tuple(str(m) for m in self.manifest))
        if self.kind not in ("manifest", "synthetic"):
            raise ValueError(f"data.kind must be 'manifest' or 'synthetic', got {self.kind!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.tile_size < 32 or self.tiles_per_image < 1:
            raise ValueError(f"data.tile_size must be >= 32 and tiles_per_image >= 1, got {self.tile_size} and {self.tiles_per_image}")
        if self.synthetic_n < 2 or self.synthetic_size < 64:
            raise ValueError(f"data.synthetic_n must be >= 2 and synthetic_size >= 64, got {self.synthetic_n} and {self.synthetic_size}")


@dataclass(frozen=True)
class ZedScheduleConfig:
    """Optimisation schedule.

    Attributes:
        steps: Total optimizer steps, >= 1.
        batch: Patches per step, >= 1.
        patch: Patch side in pixels, a multiple of ``2 ** n_scales``, <= ``tile_size``.
        lr: Peak AdamW learning rate, > 0.
        lr_floor: Final learning rate as a fraction of ``lr``, in ``[0, 1]``.
        weight_decay: AdamW weight decay, >= 0.
        warmup_steps: Linear warm-up length, >= 0.
        grad_clip: Gradient norm clip, > 0.
        log_every: Steps between log lines, >= 1.
        eval_every: Steps between validations, >= 1.
        checkpoint_every: Steps between resumable checkpoints, >= 1.
        num_threads: ``torch.set_num_threads`` for the run, >= 1.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """

    steps: int = 2000
    batch: int = 12
    patch: int = 128
    lr: float = 2e-3
    lr_floor: float = 0.05
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    log_every: int = 25
    eval_every: int = 250
    checkpoint_every: int = 100
    num_threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.patch < 16:
            raise ValueError(f"schedule needs steps >= 1, batch >= 1 and patch >= 16, got {self.steps}, {self.batch}, {self.patch}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0 or not self.grad_clip > 0:
            raise ValueError("schedule needs lr > 0, weight_decay >= 0, warmup_steps >= 0 and grad_clip > 0")
        _prob("schedule.lr_floor", self.lr_floor)
        if min(self.log_every, self.eval_every, self.checkpoint_every, self.num_threads) < 1:
            raise ValueError("schedule.log_every, eval_every, checkpoint_every and num_threads must be >= 1")


@dataclass(frozen=True)
class ZedFinalizeConfig:
    """How the map and threshold are fitted after training.

    Attributes:
        split: The split the map is fitted on (``calib``; the only place fakes are seen).
        perturbations: Named perturbations (:func:`detectors.evaluation.perturb_bytes`), applied to both classes.
        target_fpr: False-positive rate on the split's reals at the threshold, in ``(0, 1)``.
        predictable_quantile: ``tau`` is this quantile of held-out real blocks' delta, in ``(0, 1)``.
        l2: Ridge penalty of the map, >= 0.
    """

    split: str = "calib"
    perturbations: tuple[str, ...] = ("none", "jpeg95", "jpeg75", "resize0.5")
    target_fpr: float = 0.01
    predictable_quantile: float = 0.05
    l2: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "perturbations", tuple(self.perturbations))
        if not self.perturbations:
            raise ValueError("finalize.perturbations must not be empty")
        if not 0 < self.target_fpr < 1 or not 0 < self.predictable_quantile < 1 or self.l2 < 0:
            raise ValueError(
                f"finalize needs target_fpr and predictable_quantile in (0, 1) and l2 >= 0, got {self.target_fpr}, {self.predictable_quantile}, {self.l2}"
            )


@dataclass(frozen=True)
class ZedTrainConfig:
    """A whole run, read from JSON by :func:`load_zed_train_config` (``"kind": "zed"``).

    Attributes:
        kind: Always ``"zed"`` (what ``detect train`` dispatches on).
        name: Run name, also the exported version (e.g. ``"zed-v1"``).
        seed: Seeds the weights and the data/augmentation RNG.
        out: Run folder (log, checkpoint, final weights, feature cache).
        model: :class:`detectors.zeroshot.ZedConfig` network and analysis fields.
        data: :class:`ZedDataConfig` fields.
        augment: :class:`ZedAugmentConfig` fields.
        schedule: :class:`ZedScheduleConfig` fields.
        finalize: :class:`ZedFinalizeConfig` fields.
        export: Config JSON to write the final weights to (e.g. ``detectors/weights/zed_v1.json``), or ``None``.
    """

    kind: str = "zed"
    name: str = "zed"
    seed: int = 0
    out: str = "runs/zed"
    model: dict[str, Any] = field(default_factory=dict)
    data: ZedDataConfig = field(default_factory=ZedDataConfig)
    augment: ZedAugmentConfig = field(default_factory=ZedAugmentConfig)
    schedule: ZedScheduleConfig = field(default_factory=ZedScheduleConfig)
    finalize: ZedFinalizeConfig = field(default_factory=ZedFinalizeConfig)
    export: str | None = None

    def __post_init__(self) -> None:
        if self.kind != "zed":
            raise ValueError(f"kind must be 'zed', got {self.kind!r}")
        mc = self.model_config()
        unit = 2**mc.n_scales
        if self.schedule.patch % unit or self.schedule.patch < 4 * unit:
            raise ValueError(f"schedule.patch must be a multiple of {unit} and >= {4 * unit}, got {self.schedule.patch}")
        side = self.data.synthetic_size if self.data.kind == "synthetic" else self.data.tile_size
        if self.schedule.patch > side:
            raise ValueError(f"schedule.patch {self.schedule.patch} must be <= the tile side {side}")

    def model_config(self) -> ZedConfig:
        """The coder this run trains (no map yet)."""
        return ZedConfig.from_dict({"version": self.name, **self.model})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (round-trips through :meth:`from_dict`)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZedTrainConfig:
        """Build from a parsed JSON document; unknown keys raise ``ValueError``."""
        d = dict(d)
        d.pop("comment", None)
        for key, klass in (("data", ZedDataConfig), ("augment", ZedAugmentConfig), ("schedule", ZedScheduleConfig), ("finalize", ZedFinalizeConfig)):
            if key in d:
                d[key] = _from_dict(klass, dict(d[key]), key)
        return _from_dict(cls, d, "zed train config")


def load_zed_train_config(path: str | os.PathLike[str]) -> ZedTrainConfig:
    """Read a zero-shot training config JSON.

    Raises:
        ValueError: If the file is not valid JSON or has unknown or bad fields, naming the file.
    """
    try:
        return ZedTrainConfig.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


# -- data ------------------------------------------------------------------------


def synthetic_photos(n: int, size: int, *, seed: int) -> list[np.ndarray]:
    """Seeded stand-ins for photos: smooth colour fields with edges and sensor-like noise.

    Args:
        n: How many, >= 1.
        size: Side in pixels, >= 8.
        seed: RNG seed.

    Returns:
        ``n`` ``uint8`` ``(size, size, 3)`` arrays.
    """
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got {n} and {size}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        f = rng.uniform(2, 12, 2)
        base = 0.5 + 0.3 * np.sin(f[0] * xx + f[1] * yy + rng.uniform(0, 6))[..., None] * rng.uniform(0.3, 1.0, 3)
        base = base + 0.15 * (xx[..., None] > rng.uniform(0.2, 0.8))
        img = base + rng.normal(0.0, rng.uniform(0.01, 0.05), (size, size, 3))
        out.append(to_levels(np.clip(img, 0, 1).astype(np.float32)))
    return out


def _val_split(path: str, fraction: float) -> bool:
    """Whether a photo is held out (file-name hash), deterministic."""
    if fraction <= 0:
        return False
    from datasets.samples import assign_split

    return assign_split(Path(path).name, fractions={"val": fraction, "fit": 1.0 - fraction}, salt="zed-val") == "val"


def _tiles_of(image: Any, *, size: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``k`` ``uint8`` tiles of a loaded photo: the most textured half, then random ones (origins on the 8-grid)."""
    from forensics.crops import native_tiles

    short = min(min(r.shape[:2]) for r in image.regions)
    side = min(size, short) // 8 * 8
    if side < 32:
        return []
    out = [to_levels(t) for t in native_tiles(image.regions, size=side, k=max(1, k // 2), align=8)]
    while len(out) < k:
        r = image.regions[int(rng.integers(len(image.regions)))]
        h, w = r.shape[:2]
        if min(h, w) < side:
            break
        top, left = int(rng.integers(0, (h - side) // 8 + 1)) * 8, int(rng.integers(0, (w - side) // 8 + 1)) * 8
        out.append(to_levels(r[top : top + side, left : left + side]))
    return out


@dataclass
class RealTiles:
    """The cached real tiles of a run.

    Attributes:
        fit: ``uint8`` ``(S, S, 3)`` tiles trained on.
        val: Held-out tiles (validation cost).
        val_paths: The held-out photos (``tau`` is measured on them whole).
        n_photos: Photos that gave tiles, ``{"fit": n, "val": n}``.
    """

    fit: list[np.ndarray]
    val: list[np.ndarray]
    val_paths: list[str]
    n_photos: dict[str, int]


def real_samples(data: ZedDataConfig) -> list[Sample]:
    """The real photos of ``data.split`` (AI images are never returned)."""
    from datasets.samples import load_datasets

    return [s for s in load_datasets(data.manifest, split=data.split) if s.label == "real"]


def prepare_tiles(config: ZedTrainConfig, *, log: Callable[[str], None] = lambda s: None) -> RealTiles:
    """Cut (or read from the cache) the real tiles of a run."""
    d = config.data
    if d.kind == "synthetic":
        photos = synthetic_photos(d.synthetic_n, d.synthetic_size, seed=config.seed)
        n_val = max(1, int(round(d.val_fraction * len(photos)))) if d.val_fraction > 0 else 0
        return RealTiles(photos[n_val:], photos[:n_val], [], {"fit": len(photos) - n_val, "val": n_val})
    from forensics.io import load_image

    samples = real_samples(d)
    if not samples:
        raise ValueError(f"no real photos in split {d.split!r} of {d.manifest}")
    key = hashlib.sha256(json.dumps([asdict(d), config.seed, [s.path for s in samples]], sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(d.cache_dir) / f"tiles-{key}.npz"
    index = cache.with_suffix(".json")
    if cache.is_file() and index.is_file():
        meta = json.loads(index.read_text(encoding="utf-8"))
        with np.load(cache, allow_pickle=False) as z:
            tiles = [z[f"t{i:06d}"] for i in range(len(meta["which"]))]
        log(f"real tiles from the cache {cache}")
        return RealTiles([t for t, w in zip(tiles, meta["which"]) if w == "fit"], [t for t, w in zip(tiles, meta["which"]) if w == "val"],
                         meta["val_paths"], meta["n_photos"])  # fmt: skip
    tiles: list[np.ndarray] = []
    which: list[str] = []
    val_paths: list[str] = []
    n_photos = {"fit": 0, "val": 0}
    t0 = time.perf_counter()
    for i, s in enumerate(samples):
        try:
            img = load_image(s.path)
        except ValueError as exc:
            log(f"skipped {s.path}: {exc}")
            continue
        part = "val" if _val_split(s.path, d.val_fraction) else "fit"
        got = _tiles_of(img, size=d.tile_size, k=d.tiles_per_image, rng=np.random.default_rng([config.seed, i]))
        if not got:
            continue
        n_photos[part] += 1
        if part == "val":
            val_paths.append(s.path)
        tiles += got
        which += [part] * len(got)
        if (i + 1) % 25 == 0:
            log(f"tiles: {i + 1}/{len(samples)} photos ({time.perf_counter() - t0:.0f} s)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, **{f"t{i:06d}": t for i, t in enumerate(tiles)})
    tmp.replace(cache)
    index.write_text(json.dumps({"which": which, "val_paths": val_paths, "n_photos": n_photos}) + "\n", encoding="utf-8")
    return RealTiles([t for t, w in zip(tiles, which) if w == "fit"], [t for t, w in zip(tiles, which) if w == "val"], val_paths, n_photos)


def augment_patch(tile: np.ndarray, aug: ZedAugmentConfig, *, patch: int, rng: np.random.Generator) -> np.ndarray:
    """One training patch of a real tile, through a random draw of the augmentation.

    Every random number is drawn whether or not its step applies, so the RNG
    sequence does not depend on the draws.

    Args:
        tile: ``uint8`` ``(H, W, 3)``, ``H, W >= patch``; not modified.
        aug: The ranges and probabilities.
        patch: Output side, >= 8.
        rng: The run's data RNG.

    Returns:
        ``uint8`` ``(patch, patch, 3)``; the crop offset is a multiple of 8
        whenever the (possibly rescaled) tile leaves room for it.
    """
    h, w = tile.shape[:2]
    if tile.dtype != np.uint8 or tile.ndim != 3 or min(h, w) < patch:
        raise ValueError(f"tile must be uint8 (H, W, 3) with H, W >= {patch}, got {tile.dtype} {tile.shape}")
    img = tile.astype(np.float32) / np.float32(255.0)
    do = rng.random(4)
    lo = max(aug.resize_range[0], (patch + 1) / min(h, w))
    scale = float(rng.uniform(min(lo, aug.resize_range[1]), aug.resize_range[1]))
    interp = aug.interpolations[int(rng.integers(len(aug.interpolations)))]
    sharp = Sharpen(radius=aug.sharpen_radius, percent=aug.sharpen_percent).make_params(img, rng)
    quality = int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1))
    reenc = Reencode(kinds=aug.reencode_kinds, q_min=aug.reencode_quality[0], q_max=aug.reencode_quality[1]).make_params(img, rng)
    u = rng.random(2)
    if do[0] < aug.resize_p and scale < 1.0:
        img = resize(img, scale, interpolation=interp)
    if do[1] < aug.sharpen_p:
        img = Sharpen().apply(img, sharp)
    if do[2] < aug.jpeg_p:
        img = jpeg_compress(img, quality)
    if do[3] < aug.reencode_p:
        img = Reencode().apply(img, reenc)
    h, w = img.shape[:2]
    if min(h, w) < patch:  # a rounding of the rescale; pad by edge replication
        img = np.pad(img, ((0, max(0, patch - h)), (0, max(0, patch - w)), (0, 0)), mode="edge")
        h, w = img.shape[:2]
    grid = 8 if (h - patch) >= 8 and (w - patch) >= 8 else 1
    top = int(u[0] * ((h - patch) // grid + 1)) * grid
    left = int(u[1] * ((w - patch) // grid + 1)) * grid
    return to_levels(img[top : top + patch, left : left + patch])


# -- features of a set of files (finalize and benchmarks) -----------------------


def perturbed_file(data: bytes, perturbation: str) -> bytes:
    """A file's bytes after a named perturbation (:func:`detectors.evaluation.perturb_bytes`) or a
    processing chain, named ``chain:NAME`` (:func:`datasets.processing.apply_chain`)."""
    if perturbation.startswith("chain:"):
        import io

        from PIL import Image

        from datasets.processing import apply_chain

        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB")
        return apply_chain(rgb, perturbation[len("chain:") :]).data
    from detectors.evaluation import perturb_bytes

    return perturb_bytes(data, perturbation)


def _cache_key(config: ZedConfig) -> str:
    return f"{config.weights_sha256 or 'unsaved'}:{json.dumps(None if config.tau is None else [round(t, 6) for t in config.tau])}"


def features_for_samples(
    detector: ZedDetector,
    samples: Sequence[Sample],
    perturbations: Sequence[str],
    *,
    cache: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> list[dict[str, Any]]:
    """The detector's features of every sample under every perturbation (whole file, as ``detect eval``).

    Rows already in ``cache`` (a JSONL file, keyed by path, perturbation,
    weights sha256 and ``tau``) are reused; new rows are appended to it.

    Args:
        detector: A :class:`ZedDetector`.
        samples: Files to measure.
        perturbations: Named perturbations (:func:`perturbed_file`: those of
            :func:`detectors.evaluation.perturb_bytes`, or ``chain:NAME``).
        cache: Optional JSONL cache file.
        log: Progress messages.

    Returns:
        One row per sample and perturbation: ``path``, ``label``, ``generator``,
        ``split``, ``perturbation``, ``status`` (``ok``, ``not_applicable`` or
        ``error``), ``features`` (list or ``None``), ``crop_delta``, ``message``.
    """
    from forensics.io import load_image_bytes

    key = _cache_key(detector.config)
    known: dict[tuple[str, str], dict[str, Any]] = {}
    if cache is not None and Path(cache).is_file():
        for line in Path(cache).read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
            if row.get("key") == key:
                known[(row["path"], row["perturbation"])] = row
    fh = open(cache, "a", encoding="utf-8") if cache is not None else None  # noqa: SIM115 - closed below
    out = []
    t0, n_new = time.perf_counter(), 0
    try:
        for i, s in enumerate(samples):
            data = None
            for pert in perturbations:
                row = known.get((s.path, pert))
                if row is None:
                    row = {"key": key, "path": s.path, "label": s.label, "generator": s.generator, "split": s.split, "perturbation": pert,
                           "status": "ok", "features": None, "crop_delta": None, "message": None}  # fmt: skip
                    try:
                        if data is None:
                            data = Path(s.path).read_bytes()
                        img = load_image_bytes(perturbed_file(data, pert), path=s.path)
                        if min(img.width, img.height) < 64:
                            row.update(status="not_applicable", message=f"{img.width}x{img.height} is below 64 px")
                        else:
                            f = detector.features(img)
                            row["features"] = [None if np.isnan(v) else float(v) for v in f.values]
                            row["crop_delta"] = [[round(float(v), 5) for v in r] for r in f.crop_delta]
                    except (ValueError, OSError) as exc:
                        row.update(status="error", message=str(exc)[:300])
                    if fh is not None:
                        fh.write(json.dumps(row) + "\n")
                        fh.flush()
                    n_new += 1
                out.append(row)
            if (i + 1) % 25 == 0:
                log(f"features: {i + 1}/{len(samples)} files ({n_new} new rows, {time.perf_counter() - t0:.0f} s)")
    finally:
        if fh is not None:
            fh.close()
    return out


def feature_matrix(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """``(x, y, kept)`` of the ``ok`` rows: ``(N, D)`` features (NaN for missing), labels (1 = AI), the rows."""
    kept = [r for r in rows if r["status"] == "ok" and r["features"] is not None]
    x = np.array([[np.nan if v is None else v for v in r["features"]] for r in kept], dtype=np.float64).reshape(len(kept), -1)
    y = np.array([1 if r["label"] == "ai" else 0 for r in kept], dtype=np.int64)
    return x, y, kept


# -- training ----------------------------------------------------------------------


@dataclass(frozen=True)
class ZedTrainResult:
    """What a call to :func:`train` did.

    Attributes:
        step: Steps done in total (earlier runs included).
        finished: Whether ``schedule.steps`` was reached.
        val_bits: Last validation cost (bits per value, all scales), or ``None``.
        final_path: Config JSON of the final weights (``OUT/final/zed.json``), or ``None``.
        exported: Config JSON written by the export, or ``None``.
        seconds: Wall time of this call.
    """

    step: int
    finished: bool
    val_bits: float | None
    final_path: str | None
    exported: str | None
    seconds: float


def _batch_bits(model: Any, crops: np.ndarray, n_scales: int, device: Any) -> tuple[Any, list[Any]]:
    """Mean cost (bits per value) over all scales, and per scale, of a ``uint8`` batch (differentiable)."""
    import math

    from detectors.zed_model import pyramid_tensors
    from detectors.zeroshot import ycocg_pyramid

    t = pyramid_tensors(ycocg_pyramid(crops, n_scales), device=device)
    per = [-model.log_probs(s, t[s + 1], t[s]).mean() / math.log(2) for s in range(n_scales)]
    return sum(per) / n_scales, per


def _val_patches(tiles: Sequence[np.ndarray], aug: ZedAugmentConfig, patch: int, seed: int) -> np.ndarray:
    """Fixed validation patches: one plain centre patch and one augmented patch per held-out tile."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for t in tiles:
        h, w = t.shape[:2]
        top, left = (h - patch) // 16 * 8, (w - patch) // 16 * 8
        out.append(t[top : top + patch, left : left + patch])
        out.append(augment_patch(t, aug, patch=patch, rng=rng))
    return np.stack(out) if out else np.zeros((0, patch, patch, 3), np.uint8)


def train(
    config: ZedTrainConfig,
    *,
    resume: bool = False,
    steps: int | None = None,
    max_minutes: float | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> ZedTrainResult:
    """Train (or continue training) the zero-shot coder of ``config``, then finalize and export it.

    Writes under ``config.out``: ``log.jsonl``, ``checkpoint/`` (resumable),
    ``final/zed.json`` + ``.safetensors`` (with the map, once finished),
    ``features.jsonl`` (the calib features) and ``finalize.json``.

    Args:
        config: The run.
        resume: Continue from ``OUT/checkpoint`` (same config, same RNG sequence).
        steps: Override of ``schedule.steps`` (e.g. to extend a finished run).
        max_minutes: Checkpoint and stop after this much wall time.
        log: Receives human-readable progress messages.

    Raises:
        FileNotFoundError: When resuming without a checkpoint.
        ValueError: On a bad config, a checkpoint of another config, or no data.
    """
    import torch

    from detectors.zed_model import build_model
    from generators.optimization import cosine_lr_factor, set_lr
    from generators.training_utils import TimeLimit, load_checkpoint, log_line, resolve_device, run_training_loop, save_checkpoint

    t_start = time.perf_counter()
    sched = config.schedule if steps is None else replace(config.schedule, steps=int(steps))
    torch.set_num_threads(sched.num_threads)
    device = resolve_device(sched.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    mcfg = config.model_config()
    model = build_model(mcfg, seed=config.seed).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=sched.lr, weight_decay=sched.weight_decay)
    rng = np.random.default_rng(config.seed)
    step, elapsed_before, val_bits = 0, 0.0, None
    if resume:
        doc = load_checkpoint(out / _CKPT, modules={"model": model}, optimizers={"optimizer": optim})
        mine = config.to_dict()
        theirs = doc.get("config", {})
        if {k: v for k, v in theirs.items() if k != "schedule"} != {k: v for k, v in mine.items() if k != "schedule"}:
            raise ValueError(f"{out / _CKPT}: the checkpoint was made with a different config; cannot resume")
        step, elapsed_before = int(doc["step"]), float(doc.get("train_seconds", 0.0))
        val_bits = doc.get("val_bits")
        rng.bit_generator.state = doc["rng_state"]
        log(f"resumed from step {step}")
    else:
        for stale in (out / "log.jsonl", out / _CKPT, out / "final", out / "finalize.json"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()

    tiles = prepare_tiles(config, log=log)
    if not tiles.fit:
        raise ValueError("no real tiles to train on")
    val = _val_patches(tiles.val, config.augment, sched.patch, config.seed)
    summary = {"fit_tiles": len(tiles.fit), "val_tiles": len(tiles.val), "photos": tiles.n_photos}
    log(f"data: {summary}")

    def lr_at(i: int) -> float:
        return sched.lr * cosine_lr_factor(i, total_steps=sched.steps, warmup_steps=sched.warmup_steps, floor=sched.lr_floor)

    def validate() -> dict[str, Any]:
        model.eval()
        with torch.no_grad():
            per = np.zeros(mcfg.n_scales)
            for a in range(0, len(val), 16):
                _, p = _batch_bits(model, val[a : a + 16], mcfg.n_scales, device)
                per += np.array([float(v) for v in p]) * len(val[a : a + 16])
        model.train()
        per /= max(1, len(val))
        return {"bits": round(float(per.mean()), 5), "bits_per_scale": [round(float(v), 5) for v in per]}

    def state_doc() -> dict[str, Any]:
        return {"step": step, "config": config.to_dict(), "rng_state": rng.bit_generator.state, "val_bits": val_bits,
                "train_seconds": elapsed_before + (time.perf_counter() - t_start)}  # fmt: skip

    model.train()
    limit = TimeLimit(max_minutes)
    t_log, n_seen, run_loss, run_per = time.perf_counter(), 0, 0.0, np.zeros(mcfg.n_scales)
    with open(out / "log.jsonl", "a", encoding="utf-8") as fh:
        if step == 0:
            log_line(fh, {"event": "start", "config": config.to_dict(), "data": summary, "torch": torch.__version__, "device": str(device),
                           "threads": sched.num_threads, "host": platform.machine(), "cpu_count": os.cpu_count()})  # fmt: skip

        def train_step(i: int) -> None:
            nonlocal step, t_log, n_seen, run_loss, run_per, val_bits
            idx = rng.integers(0, len(tiles.fit), sched.batch)
            crops = np.stack([augment_patch(tiles.fit[int(j)], config.augment, patch=sched.patch, rng=rng) for j in idx])
            set_lr(optim, lr_at(i))
            loss, per = _batch_bits(model, crops, mcfg.n_scales, device)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), sched.grad_clip)
            optim.step()
            step = i + 1
            run_loss += float(loss.detach())
            run_per += np.array([float(p.detach()) for p in per])
            n_seen += 1
            if step % sched.log_every == 0 or step == sched.steps:
                now = time.perf_counter()
                doc = {"step": step, "bits": round(run_loss / n_seen, 5), "bits_per_scale": [round(float(v) / n_seen, 5) for v in run_per],
                       "lr": round(lr_at(step - 1), 7), "sec_per_step": round((now - t_log) / n_seen, 4),
                       "elapsed_s": round(elapsed_before + now - t_start, 1)}  # fmt: skip
                log_line(fh, doc)
                log(f"step {step}/{sched.steps}: {doc['bits']:.4f} bits/value {doc['bits_per_scale']} ({doc['sec_per_step']:.2f} s/step)")
                t_log, n_seen, run_loss, run_per = now, 0, 0.0, np.zeros(mcfg.n_scales)
            if len(val) and (step % sched.eval_every == 0 or step == sched.steps):
                v = validate()
                val_bits = v["bits"]
                log_line(fh, {"step": step, "val": v})
                log(f"step {step}: validation {v['bits']:.4f} bits/value {v['bits_per_scale']}")

        def save(done: int) -> None:
            save_checkpoint(out / _CKPT, modules={"model": model}, optimizers={"optimizer": optim}, state=state_doc())

        outcome = run_training_loop(start_step=step, total_steps=sched.steps, train_step=train_step, save=save,
                                    checkpoint_every=sched.checkpoint_every, time_limit=limit)  # fmt: skip
        if outcome.stopped:
            log_line(fh, {"event": "stopped", "step": step, "reason": "max_minutes"})
            log(f"stopped at step {step} after {max_minutes} min; continue with --resume")
        finished = step >= sched.steps
        exported = final = None
        if finished:
            train_seconds = state_doc()["train_seconds"]
            log_line(fh, {"event": "finished", "step": step, "val_bits": val_bits, "train_seconds": round(train_seconds, 1)})
            final, exported, fdoc = finalize(config, model.cpu().eval(), tiles, step=step, train_seconds=train_seconds, log=log)
            log_line(fh, {"event": "finalized", **{k: fdoc[k] for k in ("tau", "threshold", "calib", "finalize_seconds")}})
    return ZedTrainResult(step, finished, val_bits, final, exported, time.perf_counter() - t_start)


# -- finalize ----------------------------------------------------------------------


def _fit_unit(img: np.ndarray, unit: int) -> np.ndarray:
    """The top-left square of ``img`` whose side is a multiple of ``unit``."""
    side = min(img.shape[:2]) // unit * unit
    return img[:side, :side]


def _synthetic_calib(config: ZedTrainConfig) -> tuple[list[np.ndarray], list[int]]:
    """Synthetic calib images for smoke runs: fresh textured photos (real) and their 2x re-interpolations (AI)."""
    d = config.data
    reals = synthetic_photos(max(4, d.synthetic_n), d.synthetic_size, seed=config.seed + 1000)
    fakes = [to_levels(resize(resize(r.astype(np.float32) / 255, 0.5), 2.0)) for r in reals]
    return reals + fakes, [0] * len(reals) + [1] * len(fakes)


def finalize(
    config: ZedTrainConfig,
    model: Any,
    tiles: RealTiles,
    *,
    step: int,
    train_seconds: float,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[str, str | None, dict[str, Any]]:
    """``tau``, the calibrated map and the threshold; write ``OUT/final/zed.json`` and the export.

    Returns:
        ``(final config path, exported path or None, the finalize document)``.
    """
    from detectors.metrics import auc, threshold_at_fpr
    from detectors.zed_model import save_zed
    from detectors.zeroshot import ZedScoreMap

    t0 = time.perf_counter()
    fz = config.finalize
    out = Path(config.out)
    names = feature_names(config.model_config().n_scales)
    base = save_zed(model, config.model_config(), out / "final" / "zed.json")  # weights sha256 (the feature cache key)
    det = ZedDetector(model=model, config=base)
    # tau: block deltas of the held-out real photos, whole, unperturbed
    if config.data.kind == "synthetic":
        held = [det.features_of_crops(_fit_unit(t, base.unit)[None]) for t in (tiles.val or tiles.fit[:2])]
    else:
        from forensics.io import load_image

        held = []
        for p in tiles.val_paths:
            try:
                held.append(det.features(load_image(p)))
            except ValueError as exc:
                log(f"tau: skipped {p}: {exc}")
    if not held:
        raise ValueError("no held-out real photos to set tau on (data.val_fraction is 0?)")
    tau = tuple(float(np.quantile(np.concatenate([f.blocks[s].ravel() for f in held]), fz.predictable_quantile)) for s in range(base.n_scales))
    log(f"tau (the {fz.predictable_quantile:.0%} quantile of {len(held)} held-out real photos' block deltas): {[round(t, 4) for t in tau]}")
    det = ZedDetector(model=model, config=base.with_(tau=tau))
    # features of the calib split
    if config.data.kind == "synthetic":
        images, labels = _synthetic_calib(config)
        rows = []
        for pert in fz.perturbations:
            from datasets.perturbations import named_perturbation

            for img, y in zip(images, labels):
                p = _fit_unit(to_levels(named_perturbation(pert, img.astype(np.float32) / 255)), base.unit)
                f = det.features_of_crops(p[None])
                rows.append({"label": "ai" if y else "real", "generator": "synthetic" if y else None, "perturbation": pert, "status": "ok",
                             "features": [float(v) for v in f.values]})  # fmt: skip
    else:
        from datasets.samples import load_datasets

        samples = load_datasets(config.data.manifest, split=fz.split)
        log(f"calib features: {len(samples)} files x {len(fz.perturbations)} perturbations")
        rows = features_for_samples(det, samples, fz.perturbations, cache=out / "features.jsonl", log=log)
    x, y, kept = feature_matrix(rows)
    if len(np.unique(y)) < 2:
        raise ValueError(f"the {fz.split} split needs real and AI images to fit the map")
    w = np.where(y == 1, 0.5 / max(1, int(y.sum())), 0.5 / max(1, int((1 - y).sum()))) * len(y)
    smap = ZedScoreMap.fit(x, y, names=names, l2=fz.l2, sample_weight=w)
    p = smap.predict_proba(x)
    threshold = float(threshold_at_fpr(p[y == 0], target_fpr=fz.target_fpr))
    perts = [r["perturbation"] for r in kept]
    calib = {}
    for pert in fz.perturbations:
        m = np.array([q == pert for q in perts])
        if m.any() and len(np.unique(y[m])) == 2:
            calib[pert] = {"auc_map": round(auc(y[m], p[m]), 4), "auc_neg_d0": round(auc(y[m], -x[m, 0]), 4),
                           "fpr": round(float((p[m][y[m] == 0] >= threshold).mean()), 4), "n_real": int((y[m] == 0).sum()),
                           "n_ai": int(y[m].sum())}  # fmt: skip
    skipped = len(rows) - len(kept)
    log(f"calib map fitted on {len(kept)} rows ({skipped} not ok); threshold {threshold:.4f}; {calib}")
    meta = {
        "train_config": config.to_dict(),
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "tau_photos": len(held),
        "calib": calib,
        "calib_rows": len(kept),
        "calib_rows_skipped": skipped,
        "trained_on": "real photos only (train split, minus the held-out photos); AI images seen only by the map, on the calib split",
    }
    final_cfg = base.with_(tau=tau, score_map=smap, threshold=min(max(threshold, 0.0), 1.0), meta=meta, weights_file="zed.safetensors")
    final_path = out / "final" / "zed.json"
    save_zed(model, final_cfg, final_path)
    exported = None
    if config.export:
        exp = Path(config.export)
        save_zed(model, final_cfg.with_(weights_file=exp.stem + ".safetensors"), exp)
        exported = str(exp)
        log(f"exported {exp}")
    doc = {"tau": list(tau), "threshold": threshold, "calib": calib, "finalize_seconds": round(time.perf_counter() - t0, 1)}
    (out / "finalize.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return str(final_path), exported, doc
