"""Where the evidence is: the CNN's per-crop scores drawn on the image's thumbnail.

:func:`crop_heatmap` fills each crop's box on the thumbnail with a
semi-transparent colour from its P(AI) on a perceptual diverging map (blue =
leans real, grey = undecided, red = leans AI; K. Moreland, "Diverging Color
Maps for Scientific Visualization", ISVC 2009, the 33-stop cool-warm table)
and adds a colour bar below. :func:`cnn_crop_map` does it for a CNN result's
evidence (:func:`detectors.cnn.crop_scores` places the crops in the image;
the maths stays there), and :func:`max_crop_text` is the line that reports
the most AI-leaning crop beside the aggregate. The HTML card, the desk card
and ``detect inspect`` share them.

Geometry: the thumbnail is the whole (EXIF-oriented) image resized to fit,
never cropped (:func:`forensics.io.make_thumbnail`), so a point ``(y, x)`` of
the image is ``(y * th / H, x * tw / W)`` on a ``th`` x ``tw`` thumbnail of a
``W`` x ``H`` image. Pure numpy plus Pillow for the legend's text; no input is
modified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["COOL_WARM", "LEGEND_HEIGHT", "cnn_crop_map", "crop_heatmap", "diverging_colours", "max_crop_text"]

#: Moreland's cool-warm diverging map, 33 stops from P(AI) 0 (blue) through 0.5 (grey) to 1 (red), sRGB ``uint8``.
COOL_WARM = np.array(
    [
        (59, 76, 192), (68, 90, 204), (77, 104, 215), (87, 117, 225), (98, 130, 234), (108, 142, 241),
        (119, 154, 247), (130, 165, 251), (141, 176, 254), (152, 185, 255), (163, 194, 255), (174, 201, 253),
        (184, 208, 249), (194, 213, 244), (204, 217, 238), (213, 219, 230), (221, 221, 221), (229, 216, 209),
        (236, 211, 197), (241, 204, 185), (245, 196, 173), (247, 187, 160), (247, 177, 148), (247, 166, 135),
        (244, 154, 123), (241, 141, 111), (236, 127, 99), (229, 112, 88), (222, 96, 77), (213, 80, 66),
        (203, 62, 56), (192, 40, 47), (180, 4, 38),
    ],
    dtype=np.uint8,
)  # fmt: skip
#: Rows the colour bar and its labels add below the thumbnail.
LEGEND_HEIGHT = 26
_BAR = (4, 12)  # rows of the bar inside the legend strip
_MARGIN = 4


def diverging_colours(p: np.ndarray) -> np.ndarray:
    """Colours of probabilities on :data:`COOL_WARM` (linear between stops).

    Args:
        p: ``float`` array of any shape, values in ``[0, 1]``.

    Returns:
        ``uint8`` array of shape ``p.shape + (3,)``.

    Raises:
        ValueError: If a value is not finite or outside ``[0, 1]``.
    """
    p = np.asarray(p, dtype=np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        bad = p[~(np.isfinite(p) & (p >= 0) & (p <= 1))].ravel()[0]
        raise ValueError(f"probabilities must be finite and in [0, 1], got {bad}")
    x = np.linspace(0.0, 1.0, len(COOL_WARM))
    out = np.stack([np.interp(p, x, COOL_WARM[:, c].astype(np.float64)) for c in range(3)], axis=-1)
    return np.round(out).astype(np.uint8)


def _thumb_box(top: int, left: int, size: int, sy: float, sx: float, th: int, tw: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` on the thumbnail: every thumbnail pixel the crop touches, at least one."""
    y0 = min(th - 1, int(np.floor(top * sy + 1e-9)))
    x0 = min(tw - 1, int(np.floor(left * sx + 1e-9)))
    y1 = max(y0 + 1, min(th, int(np.ceil((top + size) * sy - 1e-9))))
    x1 = max(x0 + 1, min(tw, int(np.ceil((left + size) * sx - 1e-9))))
    return y0, y1, x0, x1


def _legend(width: int, ends: tuple[str, str] = ("real", "AI")) -> np.ndarray:
    """The colour bar strip: white, the bar from 0 to 1, ``ends[0]`` / ``0.5`` / ``ends[1]`` under it."""
    from PIL import Image, ImageDraw, ImageFont

    strip = np.full((LEGEND_HEIGHT, width, 3), 255, dtype=np.uint8)
    x0, x1 = min(_MARGIN, width // 4), width - min(_MARGIN, width // 4)
    if x1 - x0 >= 2:
        strip[_BAR[0] : _BAR[1], x0:x1] = diverging_colours(np.linspace(0.0, 1.0, x1 - x0))[None]
    im = Image.fromarray(strip)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    labels = [(ends[0], "left"), (ends[1], "right")] + ([("0.5", "centre")] if width >= 96 else [])
    spans = {t: draw.textbbox((0, 0), t, font=font) for t, _ in labels}
    if sum(b[2] - b[0] for b in spans.values()) + 8 <= width:
        for text, where in labels:
            tw = spans[text][2] - spans[text][0]
            x = x0 if where == "left" else x1 - tw if where == "right" else (width - tw) // 2
            draw.text((x, _BAR[1] + 1), text, fill=(60, 60, 60), font=font)
    return np.asarray(im, dtype=np.uint8)


def crop_heatmap(
    thumbnail: np.ndarray,
    boxes: Sequence[tuple[int, int, int]],
    probs: Sequence[float],
    *,
    image_size: tuple[int, int],
    alpha: float = 0.45,
    highlight: int | None = None,
    legend: tuple[str, str] = ("real", "AI"),
) -> np.ndarray:
    """The crops' boxes on the thumbnail, each filled with the colour of its P(AI), and a colour bar.

    Where boxes overlap, the higher P(AI) is shown, fill and outline (the
    strongest evidence stays visible). Each box gets a one-pixel outline in
    its colour; the ``highlight`` box (e.g. the most AI-leaning crop) a
    two-pixel one.

    Args:
        thumbnail: ``uint8`` RGB ``(th, tw, 3)``, the whole image resized
            (aspect kept, not cropped). Not modified.
        boxes: ``(top, left, size)`` of each crop in the whole image's pixels.
        probs: P(AI) of each crop, in ``[0, 1]``, as many as ``boxes``.
        image_size: ``(width, height)`` of the whole image, both >= 1.
        alpha: Opacity of the fill, in ``[0, 1]``.
        highlight: Index into ``boxes`` drawn with a thicker outline, or ``None``.
        legend: The words under the colour bar's ends (0 and 1).

    Returns:
        ``uint8`` RGB ``(th + LEGEND_HEIGHT, tw, 3)``: rows ``[0, th)`` are the
        thumbnail with the boxes, the rest the colour bar (blue = real, red = AI).

    Raises:
        ValueError: If the thumbnail is not a ``uint8`` RGB image, its aspect is
            not the image's, a box lies outside the image, the lengths differ, or
            an option is out of range (the message names the value).
    """
    t = np.asarray(thumbnail)
    if t.dtype != np.uint8 or t.ndim != 3 or t.shape[2] != 3 or min(t.shape[:2]) < 1:
        raise ValueError(f"thumbnail must be uint8 (h, w, 3), got dtype {t.dtype} shape {t.shape}")
    width, height = (int(v) for v in image_size)
    if width < 1 or height < 1:
        raise ValueError(f"image_size must be (width, height) >= 1, got {image_size}")
    th, tw = t.shape[:2]
    s = max(th, tw) / max(width, height)
    if abs(tw - width * s) > 1 or abs(th - height * s) > 1:
        raise ValueError(f"thumbnail {tw}x{th} is not the {width}x{height} image resized (aspect differs)")
    if len(boxes) != len(probs):
        raise ValueError(f"boxes and probs must have the same length, got {len(boxes)} and {len(probs)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if highlight is not None and not 0 <= highlight < len(boxes):
        raise ValueError(f"highlight must index boxes [0, {len(boxes)}), got {highlight}")
    for b in boxes:
        top, left, size = (int(v) for v in b)
        if size < 1 or top < 0 or left < 0 or top + size > height or left + size > width:
            raise ValueError(f"box (top, left, size) {tuple(b)} is not inside the {width}x{height} image")
    colours = diverging_colours(np.asarray(probs, dtype=np.float64).reshape(-1)) if len(probs) else np.zeros((0, 3), np.uint8)

    sy, sx = th / height, tw / width
    rects = [_thumb_box(int(b[0]), int(b[1]), int(b[2]), sy, sx, th, tw) for b in boxes]
    order = np.argsort(np.asarray(probs, dtype=np.float64), kind="stable")  # higher P painted last, on top
    owner = np.full((th, tw), -1, dtype=np.int64)  # the box shown at each pixel: the highest P covering it
    for i in order:
        y0, y1, x0, x1 = rects[i]
        owner[y0:y1, x0:x1] = i
    covered = owner >= 0
    out = t.astype(np.float64)
    if len(boxes):
        out[covered] = (1.0 - alpha) * out[covered] + alpha * colours[owner[covered]]
    out = np.round(out).astype(np.uint8)
    edge = np.zeros((th, tw), dtype=bool)
    for i in order:  # each box's outline, where that box is the one shown
        y0, y1, x0, x1 = rects[i]
        w = 2 if i == highlight else 1
        edge[:] = False
        edge[y0 : min(y1, y0 + w), x0:x1] = True
        edge[max(y0, y1 - w) : y1, x0:x1] = True
        edge[y0:y1, x0 : min(x1, x0 + w)] = True
        edge[y0:y1, max(x0, x1 - w) : x1] = True
        out[edge & (owner == i)] = colours[i]
    return np.concatenate([out, _legend(tw, legend)], axis=0)


def cnn_crop_map(evidence: Mapping[str, Any], thumbnail: np.ndarray | None, *, image_size: tuple[int, int]) -> np.ndarray | None:
    """:func:`crop_heatmap` of a CNN result's evidence, or ``None`` when there is nothing to draw.

    Args:
        evidence: ``DetectorResult.evidence`` of the CNN (or its JSON form).
        thumbnail: The image's ``uint8`` RGB thumbnail (``Visuals.thumbnail``), or ``None``.
        image_size: ``(width, height)`` of the whole image.

    Returns:
        The heatmap, or ``None`` without a thumbnail or without crops placed in
        the image (see :func:`detectors.cnn.crop_scores`).

    Raises:
        ValueError: As :func:`crop_heatmap` (e.g. a thumbnail of another image).
    """
    from detectors.cnn import crop_scores

    crops = crop_scores(evidence)
    if thumbnail is None or not crops:
        return None
    hi = evidence.get("max_crop_index")
    hi = hi if isinstance(hi, int) and not isinstance(hi, bool) and 0 <= hi < len(crops) else None
    return crop_heatmap(
        thumbnail, [(c.top, c.left, c.size) for c in crops], [c.p for c in crops], image_size=image_size, highlight=hi
    )


def zed_crop_map(evidence: Mapping[str, Any], thumbnail: np.ndarray | None, *, image_size: tuple[int, int]) -> np.ndarray | None:
    """:func:`crop_heatmap` of a ``zed`` result's per-crop coding surprise, or ``None`` when there is nothing to draw.

    Red: the crop is more predictable than the coder of real photos expects
    (:func:`detectors.zeroshot.crop_surprise`); blue: it costs more. Arguments,
    return value and errors as :func:`cnn_crop_map`.
    """
    from detectors.zeroshot import crop_surprise

    crops = crop_surprise(dict(evidence))
    if thumbnail is None or not crops:
        return None
    return crop_heatmap(thumbnail, [(c.top, c.left, c.size) for c in crops], [c.p for c in crops], image_size=image_size,
                        legend=("costly", "predictable"))  # fmt: skip


def _fmt_p(p: float) -> str:
    """As the CNN's explanations write P(AI): enough digits to tell it from 0 or 1 (thresholds can be 0.99996)."""
    if 0.001 <= p <= 0.999:
        return f"{p:.3f}"
    return "> 0.999999" if p >= 0.9999995 else "< 0.000001" if p < 5e-7 else f"{p:.6f}"


def max_crop_text(evidence: Mapping[str, Any]) -> str | None:
    """The most AI-leaning crop reported beside the aggregate, as one line; ``None`` when the evidence has none.

    Example: ``Most AI-leaning crop: 3 of 8, P(AI) 0.981 (logit +3.93), at x 160-256, y 32-128 px;
    the score is the mean of all 8 crops.``
    """
    i, z, p = evidence.get("max_crop_index"), evidence.get("max_crop_logit"), evidence.get("max_crop_p")
    n, size = evidence.get("n_crops"), evidence.get("crop_size")
    ints = [v for v in (i, n, size) if isinstance(v, int) and not isinstance(v, bool)]
    nums = [v for v in (z, p) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)]
    if len(ints) != 3 or len(nums) != 2 or not 0 <= i < n or not 0.0 <= p <= 1.0:
        return None
    where = ""
    places, crops = evidence.get("crops_in_image"), evidence.get("crops")
    for rows, fmt in ((places, "at x {l}-{r}, y {t}-{b} px"), (crops, "at x {l}-{r}, y {t}-{b} px of region {g}")):
        if isinstance(rows, list) and len(rows) == n and isinstance(rows[i], list) and len(rows[i]) in (2, 3):
            *g, top, left = rows[i]
            if all(isinstance(v, int) and not isinstance(v, bool) for v in (*g, top, left)):
                where = ", " + fmt.format(l=left, r=left + size, t=top, b=top + size, g=g[0] if g else "")
                break
    how = str(evidence.get("aggregation", "aggregate")).replace("_", " ")
    return f"Most AI-leaning crop: {i + 1} of {n}, P(AI) {_fmt_p(float(p))} (logit {float(z):+.2f}){where}; the score is the {how} of all {n} crops."
