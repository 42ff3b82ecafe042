"""The evidence card of one image: the view-model the HTML report and the desk draw.

:func:`card_view` turns one :class:`~detectors.record.ImageRecord` (and its
:class:`~detectors.record.Visuals`) into a :class:`CardView`: display text for
every field (already sanitised, to be shown as text, never as markup), small
``data:`` URIs of the images, and the entry the report's script sorts and
filters by. ``detect scan --html`` renders one card per record from it
(:class:`cli.reports.HtmlWriter`); ``detect serve`` sends the same card to the
page as JSON (:meth:`Card.to_dict`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cli.crop_map import cnn_crop_map, max_crop_text, zed_crop_map
from cli.render import crop_center, fit_long_side, jpeg_data_uri, png_data_uri
from cli.reports.formatting import sanitize
from detectors.base import DetectorResult
from detectors.record import LABELS, ImageRecord, Visuals

__all__ = [
    "CROP_MAP_CAPTION",
    "LABEL_TEXT",
    "MAX_EVIDENCE_THUMBNAIL",
    "THUMBNAIL_SIDE",
    "Bar",
    "BitsRow",
    "Card",
    "CardView",
    "DetectorRow",
    "Figure",
    "IndexEntry",
    "Notice",
    "ProvenancePanel",
    "card_view",
    "thumbnail_data_uri",
]

#: Display text of each label.
LABEL_TEXT: dict[str, str] = {
    "ai_confirmed": "AI confirmed",
    "likely_ai": "Likely AI",
    "inconclusive": "Inconclusive",
    "likely_real": "Likely real",
    "error": "Error",
}
#: Long side, in pixels, of the card's thumbnail.
THUMBNAIL_SIDE = 256
#: Caption (and alt text) of the CNN's per-crop heatmap.
CROP_MAP_CAPTION = "CNN crop scores (red = leans AI)"
#: Caption of the zero-shot coder's per-crop map.
ZED_MAP_CAPTION = "Zero-shot coding cost per crop (red = more predictable than real photos' coder expects; a feature, not the score)"
#: Largest embedded provenance thumbnail (characters of the data URI).
MAX_EVIDENCE_THUMBNAIL = 90 * 1024
_EVIDENCE_THUMB_RE = re.compile(r"data:image/(png|jpeg|webp);base64,[A-Za-z0-9+/=]+")
_MAX_EVIDENCE_STRING = 2000
_MAX_EVIDENCE_JSON = 20000
_MAX_RAW_PARAMS = 8000
_GENERATOR_KEYS = ("prompt", "negative_prompt", "sampler", "steps", "cfg_scale", "seed", "model", "model_hash", "size")
_C2PA_KEYS = ("state", "validation_state", "signer", "issuer", "claim_generator", "actions", "digital_source_type")

Pairs = tuple[tuple[str, str], ...]


# --------------------------------------------------------------------------- #
# The view-model
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Bar:
    """Geometry of an SVG score bar, in percent of its width.

    Attributes:
        w: Filled width, e.g. ``"83.0"``.
        markers: Threshold marks.
    """

    w: str
    markers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figure:
    """One image on the card; its ``data:`` URI is ``CardView.images[key]``.

    Attributes:
        key: Image key (``t`` thumbnail, ``c`` CNN crop map, ``r`` residual, ``s`` spectrum).
        kind: ``thumbnail``, ``crops``, ``residual`` or ``spectrum``.
        caption: Caption text.
        w: Display width in pixels.
        h: Display height in pixels.
    """

    key: str
    kind: str
    caption: str
    w: int
    h: int


@dataclass(frozen=True)
class DetectorRow:
    """One detector's line in the card's table (all display text)."""

    name: str
    version: str
    status: str
    score: str
    threshold: str
    over: bool
    bar: Bar | None
    claim: str
    strength: str
    message: str | None
    explanations: tuple[str, ...]
    time: str
    evidence: str


@dataclass(frozen=True)
class BitsRow:
    """One watermark message's bit match."""

    msg: str
    matched: str
    total: str
    order: str
    band: str


@dataclass(frozen=True)
class ProvenancePanel:
    """What one provenance detector found (C2PA, watermark bits, generator parameters).

    Attributes:
        thumb_key: Key in ``CardView.images`` of the file's embedded thumbnail, or ``None``.
    """

    name: str
    claim: str
    strength: str
    summary: str | None
    c2pa: Pairs
    bits: tuple[BitsRow, ...]
    generator: Pairs
    raw: str | None
    thumb_key: str | None


@dataclass(frozen=True)
class Notice:
    """A coded message: a quality flag or the file's error."""

    code: str
    message: str


@dataclass(frozen=True)
class Card:
    """The display model of one image's card; every string is display text.

    Attributes:
        i: Position of the card in its report (anchors ``img-<i>``).
        path: The file's path.
        label: The label key (for CSS classes).
        label_text: The label as shown.
        score: P(AI) as shown.
        bar: The overall score bar, marked at the calibration's thresholds.
        decided_by: What set the label.
        size: File size as shown.
        dims: ``width×height``.
        figures: Images to show.
        detectors: One row per detector.
        provenance: Provenance panels.
        flags: Quality flags.
        explanations: Plain-language sentences.
        error: Why the file could not be analysed, or ``None``.
        meta: File metadata ``(name, text)`` pairs.
    """

    i: int
    path: str
    label: str
    label_text: str
    score: str
    bar: Bar | None
    decided_by: str
    size: str
    dims: str
    figures: tuple[Figure, ...]
    detectors: tuple[DetectorRow, ...]
    provenance: tuple[ProvenancePanel, ...]
    flags: tuple[Notice, ...]
    explanations: tuple[str, ...]
    error: Notice | None
    meta: Pairs

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (tuples stay tuples; :func:`~cli.reports.sanitize` makes them lists)."""
        return asdict(self)


@dataclass(frozen=True)
class IndexEntry:
    """What the report's script sorts and filters a card by.

    Attributes:
        path: The file's path.
        label: Label key.
        rank: Position of the label in :data:`~detectors.record.LABELS`.
        score: P(AI), or ``None``.
        bytes: File size, or ``None``.
    """

    path: str
    label: str
    rank: int
    score: float | None
    bytes: float | None

    def to_json(self) -> dict[str, Any]:
        """The compact form in the report's data blob."""
        return {"p": self.path, "l": self.label, "r": self.rank, "s": self.score, "b": self.bytes}


@dataclass(frozen=True)
class CardView:
    """One card, its images and its index entry.

    Attributes:
        card: The display model.
        images: ``data:`` URI by the ``data-k`` key of each image on the card.
        entry: Sort and filter keys.
    """

    card: Card
    images: Mapping[str, str]
    entry: IndexEntry


# --------------------------------------------------------------------------- #
# Display text
# --------------------------------------------------------------------------- #


def num(v: Any) -> float | None:
    """``v`` as a finite float, or ``None`` (booleans and non-numbers too)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def fmt_score(v: Any) -> str:
    """A score to three decimals, or an em dash."""
    x = num(v)
    return "—" if x is None else f"{x:.3f}"


def fmt_bytes(v: Any) -> str:
    """A size in B, KB, MB or GB."""
    x = num(v)
    if x is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(x) < 1024 or unit == "GB":
            return f"{int(x)} B" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GB"  # pragma: no cover


def fmt_value(v: Any) -> str:
    """A short human-readable form of a config or metadata value."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x) for x in v) if v else "—"
    if isinstance(v, Mapping):
        return json.dumps(v, ensure_ascii=False, allow_nan=False)
    return str(v)


def _bar(score: Any, markers: Iterable[Any] = ()) -> Bar | None:
    """The score bar, or ``None`` without a score."""
    s = num(score)
    if s is None:
        return None
    s = min(max(s, 0.0), 1.0)
    ms = [min(max(m, 0.0), 1.0) for m in (num(x) for x in markers) if m is not None]
    return Bar(f"{100 * s:.1f}", tuple(f"{100 * m:.1f}" for m in ms))


def _truncate_strings(obj: Any, limit: int) -> Any:
    if isinstance(obj, str):
        if len(obj) > limit:
            return obj[:limit] + f"... [{len(obj) - limit} more characters]"
        return obj
    if isinstance(obj, dict):
        return {k: _truncate_strings(v, limit) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_truncate_strings(v, limit) for v in obj]
    return obj


def _evidence_json(evidence: Mapping[str, Any]) -> str:
    ev = dict(evidence)
    uri = ev.get("thumbnail_data_uri")
    if isinstance(uri, str):
        ev["thumbnail_data_uri"] = f"[embedded image data, {len(uri)} characters]"
    text = json.dumps(_truncate_strings(ev, _MAX_EVIDENCE_STRING), ensure_ascii=False, indent=2, allow_nan=False)
    if len(text) > _MAX_EVIDENCE_JSON:
        text = text[:_MAX_EVIDENCE_JSON] + f"\n... [{len(text) - _MAX_EVIDENCE_JSON} more characters]"
    return text


def _valid_evidence_thumbnail(v: Any) -> str | None:
    if isinstance(v, str) and len(v) <= MAX_EVIDENCE_THUMBNAIL and _EVIDENCE_THUMB_RE.fullmatch(v):
        return v
    return None


# Evidence is free-form per detector, so the provenance panel reads it defensively.
def _pairs(sources: Iterable[Any], keys: Iterable[str]) -> Pairs:
    """``(key, text)`` for the first source mapping holding each key."""
    out: list[tuple[str, str]] = []
    srcs = [s for s in sources if isinstance(s, dict)]
    for k in keys:
        for s in srcs:
            if k in s and s[k] not in (None, "", [], {}):
                v = s[k]
                if isinstance(v, list):
                    text = "\n".join(
                        json.dumps(x, ensure_ascii=False) if isinstance(x, (dict, list)) else str(x) for x in v
                    )
                else:
                    text = fmt_value(v)
                out.append((k, text))
                break
    return tuple(out)


def _provenance(det: DetectorResult, thumb_key: str | None) -> ProvenancePanel | None:
    """The provenance panel of one detector result, or ``None`` when it has nothing to show."""
    ev = det.evidence
    summary = ev.get("summary")
    summary = summary if isinstance(summary, str) and summary.strip() else None
    claim = det.claim or "none"
    if claim == "none" and summary is None:
        return None
    c2pa = ev.get("c2pa")
    c2pa_pairs = _pairs([c2pa] if isinstance(c2pa, dict) else [ev], _C2PA_KEYS)
    bits_rows = []
    bits = ev.get("bits")
    if isinstance(bits, dict):
        for msg, b in bits.items():
            if isinstance(b, dict):
                bits_rows.append(
                    BitsRow(
                        msg=str(msg),
                        matched=fmt_value(b.get("matched")),
                        total=fmt_value(b.get("total")),
                        order=fmt_value(b.get("order")),
                        band=fmt_value(b.get("band")),
                    )
                )
    gen_sources = [ev.get("generator"), ev.get("parameters"), ev]
    gen_pairs = _pairs(gen_sources, _GENERATOR_KEYS)
    raw = next((s["raw"] for s in gen_sources if isinstance(s, dict) and isinstance(s.get("raw"), str)), None)
    if isinstance(raw, str) and len(raw) > _MAX_RAW_PARAMS:
        raw = raw[:_MAX_RAW_PARAMS] + f"... [{len(raw) - _MAX_RAW_PARAMS} more characters]"
    return ProvenancePanel(
        name=str(det.name),
        claim=str(claim),
        strength=str(det.strength or "none"),
        summary=summary,
        c2pa=c2pa_pairs,
        bits=tuple(bits_rows),
        generator=gen_pairs,
        raw=raw,
        thumb_key=thumb_key,
    )


def _detector_row(det: DetectorResult) -> DetectorRow:
    score, thr = num(det.score), num(det.threshold)
    explanations = tuple(str(e) for e in det.explanations)
    line = max_crop_text(det.evidence) if det.status == "ok" else None
    if line is not None:
        explanations += (line,)
    return DetectorRow(
        name=str(det.name),
        version=fmt_value(det.version),
        status=str(det.status),
        score=fmt_score(score),
        threshold=fmt_score(thr),
        over=score is not None and thr is not None and score >= thr,
        bar=_bar(score, [thr]),
        claim=str(det.claim or "none"),
        strength=str(det.strength or "none"),
        message=det.message if isinstance(det.message, str) else None,
        explanations=explanations,
        time=fmt_value(num(det.time_s)),
        evidence=_evidence_json(det.evidence),
    )


# --------------------------------------------------------------------------- #
# Images
# --------------------------------------------------------------------------- #


def thumbnail_data_uri(arr: np.ndarray) -> str:
    """The card's thumbnail: a JPEG ``data:`` URI, long side at most :data:`THUMBNAIL_SIDE`.

    Args:
        arr: ``uint8`` RGB ``(h, w, 3)`` or grey ``(h, w)`` array.

    Raises:
        TypeError, ValueError: If ``arr`` is not a displayable ``uint8`` image.
    """
    return jpeg_data_uri(fit_long_side(arr, THUMBNAIL_SIDE))


def _figures(visuals: Visuals | None, max_side: int) -> tuple[dict[str, str], list[Figure]]:
    """Data URIs (by key) and figures for one card. Arrays that cannot be encoded are skipped."""
    uris: dict[str, str] = {}
    figs: list[Figure] = []
    if visuals is None:
        return uris, figs
    specs = (
        ("t", "thumbnail", "Thumbnail", THUMBNAIL_SIDE, thumbnail_data_uri),
        ("r", "residual", "Noise residual (centre crop)", max_side, lambda a: png_data_uri(crop_center(a, max_side))),
        ("s", "spectrum", "Log power spectrum of the residual", max_side, lambda a: png_data_uri(fit_long_side(a, max_side))),
    )
    for key, attr, caption, lim, enc in specs:
        arr = getattr(visuals, attr, None)
        if arr is None:
            continue
        try:
            a = np.asarray(arr)
            uri = enc(a)
        except (TypeError, ValueError, OSError):
            continue
        h, w = a.shape[:2]
        if key == "r":
            h, w = min(h, lim), min(w, lim)
        elif max(h, w) > lim:
            sc = lim / max(h, w)
            h, w = max(1, round(h * sc)), max(1, round(w * sc))
        uris[key] = uri
        figs.append(Figure(key=key, kind=attr, caption=caption, w=int(w), h=int(h)))
    return uris, figs


def _crop_map_figure(rec: ImageRecord, visuals: Visuals | None, *, zed: bool = False) -> tuple[str, Figure] | None:
    """A per-crop heatmap on the thumbnail (data URI and figure), or ``None`` when no detector placed crops.

    ``zed=False``: the CNN's crop scores (key ``c``); ``zed=True``: the zero-shot coder's per-crop coding
    surprise of the ``zed`` result (key ``z``).
    """
    thumb = None if visuals is None else visuals.thumbnail
    w, h = num(rec.file.width), num(rec.file.height)
    if thumb is None or w is None or h is None:
        return None
    for det in rec.detectors:
        if det.status != "ok" or (zed and det.name != "zed"):
            continue
        try:
            draw = zed_crop_map if zed else cnn_crop_map
            arr = draw(det.evidence, np.asarray(thumb), image_size=(int(w), int(h)))
            if arr is None:
                continue
            uri = jpeg_data_uri(arr, quality=85)
        except (TypeError, ValueError, OSError):
            continue
        key, kind, caption = ("z", "surprise", ZED_MAP_CAPTION) if zed else ("c", "crops", CROP_MAP_CAPTION)
        return uri, Figure(key=key, kind=kind, caption=caption, w=int(arr.shape[1]), h=int(arr.shape[0]))
    return None


# --------------------------------------------------------------------------- #
# card_view
# --------------------------------------------------------------------------- #


def card_view(
    record: ImageRecord | Mapping[str, Any],
    visuals: Visuals | None = None,
    *,
    index: int = 0,
    visual_max_side: int = 160,
) -> CardView:
    """The evidence card of one image, as the HTML report and the desk draw it.

    Args:
        record: The image record (or its JSON form, which is checked).
        visuals: Its small display images; arrays that cannot be encoded are left out.
        index: The card's position in its report.
        visual_max_side: Long side, in pixels, of the residual and spectrum images.

    Returns:
        The card (every string made valid UTF-8 with control and bidi-override
        characters escaped: show it as text), its images as ``data:`` URIs, and
        its index entry. The arrays are not kept.

    Raises:
        ValueError: If ``record`` is a mapping that is not a schema-1.0 image record.
    """
    # The display form: every string of the record escaped, read back as a typed record.
    rec = ImageRecord.from_json(sanitize(record, display=True))
    f, cal = rec.file, rec.calibration or {}
    uris, figs = _figures(visuals, max(16, int(visual_max_side)))
    at = sum(fig.key == "t" for fig in figs)  # beside the thumbnail they are drawn on
    for crop_map in (_crop_map_figure(rec, visuals), _crop_map_figure(rec, visuals, zed=True)):
        if crop_map is not None:
            uris[crop_map[1].key] = crop_map[0]
            figs.insert(at, crop_map[1])
            at += 1

    provenance: list[ProvenancePanel] = []
    for j, det in enumerate(rec.detectors):
        thumb = _valid_evidence_thumbnail(det.evidence.get("thumbnail_data_uri"))
        prov = _provenance(det, None if thumb is None else f"p{j}")
        if prov is not None:
            if thumb is not None:
                uris[f"p{j}"] = thumb
            provenance.append(prov)

    timing = rec.timing.to_json()
    meta = (
        ("path", fmt_value(f.path)),
        ("sha256", fmt_value(f.sha256)),
        ("format", fmt_value(f.format)),
        ("dimensions", f"{f.width} × {f.height}" if f.width is not None else "—"),
        ("size", fmt_bytes(f.bytes) + (f" ({f.bytes} bytes)" if num(f.bytes) is not None else "")),
        ("mode", fmt_value(f.mode)),
        ("frames", fmt_value(f.frames)),
        ("time", ", ".join(f"{k} {fmt_value(num(v))} s" for k, v in timing.items() if num(v) is not None) or "—"),
    )
    score = num(rec.score)
    card = Card(
        i=int(index),
        path=str(f.path),
        label=rec.label,
        label_text=LABEL_TEXT[rec.label],
        score=fmt_score(score),
        bar=_bar(score, [cal.get("likely_real"), cal.get("likely_ai")]),
        decided_by=fmt_value(rec.decided_by),
        size=fmt_bytes(f.bytes),
        dims=f"{f.width}×{f.height}" if f.width is not None else "—",
        figures=tuple(figs),
        detectors=tuple(_detector_row(d) for d in rec.detectors),
        provenance=tuple(provenance),
        flags=tuple(Notice(str(q.code), str(q.message)) for q in rec.quality_flags),
        explanations=tuple(str(e) for e in rec.explanations),
        error=None if rec.error is None else Notice(str(rec.error.code), str(rec.error.message)),
        meta=meta,
    )
    entry = IndexEntry(path=card.path, label=rec.label, rank=LABELS.index(rec.label), score=score, bytes=num(f.bytes))
    return CardView(card=card, images=uris, entry=entry)
