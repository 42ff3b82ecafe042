from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from rich.console import Console

from _helpers import textured
from cli.engine import EngineConfig
from cli.main import main
from cli.scan import ExitStatus, Report, ScanConfig, run_scan

FAST = ["--detector", "test_spectral", "--jobs", "0"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(textured(200, 260, seed=1)).save(d / "a.png")
    Image.fromarray(textured(220, 240, seed=2)).save(d / "sub" / "b.jpg", quality=92)
    (d / "empty.png").write_bytes(b"")
    (d / "fake.jpg").write_text("not an image")
    (d / "notes.txt").write_text("ignored: not an image extension")
    return d


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_scan_streams_jsonl_to_stdout_only(folder: Path) -> None:
    r = CliRunner().invoke(main, ["scan", str(folder), "--jsonl", "-", "--fail-on", "never", *FAST])
    assert r.exit_code == 0, r.output
    lines = _jsonl(r.stdout)  # stdout must be pure JSONL
    recs, summary = lines[:-1], lines[-1]
    assert summary["record_type"] == "summary"
    assert summary["n_files"] == 4 and summary["n_errors"] == 2
    by_name = {Path(x["file"]["path"]).name: x for x in recs}
    assert set(by_name) == {"a.png", "b.jpg", "empty.png", "fake.jpg"}
    assert by_name["empty.png"]["status"] == "error" and "empty" in by_name["empty.png"]["error"]["message"]
    assert by_name["fake.jpg"]["error"]["code"] == "not_image"
    assert "fake.jpg" in by_name["fake.jpg"]["error"]["message"]
    ok = by_name["a.png"]
    assert ok["status"] == "ok" and ok["label"] in ("likely_ai", "inconclusive", "likely_real")
    assert ok["schema_version"] == "1.0" and ok["tool"]["name"] == "detect"
    assert len(ok["file"]["sha256"]) == 64 and ok["file"]["width"] == 260
    assert ok["detectors"][0]["name"] == "spectral"
    assert {q["code"] for q in ok["quality_flags"]} >= {"no_exif"}
    assert ok["explanations"] and ok["timing"]["total_s"] >= 0


def test_no_recursive_and_ext(folder: Path) -> None:
    r = CliRunner().invoke(main, ["scan", str(folder), "--no-recursive", "--ext", "png", "--jsonl", "-", "-q", *FAST])
    names = sorted(Path(x["file"]["path"]).name for x in _jsonl(r.stdout)[:-1])
    assert names == ["a.png", "empty.png"]


def test_exit_codes(folder: Path) -> None:
    runner = CliRunner()
    args = ["scan", str(folder / "a.png"), "-q", *FAST]
    assert runner.invoke(main, [*args, "--fail-on", "never"]).exit_code == ExitStatus.OK
    # every analysed image is at least likely_real, so this flags it
    assert runner.invoke(main, [*args, "--fail-on", "likely_real"]).exit_code == ExitStatus.FLAGGED
    assert runner.invoke(main, ["scan", "--bogus-option", str(folder)]).exit_code == ExitStatus.ERROR
    assert runner.invoke(main, ["scan"]).exit_code == ExitStatus.ERROR
    assert runner.invoke(main, ["scan", str(folder), "--detector", "nope"]).exit_code == ExitStatus.ERROR
    assert runner.invoke(main, ["scan", str(folder), "--json", "-", "--jsonl", "-"]).exit_code == ExitStatus.ERROR


def test_exit_status_follows_labels() -> None:
    rep = Report()
    rep.add({"label": "likely_real", "status": "ok"}, "likely_ai")
    rep.add({"label": "error", "status": "error"}, "likely_ai")
    assert rep.exit_status() == ExitStatus.OK and rep.n_errors == 1
    rep.add({"label": "ai_confirmed", "status": "ok"}, "likely_ai")
    assert rep.exit_status() == ExitStatus.FLAGGED


def test_missing_path_is_an_error_record(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["scan", str(tmp_path / "nope.png"), "--jsonl", "-", *FAST])
    rec = _jsonl(r.stdout)[0]
    assert rec["status"] == "error" and "no such file" in rec["error"]["message"]
    assert r.exit_code == 0


def test_all_report_formats(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    r = CliRunner().invoke(
        main,
        ["scan", str(folder), "-q", *FAST, "--json", str(out / "r.json"), "--jsonl", str(out / "r.jsonl"),
         "--csv", str(out / "r.csv"), "--html", str(out / "r.html")],
    )  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    doc = json.loads((out / "r.json").read_text())
    assert len(doc["records"]) == 4 and doc["summary"]["n_errors"] == 2
    rows = list(csv.DictReader(io.StringIO((out / "r.csv").read_text())))
    assert len(rows) == 4 and "spectral.score" in rows[0]
    html = (out / "r.html").read_text()
    assert "a.png" in html and "Content-Security-Policy" in html
    assert len(_jsonl((out / "r.jsonl").read_text())) == 5


def test_hostile_filenames_are_text(tmp_path: Path) -> None:
    d = tmp_path / "h"
    d.mkdir()
    hostile = '<script>alert(1)<\\script>"><img src=x onerror=alert(2)>.png'  # no '/' in a file name
    Image.fromarray(textured(100, 100)).save(d / hostile)
    if os.name == "posix":
        bad = os.fsencode(str(d)) + b"/bad_\xff\xfe.png"
        with open(bad, "wb") as fh:
            Image.fromarray(textured(100, 100)).save(fh, format="PNG")
    html_path = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["scan", str(d), "-q", *FAST, "--html", str(html_path), "--jsonl", "-"])
    assert r.exit_code in (0, 1), r.output
    html = html_path.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    recs = _jsonl(r.stdout)[:-1]
    assert len(recs) == (2 if os.name == "posix" else 1)
    assert all(x["status"] == "ok" for x in recs)


def test_run_scan_direct_with_captured_consoles(folder: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    cfg = ScanConfig(paths=(str(folder),), analysis=EngineConfig(("test_spectral",)), fail_on="never")
    status = run_scan(
        cfg,
        console=Console(file=out, width=80, color_system=None),
        err_console=Console(file=err, width=80, color_system=None),
    )
    assert status == ExitStatus.OK
    text = out.getvalue()
    assert "4 files" in text and "error: 2" in text and "detect scan" in text
    assert err.getvalue() == ""  # not a terminal: no progress bar


def test_config_is_frozen() -> None:
    cfg = ScanConfig(paths=("x",))
    with pytest.raises(AttributeError):
        cfg.quiet = True  # type: ignore[misc]


def test_inspect(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["inspect", str(folder / "sub" / "b.jpg")])
    assert r.exit_code in (0, 1), r.output
    assert "JPEG: estimated quality 92" in r.stdout
    assert "cnn: Most AI-leaning crop: " in r.stdout and "the score is the mean of all" in r.stdout
    r = runner.invoke(main, ["inspect", str(folder / "a.png"), "--json", "--figure", str(tmp_path / "f.png")])
    doc = json.loads(r.stdout)
    assert doc["record"]["file"]["format"] == "PNG"
    fig = Image.open(tmp_path / "f.png")
    assert fig.size[0] > 5 * 256  # image, CNN crop scores, residual, spectrum, radial profile
    r = runner.invoke(main, ["inspect", str(folder / "fake.jpg")])
    assert r.exit_code == 2 and "fake.jpg" in r.stdout


def test_render_figure_with_and_without_the_crop_map() -> None:
    from cli.crop_map import crop_heatmap
    from cli.inspect import render_figure

    thumb = textured(120, 160, seed=3)
    grey = thumb[..., 0].copy()
    prof = np.linspace(3.0, 1.0, 16)
    crops = crop_heatmap(thumb, [(0, 0, 60)], [0.95], image_size=(160, 120))
    four = render_figure(thumb, grey, grey, prof, title="t")
    five = render_figure(thumb, grey, grey, prof, title="t", crop_map=crops)
    assert four.size[0] == 4 * 256 + 5 * 8 and five.size[0] == 5 * 256 + 6 * 8 and five.size[1] == four.size[1]
    panel = np.asarray(five)[24 : 24 + crops.shape[0], 8 + 264 : 8 + 264 + crops.shape[1]]
    assert (panel == crops).all()  # the second panel is the crop map, unscaled


def test_detectors_command() -> None:
    r = CliRunner().invoke(main, ["detectors"])
    assert "spectral" in r.stdout.split()


def test_readme_first_command_scans_the_bundled_examples(tmp_path: Path) -> None:
    """The README's first command: the shipped weights and calibration on examples/."""
    pytest.importorskip("timm")
    examples = Path(__file__).resolve().parents[2] / "examples"
    out = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["scan", str(examples), "--json", str(out), "--html", str(tmp_path / "report.html"), "-q"])
    assert r.exit_code == 1, r.output  # an example carries InvokeAI metadata: ai_confirmed
    doc = json.loads(out.read_text())
    recs = {Path(x["file"]["path"]).name: x for x in doc["records"]}
    assert len(recs) == 5 and all(x["status"] == "ok" for x in recs.values())
    assert recs["invokeai_sd1_preflight_000009.png"]["label"] == "ai_confirmed"
    for name, rec in recs.items():
        assert {d["name"] for d in rec["detectors"]} >= {"spectral", "cnn", "watermark", "c2pa"}
        if name.startswith("canon_"):  # real photos: never flagged
            assert rec["label"] not in ("likely_ai", "ai_confirmed"), rec["label"]
