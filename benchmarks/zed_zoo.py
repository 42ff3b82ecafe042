"""The zero-shot detector on the bundled generator's own fakes: decoder-zoo reconstructions and samples.

For every test-split real photo of both shared manifests, the centred
``--crop`` px window (on the 8x8 grid) is scored by ``zed`` as it is, and after
a round trip through each decoder of the zoo (``generators.zoo.reconstruct``,
the posterior's mode); ``--samples N`` fresh samples of the bundled f=8
generator (``--size``, ``--steps``, seeded) are scored too. Every image is
scored from PNG bytes, so no format separates them. Prints AUC per decoder
(reconstructions against the same windows) and for the samples (against the
windows), and the fraction of each at or above the detector's own threshold.

Usage::

    python benchmarks/zed_zoo.py --crop 512 --samples 16 --json runs/zed_zoo.json

Skips cleanly (exit 0) when the shared data is absent.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

_MANIFESTS = ("../shared/data/manifest.json", "../shared/data2/manifest.json")


def _png(x: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--decoders", default="f8c4,f8c16,taef2,f2")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if not all(Path(m).is_file() for m in _MANIFESTS):
        print("shared data absent: nothing to do", file=sys.stderr)
        return 0
    import torch

    from datasets.samples import load_datasets
    from detectors import create_detector
    from detectors.metrics import auc
    from forensics.io import load_image, load_image_bytes
    from generators.training_utils import torch_generator
    from generators.zoo import load_decoder

    torch.set_num_threads(args.threads)
    det = create_detector("zed")
    thr = float(det.threshold)

    def score(data: bytes) -> float:
        r = det.analyze(load_image_bytes(data))
        return float(r.score) if r.status == "ok" and r.score is not None else float("nan")

    reals = [s for s in load_datasets(_MANIFESTS, split="test") if s.label == "real"]
    windows = []
    for s in reals:
        x = load_image(s.path).regions[0]
        c = min(args.crop, *x.shape[:2]) // 8 * 8
        top, left = (x.shape[0] - c) // 2 // 8 * 8, (x.shape[1] - c) // 2 // 8 * 8
        windows.append(np.ascontiguousarray(x[top : top + c, left : left + c]))
    real_scores = np.array([score(_png(w)) for w in windows])
    out: dict = {"command": "python benchmarks/zed_zoo.py " + " ".join(argv or sys.argv[1:]), "threshold": thr,
                 "n_real": len(windows), "real_fpr": float(np.nanmean(real_scores >= thr)), "rows": {}}  # fmt: skip

    def row(name: str, fake: np.ndarray) -> None:
        m = ~np.isnan(fake)
        y = np.r_[np.zeros(len(real_scores)), np.ones(int(m.sum()))]
        out["rows"][name] = {"n": int(m.sum()), "auc": round(float(auc(y, np.r_[real_scores, fake[m]])), 4),
                             "tpr_at_threshold": round(float((fake[m] >= thr).mean()), 4)}  # fmt: skip
        print(f"{name}: {out['rows'][name]}", file=sys.stderr)

    for name in [d for d in args.decoders.split(",") if d]:
        dec = load_decoder(name, device="cpu")
        row(f"reconstruct_{name}", np.array([score(_png(dec.reconstruct(w).image)) for w in windows]))
    if args.samples:
        from generators.models import load_models
        from generators.pipeline import LatentDiffusionPipeline

        pipe = LatentDiffusionPipeline(load_models(None, device="cpu"))
        imgs = [pipe.sample(1, size=args.size, steps=args.steps, generator=torch_generator(args.seed + i, "cpu")).images[0]
                for i in range(args.samples)]  # fmt: skip
        row("samples_f8c4", np.array([score(_png(x)) for x in imgs]))
    text = json.dumps(out, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
