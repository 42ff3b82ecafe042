"""Leave-one-family-out evaluation of the CNN: train without a generator family, test on it.

The real test of a detector is a generator it never saw. For each family of
the development data (:data:`datasets.samples.FAMILIES`: ``sd``, ``gan``,
``other_ldm`` = Kandinsky/PixArt/LDM), this trains the CNN of a base config
(``configs/cnn_v3.json``) with that family's AI images left out of training
(``data.exclude_families``; the decoder-zoo reconstructions of the real
photos stay, since they are the project's own generator), fits the run's own
aggregation and 1%-FPR threshold on the calib split without that family
(the config's ``finalize``), and scores:

* every image of the held-out family, from all splits of both manifests
  (none was trained on), against the test-split real photos;
* under each perturbation (default ``none`` and ``jpeg75``), applied to both
  classes alike.

It reports AUC, TPR at the run's own threshold and the reals' FPR at it, per
family, and with ``--reference CNN_JSON`` the same rows for a model trained on
every family (on the test split only, since it trained on the rest).

Runs share the base config's data cache, are resumable (``--max-minutes``
per invocation; run the same command again to continue) and shorter than the
shipped run (``--steps``) so that the three fit on a CPU.

Usage::

    python benchmarks/leave_one_family_out.py --config configs/cnn_v3.json --steps 600 \\
        --reference detectors/weights/cnn_v3.json --json runs/lofo.json

Skips cleanly (exit 0) when the shared data is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from datasets.samples import FAMILIES, family_of, load_datasets
from detectors.cnn_training import load_train_config
from detectors.cnn_training.config import CNNTrainConfig, ScheduleConfig
from detectors.metrics import auc

_MANIFESTS = ("../shared/data/manifest.json", "../shared/data2/manifest.json")


def _scores(json_path: Path, samples: list, perturbations: list[str], *, threads: int) -> dict[str, np.ndarray]:
    """P(AI) of every sample under every perturbation (NaN where the image is too small or unreadable)."""
    import torch

    from detectors.cnn import CNNDetector
    from detectors.cnn_model import load_cnn
    from detectors.evaluation import perturb_bytes
    from forensics.io import load_image_bytes

    torch.set_num_threads(threads)
    model, cfg = load_cnn(json_path, device="cpu")
    det = CNNDetector(model=model, config=cfg, device="cpu")
    out = {p: np.full(len(samples), np.nan) for p in perturbations}
    for i, s in enumerate(samples):
        try:
            data = Path(s.path).read_bytes()
        except OSError as exc:
            print(f"skip {s.path}: {exc}", file=sys.stderr)
            continue
        for p in perturbations:
            try:
                r = det.analyze(load_image_bytes(perturb_bytes(data, p)))
            except (ValueError, OSError) as exc:
                print(f"skip {s.path} ({p}): {exc}", file=sys.stderr)
                continue
            if r.status == "ok" and r.score is not None:
                out[p][i] = r.score
    return out


def _row(y: np.ndarray, p: np.ndarray, thr: float) -> dict[str, float]:
    m = ~np.isnan(p)
    y, p = y[m], p[m]
    return {
        "n_real": int((y == 0).sum()),
        "n_ai": int((y == 1).sum()),
        "auc": round(float(auc(y, p)), 4),
        "tpr_at_threshold": round(float((p[y == 1] >= thr).mean()), 4),
        "fpr_at_threshold": round(float((p[y == 0] >= thr).mean()), 4),
    }


def _lofo_config(base: CNNTrainConfig, family: str, steps: int, out_root: str, threads: int) -> CNNTrainConfig:
    sched = ScheduleConfig(**{**base.schedule.__dict__, "steps": steps, "eval_every": max(steps // 3, 1),
                              "warmup_steps": min(base.schedule.warmup_steps, max(steps // 10, 1)), "num_threads": threads})  # fmt: skip
    return replace(base, name=f"lofo_{family}", out=f"{out_root}/lofo_{family}", export=None, schedule=sched,
                   data=replace(base.data, exclude_families=(family,)))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/cnn_v3.json")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--steps", type=int, default=600, help="training steps per held-out run")
    ap.add_argument("--max-minutes", type=float, default=None, help="per invocation; run again to continue")
    ap.add_argument("--perturb", default="none,jpeg75")
    ap.add_argument("--reference", help="config JSON of a CNN trained on every family (test-split rows)")
    ap.add_argument("--runs", default="runs", help="folder of the per-family runs")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and scoring")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    if not all(Path(m).is_file() for m in _MANIFESTS):
        print("shared data absent: nothing to do", file=sys.stderr)
        return 0
    from detectors.cnn_training import train

    base = load_train_config(args.config)
    perts = [p for p in args.perturb.split(",") if p]
    test_reals = [s for s in load_datasets(_MANIFESTS, split="test") if s.label == "real"]
    every_ai = [s for s in load_datasets(_MANIFESTS) if s.label == "ai"]
    table: dict[str, dict] = {"command": "python benchmarks/leave_one_family_out.py " + " ".join(argv or sys.argv[1:]), "held_out": {}}
    for fam in [f for f in args.families.split(",") if f]:
        if fam not in FAMILIES:
            raise SystemExit(f"unknown family {fam!r}; choose from {FAMILIES}")
        cfg = _lofo_config(base, fam, args.steps, args.runs, args.threads)
        resume = (Path(cfg.out) / "checkpoint").is_dir()
        t0 = time.perf_counter()
        res = train(cfg, resume=resume, max_minutes=args.max_minutes, log=lambda m, f=fam: print(f"[{f}] {m}", file=sys.stderr))
        if not res.finished:
            print(f"[{fam}] stopped at step {res.step}; run the same command again to continue", file=sys.stderr)
            return 3
        fin = json.loads((Path(cfg.out) / "finalize.json").read_text(encoding="utf-8"))
        best = Path(cfg.out) / "best" / "cnn.json"
        # the run's own chosen aggregation and threshold (fitted on calib without this family)
        doc = json.loads(best.read_text(encoding="utf-8"))
        doc.update({"aggregation": fin["aggregation"], "threshold": fin["threshold"]})
        final = best.with_name("final_cnn.json")  # beside the weights file it names
        final.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        held = [s for s in every_ai if family_of(s.generator) == fam]
        samples = test_reals + held
        y = np.array([0] * len(test_reals) + [1] * len(held))
        sc = _scores(final, samples, perts, threads=args.threads)
        table["held_out"][fam] = {"train_seconds": round(time.perf_counter() - t0, 1), "steps": res.step,
                                  "threshold": fin["threshold"], "aggregation": fin["aggregation"],
                                  **{p: _row(y, sc[p], fin["threshold"]) for p in perts}}  # fmt: skip
        print(f"[{fam}] held out: " + "; ".join(f"{p} AUC {table['held_out'][fam][p]['auc']:.3f}" for p in perts), file=sys.stderr)
    if args.reference:
        ref = json.loads(Path(args.reference).read_text(encoding="utf-8"))
        test = load_datasets(_MANIFESTS, split="test")
        sc = _scores(Path(args.reference), test, perts, threads=args.threads)
        y = np.array([1 if s.label == "ai" else 0 for s in test])
        fams = np.array([family_of(s.generator) or "real" for s in test])
        table["reference"] = {"config": args.reference, "threshold": ref["threshold"]}
        for fam in FAMILIES:
            m = (fams == "real") | (fams == fam)
            table["reference"][fam] = {p: _row(y[m], sc[p][m], float(ref["threshold"])) for p in perts}
    means = {p: round(float(np.mean([v[p]["auc"] for v in table["held_out"].values()])), 4) for p in perts} if table["held_out"] else {}
    table["mean_held_out_auc"] = means
    text = json.dumps(table, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
