"""``--resume`` reuses only records every report can read (``ImageRecord.from_json``)."""

from __future__ import annotations

import json
from pathlib import Path

from cli.reports import HtmlWriter
from cli.scan import load_resume
from detectors.record import error_record


def _ok(path: str) -> dict:
    rec = error_record(path, "x", f"{path}: x")
    rec.update(status="ok", error=None, label="likely_real", score=0.1, explanations=["Fine."])
    return rec


def test_resume_skips_records_the_reports_cannot_read(tmp_path: Path) -> None:
    good, no_timing, bad_flag = _ok("a.jpg"), _ok("b.jpg"), _ok("c.jpg")
    del no_timing["timing"]
    bad_flag["quality_flags"] = ["small"]
    report = tmp_path / "old.jsonl"
    lines = [json.dumps(r) for r in (good, no_timing, bad_flag)] + ['{"record_type": "summary"}', '{"record_ty']
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = load_resume(str(report))
    assert list(got.records) == ["a.jpg"] and got.records["a.jpg"] == good
    assert len(got.skipped) == 2
    assert "line 2" in got.skipped[0] and "lacks timing" in got.skipped[0]
    assert "line 3" in got.skipped[1] and "quality_flags[0]" in got.skipped[1]
    # what is reused, every writer takes
    w = HtmlWriter(tmp_path / "r.html")
    for rec in got.records.values():
        w.add(rec)
    w.abort()
