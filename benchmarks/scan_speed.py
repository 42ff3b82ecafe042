#!/usr/bin/env python
"""Images per second for `detect scan` next to the time to merely decode the same files.

Both passes run in this one process, over the same files, alternating for
``--repeats`` rounds; the script prints the median of each and their ratio.

Usage::

    python benchmarks/scan_speed.py [FOLDER] [--repeats 3] [--detector spectral ...]

Without FOLDER it makes a mixed synthetic folder in a temp dir: 12 MP JPEGs,
512 px PNGs and small JPEGs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cli.walk import iter_files
from detectors.pipeline import DEFAULT_DETECTORS, Pipeline
from forensics.io import load_image


def make_folder(root: Path, *, seed: int = 0) -> Path:
    """Write a small mixed folder: 4 x 12 MP JPEG, 8 x 512 px PNG, 8 x 256 px JPEG."""
    rng = np.random.default_rng(seed)

    def img(h: int, w: int) -> Image.Image:
        yy, xx = np.mgrid[:h, :w] / max(h, w)
        base = 0.5 + 0.25 * np.sin(9 * xx + 4 * yy)[..., None] * np.array([1.0, 0.8, 0.6])
        arr = np.clip(base + rng.normal(0, 0.04, (h, w, 3)), 0, 1)
        return Image.fromarray((arr * 255).astype(np.uint8))

    for i in range(4):
        img(3000, 4000).save(root / f"big_{i}.jpg", quality=92)
    for i in range(8):
        img(512, 512).save(root / f"mid_{i}.png")
    for i in range(8):
        img(256, 256).save(root / f"small_{i}.jpg", quality=85)
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detector", action="append", dest="detectors")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else make_folder(Path(tmp))
        files = [e.path for e in iter_files([str(folder)]) if not e.error]
        mpix = 0.0
        for f in files:
            with Image.open(f) as im:
                mpix += im.size[0] * im.size[1] / 1e6
        pipeline = Pipeline(tuple(args.detectors or DEFAULT_DETECTORS))
        decode_t, scan_t = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for f in files:
                load_image(f)
            decode_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            for f in files:
                pipeline.analyze_path(f)
            scan_t.append(time.perf_counter() - t)
        d, s = statistics.median(decode_t), statistics.median(scan_t)
        print(f"files: {len(files)} ({mpix:.1f} MP) from {folder if args.folder else 'synthetic mixed folder'}")
        print(f"detectors: {', '.join(pipeline.models)}")
        print(f"decode only : {len(files) / d:7.2f} img/s  {mpix / d:7.1f} MP/s  (median of {args.repeats})")
        print(f"full scan   : {len(files) / s:7.2f} img/s  {mpix / s:7.1f} MP/s  (median of {args.repeats})")
        print(f"scan / decode throughput ratio: {d / s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
