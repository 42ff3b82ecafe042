#!/usr/bin/env python
"""Write both shared manifests as one CSV with absolute paths and their hash splits (``runs/dev_all.csv``).

``detect eval runs/dev_all.csv --split test ...`` then measures on the test split of ``../shared/data`` and
``../shared/data2`` together, as docs/RESULTS.md does.

Usage::

    python scripts/make_dev_manifest.py [--out runs/dev_all.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.samples import load_datasets  # noqa: E402

MANIFESTS = (REPO.parent / "shared" / "data" / "manifest.json", REPO.parent / "shared" / "data2" / "manifest.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/dev_all.csv")
    args = ap.parse_args(argv)
    present = [m for m in MANIFESTS if m.exists()]
    if not present:
        print("shared data absent (../shared/data): nothing to write", file=sys.stderr)
        return 0
    rows = load_datasets([str(m) for m in present])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "generator", "split", "source"])
        for s in rows:
            w.writerow([str(Path(s.path).resolve()), s.label, s.generator or "", s.split, s.source or ""])
    print(f"{len(rows)} samples -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
