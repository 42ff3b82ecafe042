#!/usr/bin/env python
"""The trace check: period-8 spectral peaks of real photos, SD images and the zoo's reconstructions.

Every latent-diffusion decoder that upsamples an 8x-downsampled latent with
nearest-neighbour steps and 3x3 convolutions leaves periodic correlations at
period 8 (and 4, 2), which show as peaks in the residual spectrum (Bammey,
"Synthbuster", IEEE OJSP 2023; Corvi et al., ICASSP 2023). The aligned fakes
of the decoder zoo must carry them for the pixel detectors to learn them:
f=8 reconstructions should show the peaks that SD outputs show and the real
photos lack.

For each image this measures the project's own features, exactly as the
spectral detector computes them (:func:`detectors.spectral.extract_spectral_features`
over :func:`forensics.peaks.periodic_peak_features`): the period-8 peak
contrast (log10 power over the median of its neighbourhood; 0: no peak,
1: tenfold) of the Laplacian residual on the frequency axes (``lap p8 axis``)
and off them (``lap p8 off``), and the strongest single period-8 peak of the
cross-difference residual (``xd p8 max``). Rows: the test split's real
photos, its SD 1.x/2.x images (``sd1``, ``sd2``), its other Stability-family
images (ComfyUI SDXL/SD3/Cascade/... examples), the PNG/TIFF real photos of
``data2`` (film scans and test photos: unlike the camera JPEGs they carry no
8x8 JPEG block grid, which also peaks at period 8), and each decoder's
reconstructions of both real sets, with PSNR, SSIM and the sharpness ratio
against the photo (:mod:`generators.metrics`, i.e. ``skimage.metrics``).

Every image is measured on its centre crop of at most ``--crop`` px a side at
native resolution (never resized): the reconstructions are made of that crop
(tiled as ``detect generate`` does) and quantised to 8 bits as
``detect generate`` writes them. A decoder whose weights are absent gets a row
that says so. Usage::

    python benchmarks/decoder_traces.py [--manifest ../shared/data/manifest.json] [--split test]
        [--png-manifest ../shared/data2/manifest.json] [--decoders f2,taef2,f8c4,f8c16] [--crop 512]
        [--threads 2] [--json OUT] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: (feature name in detectors.spectral.FEATURE_NAMES, column header)
FEATURES = (("lap_p8_axis", "lap p8 axis"), ("lap_p8_off", "lap p8 off"), ("xd_p8_max", "xd p8 max"))


@dataclass
class Row:
    """One table row: a set of images and the medians of their features."""

    name: str
    n: int = 0
    features: dict[str, list[float]] = field(default_factory=dict)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    def add(self, image: np.ndarray) -> None:
        from detectors.spectral import FEATURE_NAMES, extract_spectral_features

        vals = extract_spectral_features((image,)).values
        for key, _ in FEATURES:
            self.features.setdefault(key, []).append(float(vals[FEATURE_NAMES.index(key)]))
        self.n += 1

    def medians(self) -> dict[str, float | None]:
        med = {k: (statistics.median(v) if v else None) for k, v in self.features.items()}
        for k in ("psnr", "ssim", "sharpness"):
            vals = getattr(self, k)
            med[k] = statistics.median(vals) if vals else None
        return med


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side`` x ``side`` crop (or less, where the image is smaller); origin on the 8 px grid."""
    if side <= 0:
        return image
    h, w = image.shape[:2]
    y = max(0, (h - side) // 2) // 8 * 8
    x = max(0, (w - side) // 2) // 8 * 8
    return np.ascontiguousarray(image[y : y + side, x : x + side])


def _load(path: str, crop: int) -> np.ndarray:
    from forensics.io import DEFAULT_MAX_PIXELS, load_image

    return centre_crop(load_image(path, max_full_pixels=DEFAULT_MAX_PIXELS).regions[0], crop)


def _photo_sets(manifest: Path, *, split: str, png_manifest: Path | None, limit: int | None) -> list[tuple[str, list[str], bool]]:
    """``(row name, paths, reconstruct?)`` for each set of images measured."""
    from datasets.samples import load_dataset

    samples = [s for s in load_dataset(manifest) if s.split == split]
    reals = [s.path for s in samples if s.label == "real"]
    sd = [s.path for s in samples if s.label == "ai" and s.generator in ("sd1", "sd2")]
    other = [s.path for s in samples if s.label == "ai" and s.generator not in ("sd1", "sd2")]
    sets = [
        (f"real photos ({split} split; camera JPEGs)", reals, True),
        (f"SD 1.x/2.x images ({split} split: sd1, sd2)", sd, False),
        (f"other Stability-family images ({split} split: ComfyUI examples)", other, False),
    ]
    if png_manifest is not None and png_manifest.is_file():
        lossless = [s.path for s in load_dataset(png_manifest) if s.label == "real" and Path(s.path).suffix.lower() in (".png", ".tif", ".tiff")]
        sets.append(("real PNG/TIFF photos (data2: FFDNet test sets, CompVis examples; no JPEG grid)", lossless, True))
    return [(name, paths[:limit] if limit else paths, rec) for name, paths, rec in sets]


def run(
    manifest: Path,
    *,
    split: str,
    decoders: list[str],
    crop: int,
    device: str,
    png_manifest: Path | None = None,
    limit: int | None = None,
) -> list[Row]:
    from generators.metrics import psnr, sharpness_ratio, ssim
    from generators.zoo import load_decoder

    rows = []
    sources = []
    for name, paths, rec in _photo_sets(manifest, split=split, png_manifest=png_manifest, limit=limit):
        row = Row(name)
        t0 = time.perf_counter()
        images = [_load(p, crop) for p in paths]
        for im in images:
            row.add(im)
        row.seconds = time.perf_counter() - t0
        rows.append(row)
        if rec:
            sources.append((name.split(" (")[0], images))
        print(f"{name}: {row.n} images, {row.seconds:.0f} s", file=sys.stderr, flush=True)
    for dec_name in decoders:
        try:
            dec = load_decoder(dec_name, device=device)
        except (FileNotFoundError, ValueError) as exc:
            for src_name, _ in sources:
                rows.append(Row(f"{dec_name} reconstructions of the {src_name}", note=f"not measured: {exc}"))
            print(f"{dec_name}: not measured: {exc}", file=sys.stderr, flush=True)
            continue
        for src_name, images in sources:
            row = Row(f"{dec_name} reconstructions of the {src_name}", note=f"{dec.spec.description}; weights sha256 {dec.weights_sha256[:12]}")
            t0 = time.perf_counter()
            for px in images:
                rec = np.rint(dec.reconstruct(px).image * 255).astype(np.float32) / 255
                row.add(rec)
                row.psnr.append(psnr(px, rec))
                row.ssim.append(ssim(px, rec))
                row.sharpness.append(sharpness_ratio(rec, px))
            row.seconds = time.perf_counter() - t0
            rows.append(row)
            print(f"{dec_name} / {src_name}: {row.n} reconstructions, {row.seconds:.0f} s", file=sys.stderr, flush=True)
    return rows


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(rows: list[Row], *, crop: int) -> str:
    head = "| images | n | " + " | ".join(h for _, h in FEATURES) + " | PSNR dB | SSIM | sharpness |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        m = r.medians()
        if r.n == 0:
            lines.append(f"| {r.name} | 0 | " + " | ".join("-" for _ in FEATURES) + " | - | - | - |")
            continue
        cells = [_fmt(m[k], 3) for k, _ in FEATURES] + [_fmt(m["psnr"], 2), _fmt(m["ssim"], 3), _fmt(m["sharpness"], 3)]
        lines.append(f"| {r.name} | {r.n} | " + " | ".join(cells) + " |")
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    foot = [
        "",
        f"Medians per row. Peak contrasts: log10 power ratio of the period-8 grid frequencies to their neighbourhood, "
        f"as the spectral detector measures them; 0 means no peak. Each image is its centre crop of at most {crop} px a side "
        "at native resolution; reconstructions are of that crop, 8-bit quantised. PSNR/SSIM/sharpness: reconstruction vs photo "
        "(sharpness: high-frequency energy of the reconstruction over the photo's, above a quarter of the sampling rate; 1 = as sharp, below 1 = blurrier).",
    ]
    return "\n".join(lines + foot + ([""] + notes if notes else [])) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=REPO.parent / "shared" / "data" / "manifest.json")
    ap.add_argument("--split", default="test")
    ap.add_argument("--png-manifest", type=Path, default=REPO.parent / "shared" / "data2" / "manifest.json",
                    help="its PNG/TIFF real photos are a second real set, without a JPEG grid (skipped when absent)")
    ap.add_argument("--decoders", default="f2,taef2,f8c4,f8c16", help="comma-separated zoo names")
    ap.add_argument("--crop", type=int, default=512, help="centre-crop side in pixels (0: whole images)")
    ap.add_argument("--limit", type=int, help="at most this many images per set")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the per-image values here")
    ap.add_argument("--markdown", type=Path, help="write the table here")
    args = ap.parse_args()
    if not args.manifest.is_file():
        raise SystemExit(f"{args.manifest}: manifest not found")
    import torch

    torch.set_num_threads(args.threads)
    rows = run(args.manifest, split=args.split, decoders=[d for d in args.decoders.split(",") if d], crop=args.crop, device=args.device, png_manifest=args.png_manifest, limit=args.limit)
    table = markdown(rows, crop=args.crop)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        doc = {"crop": args.crop, "split": args.split, "rows": [{**asdict(r), "medians": r.medians()} for r in rows]}
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
