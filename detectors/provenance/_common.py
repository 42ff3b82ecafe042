"""Shared helpers for the provenance detectors: bounded container parsing.

Everything here reads the original file bytes (``LoadedImage.data``) and never
trusts a length field: every loop is bounded, every decompression is capped,
and every string that ends up in evidence is truncated. Metadata is attacker
controlled, so values are returned as plain strings for the report to escape.

References:
    PNG (Third Edition), W3C Recommendation, sections 11.3.3 (tEXt, zTXt, iTXt).
    ITU-T T.81 / JFIF: JPEG marker segments (APPn, COM, SOS).
    Google, "WebP Container Specification" (RIFF chunks ``EXIF``, ``XMP ``).
    IPTC NewsCodes "Digital Source Type" vocabulary,
    https://cv.iptc.org/newscodes/digitalsourcetype/ (2024/2025 revisions).
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

from detectors.base import DetectorResult

__all__ = [
    "AI_EDITED_SOURCE_TYPES",
    "AI_GENERATED_SOURCE_TYPES",
    "CAPTURE_SOURCE_TYPES",
    "MAX_EVIDENCE_CHARS",
    "bounded_inflate",
    "classify_source_type",
    "jpeg_segments",
    "png_chunks",
    "png_text_chunks",
    "result",
    "source_type_code",
    "truncate",
    "webp_chunks",
]

#: Longest string kept in evidence, per field (the report shows them collapsed).
MAX_EVIDENCE_CHARS = 4096
#: Largest decompressed text chunk we inflate (ComfyUI workflows can be a few MB).
MAX_INFLATED_BYTES = 16 * 1024 * 1024
#: At most this many chunks / segments are walked in one file.
MAX_CHUNKS = 20_000

#: IPTC digital source types that declare the whole image AI-generated.
AI_GENERATED_SOURCE_TYPES = frozenset({"trainedalgorithmicmedia"})
#: IPTC digital source types that declare an AI-edited / composite image.
AI_EDITED_SOURCE_TYPES = frozenset({"compositewithtrainedalgorithmicmedia"})
#: IPTC digital source types that declare a capture from the physical world.
CAPTURE_SOURCE_TYPES = frozenset(
    {"digitalcapture", "negativefilm", "positivefilm", "print", "computationalcapture"}
)


def truncate(value: Any, limit: int = MAX_EVIDENCE_CHARS) -> str:
    """Return ``value`` as a plain string of at most ``limit`` characters.

    Args:
        value: Anything; bytes are decoded as UTF-8 with replacement.
        limit: Maximum number of characters kept; a marker is appended when cut.

    Returns:
        The (possibly shortened) string, with NUL characters removed.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value[: limit * 4]).decode("utf-8", "replace")
    text = str(value).replace("\x00", "")
    if len(text) > limit:
        return text[:limit] + f"... [truncated, {len(text):,} chars]"
    return text


def bounded_inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> tuple[bytes, bool]:
    """zlib-decompress at most ``limit`` bytes (zip-bomb guard).

    Returns:
        ``(output, complete)``; ``complete`` is False when the output was cut
        at ``limit`` or the stream was corrupt.
    """
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error:
        return b"", False
    complete = not d.unconsumed_tail and d.eof
    return out, complete


def png_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """Yield ``(chunk_type, payload)`` for each chunk of a PNG file.

    Stops at ``IEND``, at the first malformed length, or after
    :data:`MAX_CHUNKS` chunks. Chunk CRCs are not checked (metadata in a file
    with a bad CRC is still what the file says).
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return
    view = memoryview(data)
    pos, n = 8, len(data)
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            return
        length, ctype = struct.unpack(">I4s", view[pos : pos + 8])
        start = pos + 8
        end = start + length
        if end > n:  # truncated chunk: give what is there
            yield bytes(ctype), view[start:n]
            return
        yield bytes(ctype), view[start:end]
        if ctype == b"IEND":
            return
        pos = end + 4


def png_text_chunks(data: bytes, *, limit: int = MAX_INFLATED_BYTES) -> list[tuple[str, str, str]]:
    """Text chunks of a PNG: ``(keyword, text, chunk_type)``.

    Handles ``tEXt`` (Latin-1), ``zTXt`` (zlib, Latin-1) and ``iTXt`` (UTF-8,
    optionally zlib). Decompression is capped at ``limit`` bytes.
    """
    out: list[tuple[str, str, str]] = []
    for ctype, payload in png_chunks(data):
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        raw = bytes(payload)
        key, sep, rest = raw.partition(b"\x00")
        if not sep or not key or len(key) > 79:
            continue
        keyword = key.decode("latin-1")
        if ctype == b"tEXt":
            text = rest[:limit].decode("latin-1")
        elif ctype == b"zTXt":
            if not rest:
                continue
            inflated, _ = bounded_inflate(rest[1:], limit)
            text = inflated.decode("latin-1")
        else:  # iTXt: flag, method, language\0, translated keyword\0, text
            if len(rest) < 2:
                continue
            comp_flag = rest[0]
            body = rest[2:]
            _lang, _, body = body.partition(b"\x00")
            _tkey, _, body = body.partition(b"\x00")
            if comp_flag:
                body, _ = bounded_inflate(body, limit)
            text = body[:limit].decode("utf-8", "replace")
        out.append((keyword, text, ctype.decode("ascii")))
    return out


def jpeg_segments(data: bytes) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(marker, payload)`` for JPEG marker segments before the scan.

    Walks from SOI up to SOS (image data) or EOI; ``marker`` is the second
    marker byte (e.g. ``0xE1`` for APP1, ``0xFE`` for COM).
    """
    if not data.startswith(b"\xff\xd8"):
        return
    view = memoryview(data)
    pos, n = 2, len(data)
    for _ in range(MAX_CHUNKS):
        while pos < n and data[pos] != 0xFF:  # tolerate garbage between segments
            pos += 1
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return
        marker = data[pos]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9 or pos + 2 > n:
            return
        (length,) = struct.unpack(">H", view[pos : pos + 2])
        if length < 2:
            return
        end = min(pos + length, n)
        yield marker, view[pos + 2 : end]
        if marker == 0xDA:
            return
        pos = end


def webp_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """Yield ``(fourcc, payload)`` for the chunks of a RIFF/WebP file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return
    view = memoryview(data)
    pos, n = 12, len(data)
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            return
        fourcc = bytes(view[pos : pos + 4])
        (size,) = struct.unpack("<I", view[pos + 4 : pos + 8])
        start = pos + 8
        end = min(start + size, n)
        yield fourcc, view[start:end]
        pos = start + size + (size & 1)


def source_type_code(value: str) -> str:
    """The bare IPTC code of a digital source type URI, e.g. ``trainedAlgorithmicMedia``."""
    v = value.strip().rstrip("/")
    for sep in ("/", "#", ":"):
        if sep in v:
            v = v.rsplit(sep, 1)[-1]
    return v


def classify_source_type(value: str) -> str:
    """Map a digital source type to ``ai_generated``, ``ai_edited``, ``camera`` or ``none``."""
    code = source_type_code(value).lower()
    if code in AI_GENERATED_SOURCE_TYPES:
        return "ai_generated"
    if code in AI_EDITED_SOURCE_TYPES:
        return "ai_edited"
    if code in CAPTURE_SOURCE_TYPES:
        return "camera"
    return "none"


def result(
    name: str,
    version: str,
    t0: float,
    *,
    status: str = "ok",
    claim: str = "none",
    strength: str = "none",
    evidence: dict[str, Any] | None = None,
    explanations: tuple[str, ...] | list[str] = (),
    message: str | None = None,
) -> DetectorResult:
    """Build a provenance :class:`DetectorResult` (``score`` is always ``None``)."""
    return DetectorResult(
        name=name,
        version=version,
        status=status,  # type: ignore[arg-type]
        score=None,
        threshold=None,
        claim=claim,  # type: ignore[arg-type]
        strength=strength,  # type: ignore[arg-type]
        evidence=evidence or {},
        explanations=tuple(explanations),
        message=message,
        time_s=time.perf_counter() - t0,
    )


class ProvenanceReader:
    """Base of the provenance detectors: ``analyze`` times ``_analyze`` and turns any exception
    into a result with ``status: "error"``, since a reader never raises on a hostile file."""

    name: str = "provenance"
    version: str = "0"

    def analyze(self, image: Any) -> DetectorResult:
        """Read ``image`` (a :class:`forensics.io.LoadedImage`); never raises."""
        t0 = time.perf_counter()
        try:
            return self._analyze(image, t0)
        except Exception as exc:  # noqa: BLE001 - a detector never raises on a hostile file
            return result(self.name, self.version, t0, status="error", message=f"{type(exc).__name__}: {exc}")

    def _analyze(self, image: Any, t0: float) -> DetectorResult:
        raise NotImplementedError
