"""EXIF camera fields: a weak hint of a camera origin, never proof.

Reads Make, Model, Software, lens and exposure fields (exposure time,
f-number, ISO, focal length), the capture date, and whether the file carries
a camera-made EXIF thumbnail (IFD1) and a maker note. Cameras and phones
write these; generators usually do not. But EXIF is trivially copied or
forged, and many real photos have none, so the claim is ``camera`` with
strength ``weak``, and a missing EXIF block is neutral.

The hint needs camera-like fields: an exposure time, f-number, focal length,
ISO or a maker note. Make and Model alone are not enough (Black Forest Labs'
FLUX CLI writes ``Make: Black Forest Labs``, ``Model: flux-dev``). Make,
Model, Software, ImageDescription or UserComment that match a generator signature
(:mod:`detectors.provenance.signatures`) are never a camera, whatever else
the EXIF holds; ``generator_metadata`` reports them.

References:
    CIPA DC-008-2023 / JEITA CP-3451, "Exchangeable image file format for
    digital still cameras: Exif Version 3.0" (IFD0, Exif IFD, IFD1 thumbnail).
"""

from __future__ import annotations

from typing import Any

from detectors.base import DetectorResult, register_detector
from detectors.provenance._common import ProvenanceReader, result, truncate
from detectors.provenance.metadata import exif_text_fields
from detectors.provenance.signatures import match_signatures
from forensics.io import LoadedImage

__all__ = ["ExifDetector", "read_exif_fields"]

VERSION = "exif-v2"

_IFD0 = {0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x0132: "DateTime"}
_EXIF = {
    0x829A: "ExposureTime",
    0x829D: "FNumber",
    0x8827: "ISO",
    0x9003: "DateTimeOriginal",
    0x920A: "FocalLength",
    0xA405: "FocalLengthIn35mmFilm",
    0xA433: "LensMake",
    0xA434: "LensModel",
}
_EXPOSURE_KEYS = ("ExposureTime", "FNumber", "ISO", "FocalLength")


def _plain(v: Any) -> Any:
    """EXIF value to a JSON-friendly scalar or short string."""
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        v = v.strip("\x00 ").strip()
        return truncate(v, 128) if v else None
    if isinstance(v, tuple):
        return _plain(v[0]) if len(v) == 1 else truncate(", ".join(str(_plain(x)) for x in v[:8]), 128)
    if isinstance(v, (int, bool)):
        return v
    try:  # IFDRational and friends
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            return None
        return round(f, 6)
    except (TypeError, ValueError, ZeroDivisionError):
        return truncate(v, 128)


def _looks_like_name(v: Any) -> bool:
    """Make/Model must be a short printable name, not JSON or a generator payload."""
    if not isinstance(v, str) or not v or len(v) > 64:
        return False
    if v[0] in "{[" or v.lower().startswith(("prompt:", "workflow:")):
        return False
    return all(c.isprintable() for c in v)


def read_exif_fields(raw: bytes) -> dict[str, Any] | None:
    """Parse the camera-related EXIF fields.

    Args:
        raw: Raw EXIF bytes (``LoadedImage.exif``).

    Returns:
        A dict of the fields found plus ``thumbnail`` (bool), ``thumbnail_bytes``,
        ``maker_note_bytes`` and ``gps`` (bool); ``None`` when unparseable.
    """
    from PIL import ExifTags, Image

    exif = Image.Exif()
    try:
        exif.load(raw)
    except Exception:  # noqa: BLE001 - malformed EXIF
        return None
    out: dict[str, Any] = {}
    for tag, name in _IFD0.items():
        v = _plain(exif.get(tag))
        if v not in (None, ""):
            out[name] = v
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001
        sub = {}
    for tag, name in _EXIF.items():
        v = _plain(sub.get(tag))
        if v not in (None, ""):
            out[name] = v
    mn = sub.get(0x927C)
    out["maker_note_bytes"] = len(mn) if isinstance(mn, (bytes, bytearray)) else 0
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001
        gps = {}
    out["gps"] = bool(gps)
    try:
        ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
    except Exception:  # noqa: BLE001
        ifd1 = {}
    length = ifd1.get(0x0202) if ifd1 else None
    out["thumbnail"] = bool(ifd1 and ifd1.get(0x0201) is not None and isinstance(length, int) and length > 0)
    out["thumbnail_bytes"] = int(length) if out["thumbnail"] else 0
    return out


def _fmt_exposure(f: dict[str, Any]) -> str:
    parts = []
    et = f.get("ExposureTime")
    if isinstance(et, (int, float)) and et > 0:
        parts.append(f"1/{round(1 / et)} s" if et < 1 else f"{et:g} s")
    if isinstance(f.get("FNumber"), (int, float)):
        parts.append(f"f/{f['FNumber']:g}")
    if f.get("ISO") is not None:
        parts.append(f"ISO {f['ISO']}")
    if isinstance(f.get("FocalLength"), (int, float)):
        parts.append(f"{f['FocalLength']:g} mm")
    return ", ".join(parts)


class ExifDetector(ProvenanceReader):
    """Reports EXIF camera fields as a weak camera hint."""

    name = "exif"
    version = VERSION

    def __init__(self) -> None:
        pass

    def _analyze(self, image: LoadedImage, t0: float) -> DetectorResult:
        if not image.exif:
            return result(self.name, self.version, t0, status="not_applicable",
                          evidence={"summary": "no EXIF"}, message="no EXIF metadata")
        fields = read_exif_fields(image.exif)
        if fields is None:
            return result(self.name, self.version, t0, status="not_applicable",
                          evidence={"summary": "unreadable EXIF"}, message="EXIF present but unreadable")
        make = fields.get("Make") if _looks_like_name(fields.get("Make")) else None
        model = fields.get("Model") if _looks_like_name(fields.get("Model")) else None
        if not _looks_like_name(fields.get("Make")):
            fields.pop("Make", None)
        if not _looks_like_name(fields.get("Model")):
            fields.pop("Model", None)
        exposure = [k for k in _EXPOSURE_KEYS if k in fields]
        camera = " ".join(x for x in (make, model) if x)
        if model and make and str(model).lower().startswith(str(make).lower()):
            camera = str(model)
        evidence: dict[str, Any] = dict(fields)
        generators = match_signatures(exif_text_fields(image.exif))
        if generators:
            tools = ", ".join(dict.fromkeys(m.tool for m in generators))
            shown = "; ".join(f"{m.field} \u201c{truncate(m.value, 80)}\u201d" for m in generators[:3])
            evidence["generator_signatures"] = [m.rule for m in generators]
            evidence["summary"] = truncate(f"EXIF names an AI generator ({tools}), not a camera", 200)
            return result(
                self.name, self.version, t0, evidence=evidence,
                explanations=(f"The EXIF metadata names an AI image generator, {tools} ({shown}), so it is not "
                              "read as a camera; see generator_metadata.",),
            )
        if not (exposure or fields.get("maker_note_bytes")):
            evidence["summary"] = "EXIF without camera fields" + (f" (names {camera})" if camera else "")
            return result(self.name, self.version, t0, status="not_applicable", evidence=evidence,
                          message="EXIF has no exposure, focal length, ISO or maker-note fields"
                          + (f" (Make/Model alone, {camera}, are not a camera hint)" if camera else ""))
        exp_text = _fmt_exposure(fields)
        evidence["summary"] = truncate(
            " ".join(x for x in (camera or "unknown camera", f"({exp_text})" if exp_text else "") if x)
            + (", camera thumbnail" if fields["thumbnail"] else ""),
            200,
        )
        what = []
        if camera:
            what.append(f"camera {camera}")
        if exp_text:
            what.append(f"exposure settings {exp_text}")
        if fields["thumbnail"]:
            what.append("an embedded EXIF thumbnail")
        if fields.get("maker_note_bytes"):
            what.append("a manufacturer maker note")
        expl = (
            f"The EXIF metadata names {', '.join(what)}. Cameras write these fields, but they are easy to "
            "copy or fake, so this is only a weak hint of a real photograph."
        )
        return result(self.name, self.version, t0, claim="camera", strength="weak", evidence=evidence,
                      explanations=(expl,))


@register_detector("exif")
def _exif(**kwargs: Any) -> ExifDetector:
    return ExifDetector(**kwargs)
