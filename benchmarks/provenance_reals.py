"""Run the provenance detectors over every shared real photo: none may come out ``ai_confirmed``.

Usage::

    python benchmarks/provenance_reals.py [--shared ../shared] [--json out.json]

Reads the ``real`` rows of ``<shared>/data/manifest.json`` and
``<shared>/data2/manifest.json``, runs ``c2pa``, ``xmp``,
``generator_metadata``, ``watermark`` and ``exif`` on each file and fuses
their results alone (no pixel detector), so the label is what provenance
decides: ``ai_confirmed`` (a proof), ``likely_ai`` (a strong claim) or
``inconclusive``. Prints, per set, the files read, the labels, every AI claim
with its detector and strength, and the exif camera hints. Exit status 1
when any real photo is ``ai_confirmed``. Skips cleanly (exit 0) when the
shared folder is absent.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import create_detector  # noqa: E402
from detectors.calibration import load_calibration  # noqa: E402
from detectors.fusion import fuse  # noqa: E402
from detectors.base import list_detectors  # noqa: E402
from forensics.io import ImageLoadError, load_image  # noqa: E402

SETS = ("data", "data2")


@dataclass
class SetResult:
    """Figures for one manifest's real photos."""

    name: str
    files: int = 0
    load_errors: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    ai_claims: list[dict[str, str]] = field(default_factory=list)
    claims: dict[str, dict[str, int]] = field(default_factory=dict)
    exif_camera: int = 0
    exif_make_model_only: int = 0
    seconds: float = 0.0


def real_paths(shared: Path, name: str) -> list[Path]:
    """Paths of the ``real`` rows of ``<shared>/<name>/manifest.json`` (empty when absent)."""
    manifest = shared / name / "manifest.json"
    if not manifest.is_file():
        return []
    rows = json.loads(manifest.read_text(encoding="utf-8"))
    return [shared / name / r["path"] for r in rows if isinstance(r, dict) and r.get("label") == "real"]


def run_set(name: str, paths: list[Path], detectors: list[Any]) -> SetResult:
    """Provenance detectors and a provenance-only fusion over ``paths``."""
    cal = load_calibration()
    out = SetResult(name)
    labels: collections.Counter[str] = collections.Counter()
    claims: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    t0 = time.perf_counter()
    for p in paths:
        out.files += 1
        try:
            image = load_image(p)
        except (ImageLoadError, OSError) as exc:
            out.load_errors += 1
            print(f"  {p.name}: not loaded ({exc})", file=sys.stderr)
            continue
        results = [d.analyze(image) for d in detectors]
        verdict = fuse(results, cal)
        labels[verdict.label] += 1
        for r in results:
            if r.status == "ok" and r.claim != "none":
                claims[r.name][f"{r.claim}/{r.strength}"] += 1
            if r.claim in ("ai_generated", "ai_edited"):
                out.ai_claims.append({"file": p.name, "detector": r.name, "claim": r.claim, "strength": r.strength,
                                      "summary": str(r.evidence.get("summary"))})
            if r.name == "exif":
                if r.claim == "camera":
                    out.exif_camera += 1
                elif r.status == "not_applicable" and "Make/Model alone" in (r.message or ""):
                    out.exif_make_model_only += 1
    out.labels = dict(labels)
    out.claims = {k: dict(v) for k, v in claims.items()}
    out.seconds = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    names = [n for n in list_detectors(kind="provenance") if not n.startswith("test_")]
    detectors = [create_detector(n) for n in names]
    print(f"provenance detectors: {', '.join(names)}")
    results = []
    for name in SETS:
        paths = real_paths(args.shared, name)
        if not paths:
            print(f"{name}: no manifest under {args.shared} (skipped)")
            continue
        r = run_set(name, paths, detectors)
        results.append(r)
        print(f"{name}/real: {r.files} files, {r.load_errors} not loaded, {r.seconds} s")
        print(f"  labels from provenance alone: {r.labels}")
        print(f"  claims: {r.claims}")
        print(f"  exif camera hints: {r.exif_camera}; Make/Model without camera fields: {r.exif_make_model_only}")
        for c in r.ai_claims:
            print(f"  AI claim: {c}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    confirmed = sum(r.labels.get("ai_confirmed", 0) for r in results)
    print(f"ai_confirmed real photos: {confirmed}")
    return 1 if confirmed else 0


if __name__ == "__main__":
    raise SystemExit(main())
