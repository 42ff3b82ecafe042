"""The self-contained HTML report page: header model, Jinja2 rendering, Content-Security-Policy.

:func:`render_report` draws cards (:func:`cli.reports.card.card_view`) under a
header made from the run's :class:`~detectors.record.SummaryRecord`. The page
has no external resources and a strict Content-Security-Policy: the only
script that may run is the inline one whose SHA-256 is in the policy. Images
are kept in a JSON blob; the script pages through the cards and sets image
sources only for the cards on the visible page. Without scripts the header,
the summary table and the cards (without images) are still shown.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.reports.card import LABEL_TEXT, CardView, Pairs, fmt_score, fmt_value, num
from cli.reports.formatting import display_text, json_for_script, sanitize
from detectors.record import LABELS, SCHEMA_VERSION, SummaryRecord

__all__ = ["CountCell", "Header", "csp_hash", "header_view", "render_report"]

_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@dataclass(frozen=True)
class CountCell:
    """One label's count in the header (a filter button)."""

    label: str
    text: str
    n: int


@dataclass(frozen=True)
class Header:
    """The report header: ``(name, text)`` pairs per panel, and the label counts."""

    run: Pairs
    config: Pairs
    models: Pairs
    thresholds: Pairs
    calibration: Pairs
    counts: tuple[CountCell, ...]


def header_view(summary: SummaryRecord | Mapping[str, Any]) -> Header:
    """The header of a report for the run ``summary`` (display text, as :func:`card_view`).

    Raises:
        ValueError: If ``summary`` is a mapping that is not a schema-1.0 summary record.
    """
    s = SummaryRecord.from_json(sanitize(summary, display=True))  # every string escaped for display
    run = (
        ("tool", f"{s.tool.name} {s.tool.version}".strip()),
        ("schema version", SCHEMA_VERSION),
        ("started", fmt_value(s.started_at)),
        ("finished", fmt_value(s.finished_at)),
        ("elapsed", f"{fmt_value(num(s.elapsed_s))} s"),
        ("files", fmt_value(s.n_files)),
        ("errors", fmt_value(s.n_errors)),
        ("exit status", fmt_value(s.exit_status)),
    )
    return Header(
        run=run,
        config=tuple((str(k), fmt_value(v)) for k, v in s.config.items()),
        models=tuple((str(k), fmt_value(v)) for k, v in s.models.items()),
        thresholds=tuple((str(k), fmt_score(v)) for k, v in s.thresholds.items()),
        calibration=tuple((str(k), fmt_value(v)) for k, v in (s.calibration or {}).items()),
        counts=tuple(CountCell(lab, LABEL_TEXT[lab], s.counts.get(lab, 0)) for lab in LABELS),
    )


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
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render_report(
    views: Sequence[CardView],
    summary: SummaryRecord | Mapping[str, Any],
    *,
    title: str = "detect scan report",
    page_size: int = 50,
) -> str:
    """The complete HTML page of ``views`` (in order) under the header of ``summary``.

    Args:
        views: The cards, ``views[i].card.i == i``.
        summary: The run's summary record.
        title: Page title (shown as text).
        page_size: Cards per page (at least 1).

    Raises:
        ValueError: If ``summary`` is a mapping that is not a schema-1.0 summary record.
    """
    from markupsafe import Markup

    page_size = max(1, int(page_size))
    css = _read_asset("report.css")
    script = _read_asset("report.js")
    csp = (
        "default-src 'none'; img-src data:; "
        f"style-src {csp_hash(css)}; script-src {csp_hash(script)}; "
        "base-uri 'none'; form-action 'none'"
    )
    data = {"page_size": page_size, "items": [v.entry.to_json() for v in views], "images": [dict(v.images) for v in views]}
    tmpl = _jinja_env().get_template("report.html")
    return tmpl.render(
        title=display_text(str(title)),
        csp=csp,
        # Our own static assets, checked to contain no closing tag; never record data.
        css=Markup(css),
        script=Markup(script),
        # Record-derived, but JSON-encoded with <, >, & escaped (see json_for_script).
        data_json=Markup(json_for_script(data)),
        header=header_view(summary),
        cards=[v.card for v in views],
        labels=[(lab, LABEL_TEXT[lab]) for lab in LABELS],
        n_cards=len(views),
        page_size=page_size,
    )
