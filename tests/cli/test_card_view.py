"""The HTML report and the desk draw the same card: ``cli.reports.card_view``."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from PIL import Image

from _helpers import encode, textured
from cli.crop_map import LEGEND_HEIGHT, max_crop_text
from cli.reports import HtmlWriter, card_view, render_report, sanitize
from cli.reports.card import CROP_MAP_CAPTION
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
    assert body["images"] == dict(view.images) and set(body["images"]) == {"t", "c", "z", "r", "s"}
    # the downloadable report holds the same card, drawn by the same template
    page = render_report([view], _summary([record]), title="x")
    assert _articles(body["report_html"]) == _articles(page) and len(_articles(page)) == 1
    assert "&lt;b&gt;desk&lt;/b&gt;" in _articles(page)[0]


# ----------------------------------------------------------------------------- the CNN's crop map


def _cnn_row(view):
    return next(d for d in view.card.detectors if d.name == "cnn")


def test_card_shows_the_cnn_crop_map_beside_the_thumbnail(analysis, tmp_path) -> None:
    view = card_view(analysis.record, analysis.visuals)
    figs = view.card.figures
    assert [f.key for f in figs] == ["t", "c", "z", "r", "s"]
    crop = figs[1]
    assert figs[2].kind == "surprise" and figs[2].caption.startswith("Zero-shot coding cost per crop")
    assert crop.kind == "crops" and crop.caption == CROP_MAP_CAPTION == "CNN crop scores (red = leans AI)"
    assert view.images["c"].startswith("data:image/jpeg;base64,")
    thumb = analysis.visuals.thumbnail
    assert (crop.w, crop.h) == (thumb.shape[1], thumb.shape[0] + LEGEND_HEIGHT)
    cnn = next(d for d in analysis.record["detectors"] if d["name"] == "cnn")
    assert _cnn_row(view).explanations[-1] == max_crop_text(cnn["evidence"])
    assert _cnn_row(view).explanations[:-1] == tuple(cnn["explanations"])
    # drawn by the report's template, alt text and caption
    w = HtmlWriter(tmp_path / "r.html", title="t")
    w.add(analysis.record, analysis.visuals)
    w.close(_summary([analysis.record]))
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f'<figure class="vis vis-crops"><img data-k="c" width="{crop.w}" height="{crop.h}" alt="{CROP_MAP_CAPTION}"' in html
    assert "Most AI-leaning crop: " in html


def _with_cnn(record: dict, cnn: dict | None) -> dict:
    dets = [d for d in record["detectors"] if d["name"] != "cnn"] + ([cnn] if cnn is not None else [])
    return {**record, "detectors": dets}


def test_card_omits_the_crop_map_when_the_cnn_did_not_place_crops(analysis) -> None:
    from detectors.base import DetectorResult

    rec, vis = analysis.record, analysis.visuals
    cnn = next(d for d in rec["detectors"] if d["name"] == "cnn")
    failed = DetectorResult(name="cnn", version="v", status="error", message="RuntimeError: boom").to_dict()
    unplaced = {**cnn, "evidence": {k: v for k, v in cnn["evidence"].items() if k != "crops_in_image"}}
    cases = {
        "error": (_with_cnn(rec, failed), vis),
        "not run": (_with_cnn(rec, None), vis),
        "no visuals": (rec, None),
        "no thumbnail": (rec, replace(vis, thumbnail=None)),
        "thumbnail of another image": (rec, replace(vis, thumbnail=vis.thumbnail[:, :100])),
        "crops not placed (older record)": (_with_cnn(rec, unplaced), vis),
    }
    for why, (r, v) in cases.items():
        view = card_view(r, v)
        assert "c" not in view.images and all(f.key != "c" for f in view.card.figures), why
    # the max-crop line needs only the evidence; an error row has none
    assert "Most AI-leaning crop" in _cnn_row(card_view(_with_cnn(rec, unplaced), None)).explanations[-1]
    assert _cnn_row(card_view(_with_cnn(rec, failed), vis)).explanations == ()


def test_card_of_a_small_image_has_no_crop_map() -> None:
    png = encode(Image.fromarray(textured(48, 200, seed=2)), "PNG")  # below the CNN's 64 px
    a = Pipeline(["test_spectral", "test_cnn"]).analyze_bytes(png, name="small.png", visuals=True)
    cnn = next(d for d in a.record["detectors"] if d["name"] == "cnn")
    assert cnn["status"] == "not_applicable" and a.visuals is not None and a.visuals.thumbnail is not None
    view = card_view(a.record, a.visuals)
    assert "c" not in view.images and [f.key for f in view.card.figures][:1] == ["t"]
    assert not any("Most AI-leaning" in e for d in view.card.detectors for e in d.explanations)
