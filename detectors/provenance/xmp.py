"""IPTC Digital Source Type (and AI system fields) in XMP metadata.

Generators and editors (Adobe Firefly and Photoshop generative fill, Google,
Midjourney, Meta, and others) label their output with the IPTC property
``Iptc4xmpExt:DigitalSourceType``. This detector finds the XMP packets of a
file and reads that property in each of its RDF/XML serialisations:

* attribute: ``<rdf:Description Iptc4xmpExt:DigitalSourceType="http://..."/>``
* element text: ``<Iptc4xmpExt:DigitalSourceType>http://...</Iptc4xmpExt:DigitalSourceType>``
* resource: ``<Iptc4xmpExt:DigitalSourceType rdf:resource="http://..."/>``

plus the IPTC 2025.1 AI properties ``AISystemUsed``, ``AISystemVersionUsed``
and ``AIPromptInformation``. Packets are found in JPEG APP1 (standard and
extended XMP), PNG ``iTXt``/``zTXt``/``tEXt`` ``XML:com.adobe.xmp`` and WebP
``XMP `` chunks; other containers are scanned for an ``<x:xmpmeta`` packet.

XMP is attacker controlled and may be huge: packets are parsed with
defusedxml (no DTDs, no entity expansion) only up to 4 MB; larger,
malformed or refused packets are scanned with bounded regular expressions
over at most 16 MB, after comments and DOCTYPE declarations are stripped. A
claim read only by that fallback scan is at most ``strong``, never proof. XMP is not signed, so a declared camera capture is only a weak hint;
a declared AI source is taken at its word (nobody marks a real photo as AI).

References:
    IPTC Photo Metadata Standard 2025.1, properties "Digital Source Type",
    "AI System Used", "AI System Version Used", "AI Prompt Information".
    IPTC NewsCodes Digital Source Type vocabulary
    (https://cv.iptc.org/newscodes/digitalsourcetype/).
    Adobe XMP Specification Part 1 (RDF/XML serialisation) and Part 3
    (storage in files: JPEG APP1 and extended XMP, PNG iTXt, WebP).
"""

from __future__ import annotations

import re
import struct
from typing import Any

from detectors.base import DetectorResult, register_detector
from detectors.provenance._common import (
    PngTextStore,
    ProvenanceReader,
    classify_source_type,
    jpeg_segments,
    png_text_store,
    result,
    source_type_code,
    truncate,
    webp_chunks,
    with_limits,
)
from forensics.io import LoadedImage

__all__ = ["XmpDetector", "extract_xmp_packets", "parse_xmp"]

VERSION = "xmp-v2"
#: Packets up to this size are parsed as XML (defusedxml).
MAX_XML_BYTES = 4 * 1024 * 1024
#: Larger or malformed packets are regex-scanned over at most this many bytes.
MAX_SCAN_BYTES = 16 * 1024 * 1024
#: Extended XMP (JPEG) is reassembled up to this size.
MAX_EXTENDED_BYTES = 16 * 1024 * 1024
#: Containers without a defined XMP location are scanned over this many bytes.
MAX_RAW_SCAN = 64 * 1024 * 1024
MAX_PACKETS = 8

_STD_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
_EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_SOURCE_NAMES = ("DigitalSourceType", "DigitalSourceFileType")
_AI_NAMES = ("AISystemUsed", "AISystemVersionUsed", "AIPromptInformation", "AIPromptWriterName")
_INFO_NAMES = ("CreatorTool",)
_ALL_NAMES = _SOURCE_NAMES + _AI_NAMES + _INFO_NAMES


def extract_xmp_packets(data: bytes, fmt: str, *, png_text: PngTextStore | None = None) -> list[tuple[str, bytes]]:
    """Find XMP packets in a file.

    Args:
        data: Original file bytes.
        fmt: Pillow format name (``JPEG``, ``PNG``, ``WEBP``, ...).
        png_text: The file's shared PNG text store (see
            :func:`detectors.provenance._common.png_text_store`); a fresh one when ``None``.

    Returns:
        Up to :data:`MAX_PACKETS` ``(where, packet_bytes)`` pairs.
    """
    packets: list[tuple[str, bytes]] = []
    if data.startswith(b"\xff\xd8"):
        extended: dict[bytes, dict[int, bytes]] = {}
        ext_total = 0
        for marker, payload in jpeg_segments(data):
            if marker != 0xE1:
                continue
            p = bytes(payload)
            if p.startswith(_STD_SIG):
                packets.append(("JPEG APP1 XMP", p[len(_STD_SIG):]))
            elif p.startswith(_EXT_SIG) and len(p) >= len(_EXT_SIG) + 40:
                base = len(_EXT_SIG)
                guid = p[base : base + 32]
                (offset,) = struct.unpack(">I", p[base + 36 : base + 40])
                part = p[base + 40 :]
                if ext_total + len(part) <= MAX_EXTENDED_BYTES and len(extended) < 4:
                    extended.setdefault(guid, {})[offset] = part
                    ext_total += len(part)
        for parts in extended.values():
            packets.append(("JPEG APP1 extended XMP", b"".join(parts[k] for k in sorted(parts))))
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        store = png_text if png_text is not None else png_text_store(data)
        for _key, text, ctype in store.read("XML:com.adobe.xmp").fields[:MAX_PACKETS]:
            packets.append((f"PNG {ctype} XML:com.adobe.xmp", text[:MAX_SCAN_BYTES].encode("utf-8", "replace")))
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        for fourcc, payload in webp_chunks(data):
            if fourcc == b"XMP ":
                packets.append(("WebP XMP chunk", bytes(payload[:MAX_SCAN_BYTES])))
    else:
        head = data[:MAX_RAW_SCAN]
        pos = 0
        while len(packets) < MAX_PACKETS:
            start = head.find(b"<x:xmpmeta", pos)
            if start < 0:
                start = head.find(b"<x:xapmeta", pos)
            if start < 0:
                break
            end = head.find(b"</x:xmpmeta>", start, start + MAX_SCAN_BYTES)
            stop = end + len(b"</x:xmpmeta>") if end >= 0 else min(start + MAX_SCAN_BYTES, len(head))
            packets.append((f"{fmt} embedded XMP", head[start:stop]))
            pos = stop
    return packets[:MAX_PACKETS]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag.rsplit(":", 1)[-1]


def _parse_xml(packet: bytes) -> dict[str, list[str]] | None:
    """Parse with defusedxml; ``None`` when unavailable or malformed."""
    try:
        from defusedxml import ElementTree as DET
    except ImportError:  # pragma: no cover - defusedxml is a dependency
        return None
    try:
        root = DET.fromstring(packet.strip(b"\x00 \t\r\n"), forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
    except Exception:  # noqa: BLE001 - ParseError, DTDForbidden, EntitiesForbidden...
        return None
    found: dict[str, list[str]] = {}
    for n, el in enumerate(root.iter()):
        if n > 200_000:
            break
        for key, value in el.attrib.items():
            name = _local(key)
            if name in _ALL_NAMES and value.strip():
                found.setdefault(name, []).append(value.strip())
        name = _local(el.tag) if isinstance(el.tag, str) else ""
        if name in _ALL_NAMES:
            res = el.attrib.get(f"{{{_RDF}}}resource")
            if res:
                found.setdefault(name, []).append(res.strip())
            else:
                text = " ".join(t.strip() for t in el.itertext() if t.strip())
                if text:
                    found.setdefault(name, []).append(text)
    return found


_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE\b[^\[>]*(?:\[(?:.*?\]|.*)\s*)?(?:>|\Z)", re.S | re.I)
_DECL = re.compile(r"<!(?:ENTITY|ELEMENT|ATTLIST|NOTATION)\b[^>]*(?:>|\Z)", re.S | re.I)


def strip_markup_noise(text: str) -> str:
    """Remove XML comments, DOCTYPE declarations (with their internal subset) and stray markup
    declarations, so that the regex fallback reads only element and attribute content.

    An unterminated comment or declaration runs to the end of the text, as an XML parser would read it.
    """
    text = _COMMENT.sub(" ", text)
    text = _DOCTYPE.sub(" ", text)
    return _DECL.sub(" ", text)


def _scan_regex(packet: bytes) -> dict[str, list[str]]:
    """Bounded regex scan for the three serialisations (for huge or broken packets).

    Comments and DOCTYPE declarations are stripped first: an AI claim inside
    a comment is not a claim.
    """
    text = strip_markup_noise(packet[:MAX_SCAN_BYTES].decode("utf-8", "replace"))
    found: dict[str, list[str]] = {}
    names = "|".join(_ALL_NAMES)
    attr = re.compile(r"[\s<][\w.-]{0,64}:(" + names + r")\s*=\s*([\"'])(.{0,2048}?)\2", re.S)
    elem = re.compile(r"<[\w.-]{0,64}:(" + names + r")\b([^<>]{0,4096}?)(/?)>", re.S)
    resource = re.compile(r"rdf:resource\s*=\s*([\"'])(.{0,2048}?)\1", re.S)
    for m in attr.finditer(text):
        if len(found) > 64:
            break
        found.setdefault(m.group(1), []).append(m.group(3).strip())
    for m in elem.finditer(text):
        name, attrs, selfclose = m.group(1), m.group(2), m.group(3)
        r = resource.search(attrs)
        if r:
            found.setdefault(name, []).append(r.group(2).strip())
            continue
        if selfclose:
            continue
        # element text up to the closing tag, nested rdf:Alt/li tags stripped
        close = re.compile(r"</[\w.-]{0,64}:" + name + ">").search(text, m.end(), m.end() + 16384)
        body = text[m.end() : close.start() if close else m.end() + 2048]
        value = re.sub(r"<[^<>]{0,512}>", " ", body)
        value = " ".join(value.split())
        if value:
            found.setdefault(name, []).append(value)
    return found


def parse_xmp(packet: bytes) -> tuple[dict[str, list[str]], str]:
    """Read the IPTC source-type and AI fields from one XMP packet.

    Returns:
        ``(fields, method)`` with ``fields`` mapping a local property name
        (e.g. ``DigitalSourceType``) to its values, and ``method`` one of
        ``xml`` or ``regex``.
    """
    if len(packet) <= MAX_XML_BYTES:
        parsed = _parse_xml(packet)
        if parsed is not None:
            return parsed, "xml"
    return _scan_regex(packet), "regex"


class XmpDetector(ProvenanceReader):
    """Reads IPTC DigitalSourceType / AISystemUsed from XMP."""

    name = "xmp"
    version = VERSION

    def __init__(self) -> None:
        pass

    def _analyze(self, image: LoadedImage, t0: float) -> DetectorResult:
        store = png_text_store(image) if image.data.startswith(b"\x89PNG\r\n\x1a\n") else None
        packets = extract_xmp_packets(image.data, image.format, png_text=store)
        limits = store.read("XML:com.adobe.xmp").notes if store is not None else []
        res = self._packets_result(packets, t0)
        return with_limits(res, limits) if limits else res

    def _packets_result(self, packets: list[tuple[str, bytes]], t0: float) -> DetectorResult:
        if not packets:
            return result(self.name, self.version, t0, status="not_applicable",
                          evidence={"summary": "no XMP metadata"}, message="no XMP metadata")
        fields: dict[str, list[str]] = {}
        where: dict[str, str] = {}
        methods = []
        parsed_values: set[tuple[str, str]] = set()  # (field, value) read by the XML parser
        for loc, packet in packets:
            got, method = parse_xmp(packet)
            methods.append({"where": loc, "bytes": len(packet), "parsed_by": method})
            for k, vals in got.items():
                for v in vals:
                    v = truncate(v, 512)
                    if method == "xml":
                        parsed_values.add((k, v))
                    lst = fields.setdefault(k, [])
                    if v not in lst and len(lst) < 16:
                        lst.append(v)
                        where.setdefault(k, loc)
        sources = fields.get("DigitalSourceType", []) + fields.get("DigitalSourceFileType", [])
        ai_system = fields.get("AISystemUsed", [])
        evidence: dict[str, Any] = {
            "digital_source_types": sources,
            "ai_system_used": ai_system,
            "ai_system_version": fields.get("AISystemVersionUsed", []),
            "ai_prompt": [truncate(v, 1024) for v in fields.get("AIPromptInformation", [])],
            "creator_tool": fields.get("CreatorTool", []),
            "packets": methods,
        }
        kinds = [classify_source_type(s) for s in sources]
        parsed_kinds = {classify_source_type(v) for k, v in parsed_values if k in _SOURCE_NAMES}
        fallback = "The packet was refused by the XML parser and read by a fallback text scan, so the claim " \
                   "is not taken as proof."
        codes = ", ".join(source_type_code(s) for s in sources)
        loc = where.get("DigitalSourceType") or where.get("DigitalSourceFileType") or where.get("AISystemUsed")
        system = f" (AI system: {ai_system[0]})" if ai_system else ""
        note = "XMP metadata is not signed: anyone can add or strip it."
        if "ai_generated" in kinds:
            parsed = "ai_generated" in parsed_kinds
            evidence["summary"] = f"IPTC DigitalSourceType trainedAlgorithmicMedia{system}" + (
                "" if parsed else " (fallback scan)")
            return result(
                self.name, self.version, t0, claim="ai_generated", strength="proof" if parsed else "strong",
                evidence=evidence,
                explanations=(
                    f"The file's XMP metadata ({loc}) declares the image as created by a trained AI model "
                    f"(IPTC digital source type trainedAlgorithmicMedia){system}. {note}"
                    + ("" if parsed else f" {fallback}"),
                ),
            )
        if "ai_edited" in kinds:
            parsed = "ai_edited" in parsed_kinds
            evidence["summary"] = f"IPTC DigitalSourceType compositeWithTrainedAlgorithmicMedia{system}" + (
                "" if parsed else " (fallback scan)")
            return result(
                self.name, self.version, t0, claim="ai_edited", strength="proof" if parsed else "strong",
                evidence=evidence,
                explanations=(
                    f"The file's XMP metadata ({loc}) declares the image as a composite that includes "
                    f"AI-generated elements (IPTC compositeWithTrainedAlgorithmicMedia){system}. {note}"
                    + ("" if parsed else f" {fallback}"),
                ),
            )
        if ai_system:
            evidence["summary"] = f"IPTC AISystemUsed: {ai_system[0]}"
            return result(
                self.name, self.version, t0, claim="ai_generated", strength="strong", evidence=evidence,
                explanations=(
                    f"The file's XMP metadata ({loc}) names an AI system used to make the image "
                    f"({ai_system[0]}), without an IPTC digital source type. {note}",
                ),
            )
        if "camera" in kinds:
            evidence["summary"] = f"IPTC DigitalSourceType {codes}"
            return result(
                self.name, self.version, t0, claim="camera", strength="weak", evidence=evidence,
                explanations=(
                    f"The file's XMP metadata declares a capture from the physical world ({codes}); "
                    f"this is a weak hint only. {note}",
                ),
            )
        if sources:
            evidence["summary"] = f"IPTC DigitalSourceType {codes}"
            return result(
                self.name, self.version, t0, evidence=evidence,
                explanations=(f"The file's XMP metadata declares the digital source type {codes}, "
                              "which says nothing about AI generation.",),
            )
        evidence["summary"] = "XMP present, no IPTC digital source type"
        return result(self.name, self.version, t0, status="not_applicable", evidence=evidence,
                      message="no IPTC digital source type in XMP")


@register_detector("xmp")
def _xmp(**kwargs: Any) -> XmpDetector:
    return XmpDetector(**kwargs)
