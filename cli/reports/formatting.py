"""Formatting shared by the report writers: JSON-safe values, script-safe JSON, CSV cells.

Everything here is pure: no file is opened, nothing is written.

* :func:`sanitize` makes any record JSON-safe: strings that cannot be encoded
  as UTF-8 (surrogate-escaped filenames) are backslash-escaped, NaN and
  infinities become ``null``, numpy scalars become plain numbers; with
  ``display=True`` control and bidi-override characters are escaped too.
* :func:`json_for_script` is JSON that cannot close an HTML ``<script>``.
* :func:`csv_row` flattens one image record into the CSV report's cells, with
  spreadsheet formula injection guarded.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.record import ImageRecord, SummaryRecord

__all__ = [
    "CSV_BASE_COLUMNS",
    "CSV_DETECTOR_FIELDS",
    "csv_number_cell",
    "csv_row",
    "csv_text_cell",
    "display_text",
    "dumps",
    "json_for_script",
    "sanitize",
]

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


def display_text(s: str) -> str:
    """``s`` made valid UTF-8 with control and bidi-override characters escaped, for display."""
    return _display_str(_safe_str(s))


def sanitize(obj: Any, *, display: bool = False, _depth: int = 0) -> Any:
    """A JSON-safe deep copy of ``obj``.

    Args:
        obj: A record, summary or any nested structure of dicts, lists and scalars.
        display: Also escape control and bidi-override characters in strings
            (for human-facing output such as HTML).

    Returns:
        Plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` values:
        non-finite floats become ``None``, numpy scalars and arrays become Python
        values, strings are valid UTF-8, typed records become their ``to_json()``,
        objects with ``to_dict`` become that, unknown objects become their ``str``.
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
    if isinstance(obj, (ImageRecord, SummaryRecord)):
        return sanitize(obj.to_json(), display=display, _depth=_depth + 1)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return sanitize(to_dict(), display=display, _depth=_depth + 1)
    return sanitize(str(obj), display=display)


def dumps(obj: Any, *, indent: int | None = None, ensure_ascii: bool = False) -> str:
    """Strict JSON of :func:`sanitize` of ``obj`` (never ``NaN``)."""
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
# CSV cells
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


def csv_row(record: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The CSV cells of one image record (in JSON form, already sanitised) and its detector names in order.

    Returns:
        ``(row, names)``: ``row`` maps :data:`CSV_BASE_COLUMNS` and
        ``<detector>.<field>`` columns to cell text; ``names`` are the
        detectors in the record, first appearance first.
    """
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
