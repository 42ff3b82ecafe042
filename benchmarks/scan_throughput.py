#!/usr/bin/env python
"""Scan throughput against the decode-only floor, on one machine.

Prints, for the same files in one run:

* decode only (the floor): images/s and megapixels/s of ``forensics.io.load_image``;
* provenance + spectral: the file-level detectors and the spectral detector;
* full pipeline: every default detector;

each with its ratio to the floor (median of ``--repeats`` (5) alternating rounds), then the
full pipeline and the provenance + spectral path through the worker-process engine
with ``--jobs 1`` and ``--jobs 2`` (the CNN runs batched in the parent), and peak
memory (max RSS of this process and of the workers).

Usage::

    python benchmarks/scan_throughput.py [FOLDER] [--repeats 3]

Without FOLDER it writes a mixed synthetic folder to a temp dir: 4 JPEGs of 12 MP,
8 PNGs of 512 px and 8 JPEGs of 256 px.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cli.engine import EngineConfig, ProcessEngine
from cli.walk import iter_files
from detectors import is_registered
from detectors.pipeline import DEFAULT_DETECTORS, Pipeline
from forensics.io import load_image

PROVENANCE_SPECTRAL = ("c2pa", "xmp", "generator_metadata", "watermark", "exif", "spectral")


def make_folder(root: Path, *, seed: int = 0) -> Path:
    """Write the mixed folder described in the module docstring."""
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


def _mp(path: str) -> float:
    with Image.open(path) as im:
        return im.size[0] * im.size[1] / 1e6


def _time(fn, files: list[str]) -> float:  # noqa: ANN001
    t = time.perf_counter()
    for f in files:
        fn(f)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads of the in-process full pipeline")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else make_folder(Path(tmp))
        files = [e.path for e in iter_files([str(folder)]) if not e.error]
        sizes = {f: _mp(f) for f in files}
        mpix = sum(sizes.values())
        prov = Pipeline(tuple(n for n in PROVENANCE_SPECTRAL if is_registered(n)))
        full = Pipeline(DEFAULT_DETECTORS)
        # One torch thread, as the engine gives its CNN stage on a 2-core machine: idle OpenMP
        # threads spin after each forward pass and would slow the rounds that follow.
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(args.torch_threads)
        times: dict[str, list[float]] = {"decode only": [], "provenance+spectral": [], "full pipeline": []}
        for _ in range(args.repeats):
            times["decode only"].append(_time(load_image, files))
            times["provenance+spectral"].append(_time(prov.analyze_path, files))
            times["full pipeline"].append(_time(full.analyze_path, files))
        med = {k: statistics.median(v) for k, v in times.items()}
        floor = med["decode only"]
        print(f"machine: {platform.machine()}, {platform.python_version()}; files: {len(files)} ({mpix:.1f} MP) "
              f"from {folder if args.folder else 'a synthetic mixed folder'}; median of {args.repeats} rounds")  # fmt: skip
        print(f"full pipeline detectors: {', '.join(full.models)}")
        for k, t in med.items():
            print(f"{k:>22}: {len(files) / t:7.2f} img/s {mpix / t:7.1f} MP/s   ratio to decode-only rate {floor / t:5.2f}")
        # the same ratio for the large files and for the rest (per-file costs weigh on small ones)
        big = [f for f in files if sizes[f] >= 4.0]
        rest = [f for f in files if f not in big]
        for label, group in (("files >= 4 MP", big), ("files < 4 MP", rest)):
            if group:
                d = statistics.median(_time(load_image, group) for _ in range(args.repeats))
                p = statistics.median(_time(prov.analyze_path, group) for _ in range(args.repeats))
                print(f"{'prov+spectral, ' + label:>28}: ratio to decode-only rate {d / p:5.2f} ({len(group)} files)")
        prov_names = tuple(n for n in PROVENANCE_SPECTRAL if is_registered(n))
        for label, dets in (("full", DEFAULT_DETECTORS), ("prov+spectral", prov_names)):
            engine_t = {}
            for jobs in (1, 2):
                eng = ProcessEngine(EngineConfig(dets, jobs=jobs))
                try:
                    list(eng.map(files[:2]))  # warm-up: worker start-up is not throughput
                    runs = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        list(eng.map(files))
                        runs.append(time.perf_counter() - t)
                    engine_t[jobs] = statistics.median(runs)
                finally:
                    eng.close()
                name = f"engine {label} -j {jobs}"
                print(f"{name:>28}: {len(files) / engine_t[jobs]:7.2f} img/s {mpix / engine_t[jobs]:7.1f} MP/s")
            print(f"{'scaling ' + label + ' 1 -> 2':>28}: {engine_t[1] / engine_t[2]:.2f}x")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{'peak RSS':>22}: this process {own:.0f} MiB, largest worker {kids:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
