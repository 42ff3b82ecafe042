"""AUC of the zero-shot detector per AI family and generator, under perturbations; FPR at its own threshold.

Usage::

    python benchmarks/zed_eval.py [--weights detectors/weights/zed_v1.json] [--perturb none,jpeg95,jpeg75,resize0.5]
                                  [--chains] [--cache runs/zed-v1/features.jsonl] [--json runs/zed_eval.json] [--threads 1]

What it measures, on ``../shared/data`` and ``../shared/data2`` (the hash splits of
:func:`datasets.samples.load_datasets`):

* **Reals**: the test-split real photos of both manifests, always.
* **AI, two sets**: ``test`` (the test split's AI images) and ``unseen`` (the
  AI images of the train and test splits: the coder never sees an AI image,
  and the map is fitted on the calib split only, so none of these was seen
  by any part of the detector; the calib split's AI images are left out).
* **Scores**: ``map``, the shipped calibrated P(AI); and ``zs``, the pure
  zero-shot statistic ``-d0_mean`` (how much cheaper than expected the
  full-resolution pixels are), which involves no fake at all.
* Per AI family (:func:`datasets.samples.family_of`: ``sd``, ``gan``,
  ``other_ldm``) and per generator, at each perturbation (applied to the
  whole file, both classes alike, as ``detect eval`` does): AUC. The mean AUC
  over families is the issue's target figure.
* The false-positive rate on the test reals at the detector's own threshold
  (1% FPR on the calib reals, pooled over the calib perturbations), and the
  TPR there; with ``--chains``, the FPR on every processing chain of
  :mod:`datasets.processing` applied to the test reals.

Features are cached (``--cache``, JSONL keyed by file, perturbation, weights
sha256 and tau), so a rerun only scores what is missing; the training run's
own cache (``runs/zed-v1/features.jsonl``) can be reused. Skips cleanly
(exit 0) when the shared data is absent.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.processing import chain_names  # noqa: E402
from datasets.samples import FAMILIES, family_of, load_datasets  # noqa: E402
from detectors.metrics import auc  # noqa: E402

MANIFESTS = (REPO.parent / "shared" / "data" / "manifest.json", REPO.parent / "shared" / "data2" / "manifest.json")


def _fmt(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="Config JSON (default: the shipped detectors/weights/zed_v1.json).")
    ap.add_argument("--perturb", default="none,jpeg95,jpeg75,resize0.5")
    ap.add_argument("--chains", action="store_true", help="Also the FPR of the processing chains on the test reals.")
    ap.add_argument("--cache", default="runs/zed-eval/features.jsonl", help="Feature cache (JSONL).")
    ap.add_argument("--json", dest="json_out", default=None, help="Write every figure here.")
    ap.add_argument("--threads", type=int, default=1, help="torch threads.")
    args = ap.parse_args(argv)
    if not all(m.is_file() for m in MANIFESTS):
        print("zed_eval: ../shared/data or ../shared/data2 is absent; skipped")
        return 0
    from detectors.zed_training import features_for_samples
    from detectors.zeroshot import ZedDetector

    t0 = time.perf_counter()
    det = ZedDetector(weights=args.weights, num_threads=args.threads)
    perts = [p for p in args.perturb.split(",") if p]
    samples = load_datasets([str(m) for m in MANIFESTS])
    reals = [s for s in samples if s.label == "real" and s.split == "test"]
    ai = [s for s in samples if s.label == "ai" and s.split in ("train", "test")]
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    rows = features_for_samples(det, reals + ai, perts, cache=args.cache, log=lambda m: print(m, file=sys.stderr))
    chain_rows = []
    if args.chains:
        chain_rows = features_for_samples(det, reals, [f"chain:{c}" for c in chain_names()], cache=args.cache,
                                          log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    smap, thr = det.config.score_map, det.threshold

    def scores(rs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([[np.nan if v is None else v for v in r["features"]] for r in rs], dtype=np.float64).reshape(len(rs), -1)
        return (smap.predict_proba(x) if smap is not None else 1 / (1 + np.exp(x[:, 0]))), -x[:, 0]

    ok = [r for r in rows if r["status"] == "ok"]
    skipped = [r for r in rows if r["status"] != "ok"]
    result: dict = {"weights": det.version, "threshold": thr, "perturbations": perts, "n_real_test": len(reals), "skipped": len(skipped),
                    "sets": {}, "fpr": {}, "host": platform.machine()}  # fmt: skip
    for set_name, splits in (("test", ("test",)), ("unseen", ("train", "test"))):
        table: dict = {}
        for pert in perts:
            r_real = [r for r in ok if r["perturbation"] == pert and r["label"] == "real"]
            r_ai = [r for r in ok if r["perturbation"] == pert and r["label"] == "ai" and r["split"] in splits]
            p_real, zs_real = scores(r_real)
            groups: dict[str, list[dict]] = defaultdict(list)
            for r in r_ai:
                groups[f"family:{family_of(r['generator'])}"].append(r)
                groups[f"generator:{r['generator']}"].append(r)
                groups["all"].append(r)
            cells = {}
            for g, rs in sorted(groups.items()):
                p_ai, zs_ai = scores(rs)
                y = np.r_[np.zeros(len(p_real)), np.ones(len(p_ai))]
                cells[g] = {"n": len(rs), "auc_map": auc(y, np.r_[p_real, p_ai]), "auc_zs": auc(y, np.r_[zs_real, zs_ai]),
                            "tpr": float((p_ai >= thr).mean())}  # fmt: skip
            fam = [cells[f"family:{f}"] for f in FAMILIES if f"family:{f}" in cells]
            cells["family_mean"] = {"auc_map": float(np.mean([c["auc_map"] for c in fam])), "auc_zs": float(np.mean([c["auc_zs"] for c in fam]))}
            table[pert] = cells
            if set_name == "test":
                result["fpr"][pert] = {"n": len(p_real), "fpr": float((p_real >= thr).mean())}
        result["sets"][set_name] = table
    if chain_rows:
        for c in chain_names():
            rs = [r for r in chain_rows if r["perturbation"] == f"chain:{c}" and r["status"] == "ok"]
            if rs:
                p, _ = scores(rs)
                result["fpr"][f"chain:{c}"] = {"n": len(rs), "fpr": float((p >= thr).mean())}
    result["seconds"] = round(time.perf_counter() - t0, 1)

    for set_name, table in result["sets"].items():
        print(f"\n{set_name} AI vs test reals ({len(reals)}): AUC map / zero-shot (-d0_mean)")
        keys = [k for k in table[perts[0]] if not k.startswith("generator:")] + sorted(k for k in table[perts[0]] if k.startswith("generator:"))
        print(f"{'group':34s} {'n':>4s} " + " ".join(f"{p:>15s}" for p in perts))
        for k in keys:
            n = table[perts[0]][k].get("n", "")
            print(f"{k:34s} {n!s:>4s} " + " ".join(f"{_fmt(table[p].get(k, {}).get('auc_map'))} / {_fmt(table[p].get(k, {}).get('auc_zs'))}".rjust(15) for p in perts))
    print(f"\nFPR at the detector's threshold {thr:.4f} on test reals:")
    for k, v in result["fpr"].items():
        print(f"  {k:40s} {v['fpr']:.3f} (n={v['n']})")
    print(f"({len(skipped)} rows not ok; {result['seconds']} s)")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
