"""Source preparation: the real tiles and the fakes a CNN run trains on (cached under ``runs/``).

* **Reals**: full-resolution tiles of the real photos of one split
  (``train``) of a manifest, cut at offsets that are multiples of 8 so the
  camera's JPEG grid stays where it was, and chosen to favour texture
  (:func:`generators.fakes.photo_tiles`).
* **Aligned fakes**: the bundled generator's ``reconstruct`` (VAE round trip)
  and ``regenerate`` (SDEdit) versions of *the same tiles*
  (:func:`generators.fakes.aligned_fake`, the implementation that
  ``detect calibrate`` uses too), JPEG-compressed at the real photo's own
  estimated quality on the same grid (``match_jpeg``), so that neither content
  nor compression history separates the classes (Rajan et al., "On the
  Effectiveness of Dataset Alignment for Fake Image Detection", 2025; B-Free,
  Guillaro et al., CVPR 2025).
* **Unpaired fakes**: the manifest's AI images of the same split (pixels
  only: metadata never reaches the network), paired at random with a real
  tile, and optionally fresh samples from noise.
* A ``synthetic`` data kind (textured noise and its 2x re-interpolation) lets
  the smoke config run anywhere in seconds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datasets.perturbations import jpeg_compress, resize
from detectors.cnn_training.config import CNNTrainConfig, DataConfig
from generators.fakes import AlignedSpec, aligned_fake, generator_pipeline, match_low_frequency_colour, photo_tiles

__all__ = ["PairSource", "prepare_sources"]


@dataclass
class PairSource:
    """Images of one kind of fake with their reals.

    Attributes:
        name: ``reconstruct``, ``regenerate``, ``shared_ai`` or ``synthetic``.
        aligned: ``fakes[i]`` is a version of ``reals[i]``; otherwise reals are drawn at random.
        reals: ``uint8`` ``(H, W, 3)`` arrays (for unpaired sources: the real pool).
        fakes: ``uint8`` ``(H, W, 3)`` arrays.
        groups: Per fake, an identifier of its source image (for reports).
    """

    name: str
    aligned: bool
    reals: list[np.ndarray]
    fakes: list[np.ndarray]
    groups: list[str] = field(default_factory=list)


def _synthetic_real(size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    f = rng.uniform(2, 9, size=3)
    base = 0.5 + 0.3 * np.sin(f[0] * xx + f[1] * yy + f[2])[..., None] * rng.uniform(0.4, 1.0, size=3)
    img = base + rng.normal(0, 0.06, (size, size, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _synthetic_fake(real: np.ndarray) -> np.ndarray:
    x = real.astype(np.float32) / 255
    h, w = x.shape[:2]
    small = resize(x, 0.5, interpolation="bilinear")
    up = resize(small, 2.0, interpolation="nearest")[:h, :w]
    return (np.clip(up, 0, 1) * 255 + 0.5).astype(np.uint8)


def _synthetic_sources(cfg: DataConfig, rng: np.random.Generator) -> tuple[list[PairSource], list[PairSource]]:
    reals = [_synthetic_real(cfg.synthetic_size, rng) for _ in range(cfg.synthetic_n)]
    fakes = [_synthetic_fake(r) for r in reals]
    n_val = max(1, round(cfg.synthetic_n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
    fit = PairSource("synthetic", True, reals[n_val:], fakes[n_val:], [f"syn{i}" for i in range(n_val, cfg.synthetic_n)])
    val = PairSource("synthetic", True, reals[:n_val], fakes[:n_val], [f"syn{i}" for i in range(n_val)])
    return [fit], ([val] if n_val else [])


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(arr).save(tmp, format="PNG", compress_level=1)
    tmp.replace(path)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _cache_tiles(path: str, folder: Path, stem: str, *, size: int, k: int) -> tuple[list[str], int | None]:
    """Cut a file's tiles (:func:`generators.fakes.photo_tiles`, on the JPEG grid) into ``folder`` as PNG.

    Returns:
        The tile file names and the file's JPEG quality.
    """
    pt = photo_tiles(path, size=size, k=k, align=8)
    names = [f"{stem}_t{j}.png" for j in range(len(pt.tiles))]
    for t, n in zip(pt.tiles, names):
        _save_png(_to_u8(t), folder / n)
    return names, pt.quality


def _aligned_spec(spec: dict[str, Any]) -> AlignedSpec:
    if spec["mode"] == "reconstruct":
        return AlignedSpec("reconstruct")
    return AlignedSpec("regenerate", strength=float(spec.get("strength", 0.3)), steps=int(spec.get("steps", 20)))


def prepare_sources(
    config: CNNTrainConfig,
    *,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[list[PairSource], list[PairSource]]:
    """Build (and cache under ``data.cache_dir``) the training and validation sources.

    Args:
        config: The run's config.
        log: Receives progress messages.

    Returns:
        ``(fit_sources, val_sources)``.

    Raises:
        FileNotFoundError: If the manifest or the generator weights are missing.
        ValueError: If the split has no real photos.
    """
    cfg = config.data
    if cfg.kind == "synthetic":
        return _synthetic_sources(cfg, np.random.default_rng([config.seed, 1]))

    from datasets.samples import assign_split, load_datasets

    samples = load_datasets(cfg.manifest, split=cfg.split, exclude_families=cfg.exclude_families)
    if cfg.exclude_families:
        log(f"left out of training: AI families {list(cfg.exclude_families)}")
    reals = sorted((s for s in samples if s.label == "real"), key=lambda s: s.path)
    ais = sorted((s for s in samples if s.label == "ai"), key=lambda s: s.path)
    if not reals:
        raise ValueError(f"{cfg.manifest}: no real photos in split {cfg.split!r}")

    def part(path: str) -> str:
        if cfg.val_fraction <= 0:
            return "fit"
        return assign_split(Path(path).name, fractions={"fit": 1 - cfg.val_fraction, "val": cfg.val_fraction}, salt="cnn-val")

    cache = Path(cfg.cache_dir)
    index_path = cache / "index.json"
    index: dict[str, Any] = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else {}
    tiles_key = f"tiles{cfg.tile_size}x{cfg.tiles_per_image}"
    real_tiles: dict[str, list[Path]] = {}
    quality: dict[str, int | None] = {}
    for i, s in enumerate(reals):
        stem = Path(s.path).stem
        rec = index.get(tiles_key, {}).get(stem)
        if rec is None:
            names, q = _cache_tiles(s.path, cache / "real", stem, size=cfg.tile_size, k=cfg.tiles_per_image)
            rec = {"tiles": names, "quality": q}
            index.setdefault(tiles_key, {})[stem] = rec
            index_path.parent.mkdir(parents=True, exist_ok=True)
            index_path.write_text(json.dumps(index, indent=1), encoding="utf-8")
            log(f"tiles: {i + 1}/{len(reals)} real photos")
        real_tiles[stem] = [cache / "real" / n for n in rec["tiles"]]
        quality[stem] = rec["quality"]

    fit_sources: list[PairSource] = []
    val_sources: list[PairSource] = []
    pipe = None
    if cfg.aligned or cfg.samples:  # fakes made with other generator weights are stale: drop them
        from generators.models import WEIGHTS_DIR, weights_sha256

        gen_sha = weights_sha256(cfg.generator_weights or WEIGHTS_DIR)
        if index.get("generator_sha256") != gen_sha:
            for d in cache.iterdir():
                if d.is_dir() and d.name.startswith(("reconstruct", "regenerate", "samples")):
                    shutil.rmtree(d)
            index["generator_sha256"] = gen_sha
            index_path.write_text(json.dumps(index, indent=1), encoding="utf-8")
    decoders: dict[str, Any] = {}
    for spec in cfg.aligned:
        aspec = _aligned_spec(spec)
        dec_name = spec.get("decoder")
        fname = f"reconstruct_{dec_name}" if dec_name else aspec.name
        n_tiles = int(spec.get("tiles", cfg.tiles_per_image))
        side = spec.get("crop")
        sub = fname + (f"_c{int(side)}" if side else "") + ("_jpeg" if cfg.match_jpeg else "")
        srcs = {p: PairSource(f"reconstruct_{dec_name}" if dec_name else spec["mode"], True, [], [], []) for p in ("fit", "val")}

        def real_of(t: Path, side: int | None = side) -> np.ndarray:
            x = _read_png(t)
            if side and min(x.shape[:2]) > int(side):
                top = (x.shape[0] - int(side)) // 2 // 8 * 8
                left = (x.shape[1] - int(side)) // 2 // 8 * 8
                x = x[top : top + int(side), left : left + int(side)].copy()
            return x

        todo = [(stem, t) for stem, ts in real_tiles.items() for t in ts[:n_tiles] if not (cache / sub / t.name).is_file()]
        if todo:
            if dec_name:
                from generators.zoo import load_decoder

                if dec_name not in decoders:
                    decoders[dec_name] = load_decoder(dec_name, device="auto", weights_dir=cfg.generator_weights)
            else:
                pipe = pipe or _generator_pipeline(cfg.generator_weights, log)
            from generators.training_utils import torch_generator

            t0 = time.perf_counter()
            for n, (stem, t) in enumerate(todo, start=1):
                x = real_of(t).astype(np.float32) / 255
                if dec_name:  # the posterior's mode: deterministic
                    y = decoders[dec_name].reconstruct(x).image
                else:
                    g = None
                    if aspec.mode == "regenerate":
                        seed = int.from_bytes(hashlib.sha256(t.name.encode()).digest()[:4], "little") + config.seed
                        g = torch_generator(seed, pipe.models.device)
                    y = aligned_fake(pipe, x, aspec, generator=g)
                if cfg.match_jpeg and quality[stem] is not None:
                    y = jpeg_compress(y, int(quality[stem]))
                _save_png(_to_u8(y), cache / sub / t.name)
                if n % 10 == 0 or n == len(todo):
                    log(f"{fname}: {n}/{len(todo)} fakes ({time.perf_counter() - t0:.0f} s)")
        for s in reals:
            stem = Path(s.path).stem
            src = srcs[part(s.path)]
            for t in real_tiles[stem][:n_tiles]:
                real, fake = real_of(t), _read_png(cache / sub / t.name)
                if cfg.match_colour and dec_name:
                    fake = _to_u8(match_low_frequency_colour(fake, real))
                src.reals.append(real)
                src.fakes.append(fake)
                src.groups.append(stem)
        fit_sources.append(srcs["fit"])
        if srcs["val"].fakes:
            val_sources.append(srcs["val"])

    cam_q = [quality[k] for k in sorted(quality) if quality[k] is not None]
    pools = {p: [_read_png(t) for s in reals if part(s.path) == p for t in real_tiles[Path(s.path).stem]] for p in ("fit", "val")}
    if cfg.samples:
        n, size, steps = int(cfg.samples["n"]), int(cfg.samples.get("size", 256)), int(cfg.samples.get("steps", 50))
        sub = cache / f"samples_s{size}_t{steps}_seed{config.seed}"
        names = [f"sample_{i:04d}.png" for i in range(n)]
        todo = [i for i, nm in enumerate(names) if not (sub / nm).is_file()]
        if todo:
            pipe = pipe or _generator_pipeline(cfg.generator_weights, log)
            from generators.training_utils import torch_generator

            t0 = time.perf_counter()
            for k, i in enumerate(todo, start=1):
                g = torch_generator(config.seed * 100_003 + i, pipe.models.device)
                _save_png(_to_u8(pipe.sample(1, size=size, steps=steps, generator=g).images[0]), sub / names[i])
                if k % 8 == 0 or k == len(todo):
                    log(f"samples: {k}/{len(todo)} ({time.perf_counter() - t0:.0f} s)")
        srcs = {p: PairSource("samples", False, pools[p], [], []) for p in ("fit", "val")}
        for nm in names:
            p = "val" if cfg.val_fraction > 0 and assign_split(nm, fractions={"fit": 1 - cfg.val_fraction, "val": cfg.val_fraction}, salt="cnn-val") == "val" else "fit"
            tile = _read_png(sub / nm)
            if cfg.match_jpeg and cam_q:
                q = cam_q[int.from_bytes(hashlib.sha256(nm.encode()).digest()[:4], "little") % len(cam_q)]
                tile = _to_u8(jpeg_compress(tile.astype(np.float32) / 255, int(q)))
            srcs[p].fakes.append(tile)
            srcs[p].groups.append("samples")
        fit_sources.append(srcs["fit"])
        if srcs["val"].fakes and srcs["val"].reals:
            val_sources.append(srcs["val"])

    if cfg.shared_ai and ais:
        srcs = {p: PairSource("shared_ai", False, pools[p], [], []) for p in ("fit", "val")}
        ai_key = f"ai{cfg.tile_size}x{cfg.tiles_per_ai_image}"
        for i, s in enumerate(ais):
            stem = f"{s.generator}__{Path(s.path).stem}"
            rec = index.get(ai_key, {}).get(stem)
            if rec is None:
                names, _ = _cache_tiles(s.path, cache / "shared_ai", stem, size=cfg.tile_size, k=cfg.tiles_per_ai_image)
                rec = {"tiles": names}
                index.setdefault(ai_key, {})[stem] = rec
                index_path.write_text(json.dumps(index, indent=1), encoding="utf-8")
                if (i + 1) % 10 == 0:
                    log(f"tiles: {i + 1}/{len(ais)} AI images")
            src = srcs[part(s.path)]
            q = None
            if cfg.match_jpeg and cam_q and Path(s.path).suffix.lower() not in (".jpg", ".jpeg"):
                q = cam_q[int.from_bytes(hashlib.sha256(stem.encode()).digest()[:4], "little") % len(cam_q)]
            for n in rec["tiles"]:
                tile = _read_png(cache / "shared_ai" / n)
                if q is not None:  # give the PNG a camera-like JPEG history, as the reals have
                    tile = _to_u8(jpeg_compress(tile.astype(np.float32) / 255, int(q)))
                src.fakes.append(tile)
                src.groups.append(s.generator or "unknown")
        fit_sources.append(srcs["fit"])
        if srcs["val"].fakes and srcs["val"].reals:
            val_sources.append(srcs["val"])
    fit_sources = [s for s in fit_sources if s.fakes and s.reals]
    if not fit_sources:
        raise ValueError("no training pairs: enable data.aligned or data.shared_ai")
    return fit_sources, val_sources


def _generator_pipeline(weights: str | None, log: Callable[[str], None]) -> Any:
    from generators.models import load_models

    models = load_models(weights, device="auto")
    log(f"generator weights {models.source} (sha256 {str(models.weights_sha256)[:12]}...)")
    return generator_pipeline(models)
