"""Report writers: JSONL, JSON, CSV and a self-contained HTML report.

Every writer follows the same small protocol (:class:`ReportWriter`)::

    writer.add(record, visuals)   # once per image record (see detectors.record)
    writer.close(summary)         # once, with the run's summary record

* :class:`JsonlWriter` streams: each record is written and flushed as soon as it
  is added, so an interrupted scan keeps everything done so far; the summary is
  the last line.
* :class:`JsonWriter`, :class:`CsvWriter` and :class:`HtmlWriter` write one file
  at :meth:`close`, atomically (temporary file in the same folder, then
  :func:`os.replace`), so a reader never sees half a report.

The path ``"-"`` means standard output for every writer (it is never closed).

All writers are defensive about their input: strings that cannot be encoded as
UTF-8 (surrogate-escaped filenames) are backslash-escaped, NaN and infinities
become ``null``, and numpy scalars become plain numbers.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, TextIO, Union, runtime_checkable

import numpy as np

from cli.render import crop_center, fit_long_side, jpeg_data_uri, png_data_uri
from detectors.record import LABELS, Visuals

__all__ = [
    "CsvWriter",
    "HtmlWriter",
    "JsonWriter",
    "JsonlWriter",
    "ReportWriter",
    "WRITERS",
    "csp_hash",
    "csv_number_cell",
    "csv_text_cell",
    "json_for_script",
    "png_data_uri",
    "sanitize",
]

PathArg = Union[str, "os.PathLike[str]"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Largest embedded provenance thumbnail (characters of the data URI).
MAX_EVIDENCE_THUMBNAIL = 90 * 1024
_EVIDENCE_THUMB_RE = re.compile(r"data:image/(png|jpeg|webp);base64,[A-Za-z0-9+/=]+")


# --------------------------------------------------------------------------- #
# Protocol
# --------------------------------------------------------------------------- #


@runtime_checkable
class ReportWriter(Protocol):
    """What the scan command needs from a report writer."""

    def add(self, record: dict[str, Any], visuals: Visuals | None = None) -> None:
        """Add one image record (and optionally its small display images)."""
        ...

    def close(self, summary: dict[str, Any]) -> None:
        """Finish the report with the run's summary record."""
        ...


# --------------------------------------------------------------------------- #
# Sanitising
# --------------------------------------------------------------------------- #

# C0/C1 controls (except tab and newline) and bidirectional overrides, which can
# make a filename display as something it is not.
_UNSAFE_DISPLAY_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _safe_str(s: str) -> str:
    """``s`` if it encodes as UTF-8, else with lone surrogates backslash-escaped."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    try:  # surrogate-escaped bytes (os.fsdecode): show the original bytes as \xNN
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _display_str(s: str) -> str:
    """Escape control and bidi-override characters as ``\\xNN`` / ``\\uNNNN`` for display."""

    def esc(m: re.Match[str]) -> str:
        c = ord(m.group(0))
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return _UNSAFE_DISPLAY_RE.sub(esc, s)


def sanitize(obj: Any, *, display: bool = False, _depth: int = 0) -> Any:
    """A JSON-safe deep copy of ``obj``.

    Args:
        obj: A record, summary or any nested structure of dicts, lists and scalars.
        display: Also escape control and bidi-override characters in strings
            (for human-facing output such as HTML).

    Returns:
        Plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` values:
        non-finite floats become ``None``, numpy scalars and arrays become Python
        values, strings are valid UTF-8, unknown objects become their ``str``.
    """
    if _depth > 64:
        return "..."
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        s = _safe_str(obj)
        return _display_str(s) if display else s
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return sanitize(obj.item(), display=display, _depth=_depth + 1)
    if isinstance(obj, Mapping):
        return {
            sanitize(str(k), display=display): sanitize(v, display=display, _depth=_depth + 1)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [sanitize(v, display=display, _depth=_depth + 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return sanitize(obj.tolist(), display=display, _depth=_depth + 1)
    if isinstance(obj, (bytes, bytearray)):
        s = bytes(obj).decode("utf-8", "backslashreplace")
        return _display_str(s) if display else s
    if isinstance(obj, os.PathLike):
        return sanitize(os.fsdecode(obj), display=display)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return sanitize(to_dict(), display=display, _depth=_depth + 1)
    return sanitize(str(obj), display=display)


def _dumps(obj: Any, *, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(sanitize(obj), ensure_ascii=ensure_ascii, allow_nan=False, indent=indent)


def json_for_script(obj: Any) -> str:
    """JSON safe to embed in an HTML ``<script type="application/json">`` element.

    ``<``, ``>``, ``&`` and the line separators U+2028/U+2029 are written as
    ``\\uXXXX`` escapes, so no string can close the script element.
    """
    s = json.dumps(sanitize(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        s.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# --------------------------------------------------------------------------- #
# Output helpers
# --------------------------------------------------------------------------- #


def _is_stdout(path: Any) -> bool:
    return isinstance(path, str) and path == "-"


def _check_writable_dir(path: PathArg) -> Path:
    """Fail early (before a long scan) when the report could not be written."""
    p = Path(os.fspath(path))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write report {os.fsdecode(p)!r}: folder {os.fsdecode(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write report {os.fsdecode(p)!r}: folder {os.fsdecode(parent)!r} is not writable")
    if p.is_dir():
        raise IsADirectoryError(f"cannot write report {os.fsdecode(p)!r}: it is a folder")
    return p


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The temporary file is created with mode 0o666 so the process umask applies,
    as for an ordinary ``open(path, "w")``.
    """
    parent = path.parent if str(path.parent) else Path(".")
    tmp = parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_stream(stream: TextIO, text: str) -> None:
    """Write text to a stream whose encoding may not cover it (e.g. an ASCII console)."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, "backslashreplace").decode(enc))
    stream.flush()


class _AtomicTarget:
    """A report written in one go at close: a file (atomically) or standard output."""

    def __init__(self, path: PathArg) -> None:
        self.to_stdout = _is_stdout(path)
        self.path = None if self.to_stdout else _check_writable_dir(path)

    def write_text(self, text: str) -> None:
        if self.to_stdout:
            _write_stream(sys.stdout, text)
        else:
            assert self.path is not None
            _atomic_write(self.path, text.encode("utf-8"))


class _WriterBase:
    """Shared add/close bookkeeping and context-manager support."""

    def __init__(self) -> None:
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is already closed")

    def abort(self) -> None:
        """Stop without a summary. JSONL keeps the lines already written; other formats write nothing."""
        self._closed = True

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.abort()


# --------------------------------------------------------------------------- #
# JSONL
# --------------------------------------------------------------------------- #


class JsonlWriter(_WriterBase):
    """One JSON record per line, flushed as soon as it is added; the summary is the last line.

    Args:
        path_or_stream: A file path, ``"-"`` for standard output, or an open text
            stream. Streams (and stdout) are flushed but never closed.
    """

    def __init__(self, path_or_stream: PathArg | TextIO) -> None:
        super().__init__()
        self._owned = False
        if _is_stdout(path_or_stream):
            self._stream: TextIO = sys.stdout
        elif hasattr(path_or_stream, "write"):
            self._stream = path_or_stream  # type: ignore[assignment]
        else:
            p = _check_writable_dir(path_or_stream)  # type: ignore[arg-type]
            self._stream = open(p, "w", encoding="utf-8", errors="backslashreplace", newline="\n")  # noqa: SIM115
            self._owned = True

    def _write_line(self, obj: dict[str, Any]) -> None:
        line = _dumps(obj)
        try:
            self._stream.write(line + "\n")
        except UnicodeEncodeError:  # e.g. an ASCII-only console: escaped JSON is still valid JSON
            self._stream.write(_dumps(obj, ensure_ascii=True) + "\n")
        self._stream.flush()

    def add(self, record: dict[str, Any], visuals: Visuals | None = None) -> None:
        """Write ``record`` as one line and flush. ``visuals`` are ignored."""
        self._check_open()
        self._write_line(record)

    def close(self, summary: dict[str, Any]) -> None:
        """Write the summary line, flush, and close the file (not stdout or a given stream)."""
        if self._closed:
            return
        try:
            self._write_line(summary)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the file without a summary line; the records written so far stay."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._stream.close()
        else:
            self._stream.flush()


# --------------------------------------------------------------------------- #
# JSON
# --------------------------------------------------------------------------- #


class JsonWriter(_WriterBase):
    """One JSON document ``{"summary": ..., "records": [...]}`` written atomically at close.

    Args:
        path: Output path, or ``"-"`` for standard output.
    """

    def __init__(self, path: PathArg) -> None:
        super().__init__()
        self._target = _AtomicTarget(path)
        self._records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any], visuals: Visuals | None = None) -> None:
        """Keep (a sanitised copy of) ``record``. ``visuals`` are ignored."""
        self._check_open()
        self._records.append(sanitize(record))

    def close(self, summary: dict[str, Any]) -> None:
        """Write the document."""
        if self._closed:
            return
        self._closed = True
        doc = {"summary": sanitize(summary), "records": self._records}
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=2) + "\n"
        self._records = []
        self._target.write_text(text)

    def abort(self) -> None:
        """Drop the kept records; nothing is written."""
        self._closed = True
        self._records = []


# --------------------------------------------------------------------------- #
# CSV
# --------------------------------------------------------------------------- #

CSV_BASE_COLUMNS: tuple[str, ...] = (
    "path",
    "sha256",
    "format",
    "width",
    "height",
    "bytes",
    "status",
    "label",
    "score",
    "decided_by",
    "error_code",
    "error_message",
    "quality_flags",
    "explanations",
    "total_s",
)
CSV_DETECTOR_FIELDS: tuple[str, ...] = ("score", "threshold", "claim", "status")
_CSV_NUMERIC = {"width", "height", "bytes", "score", "total_s"}
_CSV_NUMERIC_DETECTOR = {"score", "threshold"}
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_text_cell(value: Any) -> str:
    """A text cell, with a leading apostrophe when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    if s.startswith(_FORMULA_PREFIXES):
        return "'" + s
    return s


def csv_number_cell(value: Any) -> str:
    """A numeric cell: numbers as written by ``repr``, ``None``/non-finite empty, anything else guarded text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return repr(v) if math.isfinite(v) else ""
    return csv_text_cell(value)


def _flatten_record(record: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The CSV row of one record (already sanitised) and its detector names in order."""
    f = record.get("file") or {}
    err = record.get("error") or {}
    timing = record.get("timing") or {}
    flags = record.get("quality_flags") or []
    codes = [str(q.get("code", "")) if isinstance(q, Mapping) else str(q) for q in flags]
    row: dict[str, str] = {
        "path": csv_text_cell(f.get("path")),
        "sha256": csv_text_cell(f.get("sha256")),
        "format": csv_text_cell(f.get("format")),
        "width": csv_number_cell(f.get("width")),
        "height": csv_number_cell(f.get("height")),
        "bytes": csv_number_cell(f.get("bytes")),
        "status": csv_text_cell(record.get("status")),
        "label": csv_text_cell(record.get("label")),
        "score": csv_number_cell(record.get("score")),
        "decided_by": csv_text_cell(record.get("decided_by")),
        "error_code": csv_text_cell(err.get("code") if isinstance(err, Mapping) else None),
        "error_message": csv_text_cell(err.get("message") if isinstance(err, Mapping) else None),
        "quality_flags": csv_text_cell(";".join(codes)),
        "explanations": csv_text_cell(" | ".join(str(e) for e in record.get("explanations") or [])),
        "total_s": csv_number_cell(timing.get("total_s") if isinstance(timing, Mapping) else None),
    }
    names: list[str] = []
    for det in record.get("detectors") or []:
        if not isinstance(det, Mapping):
            continue
        name = str(det.get("name", ""))
        if not name or name in names:
            continue
        names.append(name)
        for fld in CSV_DETECTOR_FIELDS:
            v = det.get(fld)
            row[f"{name}.{fld}"] = csv_number_cell(v) if fld in _CSV_NUMERIC_DETECTOR else csv_text_cell(v)
    return row, names


class CsvWriter(_WriterBase):
    """A flat CSV, one row per image, written atomically at close.

    Columns: :data:`CSV_BASE_COLUMNS`, then for each detector seen in any record
    (in order of first appearance) ``<name>.score``, ``<name>.threshold``,
    ``<name>.claim`` and ``<name>.status``. Text cells that a spreadsheet would
    evaluate as a formula get a leading apostrophe; numeric columns are left as
    numbers.

    Args:
        path: Output path, or ``"-"`` for standard output.
    """

    def __init__(self, path: PathArg) -> None:
        super().__init__()
        self._target = _AtomicTarget(path)
        self._rows: list[dict[str, str]] = []
        self._detectors: dict[str, None] = {}

    def add(self, record: dict[str, Any], visuals: Visuals | None = None) -> None:
        """Flatten ``record`` into a row. ``visuals`` are ignored."""
        self._check_open()
        row, names = _flatten_record(sanitize(record))
        self._rows.append(row)
        for n in names:
            self._detectors.setdefault(n, None)

    @property
    def columns(self) -> list[str]:
        """The header: base columns then the union of detector columns."""
        cols = list(CSV_BASE_COLUMNS)
        for n in self._detectors:
            cols.extend(f"{n}.{fld}" for fld in CSV_DETECTOR_FIELDS)
        return cols

    def close(self, summary: dict[str, Any]) -> None:
        """Write the CSV. The summary is not part of a CSV (use JSON/JSONL for it)."""
        if self._closed:
            return
        self._closed = True
        cols = self.columns
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow([csv_text_cell(c) for c in cols])
        for row in self._rows:
            w.writerow([row.get(c, "") for c in cols])
        self._rows = []
        self._target.write_text(buf.getvalue())

    def abort(self) -> None:
        """Drop the rows; nothing is written."""
        self._closed = True
        self._rows = []


# --------------------------------------------------------------------------- #
# HTML
# --------------------------------------------------------------------------- #

_LABEL_TEXT = {
    "ai_confirmed": "AI confirmed",
    "likely_ai": "Likely AI",
    "inconclusive": "Inconclusive",
    "likely_real": "Likely real",
    "error": "Error",
}
_LABEL_RANK_SORT = {lab: i for i, lab in enumerate(LABELS)}
_MAX_EVIDENCE_STRING = 2000
_MAX_EVIDENCE_JSON = 20000
_MAX_RAW_PARAMS = 8000
_GENERATOR_KEYS = ("prompt", "negative_prompt", "sampler", "steps", "cfg_scale", "seed", "model", "model_hash", "size")
_C2PA_KEYS = ("state", "validation_state", "signer", "issuer", "claim_generator", "actions", "digital_source_type")


@functools.lru_cache(maxsize=1)
def _jinja_env():  # -> jinja2.Environment
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _read_asset(name: str) -> str:
    text = (_TEMPLATES / name).read_text(encoding="utf-8").replace("\r\n", "\n")
    if re.search(r"</(script|style)", text, re.IGNORECASE):
        raise ValueError(f"{name} must not contain a closing </script> or </style> tag")
    return text


def csp_hash(text: str) -> str:
    """The CSP source expression (``'sha256-...'``) of an inline script or style."""
    import base64

    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt_score(v: Any) -> str:
    x = _num(v)
    return "—" if x is None else f"{x:.3f}"


def _fmt_bytes(v: Any) -> str:
    x = _num(v)
    if x is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(x) < 1024 or unit == "GB":
            return f"{int(x)} B" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GB"  # pragma: no cover


def _fmt_value(v: Any) -> str:
    """A short human-readable form of a config or metadata value."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_value(x) for x in v) if v else "—"
    if isinstance(v, Mapping):
        return json.dumps(v, ensure_ascii=False, allow_nan=False)
    return str(v)


def _bar(score: Any, markers: Iterable[Any] = ()) -> dict[str, Any] | None:
    """Geometry of an SVG score bar (percent units), or ``None`` without a score."""
    s = _num(score)
    if s is None:
        return None
    s = min(max(s, 0.0), 1.0)
    ms = [min(max(m, 0.0), 1.0) for m in (_num(x) for x in markers) if m is not None]
    return {"w": f"{100 * s:.1f}", "markers": [f"{100 * m:.1f}" for m in ms]}


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


def _evidence_json(evidence: Any) -> str:
    ev = dict(evidence) if isinstance(evidence, dict) else {"value": evidence}
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


def _pairs(sources: Iterable[Any], keys: Iterable[str]) -> list[tuple[str, str]]:
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
                    text = _fmt_value(v)
                out.append((k, text))
                break
    return out


def _provenance(det: dict[str, Any]) -> dict[str, Any] | None:
    """The provenance panel of one detector result, or ``None`` when it has nothing to show."""
    ev = det.get("evidence")
    ev = ev if isinstance(ev, dict) else {}
    summary = ev.get("summary")
    summary = summary if isinstance(summary, str) and summary.strip() else None
    claim = det.get("claim") or "none"
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
                    {
                        "msg": str(msg),
                        "matched": _fmt_value(b.get("matched")),
                        "total": _fmt_value(b.get("total")),
                        "order": _fmt_value(b.get("order")),
                        "band": _fmt_value(b.get("band")),
                    }
                )
    gen_sources = [ev.get("generator"), ev.get("parameters"), ev]
    gen_pairs = _pairs(gen_sources, _GENERATOR_KEYS)
    raw = next((s["raw"] for s in gen_sources if isinstance(s, dict) and isinstance(s.get("raw"), str)), None)
    if isinstance(raw, str) and len(raw) > _MAX_RAW_PARAMS:
        raw = raw[:_MAX_RAW_PARAMS] + f"... [{len(raw) - _MAX_RAW_PARAMS} more characters]"
    return {
        "name": str(det.get("name", "")),
        "claim": str(claim),
        "strength": str(det.get("strength") or "none"),
        "summary": summary,
        "c2pa": c2pa_pairs,
        "bits": bits_rows,
        "generator": gen_pairs,
        "raw": raw,
    }


def _label_key(label: Any) -> str:
    return label if isinstance(label, str) and label in _LABEL_TEXT else "unknown"


class HtmlWriter(_WriterBase):
    """One self-contained HTML report, rendered with Jinja2 at close and written atomically.

    The page has no external resources and a strict Content-Security-Policy: the
    only script that may run is the inline one whose SHA-256 is in the policy.
    Visuals are encoded to small ``data:`` URIs when a record is added and kept
    in a JSON blob; the script pages through the cards and sets image sources
    only for the cards on the visible page. Without scripts the header, the
    summary table and the cards (without images) are still shown.

    Args:
        path: Output path, or ``"-"`` for standard output.
        title: Page title.
        page_size: Cards per page.
        visual_max_side: Long side, in pixels, of the residual and spectrum images.
    """

    def __init__(
        self,
        path: PathArg,
        *,
        title: str = "detect scan report",
        page_size: int = 50,
        visual_max_side: int = 160,
    ) -> None:
        super().__init__()
        self._target = _AtomicTarget(path)
        self.title = title
        self.page_size = max(1, int(page_size))
        self.visual_max_side = max(16, int(visual_max_side))
        self._cards: list[dict[str, Any]] = []
        self._images: list[dict[str, str]] = []
        self._items: list[dict[str, Any]] = []
        self._counts: dict[str, int] = {}

    # -- add --------------------------------------------------------------- #

    def _encode_visuals(self, visuals: Visuals | None) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Data URIs (by key) and figure descriptions for one card. Bad arrays are skipped."""
        uris: dict[str, str] = {}
        figs: list[dict[str, Any]] = []
        if visuals is None:
            return uris, figs
        specs = (
            ("t", "thumbnail", "Thumbnail", lambda a: jpeg_data_uri(fit_long_side(a, 256))),
            ("r", "residual", "Noise residual (centre crop)", lambda a: png_data_uri(crop_center(a, self.visual_max_side))),
            ("s", "spectrum", "Log power spectrum of the residual", lambda a: png_data_uri(fit_long_side(a, self.visual_max_side))),
        )
        for key, attr, caption, enc in specs:
            arr = getattr(visuals, attr, None)
            if arr is None:
                continue
            try:
                a = np.asarray(arr)
                uri = enc(a)
            except (TypeError, ValueError, OSError):
                continue
            h, w = a.shape[:2]
            lim = 256 if key == "t" else self.visual_max_side
            if key == "r":
                h, w = min(h, lim), min(w, lim)
            elif max(h, w) > lim:
                sc = lim / max(h, w)
                h, w = max(1, round(h * sc)), max(1, round(w * sc))
            uris[key] = uri
            figs.append({"key": key, "kind": attr, "caption": caption, "w": int(w), "h": int(h)})
        return uris, figs

    def add(self, record: dict[str, Any], visuals: Visuals | None = None) -> None:
        """Prepare one card: escape-ready text and small base64 images (the arrays are not kept)."""
        self._check_open()
        rec = sanitize(record, display=True)
        i = len(self._cards)
        f = rec.get("file") if isinstance(rec.get("file"), dict) else {}
        label = _label_key(rec.get("label"))
        self._counts[label] = self._counts.get(label, 0) + 1
        cal = rec.get("calibration") if isinstance(rec.get("calibration"), dict) else {}
        uris, figs = self._encode_visuals(visuals)

        detectors = []
        provenance = []
        for j, det in enumerate(d for d in (rec.get("detectors") or []) if isinstance(d, dict)):
            prov = _provenance(det)
            if prov is not None:
                thumb = _valid_evidence_thumbnail((det.get("evidence") or {}).get("thumbnail_data_uri"))
                if thumb is not None:
                    key = f"p{j}"
                    uris[key] = thumb
                    prov["thumb_key"] = key
                else:
                    prov["thumb_key"] = None
                provenance.append(prov)
            score, thr = _num(det.get("score")), _num(det.get("threshold"))
            detectors.append(
                {
                    "name": str(det.get("name", "")),
                    "version": _fmt_value(det.get("version")),
                    "status": str(det.get("status", "")),
                    "score": _fmt_score(score),
                    "threshold": _fmt_score(thr),
                    "over": score is not None and thr is not None and score >= thr,
                    "bar": _bar(score, [thr]),
                    "claim": str(det.get("claim") or "none"),
                    "strength": str(det.get("strength") or "none"),
                    "message": det.get("message") if isinstance(det.get("message"), str) else None,
                    "explanations": [str(e) for e in det.get("explanations") or []],
                    "time": _fmt_value(_num(det.get("time_s"))),
                    "evidence": _evidence_json(det.get("evidence")),
                }
            )

        err = rec.get("error") if isinstance(rec.get("error"), dict) else None
        timing = rec.get("timing") if isinstance(rec.get("timing"), dict) else {}
        flags = []
        for q in rec.get("quality_flags") or []:
            if isinstance(q, dict):
                flags.append({"code": str(q.get("code", "")), "message": str(q.get("message", ""))})
            else:
                flags.append({"code": str(q), "message": ""})
        meta = [
            ("path", _fmt_value(f.get("path"))),
            ("sha256", _fmt_value(f.get("sha256"))),
            ("format", _fmt_value(f.get("format"))),
            (
                "dimensions",
                f"{f.get('width')} × {f.get('height')}" if f.get("width") is not None else "—",
            ),
            ("size", _fmt_bytes(f.get("bytes")) + (f" ({f.get('bytes')} bytes)" if _num(f.get("bytes")) is not None else "")),
            ("mode", _fmt_value(f.get("mode"))),
            ("frames", _fmt_value(f.get("frames"))),
            ("time", ", ".join(f"{k} {_fmt_value(_num(v))} s" for k, v in timing.items() if _num(v) is not None) or "—"),
        ]
        score = _num(rec.get("score"))
        path = str(f.get("path") if f.get("path") is not None else f"(record {i + 1})")
        self._cards.append(
            {
                "i": i,
                "path": path,
                "label": label,
                "label_text": _LABEL_TEXT.get(label, "Unknown"),
                "score": _fmt_score(score),
                "bar": _bar(score, [cal.get("likely_real"), cal.get("likely_ai")]),
                "decided_by": _fmt_value(rec.get("decided_by")),
                "size": _fmt_bytes(f.get("bytes")),
                "dims": f"{f.get('width')}×{f.get('height')}" if f.get("width") is not None else "—",
                "figures": figs,
                "detectors": detectors,
                "provenance": provenance,
                "flags": flags,
                "explanations": [str(e) for e in rec.get("explanations") or []],
                "error": {"code": str(err.get("code", "")), "message": str(err.get("message", ""))} if err else None,
                "meta": meta,
            }
        )
        self._images.append(uris)
        size = _num(f.get("bytes"))
        self._items.append(
            {"p": path, "l": label, "r": _LABEL_RANK_SORT.get(label, len(LABELS)), "s": score, "b": size}
        )

    def card_views(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """The cards prepared so far, for other front ends (``detect serve`` draws them in the page).

        Returns:
            One ``(card, images)`` pair per added record: ``card`` is the display
            model the template renders (every string already sanitised, to be
            shown as text), ``images`` maps the ``data-k`` keys of its figures to
            ``data:`` URIs.
        """
        return [(dict(c), dict(u)) for c, u in zip(self._cards, self._images)]

    # -- close ------------------------------------------------------------- #

    def _header(self, summary: dict[str, Any]) -> dict[str, Any]:
        s = sanitize(summary, display=True)
        counts_src = s.get("counts") if isinstance(s.get("counts"), dict) else self._counts
        counts = [
            {"label": lab, "text": _LABEL_TEXT[lab], "n": counts_src.get(lab, 0)} for lab in LABELS
        ]
        thresholds = s.get("thresholds") if isinstance(s.get("thresholds"), dict) else {}
        config = s.get("config") if isinstance(s.get("config"), dict) else {}
        models = s.get("models") if isinstance(s.get("models"), dict) else {}
        cal = s.get("calibration") if isinstance(s.get("calibration"), dict) else {}
        tool = s.get("tool") if isinstance(s.get("tool"), dict) else {}
        run = [
            ("tool", f"{tool.get('name', 'detect')} {tool.get('version', '')}".strip()),
            ("schema version", _fmt_value(s.get("schema_version"))),
            ("started", _fmt_value(s.get("started_at"))),
            ("finished", _fmt_value(s.get("finished_at"))),
            ("elapsed", f"{_fmt_value(_num(s.get('elapsed_s')))} s"),
            ("files", _fmt_value(s.get("n_files", len(self._cards)))),
            ("errors", _fmt_value(s.get("n_errors", self._counts.get("error", 0)))),
            ("exit status", _fmt_value(s.get("exit_status"))),
        ]
        return {
            "run": run,
            "config": [(str(k), _fmt_value(v)) for k, v in config.items()],
            "models": [(str(k), _fmt_value(v)) for k, v in models.items()],
            "thresholds": [(str(k), _fmt_score(v)) for k, v in thresholds.items()],
            "calibration": [(str(k), _fmt_value(v)) for k, v in cal.items()],
            "counts": counts,
        }

    def render(self, summary: dict[str, Any]) -> str:
        """The complete HTML page (does not close the writer)."""
        css = _read_asset("report.css")
        script = _read_asset("report.js")
        csp = (
            "default-src 'none'; img-src data:; "
            f"style-src {csp_hash(css)}; script-src {csp_hash(script)}; "
            "base-uri 'none'; form-action 'none'"
        )
        from markupsafe import Markup

        data = {"page_size": self.page_size, "items": self._items, "images": self._images}
        tmpl = _jinja_env().get_template("report.html")
        return tmpl.render(
            title=_display_str(_safe_str(str(self.title))),
            csp=csp,
            # Our own static assets, checked to contain no closing tag; never record data.
            css=Markup(css),
            script=Markup(script),
            # Record-derived, but JSON-encoded with <, >, & escaped (see json_for_script).
            data_json=Markup(json_for_script(data)),
            header=self._header(summary),
            cards=self._cards,
            labels=[(lab, _LABEL_TEXT[lab]) for lab in LABELS],
            n_cards=len(self._cards),
            page_size=self.page_size,
        )

    def close(self, summary: dict[str, Any]) -> None:
        """Render and write the page."""
        if self._closed:
            return
        self._closed = True
        html = self.render(summary)
        self._cards, self._images, self._items = [], [], []
        self._target.write_text(html)

    def abort(self) -> None:
        """Drop the prepared cards; nothing is written."""
        self._closed = True
        self._cards, self._images, self._items = [], [], []


#: Writer classes by format name, for ``--format``-style options.
WRITERS: dict[str, type] = {"jsonl": JsonlWriter, "json": JsonWriter, "csv": CsvWriter, "html": HtmlWriter}
