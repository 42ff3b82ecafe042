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
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from detectors.base import DetectorResult

__all__ = [
    "AI_EDITED_SOURCE_TYPES",
    "AI_GENERATED_SOURCE_TYPES",
    "CAPTURE_SOURCE_TYPES",
    "MAX_EVIDENCE_CHARS",
    "PngTextRead",
    "PngTextStore",
    "bounded_inflate",
    "classify_source_type",
    "jpeg_segments",
    "png_chunks",
    "png_text_chunks",
    "png_text_store",
    "result",
    "source_type_code",
    "truncate",
    "webp_chunks",
    "with_limits",
]

#: Longest string kept in evidence, per field (the report shows them collapsed).
MAX_EVIDENCE_CHARS = 4096
#: Largest decompressed text chunk we inflate (ComfyUI workflows can be a few MB).
MAX_INFLATED_BYTES = 16 * 1024 * 1024
#: At most this many chunks / segments are walked in one file (JPEG, WebP, BMFF).
MAX_CHUNKS = 20_000
#: PNG chunks walked per file: each costs 12 bytes of file, so 1M covers a 12 MB run of empty chunks.
MAX_PNG_CHUNKS = 1_000_000
#: PNG text chunks (tEXt/zTXt/iTXt) indexed per file.
MAX_TEXT_CHUNKS = 20_000
#: Decompressed PNG text per file, all chunks and all readers together.
MAX_TEXT_BUDGET = 64 * 1024 * 1024

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


def _png_spans(data: bytes, max_chunks: int) -> Iterator[tuple[bytes, int, int]]:
    """``(chunk_type, payload_start, payload_end)`` of each PNG chunk (see :func:`png_chunks`)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return
    pos, n = 8, len(data)
    for _ in range(max_chunks):
        if pos + 8 > n:
            return
        length, ctype = struct.unpack_from(">I4s", data, pos)
        start = pos + 8
        end = start + length
        if end > n:  # truncated chunk: give what is there
            yield ctype, start, n
            return
        yield ctype, start, end
        if ctype == b"IEND":
            return
        pos = end + 4


def png_chunks(data: bytes, *, max_chunks: int = MAX_PNG_CHUNKS) -> Iterator[tuple[bytes, memoryview]]:
    """Yield ``(chunk_type, payload)`` for each chunk of a PNG file.

    Stops at ``IEND``, at the first malformed length, or after
    ``max_chunks`` chunks. Chunk CRCs are not checked (metadata in a file
    with a bad CRC is still what the file says).
    """
    view = memoryview(data)
    for ctype, start, end in _png_spans(data, max_chunks):
        yield ctype, view[start:end]


@dataclass(frozen=True)
class _TextEntry:
    keyword: str
    ctype: str
    index: int
    start: int  # offset of the chunk payload in the file
    end: int


@dataclass(frozen=True)
class PngTextRead:
    """Text chunks a reader asked for, and what could not be read.

    Attributes:
        fields: ``(keyword, text, chunk_type)`` of each chunk read, in file order.
        notes: Plain sentences naming every limit that left text unread or cut
            (the inflate budget, the per-chunk cap, the chunk caps); empty when
            everything was read.
    """

    fields: list[tuple[str, str, str]]
    notes: list[str] = field(default_factory=list)


class PngTextStore:
    """The text chunks of one PNG, indexed once and inflated lazily under one budget.

    Indexing walks the chunk headers only. A chunk's text is decompressed
    the first time a reader asks for it and kept, so ``xmp`` and
    ``generator_metadata`` share one inflation. All decompressed text of the
    file together is capped at ``budget`` bytes; each chunk at ``per_chunk``.
    Decompression stops at whichever is reached first, so a file of
    compressed zeros costs at most ``budget`` bytes, never more.

    Args:
        data: The original PNG bytes.
        budget: Decompressed text allowed per file, in bytes.
        per_chunk: Decompressed text allowed per chunk, in bytes.
        max_text_chunks: Text chunks indexed; later ones are counted, not read.
        max_chunks: Chunks walked.

    Raises:
        ValueError: If a limit is not positive.
    """

    def __init__(self, data: bytes, *, budget: int = MAX_TEXT_BUDGET, per_chunk: int = MAX_INFLATED_BYTES,
                 max_text_chunks: int = MAX_TEXT_CHUNKS, max_chunks: int = MAX_PNG_CHUNKS) -> None:
        for name, v in (("budget", budget), ("per_chunk", per_chunk), ("max_text_chunks", max_text_chunks),
                        ("max_chunks", max_chunks)):
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        self._data = data
        self.budget = budget
        self.per_chunk = per_chunk
        self.used = 0
        self._lock = threading.Lock()
        self._texts: dict[int, tuple[str | None, str | None]] = {}  # index -> (text, note)
        self.entries: list[_TextEntry] = []
        self.structure_notes: list[str] = []
        skipped = walked = 0
        last_end = 8
        for idx, (ctype, start, end) in enumerate(_png_spans(data, max_chunks)):
            walked, last_end = idx + 1, end
            if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
                continue
            if len(self.entries) >= max_text_chunks:
                skipped += 1
                continue
            key, sep, _ = data[start : min(end, start + 80)].partition(b"\x00")
            if not sep or not key or len(key) > 79:
                continue
            self.entries.append(_TextEntry(key.decode("latin-1"), ctype.decode("ascii"), idx, start, end))
        if walked >= max_chunks and last_end + 4 < len(data):
            self.structure_notes.append(
                f"the PNG has more than {max_chunks:,} chunks; metadata after chunk {max_chunks:,} was not read")
        if skipped:
            self.structure_notes.append(
                f"{skipped:,} PNG text chunks after the first {max_text_chunks:,} were not read")

    def _inflate(self, entry: _TextEntry) -> tuple[str | None, str | None]:
        """``(text, note)``; ``text`` is None when the budget is spent, ``note`` names any cut."""
        limit = min(self.per_chunk, self.budget - self.used)
        if limit <= 0:
            return None, None
        rest = memoryview(self._data)[entry.start + len(entry.keyword.encode("latin-1")) + 1 : entry.end]
        compressed = entry.ctype == "zTXt"
        if entry.ctype == "zTXt":
            body = rest[1:]  # compression method byte
        elif entry.ctype == "iTXt":  # flag, method, language\0, translated keyword\0, text
            if len(rest) < 2:
                return "", None
            compressed = bool(rest[0])
            head = bytes(rest[2 : 2 + 2 * 1024])  # language tag and translated keyword are short
            _lang, _, after = head.partition(b"\x00")
            _tkey, _, after = after.partition(b"\x00")
            body = rest[2 + len(head) - len(after) :]
        else:
            body = rest
        if compressed:
            out, complete = bounded_inflate(bytes(body), limit)
        else:
            out, complete = bytes(body[:limit]), len(body) <= limit
        self.used += len(out)
        text = out.decode("utf-8", "replace") if entry.ctype == "iTXt" else out.decode("latin-1")
        note = None
        if not complete and len(out) >= limit:
            which = "the per-file budget" if limit < self.per_chunk else "the per-chunk cap"
            note = f"PNG {entry.ctype} '{truncate(entry.keyword, 40)}' was cut at {_size(limit)} ({which})"
        return text, note

    def read(self, keyword: str | None = None) -> PngTextRead:
        """Text of every chunk (or every chunk named ``keyword``), inflating what was not yet inflated.

        Returns:
            A :class:`PngTextRead` whose ``notes`` say what the limits left out.
        """
        fields: list[tuple[str, str, str]] = []
        notes = list(self.structure_notes)
        refused = 0
        with self._lock:
            for e in self.entries:
                if keyword is not None and e.keyword != keyword:
                    continue
                if e.index not in self._texts:
                    self._texts[e.index] = self._inflate(e)
                text, note = self._texts[e.index]
                if text is None:
                    refused += 1
                    continue
                if note:
                    notes.append(note)
                fields.append((e.keyword, text, e.ctype))
        if refused:
            notes.append(f"{refused:,} PNG text chunks were not decompressed: the file's budget of "
                         f"{_size(self.budget)} of decompressed text was spent")
        return PngTextRead(fields, notes)


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


_STORES: dict[int, tuple[weakref.ReferenceType[Any], PngTextStore]] = {}
_STORES_LOCK = threading.Lock()


def png_text_store(image: Any) -> PngTextStore:
    """The shared :class:`PngTextStore` of a :class:`forensics.io.LoadedImage` (made on first use).

    Every reader of the same image object gets the same store, so text is
    inflated once per file and the budget is shared; the store goes away
    with the image. Raw ``bytes`` get a fresh store.
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return PngTextStore(bytes(image))
    key = id(image)
    with _STORES_LOCK:
        hit = _STORES.get(key)
        if hit is not None and hit[0]() is image:
            return hit[1]
        store = PngTextStore(image.data)
        try:
            ref = weakref.ref(image, lambda r, k=key: _drop_store(k, r))
        except TypeError:  # not weak-referenceable: no sharing
            return store
        _STORES[key] = (ref, store)
        return store


def _drop_store(key: int, ref: weakref.ReferenceType[Any]) -> None:
    with _STORES_LOCK:
        hit = _STORES.get(key)
        if hit is not None and hit[0] is ref:
            del _STORES[key]


def png_text_chunks(data: bytes, *, limit: int = MAX_INFLATED_BYTES) -> list[tuple[str, str, str]]:
    """Text chunks of a PNG: ``(keyword, text, chunk_type)`` (a fresh :class:`PngTextStore`).

    Handles ``tEXt`` (Latin-1), ``zTXt`` (zlib, Latin-1) and ``iTXt`` (UTF-8,
    optionally zlib). Decompression is capped at ``limit`` bytes per chunk
    and :data:`MAX_TEXT_BUDGET` per file.
    """
    return PngTextStore(data, per_chunk=limit).read().fields


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


def with_limits(res: DetectorResult, notes: list[str]) -> DetectorResult:
    """``res`` with ``evidence["limits"]`` and a closing sentence naming what the reading limits left out.

    Metadata beyond a limit is never silently ignored: a reader that found
    nothing says so in its message too.
    """
    if not notes:
        return res
    notes = list(dict.fromkeys(truncate(n, 300) for n in notes))[:16]
    evidence = dict(res.evidence)
    evidence["limits"] = notes
    sentence = "Not all metadata was read: " + "; ".join(notes) + "."
    message = res.message
    if res.status == "not_applicable":
        message = f"{res.message or 'nothing found'} in what was read ({'; '.join(notes)})"
    return DetectorResult(
        name=res.name, version=res.version, status=res.status, score=res.score, threshold=res.threshold,
        claim=res.claim, strength=res.strength, evidence=evidence, explanations=(*res.explanations, sentence),
        message=message, time_s=res.time_s,
    )


class ProvenanceReader:
    """Base of the provenance detectors: ``analyze`` times ``_analyze`` and turns any exception
    into a result with ``status: "error"``, since a reader never raises on a hostile file."""

    name: str = "provenance"
    version: str = "0"

    def analyze(self, image: Any) -> DetectorResult:
        """Read ``image`` (a :class:`forensics.io.LoadedImage`); never raises."""
        import warnings

        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # Pillow re-parses metadata that forensics.io already decoded, and warns again on a
                # malformed one; those warnings are in the record's quality flags (decoder_warning),
                # so a reader keeps them off stderr, where a big scan would print thousands
                warnings.simplefilter("ignore")
                return self._analyze(image, t0)
        except Exception as exc:  # noqa: BLE001 - a detector never raises on a hostile file
            return result(self.name, self.version, t0, status="error", message=f"{type(exc).__name__}: {exc}")

    def _analyze(self, image: Any, t0: float) -> DetectorResult:
        raise NotImplementedError
