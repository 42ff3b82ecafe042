"""Stored ``detect scan`` records: examples/ and the shared test split.

The refactors of the engine, the verdict core and the records must not change
what ``detect scan`` reports. This module runs the scan the way a user does (in
a subprocess, with the shipped weights and calibration), normalises the records
(timings, mtimes, machine paths and the scan's own config block removed) and
compares them with ``tests/cli/fixtures/scan_records.json``.

Regenerate the fixture only for a deliberate change of behaviour, and say which
records changed and why in the commit::

    python tests/scan_fixture.py --write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MANIFEST = SHARED / "data" / "manifest.json"
FIXTURE = Path(__file__).resolve().parent / "cli" / "fixtures" / "scan_records.json"

#: keys whose values change from run to run or machine to machine
VOLATILE = {"time_s", "mtime_ns", "timing", "started_at", "finished_at", "elapsed_s", "config"}


def test_split_paths() -> list[str]:
    """Paths of the shared manifest's test split (hash split, as ``detect eval`` uses)."""
    sys.path.insert(0, str(REPO))
    from datasets.samples import load_dataset

    return sorted(s.path for s in load_dataset(MANIFEST) if s.split == "test")


def _normalise(obj, roots: list[tuple[str, str]]):
    if isinstance(obj, dict):
        return {k: _normalise(v, roots) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_normalise(v, roots) for v in obj]
    if isinstance(obj, str):
        for root, name in roots:
            obj = obj.replace(root, name)
        return obj
    return obj


def scan_records(paths: list[str], *, cwd: Path = REPO) -> list[dict]:
    """Run ``detect scan --jsonl`` on ``paths`` in a fresh process; normalised records."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scan.jsonl"
        cmd = [sys.executable, "-m", "cli.main", "scan", *paths, "--jsonl", str(out), "--quiet", "--jobs", "1"]
        env = dict(os.environ, PYTHONPATH=str(cwd))
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
        lines = out.read_text(encoding="utf-8").splitlines()
    roots = [(str(SHARED.resolve()) + os.sep, "<shared>/"), (str(SHARED) + os.sep, "<shared>/"),
             (str(cwd) + os.sep, "")]
    recs = [_normalise(json.loads(line), roots) for line in lines if line.strip()]
    images = sorted((r for r in recs if r.get("record_type") == "image"), key=lambda r: r["file"]["path"])
    return images + [r for r in recs if r.get("record_type") != "image"]


def collect(cwd: Path = REPO) -> dict[str, list[dict]]:
    """Both record sets: ``examples`` (always) and ``shared_test`` (when ``../shared`` exists)."""
    out = {"examples": scan_records(["examples/"], cwd=cwd)}
    if MANIFEST.exists():
        out["shared_test"] = scan_records(test_split_paths(), cwd=cwd)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the stored fixture")
    ap.add_argument("--cwd", default=str(REPO), help="source tree to scan with (default: this checkout)")
    args = ap.parse_args()
    data = collect(Path(args.cwd))
    if args.write:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {FIXTURE}: " + ", ".join(f"{k}: {len(v)} records" for k, v in data.items()))
    else:
        json.dump(data, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
