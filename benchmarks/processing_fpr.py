"""False positives on real photos as they circulate: resized, re-exported, sharpened, screenshotted.

Usage::

    python benchmarks/processing_fpr.py [--splits calib,test] [--jobs 2] [--json runs/processing_fpr.json]
                                        [--calibration FILE] [--keep DIR]

What it does:

1. Takes every real photo of the chosen hash splits of ``../shared/data`` and
   ``../shared/data2`` (the splits ``detect eval`` and ``detect calibrate`` use).
2. Writes each one through every chain of :mod:`datasets.processing` (web
   exports at 1024 px with Pillow and OpenCV kernels, a design-tool export,
   upscaling, unsharp masking, a PNG screenshot, WebP, double JPEG, a
   social-media chain) as real files, next to an ``original`` copy.
3. Scans them all with ``detect scan`` (a subprocess: the shipped detectors,
   weights and calibration, exactly as a user runs them).
4. Prints, per chain and per real source, the fraction labelled ``likely_ai``
   or ``ai_confirmed`` (the false-positive rate at the shipped threshold), the
   fraction ``inconclusive``, and the median fused P(AI); ``--json`` keeps the
   table and every record's label and score.

The figures are on the calib and test splits together by default: the shipped
``likely_ai`` threshold was fitted on calib reals *without* these chains, so
for the threshold the chains are unseen data either way. Report test-split
figures alone with ``--splits test``.

Skips cleanly (exit 0) when the shared data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.processing import PROCESSING_CHAINS, write_processed_copies  # noqa: E402
from datasets.samples import Sample, load_dataset  # noqa: E402

MANIFESTS = (REPO.parent / "shared" / "data" / "manifest.json", REPO.parent / "shared" / "data2" / "manifest.json")
FLAGGED = ("likely_ai", "ai_confirmed")


def _source_group(s: Sample) -> str:
    """A short name for the real photo's collection."""
    name = Path(s.path).name
    return name.split("__")[0] if "__" in name else (s.source or "real").split("@")[0].split("/")[-1]


def select_reals(splits: tuple[str, ...]) -> list[Sample]:
    """Real photos of ``splits`` in both shared manifests, sorted by path."""
    out: list[Sample] = []
    for m in MANIFESTS:
        if m.exists():
            out += [s for s in load_dataset(m) if s.label == "real" and s.split in splits]
    return sorted(out, key=lambda s: s.path)


def write_chains(reals: list[Sample], root: Path) -> dict[str, tuple[str, str]]:
    """Write ``root/<chain>/<i>_<stem><ext>`` for every chain; returns file -> (chain, source group)."""
    written, failed = write_processed_copies(reals, root)
    for path, reason in failed:
        print(f"skip {path}: {reason}", file=sys.stderr)
    groups = {i: _source_group(s) for i, s in enumerate(reals)}
    return {w.path: (Path(w.path).parent.name, groups[int(Path(w.path).name.split("_", 1)[0])]) for w in written}


def scan(root: Path, *, jobs: int, calibration: str | None) -> list[dict[str, Any]]:
    """``detect scan root --jsonl``; the image records."""
    out = root.parent / "scan.jsonl"
    cmd = [sys.executable, "-m", "cli.main", "scan", str(root), "--jsonl", str(out), "--quiet", "--jobs", str(jobs), "--fail-on", "never"]
    if calibration:
        cmd += ["--calibration", calibration]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"detect scan failed ({proc.returncode}): {proc.stderr[-3000:]}")
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in recs if r.get("record_type") == "image"]


def _row(recs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(recs)
    scores = [r["score"] for r in recs if isinstance(r.get("score"), (int, float))]
    return {
        "n": n,
        "flagged": sum(r.get("label") in FLAGGED for r in recs),
        "fpr": sum(r.get("label") in FLAGGED for r in recs) / n if n else float("nan"),
        "inconclusive": sum(r.get("label") == "inconclusive" for r in recs) / n if n else float("nan"),
        "errors": sum(r.get("status") != "ok" for r in recs),
        "median_p_ai": median(scores) if scores else None,
    }


def summarise(records: list[dict[str, Any]], index: dict[str, tuple[str, str]]) -> dict[str, Any]:
    by_chain: dict[str, list] = defaultdict(list)
    by_source: dict[tuple[str, str], list] = defaultdict(list)
    for r in records:
        chain, group = index.get(r["file"]["path"], ("?", "?"))
        by_chain[chain].append(r)
        by_source[(chain, group)].append(r)
    processed = [r for c, rs in by_chain.items() if c != "original" for r in rs]
    return {
        "chains": {c: _row(by_chain[c]) for c in ("original", *PROCESSING_CHAINS) if c in by_chain},
        "all_processed": _row(processed),
        "by_source": {f"{c} / {g}": _row(rs) for (c, g), rs in sorted(by_source.items())},
    }


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| chain | what | n | flagged (FPR) | inconclusive | median P(AI) | errors |", "|---|---|---|---|---|---|---|"]
    rows = list(summary["chains"].items()) + [("all processed", summary["all_processed"])]
    for name, r in rows:
        what = PROCESSING_CHAINS[name].description if name in PROCESSING_CHAINS else ("as shared" if name == "original" else "the chains above together")
        med = f"{r['median_p_ai']:.3f}" if r["median_p_ai"] is not None else "-"
        lines.append(f"| `{name}` | {what} | {r['n']} | {r['flagged']} ({r['fpr']:.1%}) | {r['inconclusive']:.0%} | {med} | {r['errors']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default="calib,test", help="hash splits of the real photos (default calib,test)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--calibration", default=None, help="calibration file (default: the shipped one)")
    ap.add_argument("--json", default=None, help="write the summary and every record's label/score here")
    ap.add_argument("--keep", default=None, help="write the processed files here instead of a temporary folder")
    args = ap.parse_args(argv)
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    reals = select_reals(splits)
    if not reals:
        print("shared data absent (../shared/data): nothing to measure", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp) / "files"
        index = write_chains(reals, root)
        t1 = time.perf_counter()
        records = scan(root, jobs=args.jobs, calibration=args.calibration)
        t2 = time.perf_counter()
    summary = summarise(records, index)
    print(f"{len(reals)} real photos of splits {','.join(splits)}, {len(PROCESSING_CHAINS)} chains, "
          f"{len(records)} files scanned (write {t1 - t0:.0f} s, scan {t2 - t1:.0f} s)\n")
    print(markdown(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        detail = [{"file": r["file"]["path"], "chain": index.get(r["file"]["path"], ("?", "?"))[0],
                   "source": index.get(r["file"]["path"], ("?", "?"))[1], "label": r.get("label"), "score": r.get("score")}
                  for r in records]
        Path(args.json).write_text(json.dumps({"splits": splits, "summary": summary, "records": detail}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
