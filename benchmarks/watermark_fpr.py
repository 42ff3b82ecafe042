"""Measure the dwtDct watermark bit-counter: false positives on real photos, detection on SD images.

Usage::

    python benchmarks/watermark_fpr.py [--data ../shared/data] [--crops 10] [--seed 0] [--json out.json]

What it does:

1. Real photos (``<data>/real``): counts matching bits of every known message
   (best of RGB/BGR order) on each whole photo and on ``--crops`` random
   512 px crops per photo (a crop shifts the block grid, giving more
   independent null samples). Prints the distribution of the count per message
   and the false-positive rate of the bands in
   :data:`detectors.provenance.watermark.BANDS`.
2. Stable Diffusion 1.x images (``<data>/ai/sd1``): detection rate of the
   ``StableDiffusionV1`` message on the files as they are and after JPEG
   re-encoding at quality 95 and 90.
3. When invisible-watermark is installed: embeds each message with the
   library's encoder into 768 px crops of real photos and reports what
   survives PNG, JPEG q95 and JPEG q90.

Skips cleanly (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.provenance.watermark import (  # noqa: E402
    BANDS,
    WATERMARK_MESSAGES,
    band_of,
    count_watermark_bits,
    load_imwatermark_maxdct,
    to_uint8,
)
from forensics.io import load_image  # noqa: E402

_ORDER = ("none", "moderate", "strong")


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _best_band(matches: dict[str, Any]) -> str:
    return max((band_of(m) for m in matches.values()), key=_ORDER.index)


def _summary(values: list[int]) -> str:
    a = np.asarray(values)
    return (
        f"n={a.size} min={a.min()} p50={np.median(a):.0f} p99={np.percentile(a, 99):.0f} "
        f"p99.9={np.percentile(a, 99.9):.0f} max={a.max()}"
    )


def measure_real(real_dir: Path, crops: int, seed: int) -> dict[str, Any]:
    """Null distribution of matched bits on real photos (whole and cropped)."""
    rng = np.random.default_rng(seed)
    whole: dict[str, list[int]] = {k: [] for k in WATERMARK_MESSAGES}
    crop: dict[str, list[int]] = {k: [] for k in WATERMARK_MESSAGES}
    band_whole = {b: 0 for b in _ORDER}
    band_crop = {b: 0 for b in _ORDER}
    worst: list[tuple[float, str, str, int]] = []
    files = sorted(p for p in real_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    for path in files:
        img = load_image(path)
        rgb = to_uint8(img.pixels)
        if img.is_whole and min(rgb.shape[:2]) >= 256:
            m = count_watermark_bits(rgb)
            for k, v in m.items():
                whole[k].append(v.matched)
                worst.append((v.matched / v.total, path.name, k, v.matched))
            band_whole[_best_band(m)] += 1
        h, w = rgb.shape[:2]
        for _ in range(crops):
            if h < 512 or w < 512:
                break
            y = int(rng.integers(0, h - 512 + 1))
            x = int(rng.integers(0, w - 512 + 1))
            m = count_watermark_bits(np.ascontiguousarray(rgb[y : y + 512, x : x + 512]))
            for k, v in m.items():
                crop[k].append(v.matched)
            band_crop[_best_band(m)] += 1
    worst.sort(reverse=True)
    return {
        "files": len(files),
        "whole": whole,
        "crop": crop,
        "band_whole": band_whole,
        "band_crop": band_crop,
        "top_whole": worst[:5],
    }


def measure_sd1(sd1_dir: Path) -> dict[str, Any]:
    """StableDiffusionV1 matched bits on SD 1.x PNGs as-is and after JPEG q95 / q90."""
    rows = []
    for path in sorted(sd1_dir.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        if min(rgb.shape[:2]) < 256:
            continue
        row = {"file": path.name}
        for label, img in (("png", rgb), ("q95", _jpeg(rgb, 95)), ("q90", _jpeg(rgb, 90))):
            m = count_watermark_bits(img)
            row[label] = m["StableDiffusionV1"].matched
            row[label + "_band"] = _best_band(m)
        rows.append(row)
    return {"rows": rows}


def measure_embedded(real_dir: Path, n_images: int, seed: int) -> dict[str, Any] | None:
    """Embed each message with invisible-watermark into real crops; what survives re-encoding."""
    maxdct = load_imwatermark_maxdct()
    if maxdct is None:
        return None
    rng = np.random.default_rng(seed)
    files = sorted(p for p in real_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    picks = [files[i] for i in rng.choice(len(files), size=min(n_images, len(files)), replace=False)]
    out: dict[str, dict[str, list[int]]] = {k: {"png": [], "q95": [], "q90": []} for k in WATERMARK_MESSAGES}
    for path in picks:
        rgb = to_uint8(load_image(path).pixels)
        h, w = rgb.shape[:2]
        if h < 768 or w < 768:
            continue
        y, x = (h - 768) // 2, (w - 768) // 2
        base = np.ascontiguousarray(rgb[y : y + 768, x : x + 768])
        for name, bits in WATERMARK_MESSAGES.items():
            enc = maxdct.EmbedMaxDct(list(bits.astype(int)), wmLen=int(bits.size))
            bgr = enc.encode(np.ascontiguousarray(base[:, :, ::-1]))
            marked = np.ascontiguousarray(np.clip(bgr, 0, 255).astype(np.uint8)[:, :, ::-1])
            for label, img in (("png", marked), ("q95", _jpeg(marked, 95)), ("q90", _jpeg(marked, 90))):
                out[name][label].append(count_watermark_bits(img)[name].matched)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print a report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--crops", type=int, default=10, help="random 512 px crops per real photo")
    ap.add_argument("--embed", type=int, default=12, help="real photos used for the embedding test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = ap.parse_args(argv)
    real_dir = args.data / "real"
    if not real_dir.is_dir():
        print(f"skipped: {real_dir} not found")
        return 0
    t0 = time.perf_counter()
    print(f"bands: {json.dumps(BANDS)}")
    real = measure_real(real_dir, args.crops, args.seed)
    print(f"\n== Real photos: {real['files']} files, {args.crops} random 512 px crops each")
    for k, bits in WATERMARK_MESSAGES.items():
        print(f"  {k:18s} ({bits.size} bits) whole: {_summary(real['whole'][k])}")
        print(f"  {'':18s} {'':{len(str(bits.size)) + 7}s} crops: {_summary(real['crop'][k])}")
    nw, nc = sum(real["band_whole"].values()), sum(real["band_crop"].values())
    for band in ("strong", "moderate"):
        hits_w = sum(real["band_whole"][b] for b in _ORDER[_ORDER.index(band) :])
        hits_c = sum(real["band_crop"][b] for b in _ORDER[_ORDER.index(band) :])
        print(f"  FPR at >= {band:8s}: whole {hits_w}/{nw}  crops {hits_c}/{nc}")
    print("  highest whole-photo ratios:", [(f, k, v) for _, f, k, v in real["top_whole"]])

    sd1_dir = args.data / "ai" / "sd1"
    sd1 = measure_sd1(sd1_dir) if sd1_dir.is_dir() else {"rows": []}
    rows = sd1["rows"]
    if rows:
        print(f"\n== SD 1.x images ({sd1_dir}): {len(rows)} PNGs >= 256 px")
        for label in ("png", "q95", "q90"):
            vals = [r[label] for r in rows]
            strong = sum(r[label + "_band"] == "strong" for r in rows)
            mod = sum(r[label + "_band"] in ("strong", "moderate") for r in rows)
            print(
                f"  {label}: strong {strong}/{len(rows)}  >=moderate {mod}/{len(rows)}  "
                f"StableDiffusionV1 bits: {_summary(vals)}"
            )
        hist = np.histogram([r["png"] for r in rows], bins=[0, 60, 80, 96, 112, 130, 137])
        labels = [f"{int(a)}-{int(b) - 1}" for a, b in zip(hist[1][:-1], hist[1][1:], strict=True)]
        print("  PNG bit histogram:", dict(zip(labels, hist[0].tolist(), strict=True)))
    emb = measure_embedded(real_dir, args.embed, args.seed)
    if emb is not None:
        print(f"\n== invisible-watermark encoder on 768 px crops of {args.embed} real photos")
        for k, d in emb.items():
            total = WATERMARK_MESSAGES[k].size
            parts = []
            for label in ("png", "q95", "q90"):
                vals = d[label]
                if not vals:
                    continue
                det = sum(band_of(_Match(k, v, total)) != "none" for v in vals)
                parts.append(
                    f"{label}: median {np.median(vals):.0f}/{total} min {min(vals)} detected {det}/{len(vals)}"
                )
            print(f"  {k:18s} " + " | ".join(parts))
    else:
        print("\n(invisible-watermark not installed: embedding test skipped)")
    print(f"\ntime: {time.perf_counter() - t0:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"real": real, "sd1": sd1, "embedded": emb}, indent=1, default=str))
    return 0


class _Match:
    """Minimal stand-in for WatermarkMatch used with :func:`band_of`."""

    def __init__(self, message: str, matched: int, total: int) -> None:
        self.message, self.matched, self.total = message, matched, total


if __name__ == "__main__":
    raise SystemExit(main())
