"""The HTML report and the desk draw the same card: ``cli.reports.card_view``."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from _helpers import encode, textured
from cli.reports import HtmlWriter, card_view, render_report, sanitize
from detectors.pipeline import Pipeline
from detectors.record import ImageRecord, SummaryRecord

NAME = "<b>desk</b> & 'q'.png"


@pytest.fixture(scope="module")
def png() -> bytes:
    return encode(Image.fromarray(textured(256, 256, seed=7)), "PNG")


@pytest.fixture(scope="module")
def analysis(png: bytes):
    return Pipeline().analyze_bytes(png, name=NAME, visuals=True)


def _summary(records: list[dict]) -> dict:
    return SummaryRecord.finish(
        n_files=len(records), n_errors=sum(r["status"] == "error" for r in records),
        counts={lab: sum(r["label"] == lab for r in records) for lab in {r["label"] for r in records}},
        calibration=records[0]["calibration"], models={"spectral": "v"}, config={"paths": ["x"]},
        started_at="2024-05-01T10:00:00+00:00", elapsed_s=1.0, exit_status=0,
    ).to_json()  # fmt: skip


def _articles(html: str) -> list[str]:
    return re.findall(r"<article\b.*?</article>", html, re.S)


def test_html_report_cards_are_card_view(analysis, tmp_path) -> None:
    err = Pipeline(["test_spectral"]).analyze_bytes(b"GIF89a broken", name="bad.gif")
    items = [(analysis.record, analysis.visuals), (err.record, None)]
    w = HtmlWriter(tmp_path / "r.html", title="t")
    for rec, vis in items:
        w.add(rec, vis)
    expected = [card_view(rec, vis, index=i) for i, (rec, vis) in enumerate(items)]
    assert w.views == expected
    # typed or JSON form: the same card
    assert card_view(ImageRecord.from_json(analysis.record), analysis.visuals) == expected[0]
    summary = _summary([r for r, _ in items])
    w.close(summary)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html == render_report(expected, summary, title="t")
    assert len(_articles(html)) == 2 and expected[1].card.error is not None


def test_desk_card_is_card_view(analysis, png: bytes) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from cli.web.app import create_app

    app = create_app(max_bytes=1_000_000, max_pixels=1_000_000, max_concurrent=1, queue_size=1, timeout_s=60)
    with TestClient(app) as client:
        r = client.post("/api/v1/card", files={"file": (NAME, png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    record = body["record"]
    assert record["file"]["path"] == NAME
    # the server's record with this process's visuals of the same bytes
    view = card_view(record, analysis.visuals)
    assert body["card"] == sanitize(view.card)
    assert body["images"] == dict(view.images) and set(body["images"]) == {"t", "r", "s"}
    # the downloadable report holds the same card, drawn by the same template
    page = render_report([view], _summary([record]), title="x")
    assert _articles(body["report_html"]) == _articles(page) and len(_articles(page)) == 1
    assert "&lt;b&gt;desk&lt;/b&gt;" in _articles(page)[0]
