"""Reports of a scan: JSONL, JSON, CSV and a self-contained HTML report.

* :mod:`cli.reports.writers`: the four writers (``add(record, visuals)``, then
  ``close(summary)``).
* :mod:`cli.reports.output`: where they write (atomic files, standard output)
  and the :class:`ReportWriter` protocol.
* :mod:`cli.reports.formatting`: JSON-safe values, script-safe JSON, CSV cells.
* :mod:`cli.reports.card`: the evidence card of one image (:func:`card_view`),
  drawn by the HTML report and by ``detect serve``.
* :mod:`cli.reports.page`: the HTML page around the cards (:func:`render_report`).
"""

from __future__ import annotations

from cli.render import png_data_uri
from cli.reports.card import (
    MAX_EVIDENCE_THUMBNAIL,
    Card,
    CardView,
    card_view,
    thumbnail_data_uri,
)
from cli.reports.formatting import (
    CSV_BASE_COLUMNS,
    CSV_DETECTOR_FIELDS,
    csv_number_cell,
    csv_text_cell,
    json_for_script,
    sanitize,
)
from cli.reports.output import ReportWriter
from cli.reports.page import csp_hash, render_report
from cli.reports.writers import WRITERS, CsvWriter, HtmlWriter, JsonlWriter, JsonWriter

__all__ = [
    "CSV_BASE_COLUMNS",
    "CSV_DETECTOR_FIELDS",
    "MAX_EVIDENCE_THUMBNAIL",
    "WRITERS",
    "Card",
    "CardView",
    "CsvWriter",
    "HtmlWriter",
    "JsonWriter",
    "JsonlWriter",
    "ReportWriter",
    "card_view",
    "csp_hash",
    "csv_number_cell",
    "csv_text_cell",
    "json_for_script",
    "png_data_uri",
    "render_report",
    "sanitize",
    "thumbnail_data_uri",
]
