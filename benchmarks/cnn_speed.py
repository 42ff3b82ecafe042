"""Time the CNN detector per megapixel on CPU (default: 2 threads).

Two figures per backbone variant:

* ``net s/MP``: the network alone on a batch of ``n_crops`` crops, per megapixel
  of crop pixels (what the backbone costs);
* ``detector s/MP``: ``CNNDetector.analyze`` (crop selection + network +
  aggregation) per megapixel of *image*, for a 512 x 512 image (0.26 MP, the
  worst case: the crops cover a large part of it), a 1024 x 768 image and a
  12 MP image (4000 x 3000).

Usage::

    python benchmarks/cnn_speed.py                       # the candidate backbones, random init
    python benchmarks/cnn_speed.py --shipped             # the shipped detector
    python benchmarks/cnn_speed.py --backbone resnet10t --json out.json

Medians of ``--repeats`` runs after one warm-up. Random-init weights time the
same as trained ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import SIZES, median_time, test_image  # noqa: E402

#: (label, backbone, remove_stem_stride, remove_stem_pool)
CANDIDATES = [
    ("resnet10t", "resnet10t", False, False),
    ("resnet10t, no stem stride", "resnet10t", True, False),
    ("resnet18", "resnet18", False, False),
    ("resnet18, no stem stride", "resnet18", True, False),
    ("mobilenetv3_small_100", "mobilenetv3_small_100", False, False),
    ("efficientnet_b0", "efficientnet_b0", False, False),
    ("lcnet_050", "lcnet_050", False, False),
    ("tf_efficientnet_lite0", "tf_efficientnet_lite0", False, False),
    ("tf_efficientnet_lite0, no stem stride", "tf_efficientnet_lite0", True, False),
]


def bench(detector, *, repeats: int, images: dict) -> dict:
    import torch

    from forensics.io import LoadedImage

    cfg = detector.config
    x = torch.rand(cfg.n_crops, 3, cfg.crop_size, cfg.crop_size)

    def net() -> None:
        with torch.inference_mode():
            detector.model(x)

    t_net = median_time(net, repeats)
    row = {
        "backbone": cfg.backbone,
        "remove_stem_stride": cfg.remove_stem_stride,
        "params_M": round(sum(p.numel() for p in detector.model.parameters()) / 1e6, 3),
        "n_crops": cfg.n_crops,
        "crop_size": cfg.crop_size,
        "net_s_per_mp": round(t_net / (cfg.n_crops * cfg.crop_size**2 / 1e6), 4),
        "net_ms_per_image": round(1000 * t_net, 1),
    }
    for (h, w), img in images.items():
        li = LoadedImage(path=None, data=b"", sha256="0" * 64, format="PNG", mode="RGB", width=w, height=h, n_frames=1, regions=(img,))
        t = median_time(lambda li=li: detector.analyze(li), repeats)
        row[f"detector_s_per_mp_{w}x{h}"] = round(t / (h * w / 1e6), 4)
        row[f"detector_ms_{w}x{h}"] = round(1000 * t, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backbone", action="append", help="Only these candidate labels or backbone names.")
    ap.add_argument("--shipped", action="store_true", help="Time the shipped detectors/weights/cnn_v3.json.")
    ap.add_argument("--crop-size", type=int, default=128)
    ap.add_argument("--n-crops", type=int, default=8)
    ap.add_argument("--json", dest="json_path", help="Also write the rows as JSON.")
    args = ap.parse_args()

    import torch

    from detectors.cnn import CNNDetector
    from detectors.cnn_model import CNNModelConfig, build_model

    torch.set_num_threads(args.threads)
    images = {s: test_image(*s, seed=i) for i, s in enumerate(SIZES)}
    rows = []
    if args.shipped:
        rows.append({"label": "shipped", **bench(CNNDetector(), repeats=args.repeats, images=images)})
    else:
        for label, name, stride, pool in CANDIDATES:
            if args.backbone and label not in args.backbone and name not in args.backbone:
                continue
            cfg = CNNModelConfig(backbone=name, remove_stem_stride=stride, remove_stem_pool=pool, crop_size=args.crop_size, n_crops=args.n_crops)
            det = CNNDetector(model=build_model(cfg, seed=0), config=cfg)
            rows.append({"label": label, **bench(det, repeats=args.repeats, images=images)})
            print(json.dumps(rows[-1]), flush=True)
    env = {"threads": args.threads, "torch": torch.__version__, "machine": platform.machine(), "python": platform.python_version()}
    print(f"\n{env}")
    keys = ["net_s_per_mp"] + [f"detector_s_per_mp_{w}x{h}" for h, w in SIZES]
    print("| variant | params (M) | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for r in rows:
        print(f"| {r['label']} | {r['params_M']} | " + " | ".join(str(r[k]) for k in keys) + " |")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"env": env, "rows": rows}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
