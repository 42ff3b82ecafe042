"""Write a calibration set: one split of the shared data, as shared and through every processing chain.

Usage::

    python scripts/make_calibration_set.py --split calib --out runs/calib_v4
    detect calibrate runs/calib_v4/manifest.csv --split calib --perturb none \\
        --generated 0 --reconstructions 0 --version calib-v4 --out detectors/weights/calibration.json -j 2

Both classes go through the same chains (:mod:`datasets.processing`: web
exports, a design-tool export, upscaling, sharpening, a PNG screenshot, WebP,
double JPEG, a social-media chain), so the map and the ``likely_ai`` threshold
are fitted on real photos as they circulate, and the AI images stay aligned
with them. The manifest lists paths relative to its own folder.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.processing import write_processed_copies  # noqa: E402
from datasets.samples import load_dataset  # noqa: E402

MANIFESTS = (REPO.parent / "shared" / "data" / "manifest.json", REPO.parent / "shared" / "data2" / "manifest.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="calib", help="hash split to take (default calib)")
    ap.add_argument("--out", required=True, help="output folder (files/ and manifest.csv)")
    args = ap.parse_args(argv)
    rows = [s for m in MANIFESTS if m.exists() for s in load_dataset(m) if s.split == args.split]
    if not rows:
        print("shared data absent (../shared/data): nothing to write", file=sys.stderr)
        return 1
    rows.sort(key=lambda s: s.path)
    out = Path(args.out)
    written, failed = write_processed_copies(rows, out / "files")
    for path, reason in failed:
        print(f"skip {path}: {reason}", file=sys.stderr)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "generator", "split", "source"])
        for s in written:
            w.writerow([os.path.relpath(s.path, out), s.label, s.generator or "", args.split, s.source or ""])
    n_real = sum(s.label == "real" for s in rows)
    print(f"{len(rows)} files of split {args.split!r} ({n_real} real, {len(rows) - n_real} AI) -> {len(written)} files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
