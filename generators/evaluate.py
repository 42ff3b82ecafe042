"""Reconstruction quality of the zoo's decoders on held-out real photos.

Each photo goes through :meth:`generators.zoo.LoadedDecoder.reconstruct` at
its native resolution (tiled, never resized), the output is quantised to 8
bits (what ``detect generate`` writes), and it is scored against the photo:
PSNR and SSIM (Wang et al., IEEE TIP 2004, via :mod:`skimage.metrics`) and the
sharpness ratio (high-frequency energy of the reconstruction over the
original's; :func:`generators.metrics.sharpness_ratio`). Used for the model
card::

    python -m generators.evaluate ../shared/data --split test --decoders f8c4,f8c16,taef2,f2 [--crop 768] [--json OUT]

``--crop N`` scores the central ``N x N`` window of each photo (its origin on
the 8x8 grid; still native resolution) to bound the CPU time on large photos.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["DecoderReport", "PhotoScore", "central_crop", "evaluate_decoder"]


@dataclass(frozen=True)
class PhotoScore:
    """One photo's reconstruction quality.

    Attributes:
        path: The photo.
        width: Width scored (pixels).
        height: Height scored (pixels).
        psnr_db: PSNR in dB (data range 1).
        ssim: Mean SSIM in ``[-1, 1]``.
        sharpness: High-frequency energy ratio, reconstruction / original.
        seconds: Reconstruction wall time.
    """

    path: str
    width: int
    height: int
    psnr_db: float
    ssim: float
    sharpness: float
    seconds: float


@dataclass(frozen=True)
class DecoderReport:
    """Medians and per-photo scores of one decoder."""

    decoder: str
    median_psnr_db: float
    median_ssim: float
    median_sharpness: float
    mean_psnr_db: float
    photos: tuple[PhotoScore, ...]
    weights_sha256: str
    megapixels_per_second: float


def central_crop(image: np.ndarray, *, size: int | None, align: int = 8) -> np.ndarray:
    """The central ``size x size`` window (origin snapped down to ``align``), or the image when smaller.

    Args:
        image: ``(H, W, C)`` array (not modified; a view is returned).
        size: Window side, >= 8, or ``None`` for the whole image.
        align: Grid of the window's origin, >= 1.

    Raises:
        ValueError: If ``size < 8`` or ``align < 1``.
    """
    if size is None:
        return image
    if size < 8:
        raise ValueError(f"size must be >= 8 or None, got {size}")
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    h, w = image.shape[:2]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2 // align * align, (w - cw) // 2 // align * align
    return image[top : top + ch, left : left + cw]


def evaluate_decoder(
    paths: Sequence[Path],
    *,
    decoder: str,
    device: str = "cpu",
    weights_dir: str | None = None,
    crop: int | None = None,
    log: "object | None" = None,
) -> DecoderReport:
    """Reconstruct every photo with one zoo decoder and score it.

    Args:
        paths: Photo files (read with :func:`forensics.io.load_image`, never resized).
        decoder: A name of :data:`generators.zoo.DECODER_NAMES`.
        device: See :func:`generators.training_utils.resolve_device`.
        weights_dir: Weights folder (default: the shipped ones).
        crop: Score the central ``crop x crop`` window (``None``: the whole photo).
        log: Callable receiving one line per photo, or ``None``.

    Raises:
        ValueError: If ``paths`` is empty.
        FileNotFoundError: If the decoder's weights are missing.
    """
    from forensics.io import DEFAULT_MAX_PIXELS, load_image
    from generators.metrics import psnr, sharpness_ratio, ssim
    from generators.zoo import load_decoder

    if not paths:
        raise ValueError("no photos to evaluate")
    dec = load_decoder(decoder, device=device, weights_dir=weights_dir)
    scores = []
    mp = secs = 0.0
    for p in paths:
        px = np.ascontiguousarray(central_crop(load_image(p, max_full_pixels=DEFAULT_MAX_PIXELS).regions[0], size=crop))
        t0 = time.perf_counter()
        rec = dec.reconstruct(px)
        dt = time.perf_counter() - t0
        out = np.rint(rec.image * 255).astype(np.float32) / 255
        s = PhotoScore(str(p), px.shape[1], px.shape[0], psnr(px, out), ssim(px, out), sharpness_ratio(out, px), dt)
        scores.append(s)
        if callable(log):
            log(f"{decoder:6s} {Path(p).name:45s} {s.width}x{s.height}  PSNR {s.psnr_db:6.2f} dB  SSIM {s.ssim:.4f}  sharpness {s.sharpness:.3f}  ({dt:.1f} s)")
        mp += px.shape[0] * px.shape[1] / 1e6
        secs += dt
    return DecoderReport(
        decoder=decoder,
        median_psnr_db=statistics.median(s.psnr_db for s in scores),
        median_ssim=statistics.median(s.ssim for s in scores),
        median_sharpness=statistics.median(s.sharpness for s in scores),
        mean_psnr_db=statistics.fmean(s.psnr_db for s in scores),
        photos=tuple(scores),
        weights_sha256=dec.weights_sha256,
        megapixels_per_second=mp / secs if secs else float("nan"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: one table row per decoder on stdout, per-photo lines on stderr."""
    ap = argparse.ArgumentParser(prog="python -m generators.evaluate", description="PSNR/SSIM/sharpness of the zoo decoders on held-out photos.")
    ap.add_argument("data", nargs="+", help="dataset folders or manifests (reals of --split), or photo folders")
    ap.add_argument("--split", default="test")
    ap.add_argument("--decoders", default="f8c4,f8c16,taef2,f2", help="comma-separated zoo names")
    ap.add_argument("--weights-dir", help="weights folder (default: the shipped generators/weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--crop", type=int, help="score the central CROP x CROP native-resolution window of each photo")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the full report here")
    args = ap.parse_args(argv)
    import torch

    from generators.train import list_training_photos

    torch.set_num_threads(args.threads)
    photos = list_training_photos(args.data, split=args.split)
    reports = []
    for name in [d.strip() for d in args.decoders.split(",") if d.strip()]:
        try:
            rep = evaluate_decoder(photos, decoder=name, device=args.device, weights_dir=args.weights_dir, crop=args.crop,
                                   log=lambda s: print(s, file=sys.stderr, flush=True))  # fmt: skip
        except (FileNotFoundError, ValueError) as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        reports.append(rep)
        print(f"{name:6s} median PSNR {rep.median_psnr_db:6.2f} dB  median SSIM {rep.median_ssim:.4f}  median sharpness {rep.median_sharpness:.3f}  "
              f"mean PSNR {rep.mean_psnr_db:6.2f} dB  over {len(rep.photos)} photos; {rep.megapixels_per_second:.3f} MP/s", flush=True)  # fmt: skip
    if args.json:
        doc = {"split": args.split, "crop": args.crop, "data": args.data, "reports": [asdict(r) for r in reports]}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0 if reports else 2


if __name__ == "__main__":
    raise SystemExit(main())
