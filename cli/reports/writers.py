"""Report writers: JSONL, JSON, CSV and a self-contained HTML report.

Every writer follows the same small protocol (:class:`~cli.reports.output.ReportWriter`)::

    writer.add(record, visuals)   # once per image record (see detectors.record)
    writer.close(summary)         # once, with the run's summary record

* :class:`JsonlWriter` streams: each record is written and flushed as soon as it
  is added, so an interrupted scan keeps everything done so far; the summary is
  the last line.
* :class:`JsonWriter`, :class:`CsvWriter` and :class:`HtmlWriter` write one file
  at :meth:`close`, atomically, so a reader never sees half a report.

Records are written in their JSON form (``ImageRecord.to_json()``, or the
mapping an engine handed over) through :func:`~cli.reports.formatting.sanitize`;
the HTML report reads them as typed records (:func:`~cli.reports.card.card_view`).
The path ``"-"`` means standard output for every writer (it is never closed).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from cli.reports.card import CardView, card_view
from cli.reports.formatting import (
    CSV_BASE_COLUMNS,
    CSV_DETECTOR_FIELDS,
    csv_row,
    csv_text_cell,
    dumps,
    sanitize,
)
from cli.reports.output import (
    AtomicTarget,
    PathArg,
    WriterBase,
    check_writable_dir,
    is_stdout,
)
from cli.reports.page import render_report
from detectors.record import ImageRecord, SummaryRecord, Visuals

__all__ = ["WRITERS", "CsvWriter", "HtmlWriter", "JsonWriter", "JsonlWriter"]

Record = ImageRecord | Mapping[str, Any]
Summary = SummaryRecord | Mapping[str, Any]


class JsonlWriter(WriterBase):
    """One JSON record per line, flushed as soon as it is added; the summary is the last line.

    Args:
        path_or_stream: A file path, ``"-"`` for standard output, or an open text
            stream. Streams (and stdout) are flushed but never closed.
    """

    def __init__(self, path_or_stream: PathArg | TextIO) -> None:
        super().__init__()
        self._owned = False
        if is_stdout(path_or_stream):
            self._stream: TextIO = sys.stdout
        elif hasattr(path_or_stream, "write"):
            self._stream = path_or_stream  # type: ignore[assignment]
        else:
            p = check_writable_dir(path_or_stream)  # type: ignore[arg-type]
            self._stream = open(p, "w", encoding="utf-8", errors="backslashreplace", newline="\n")  # noqa: SIM115
            self._owned = True

    def _write_line(self, obj: Any) -> None:
        line = dumps(obj)
        try:
            self._stream.write(line + "\n")
        except UnicodeEncodeError:  # e.g. an ASCII-only console: escaped JSON is still valid JSON
            self._stream.write(dumps(obj, ensure_ascii=True) + "\n")
        self._stream.flush()

    def add(self, record: Record, visuals: Visuals | None = None) -> None:
        """Write ``record`` as one line and flush. ``visuals`` are ignored."""
        self._check_open()
        self._write_line(record)

    def close(self, summary: Summary) -> None:
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


class JsonWriter(WriterBase):
    """One JSON document ``{"summary": ..., "records": [...]}`` written atomically at close.

    Args:
        path: Output path, or ``"-"`` for standard output.
    """

    def __init__(self, path: PathArg) -> None:
        super().__init__()
        self._target = AtomicTarget(path)
        self._records: list[Any] = []

    def add(self, record: Record, visuals: Visuals | None = None) -> None:
        """Keep (a sanitised copy of) ``record``. ``visuals`` are ignored."""
        self._check_open()
        self._records.append(sanitize(record))

    def close(self, summary: Summary) -> None:
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


class CsvWriter(WriterBase):
    """A flat CSV, one row per image, written atomically at close.

    Columns: :data:`~cli.reports.formatting.CSV_BASE_COLUMNS`, then for each
    detector seen in any record (in order of first appearance) ``<name>.score``,
    ``<name>.threshold``, ``<name>.claim`` and ``<name>.status``. Text cells
    that a spreadsheet would evaluate as a formula get a leading apostrophe;
    numeric columns are left as numbers.

    Args:
        path: Output path, or ``"-"`` for standard output.
    """

    def __init__(self, path: PathArg) -> None:
        super().__init__()
        self._target = AtomicTarget(path)
        self._rows: list[dict[str, str]] = []
        self._detectors: dict[str, None] = {}

    def add(self, record: Record, visuals: Visuals | None = None) -> None:
        """Flatten ``record`` into a row. ``visuals`` are ignored."""
        self._check_open()
        row, names = csv_row(sanitize(record))
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

    def close(self, summary: Summary) -> None:
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


class HtmlWriter(WriterBase):
    """One self-contained HTML report (:func:`~cli.reports.page.render_report`), written atomically at close.

    Each added record becomes a card (:func:`~cli.reports.card.card_view`): its
    visuals are encoded to small ``data:`` URIs at once and the arrays dropped.

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
        self._target = AtomicTarget(path)
        self.title = title
        self.page_size = max(1, int(page_size))
        self.visual_max_side = max(16, int(visual_max_side))
        self._views: list[CardView] = []

    def add(self, record: Record, visuals: Visuals | None = None) -> None:
        """Prepare one card.

        Raises:
            ValueError: If ``record`` is a mapping that is not a schema-1.0 image record.
        """
        self._check_open()
        self._views.append(card_view(record, visuals, index=len(self._views), visual_max_side=self.visual_max_side))

    @property
    def views(self) -> list[CardView]:
        """The cards prepared so far, in order."""
        return list(self._views)

    def render(self, summary: Summary) -> str:
        """The complete HTML page (does not close the writer)."""
        return render_report(self._views, summary, title=self.title, page_size=self.page_size)

    def close(self, summary: Summary) -> None:
        """Render and write the page."""
        if self._closed:
            return
        self._closed = True
        html = self.render(summary)
        self._views = []
        self._target.write_text(html)

    def abort(self) -> None:
        """Drop the prepared cards; nothing is written."""
        self._closed = True
        self._views = []


#: Writer classes by format name, for ``--format``-style options.
WRITERS: dict[str, type] = {"jsonl": JsonlWriter, "json": JsonWriter, "csv": CsvWriter, "html": HtmlWriter}
