"""Reconstruction quality of the generator's autoencoder on held-out real photos.

Each photo goes through :meth:`LatentDiffusionPipeline.reconstruct` at its
native resolution (tiled), and PSNR and SSIM (Wang et al. 2004) are measured
against the photo on the whole frame, after 8-bit quantisation of the output
(what ``detect generate`` writes). Used for the model card::

    python -m generators.evaluate /work/shared/data/manifest.json --split test [--weights DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["PhotoScore", "ReconstructionReport", "evaluate_reconstruction"]


@dataclass(frozen=True)
class PhotoScore:
    """One photo's reconstruction quality."""

    path: str
    width: int
    height: int
    psnr_db: float
    ssim: float
    tiles: int
    seconds: float


@dataclass(frozen=True)
class ReconstructionReport:
    """Median and per-photo PSNR (dB) and SSIM."""

    median_psnr_db: float
    median_ssim: float
    mean_psnr_db: float
    photos: tuple[PhotoScore, ...]
    weights_sha256: str | None
    megapixels_per_second: float


def evaluate_reconstruction(paths: list[Path], *, weights: str | None = None, device: str = "cpu", tile_size: int = 64, tile_overlap: int = 16) -> ReconstructionReport:
    """Reconstruct every photo at native resolution and score it.

    Args:
        paths: Photo files (read with :func:`forensics.io.load_image`, never resized).
        weights: Weights folder (default: the shipped ones).
        device: See :func:`generators.models.resolve_device`.
        tile_size: Autoencoder tile side.
        tile_overlap: Tile overlap.

    Raises:
        ValueError: If ``paths`` is empty.
    """
    from forensics.io import DEFAULT_MAX_PIXELS, load_image
    from generators.metrics import psnr, ssim
    from generators.models import load_models
    from generators.pipeline import LatentDiffusionPipeline

    if not paths:
        raise ValueError("no photos to evaluate")
    models = load_models(weights, device=device)
    pipe = LatentDiffusionPipeline(models, tile_size=tile_size, tile_overlap=tile_overlap)
    scores = []
    mp = secs = 0.0
    for p in paths:
        px = load_image(p, max_full_pixels=DEFAULT_MAX_PIXELS).regions[0]
        t0 = time.perf_counter()
        rec = pipe.reconstruct(px)
        dt = time.perf_counter() - t0
        out = np.rint(rec.image * 255).astype(np.float32) / 255
        scores.append(PhotoScore(str(p), px.shape[1], px.shape[0], psnr(px, out), ssim(px, out), rec.tiles, dt))
        mp += px.shape[0] * px.shape[1] / 1e6
        secs += dt
    return ReconstructionReport(
        median_psnr_db=statistics.median(s.psnr_db for s in scores),
        median_ssim=statistics.median(s.ssim for s in scores),
        mean_psnr_db=statistics.fmean(s.psnr_db for s in scores),
        photos=tuple(scores),
        weights_sha256=models.weights_sha256,
        megapixels_per_second=mp / secs,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="Reconstruction PSNR/SSIM of the generator on held-out photos.")
    ap.add_argument("data", help="folder of photos, or a dataset manifest (.json/.csv)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--weights")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile-size", type=int, default=64)
    ap.add_argument("--tile-overlap", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the full report here")
    args = ap.parse_args()
    import torch

    from generators.train import list_training_photos

    torch.set_num_threads(args.threads)
    rep = evaluate_reconstruction(list_training_photos(args.data, split=args.split), weights=args.weights, device=args.device, tile_size=args.tile_size, tile_overlap=args.tile_overlap)
    for s in rep.photos:
        print(f"{Path(s.path).name:45s} {s.width}x{s.height}  PSNR {s.psnr_db:6.2f} dB  SSIM {s.ssim:.4f}  ({s.tiles} tiles, {s.seconds:.1f} s)")
    print(f"median PSNR {rep.median_psnr_db:.2f} dB, median SSIM {rep.median_ssim:.4f}, mean PSNR {rep.mean_psnr_db:.2f} dB over {len(rep.photos)} photos; {rep.megapixels_per_second:.3f} MP/s")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(rep), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
