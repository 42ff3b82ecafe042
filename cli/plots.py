"""Small PNG charts for reports, drawn with Pillow (no plotting library, no fonts to fetch)."""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["histogram_png", "roc_png"]

_COLOURS = ["#1f4e9c", "#b8431f", "#2a7d3a", "#7a3d9b", "#9b7a1f", "#333333"]


def _axes(w: int, h: int, title: str) -> tuple[Image.Image, ImageDraw.ImageDraw, tuple[int, int, int, int]]:
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    box = (40, 22, w - 10, h - 28)
    d.rectangle(box, outline="black")
    d.text((40, 4), title[:80], fill="black")
    return im, d, box


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def roc_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str, size: int = 320) -> bytes:
    """ROC curves (FPR on x, TPR on y), one colour per name, with a legend.

    Args:
        curves: Name -> ``(fpr, tpr)`` arrays in ``[0, 1]``.
        title: Plain-text caption.
        size: Image side in pixels.
    """
    im, d, (x0, y0, x1, y1) = _axes(size, size, title)
    d.line([(x0, y1), (x1, y0)], fill="#bbbbbb")
    for i, (name, (fpr, tpr)) in enumerate(curves.items()):
        c = _COLOURS[i % len(_COLOURS)]
        pts = [(x0 + f * (x1 - x0), y1 - t * (y1 - y0)) for f, t in zip(fpr, tpr)]
        if len(pts) > 1:
            d.line(pts, fill=c, width=2)
        d.text((x0 + 6, y1 - 14 * (len(curves) - i)), name[:40], fill=c)
    d.text((x0, y1 + 6), "FPR", fill="black")
    d.text((4, y0), "TPR", fill="black")
    return _png(im)


def histogram_png(
    real: Sequence[float], ai: Sequence[float], *, threshold: float | None, title: str, bins: int = 20, width: int = 360, height: int = 200
) -> bytes:
    """Overlaid score histograms of reals (green) and AI images (red) on ``[0, 1]``, with the threshold."""
    im, d, (x0, y0, x1, y1) = _axes(width, height, title)
    edges = np.linspace(0, 1, bins + 1)
    hr = np.histogram(np.asarray(real, dtype=float), edges)[0]
    ha = np.histogram(np.asarray(ai, dtype=float), edges)[0]
    top = max(int(hr.max(initial=0)), int(ha.max(initial=0)), 1)
    bw = (x1 - x0) / bins
    for k in range(bins):
        for counts, colour, off in ((hr, "#2a7d3a", 0.0), (ha, "#b8431f", 0.5)):
            if counts[k]:
                left = x0 + k * bw + off * bw
                d.rectangle([left + 1, y1 - counts[k] / top * (y1 - y0), left + bw / 2, y1], fill=colour)
    if threshold is not None:
        tx = x0 + threshold * (x1 - x0)
        d.line([(tx, y0), (tx, y1)], fill="black", width=1)
    d.text((x0, y1 + 6), "0", fill="black")
    d.text((x1 - 8, y1 + 6), "1", fill="black")
    d.text((x0 + 40, y1 + 6), f"real n={len(real)} (green)  AI n={len(ai)} (red)", fill="black")
    return _png(im)
