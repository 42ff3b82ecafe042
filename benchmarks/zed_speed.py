"""Time the zero-shot detector per image on CPU (default: 2 threads, as on a 2-core machine).

For a 512 x 512 image, a 1024 x 768 image and a 12 MP image (4000 x 3000,
the target: at most 0.2 s), it reports the median of ``--repeats`` runs
after one warm-up of:

* ``analyze``: :meth:`detectors.zeroshot.ZedDetector.analyze` (crop choice,
  coder, features, map) on an already decoded image;
* ``crops``: the crop choice alone (:func:`detectors.zeroshot.select_zed_crops`);
* ``coder``: the coder and the features on the cut crops.

Decoding is not included (it is the loader's, shared by every detector).
``--photo FILE`` (repeatable) adds real photos, decoded once beforehand (e.g. a
12 MP camera JPEG of ``../shared/data``): the coder's cost depends a little on
the content, through how many values need the exact entropy window.

Usage::

    python benchmarks/zed_speed.py [--weights detectors/weights/zed_v1.json] [--threads 2] [--repeats 7]
                                   [--photo FILE ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import SIZES, median_time, test_image  # noqa: E402



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="Config JSON (default: the shipped one).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--photo", action="append", default=[], help="A real photo to time too (repeatable).")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)

    from detectors.zeroshot import ZedDetector, select_zed_crops, to_levels
    from forensics.io import LoadedImage, load_image

    det = ZedDetector(weights=args.weights, num_threads=args.threads)
    cfg = det.config
    rows = []
    cases = [(f"{w}x{h} synthetic", LoadedImage(path=None, data=b"", sha256="0" * 64, format="PNG", mode="RGB", width=w, height=h,
                                                n_frames=1, regions=(test_image(h, w, seed=h, quantize=True),), region_origins=((0, 0),)))
             for h, w in SIZES]  # fmt: skip
    cases += [(f"{Path(p).name}", load_image(p)) for p in args.photo]
    for label, img in cases:
        w, h = img.width, img.height
        boxes = select_zed_crops(img.regions, crop_size=cfg.crop_size, n_crops=cfg.n_crops, unit=cfg.unit)
        crops = np.stack([to_levels(img.regions[b.region][b.top : b.top + b.size, b.left : b.left + b.size]) for b in boxes])
        t_all = median_time(lambda img=img: det.analyze(img), args.repeats)
        t_crops = median_time(lambda img=img: select_zed_crops(img.regions, crop_size=cfg.crop_size, n_crops=cfg.n_crops, unit=cfg.unit),
                               args.repeats)  # fmt: skip
        t_coder = median_time(lambda crops=crops: det.features_of_crops(crops), args.repeats)
        rows.append({"image": label, "size": f"{w}x{h}", "megapixels": round(w * h / 1e6, 2), "analyze_s": round(t_all, 4), "crops_s": round(t_crops, 4),
                     "coder_s": round(t_coder, 4), "n_crops": len(boxes), "crop_size": boxes[0].size})  # fmt: skip
        print(f"{label} ({w}x{h}): analyze {t_all:.3f} s (crops {t_crops:.3f} s, coder {t_coder:.3f} s; {len(boxes)} crops of {boxes[0].size} px)")
    doc = {"version": det.version, "threads": args.threads, "repeats": args.repeats, "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "rows": rows}  # fmt: skip
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
