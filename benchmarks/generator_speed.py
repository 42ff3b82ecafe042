#!/usr/bin/env python
"""Speed of the bundled reference generator.

Prints, per device (CPU, and CUDA when present):

* ``generate``: samples/s at 256x256 with 50 DDIM steps (batch of ``--batch``)
  with the default generator (``--weights``);
* ``reconstruct``: megapixels/s of the tiled round trip on a synthetic photo
  of ``--megapixels`` MP (4:3), for each decoder of the zoo
  (:mod:`generators.zoo`: f8c4, f8c16, taef2, f2, each with its default
  tiles); a decoder whose weights are absent is reported as such;
* peak memory: max RSS of this process (``resource.getrusage``) and, on CUDA,
  ``torch.cuda.max_memory_allocated``.

Usage::

    python benchmarks/generator_speed.py [--weights DIR] [--n 2] [--batch 2] [--megapixels 4] [--threads 2]
        [--decoders f8c4,f8c16,taef2,f2] [--zoo-weights DIR]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

import numpy as np


def _rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def _photo(megapixels: float) -> np.ndarray:
    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    h = int(round(w * 3 / 4))
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx / 37.0 + yy / 53.0)[..., None] * np.array([1.0, 0.8, 0.6], dtype=np.float32)
    noise = np.random.default_rng(0).normal(0, 0.03, (h, w, 3)).astype(np.float32)
    return np.clip(base + noise, 0, 1).astype(np.float32)


def bench(device: str, args: argparse.Namespace) -> None:
    import torch

    from generators.models import load_models
    from generators.pipeline import LatentDiffusionPipeline
    from generators.zoo import load_decoder

    models = load_models(args.weights, device=device)
    pipe = LatentDiffusionPipeline(models, tile_size=args.tile_size, decode_tile_size=max(512, args.tile_size or 0))
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); torch {torch.__version__}; float32; weights {models.weights_sha256[:12] if models.weights_sha256 else '-'}")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # warm-up (kernel selection), not timed
    pipe.sample(1, size=64, steps=2, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    done = 0
    while done < args.n:
        b = min(args.batch, args.n - done)
        pipe.sample(b, size=256, steps=50, generator=[torch.Generator().manual_seed(done + i) for i in range(b)])
        done += b
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"  generate 256x256, 50 DDIM steps, batch {args.batch}: {args.n / dt:.3f} samples/s ({dt / args.n:.2f} s/sample)")
    img = _photo(args.megapixels)
    mp = img.shape[0] * img.shape[1] / 1e6
    for name in [d for d in args.decoders.split(",") if d]:
        try:
            dec = load_decoder(name, device=device, weights_dir=args.zoo_weights)
        except (FileNotFoundError, ValueError) as exc:
            print(f"  reconstruct, decoder {name}: not measured ({exc})")
            continue
        dec.reconstruct(_photo(0.01))  # warm-up, not timed
        t0 = time.perf_counter()
        res = dec.reconstruct(img)
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(
            f"  reconstruct, decoder {name} (f={dec.spec.downsample_factor}, {dec.spec.latent_channels} ch), {img.shape[1]}x{img.shape[0]} "
            f"({mp:.1f} MP, {res.tiles} tiles of {dec.spec.tile_size} px): {mp / dt:.3f} MP/s ({dt:.1f} s)"
        )
    if device == "cuda":
        print(f"  peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"  peak RSS (process so far): {_rss_mib():.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="weights folder (default: the shipped ones)")
    ap.add_argument("--n", type=int, default=2, help="samples to time per device")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--megapixels", type=float, default=4.0)
    ap.add_argument("--tile-size", type=int, help="generator tile side (default: per model, generators.zoo.default_tiles)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--decoders", default="f8c4,f8c16,taef2,f2", help="zoo decoders to time for reconstruct")
    ap.add_argument("--zoo-weights", help="zoo weights folder (default: the shipped ones)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    bench("cpu", args)
    if torch.cuda.is_available():
        bench("cuda", args)
    else:
        print("no CUDA device: GPU figures not measured")


if __name__ == "__main__":
    main()
