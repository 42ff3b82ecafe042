"""Finalising a CNN run: choose the crop aggregation and the threshold on a held-out split, then export.

The threshold is set at a target false-positive rate on the split's real
photos (a wrong "AI" on a real photo is the worst outcome), with the
project's one boundary rule, :func:`detectors.metrics.threshold_at_fpr`.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detectors.cnn import AGGREGATIONS, aggregate_logits
from detectors.cnn_training.config import CNNTrainConfig

__all__ = ["finalize"]


def finalize(config: CNNTrainConfig, best_json: Path, *, log: Callable[[str], None] = lambda s: None, train_seconds: float | None = None) -> str | None:
    """Choose the aggregation and threshold on a held-out split, then export.

    For every image of ``finalize.split`` (default ``calib``) under each
    perturbation, the crop logits are computed once; each aggregation in
    ``finalize.aggregations`` is scored by AUC, and the first one listed is kept
    unless another beats it by more than ``finalize.min_gain`` (default 0.02);
    the threshold is :func:`detectors.metrics.threshold_at_fpr` of the split's
    real scores at ``finalize.target_fpr`` (flagged at ``p >= threshold``).
    Results go to ``OUT/finalize.json`` and into the exported config's ``meta``.

    Returns:
        The exported config path, or ``None`` when ``config.export`` is unset.
    """
    from datasets.samples import load_datasets
    from detectors.cnn import CNNDetector
    from detectors.cnn_model import load_cnn, save_cnn
    from detectors.evaluation import perturb_bytes
    from detectors.metrics import auc, threshold_at_fpr
    from forensics.io import load_image_bytes

    fin = dict(config.finalize or {})
    model, mcfg = load_cnn(best_json, device=config.schedule.device)
    doc: dict[str, Any] = {"best": str(best_json), "step": mcfg.meta.get("step")}
    if fin and config.data.kind == "manifest":
        split = fin.get("split", "calib")
        perts = list(fin.get("perturbations", ["none", "jpeg95", "jpeg85", "jpeg75", "resize0.75"]))
        aggs = [a for a in fin.get("aggregations", list(AGGREGATIONS)) if a in AGGREGATIONS]
        target = float(fin.get("target_fpr", 0.01))
        samples = load_datasets(config.data.manifest, split=split, exclude_families=config.data.exclude_families)
        if config.data.split == split:
            raise ValueError(f"finalize.split {split!r} is the training split; use a held-out one")
        det = CNNDetector(model=model, config=mcfg, device=config.schedule.device)
        labels, crop_z = [], []
        for n, s in enumerate(samples, start=1):
            data = Path(s.path).read_bytes()
            for pert in perts:
                img = load_image_bytes(perturb_bytes(data, pert))
                if min(img.width, img.height) < 64:
                    continue
                crop_z.append(det.crop_logits(img)[0])
                labels.append(1 if s.label == "ai" else 0)
            if n % 10 == 0:
                log(f"finalize: {n}/{len(samples)} {split} images")
        y = np.array(labels)
        table = {}
        for a in aggs:
            zz = np.array([aggregate_logits(v, a) for v in crop_z])
            table[a] = round(float(auc(y, zz)), 4)
        # The first listed aggregation is the default; another replaces it only if its AUC is
        # higher by more than ``min_gain`` (differences below that are noise on a small split).
        gain = float(fin.get("min_gain", 0.02))
        best_agg = aggs[0]
        for a in aggs[1:]:
            if table[a] > table[best_agg] + (gain if best_agg == aggs[0] else 0.0):
                best_agg = a
        zz = np.array([aggregate_logits(v, best_agg) for v in crop_z])
        p = 1 / (1 + np.exp(-np.clip(zz, -50, 50)))
        thr = min(1.0, threshold_at_fpr(p[y == 0], target_fpr=target))  # flagged at p >= thr; stored in [0, 1]
        tpr = float((p[y == 1] >= thr).mean()) if (y == 1).any() else float("nan")
        fpr = float((p[y == 0] >= thr).mean())
        doc.update({"split": split, "perturbations": perts, "n_real": int((y == 0).sum()), "n_ai": int((y == 1).sum()),
                    "aggregation_auc": table, "aggregation": best_agg, "threshold": round(thr, 6),
                    "target_fpr": target, "fpr_at_threshold": round(fpr, 4), "tpr_at_threshold": round(tpr, 4)})  # fmt: skip
        log(f"finalize: aggregation AUCs {table}; chose {best_agg}; threshold {thr:.4f} (FPR {fpr:.3f}, TPR {tpr:.3f})")
        mcfg = mcfg.with_(aggregation=best_agg, threshold=min(1.0, max(0.0, round(thr, 6))))
    Path(config.out, "finalize.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if not config.export:
        return None
    import torch

    meta = {
        **mcfg.meta,
        "finalize": doc,
        "hardware": {"device": str(next(model.parameters()).device), "cuda": torch.cuda.is_available(),
                     "machine": platform.machine(), "cpu_count": os.cpu_count(), "threads": config.schedule.num_threads},
        "train_seconds": None if train_seconds is None else round(float(train_seconds), 1),
        "torch": torch.__version__,
    }  # fmt: skip
    export = Path(config.export)
    written = save_cnn(model, mcfg.with_(version=config.name.replace("_", "-"), meta=meta, weights_file=export.stem + ".safetensors"), export)
    log(f"exported {export} and {export.parent / str(written.weights_file)} (sha256 {written.weights_sha256})")
    return str(export)
