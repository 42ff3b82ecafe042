"""``detect inspect FILE``: everything the tool knows about one image."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.crop_map import max_crop_text
from cli.render import safe_text

__all__ = ["inspect_file", "render_figure"]


def render_figure(
    image_rgb: np.ndarray,
    residual: np.ndarray,
    spectrum: np.ndarray,
    profile: np.ndarray,
    *,
    title: str,
    crop_map: np.ndarray | None = None,
    zed_map: np.ndarray | None = None,
) -> "Image.Image":  # noqa: F821
    """A PNG of panels: image, [CNN crop scores,] residual, log spectrum, radial profile.

    Args:
        image_rgb: ``uint8`` ``(h, w, 3)`` thumbnail.
        residual: ``uint8`` ``(h, w)`` display residual.
        spectrum: ``uint8`` ``(h, w)`` display log spectrum.
        profile: ``float`` ``(n,)`` radial profile (log10 power per ring).
        title: Caption drawn at the top (plain text).
        crop_map: ``uint8`` ``(h, w, 3)`` CNN crop heatmap (:func:`cli.crop_map.cnn_crop_map`),
            shown as the second panel; ``None`` leaves it out (4 panels).
        zed_map: ``uint8`` ``(h, w, 3)`` zero-shot coder's per-crop map (:func:`cli.crop_map.zed_crop_map`),
            shown after the CNN's; ``None`` leaves it out.

    Returns:
        A Pillow RGB image.
    """
    from PIL import Image, ImageDraw

    cell = 256
    pad = 24
    panels = [("image", Image.fromarray(image_rgb))]
    if crop_map is not None:
        panels.append(("CNN crop scores (red = leans AI)", Image.fromarray(crop_map)))
    if zed_map is not None:
        panels.append(("zed coding cost (red = predictable)", Image.fromarray(zed_map)))
    panels += [
        ("residual (Laplacian)", Image.fromarray(residual).convert("RGB")),
        ("log spectrum (cross-diff.)", Image.fromarray(spectrum).convert("RGB")),
    ]
    n = len(panels) + 1
    canvas = Image.new("RGB", (n * cell + (n + 1) * 8, cell + pad + 24), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 4), title[:150], fill="black")
    for i, (name, im) in enumerate(panels):
        im = im.copy()
        im.thumbnail((cell, cell))
        x = 8 + i * (cell + 8)
        canvas.paste(im, (x, pad))
        draw.text((x, pad + cell + 4), name, fill="black")
    # radial profile as a line plot
    x0, y0 = 8 + len(panels) * (cell + 8), pad
    draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], outline="black")
    p = np.asarray(profile, dtype=float)
    if p.size >= 2 and np.isfinite(p).all():
        lo, hi = float(p.min()), float(p.max())
        span = max(hi - lo, 1e-9)
        pts = [
            (x0 + 4 + i * (cell - 8) / (p.size - 1), y0 + cell - 4 - (v - lo) / span * (cell - 8)) for i, v in enumerate(p)
        ]
        draw.line(pts, fill="navy", width=2)
    draw.text((x0, pad + cell + 4), "radial profile (log power vs freq.)", fill="black")
    return canvas


def inspect_file(path: str, *, as_json: bool, figure: str | None, console: Console, err_console: Console) -> int:
    """Analyse one file and print everything known about it.

    Returns:
        Exit status: 0 not flagged, 1 likely_ai or ai_confirmed, 2 unreadable.
    """
    from detectors.pipeline import Pipeline
    from detectors.spectral import MIN_SIDE
    from forensics.io import ImageLoadError, load_image
    from forensics.jpeg import jpeg_info
    from forensics.spectrum import radial_profile
    from forensics.residuals import laplacian
    from forensics.spectrum import tiled_power_spectrum

    pipeline = Pipeline()
    analysis = pipeline.analyze_path(path, visuals=figure is not None)
    rec = analysis.record
    extra: dict[str, Any] = {}
    if rec["status"] == "ok":
        try:
            img = load_image(path)
            ji = jpeg_info(img.data)
            extra["jpeg"] = ji.to_dict() if ji else None
            extra["pillow_info_keys"] = sorted(str(k) for k in img.info)
        except ImageLoadError:
            pass
    if as_json:
        console.print_json(json.dumps({"record": rec, "extra": extra}, default=str))
    else:
        _print_human(rec, extra, console)
    if figure and rec["status"] == "ok" and analysis.visuals is not None and analysis.visuals.residual is not None:
        img = load_image(path)
        region = img.regions[0]
        tile = 256 if min(region.shape[:2]) >= 258 else 64
        prof = radial_profile(tiled_power_spectrum(laplacian(region), tile=tile, max_tiles=16), n_bins=16)
        v = analysis.visuals
        fig = render_figure(
            v.thumbnail, v.residual, v.spectrum, prof,
            title=f"{os.path.basename(path)}: {rec['label']} (P(AI)={rec['score']})",
            crop_map=_crop_map(rec, v.thumbnail), zed_map=_crop_map(rec, v.thumbnail, zed=True),
        )  # fmt: skip
        fig.save(figure, format="PNG")
        err_console.print(safe_text(f"figure written to {figure}"))
    elif figure:
        err_console.print(Text(f"no figure: image too small or unreadable (needs {MIN_SIDE}px)"))
    if rec["status"] == "error":
        return 2
    return 1 if rec["label"] in ("likely_ai", "ai_confirmed") else 0


def _crop_map(rec: dict[str, Any], thumbnail: np.ndarray | None, *, zed: bool = False) -> np.ndarray | None:
    """The CNN's (or, with ``zed``, the zero-shot coder's) per-crop heatmap on the thumbnail, or ``None`` without crops."""
    from cli.crop_map import cnn_crop_map, zed_crop_map

    f = rec["file"]
    for d in rec["detectors"]:
        if d["status"] == "ok" and (not zed or d["name"] == "zed"):
            try:
                draw = zed_crop_map if zed else cnn_crop_map
                m = draw(d["evidence"], thumbnail, image_size=(f["width"], f["height"]))
            except (TypeError, ValueError):
                continue
            if m is not None:
                return m
    return None


def _print_human(rec: dict[str, Any], extra: dict[str, Any], console: Console) -> None:
    f = rec["file"]
    console.print(safe_text(f["path"], "bold"))
    if rec["status"] == "error":
        console.print(safe_text(f"error: {rec['error']['message']}", "magenta"))
        return
    console.print(safe_text(f"{f['format']} {f['width']}x{f['height']} mode {f['mode']}, {f['bytes']:,} bytes, sha256 {f['sha256']}"))
    score = "-" if rec["score"] is None else f"{rec['score']:.3f}"
    console.print(Text(f"verdict: {rec['label']}   P(AI) = {score}   decided by: {rec['decided_by']}", style="bold"))
    for e in rec["explanations"]:
        console.print(safe_text(f"  - {e}", multiline=True))
    t = Table(title="detectors")
    for c in ("detector", "status", "score", "threshold", "claim", "summary"):
        t.add_column(c, overflow="fold")
    for d in rec["detectors"]:
        summ = d["evidence"].get("summary") or d.get("message") or (d["explanations"][0] if d["explanations"] else "")
        t.add_row(
            safe_text(d["name"]), safe_text(d["status"]),
            "-" if d["score"] is None else f"{d['score']:.3f}",
            "-" if d["threshold"] is None else f"{d['threshold']:.3f}",
            safe_text(f"{d['claim']} ({d['strength']})" if d["claim"] != "none" else "-"),
            safe_text(str(summ)[:300], multiline=True),
        )  # fmt: skip
    console.print(t)
    for d in rec["detectors"]:
        line = max_crop_text(d["evidence"]) if d["status"] == "ok" else None
        if line is not None:
            console.print(safe_text(f"{d['name']}: {line}"))
            for e in d["explanations"][1:]:  # the first is in the table; e.g. the local-evidence sentence
                console.print(safe_text(f"  - {e}", multiline=True))
    if rec["quality_flags"]:
        console.print(Text("quality flags:"))
        for q in rec["quality_flags"]:
            console.print(safe_text(f"  - {q['code']}: {q['message']}", multiline=True))
    jp = extra.get("jpeg")
    if jp:
        std = "standard IJG tables" if jp["standard_tables"] else f"non-standard tables (mean error {jp['mean_error']})"
        console.print(Text(f"JPEG: estimated quality {jp['quality']}, {std}"))
    for d in rec["detectors"]:
        if d["name"] == "spectral" and d["status"] == "ok":
            feats = d["evidence"]["features"]
            console.print(Text("spectral peak contrasts (log10): " + ", ".join(f"{k}={v:.2f}" for k, v in feats.items() if "_p" in k)))
