from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from _helpers import textured
from cli.engine import EngineConfig, ProcessEngine, make_engine
from cli.main import main


def _strip(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    rec.pop("timing", None)
    for d in rec.get("detectors", []):
        d.pop("time_s", None)
    return rec


def _folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(textured(130, 140, seed=i)).save(root / f"img_{i:03d}.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def test_jobs2_gives_same_records_in_same_order(tmp_path: Path) -> None:
    files = sorted(str(p) for p in _folder(tmp_path / "in", 5).iterdir())
    serial = [_strip(a.record) for a in make_engine(EngineConfig(("test_spectral",), jobs=0)).map(files)]
    eng = make_engine(EngineConfig(("test_spectral",), jobs=2))
    try:
        parallel = [_strip(a.record) for a in eng.map(files)]
    finally:
        eng.close()
    assert serial == parallel
    assert [r["file"]["path"] for r in parallel] == files


def test_cnn_runs_batched_and_gives_the_same_records_as_one_by_one(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    from detectors.pipeline import Pipeline

    d = tmp_path / "mixed"
    d.mkdir()
    for i, (h, w) in enumerate([(130, 140), (70, 100), (40, 50), (200, 90), (64, 64), (150, 150), (99, 131)]):
        Image.fromarray(textured(h, w, seed=i)).save(d / f"m_{i}.png")
    (d / "m_9_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    files = sorted(str(p) for p in d.iterdir())
    dets = ("test_spectral", "test_cnn")
    one_by_one = [_strip(Pipeline(dets).analyze_path(f).record) for f in files]
    in_process = [_strip(a.record) for a in make_engine(EngineConfig(dets, jobs=0, batch_images=4)).map(files)]
    eng = make_engine(EngineConfig(dets, jobs=2, batch_images=3, cnn_threads=1))
    try:
        assert eng.config.batched() == ("test_cnn",)
        parallel = [_strip(a.record) for a in eng.map(files)]
    finally:
        eng.close()
    assert in_process == one_by_one
    assert parallel == one_by_one
    cnn = [next((r for r in rec["detectors"] if r["name"] == "cnn"), None) for rec in parallel]
    assert [c["status"] if c else None for c in cnn] == ["ok", "ok", "not_applicable", "ok", "ok", "ok", "ok", None]
    assert [r["name"] for r in parallel[0]["detectors"]] == ["spectral", "cnn"]


def test_per_file_time_limit_kills_and_continues(tmp_path: Path) -> None:
    files = sorted(str(p) for p in _folder(tmp_path / "in", 2).iterdir() if p.name != "broken.png")
    eng = ProcessEngine(EngineConfig(("test_hang",), jobs=1, timeout_s=1.0))
    t0 = time.monotonic()
    try:
        recs = [a.record for a in eng.map(files)]
    finally:
        eng.close()
    assert [r["error"]["code"] for r in recs] == ["timeout", "timeout"]
    assert "time limit" in recs[0]["error"]["message"] and files[0] in recs[0]["error"]["message"]
    assert time.monotonic() - t0 < 60


def test_a_hanging_file_times_out_while_the_batched_cnn_finishes_the_others(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    from detectors.pipeline import Pipeline

    d = tmp_path / "in"
    d.mkdir()
    for i in range(6):
        name = "b_hang.png" if i == 2 else f"a_{i}.png"
        Image.fromarray(textured(130, 140, seed=i)).save(d / name)
    files = sorted(str(p) for p in d.iterdir())
    eng = ProcessEngine(EngineConfig(("test_spectral", "test_cnn", "test_hang_some"), jobs=2, timeout_s=2.0, batch_images=2))
    try:
        recs = [_strip(a.record) for a in eng.map(files)]
    finally:
        eng.close()
    assert [Path(r["file"]["path"]).name for r in recs] == [Path(f).name for f in files]
    for f, r in zip(files, recs):
        if "hang" in f:
            assert r["status"] == "error" and r["error"]["code"] == "timeout"
        else:
            alone = _strip(Pipeline(("test_spectral", "test_cnn", "test_hang_some")).analyze_path(f).record)
            assert r == alone and any(x["name"] == "cnn" and x["status"] == "ok" for x in r["detectors"])


def test_a_failing_batched_stage_gives_error_records_naming_each_file(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    files = sorted(str(p) for p in _folder(tmp_path / "in", 3).iterdir() if p.name != "broken.png")
    eng = ProcessEngine(EngineConfig(("test_spectral", "test_cnn"), jobs=1, batch_images=2))

    def boom(items: list) -> list:
        raise RuntimeError("out of memory")

    eng._finisher.finish = boom  # type: ignore[method-assign]
    try:
        recs = [a.record for a in eng.map(files)]
    finally:
        eng.close()
    assert [r["file"]["path"] for r in recs] == files
    for f, r in zip(files, recs):
        assert r["status"] == "error" and f in r["error"]["message"] and "out of memory" in r["error"]["message"]


def test_resume_skips_unchanged_and_matches_uninterrupted_run(tmp_path: Path) -> None:
    d = _folder(tmp_path / "in", 4)
    runner = CliRunner()
    full = tmp_path / "full.jsonl"
    runner.invoke(main, ["scan", str(d), "-q", "--jobs", "0", "--detector", "test_spectral", "--jsonl", str(full)])
    # an "interrupted" report: the first two records and a torn line
    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines()
    part.write_text("\n".join(lines[:2]) + '\n{"record_type": "ima')
    r = runner.invoke(main, ["scan", str(d), "-q", "--jobs", "0", "--detector", "test_spectral", "--jsonl", str(part), "--resume", str(part)])
    assert r.exit_code in (0, 1), r.output
    a = [json.loads(x) for x in full.read_text().splitlines()]
    b = [json.loads(x) for x in part.read_text().splitlines()]
    assert [x["file"]["path"] for x in a[:-1]] == [x["file"]["path"] for x in b[:-1]]
    # line 0 is broken.png: errors are retried; line 1 (img_000) is reused byte-identical, timings included
    assert a[0]["status"] == "error" and a[1] == b[1]
    assert [_strip(x) for x in a[:-1]] == [_strip(x) for x in b[:-1]]
    assert not (tmp_path / "part.jsonl.prev").exists()
    # a changed file is analysed again
    img = d / "img_000.png"
    Image.fromarray(textured(130, 140, seed=99)).save(img)
    os.utime(img, ns=(time.time_ns(), time.time_ns() + 10**9))
    out = tmp_path / "again.jsonl"
    runner.invoke(main, ["scan", str(d), "-q", "--jobs", "0", "--detector", "test_spectral", "--jsonl", str(out), "--resume", str(part)])
    c = [json.loads(x) for x in out.read_text().splitlines()]
    assert c[1]["file"]["path"].endswith("img_000.png") and c[1]["file"]["sha256"] != b[1]["file"]["sha256"]
    assert c[2] == b[2]


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_leaves_valid_jsonl(tmp_path: Path, sig: int, code: int) -> None:
    d = _folder(tmp_path / "in", 40)
    out = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "scan", str(d), "--jobs", "0", "--detector", "test_slow", "--jsonl", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[-1]["record_type"] == "summary" and lines[-1]["exit_status"] == code
    assert 2 <= len(lines) - 1 < 41
    assert all(x["record_type"] == "image" for x in lines[:-1])


def test_workers_receive_the_loaded_calibration_object_not_a_path(tmp_path: Path) -> None:
    """The calibration is loaded once, in the command; workers never read the file again."""
    import dataclasses

    from cli.engine import resolve_calibration

    custom = dataclasses.replace(resolve_calibration(), version="custom-test-1")
    p = tmp_path / "cal.json"
    p.write_text(custom.to_json(), encoding="utf-8")
    cal = resolve_calibration(str(p))
    p.unlink()  # gone before any worker starts
    files = sorted(str(f) for f in _folder(tmp_path / "in", 2).iterdir())
    with ProcessEngine(EngineConfig(("test_spectral",), calibration=cal, jobs=1)) as eng:
        recs = [a.record for a in eng.map(files)]
    assert [r["calibration"]["version"] for r in recs] == ["custom-test-1"] * 3
    with pytest.raises(ValueError, match="Calibration"):
        EngineConfig(("test_spectral",), calibration=str(p))  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX spawn")
def test_a_worker_that_dies_before_reading_a_large_spec_does_not_block_the_parent() -> None:
    # spawn writes a process's arguments into a pipe whose read end the parent holds until the
    # write ends: a child that died before reading more than the pipe buffer (a calibration with
    # its file hashes) blocked the parent for ever (seen as a scan hanging on SIGTERM at start-up).
    # The spec now travels over the worker's own pipe, which fails at once when the child is gone.
    import dataclasses
    import multiprocessing as mp
    import multiprocessing.spawn as mp_spawn
    import threading

    from cli.engine.worker import Worker, WorkerSpec
    from detectors.calibration import load_calibration

    cal = dataclasses.replace(load_calibration(), calibration_hashes=tuple(f"{i:064x}" for i in range(20_000)))
    spec = WorkerSpec(EngineConfig(detectors=("test_spectral",), calibration=cal))
    ctx = mp.get_context("spawn")
    saved = mp_spawn.get_executable()
    ctx.set_executable("/bin/true")  # a "worker" that exits without reading anything
    box: dict = {}
    try:
        t = threading.Thread(target=lambda: box.setdefault("w", Worker(spec, ctx)), daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive(), "starting a worker blocked on a dead child"
    finally:
        ctx.set_executable(saved)
    w = box["w"]
    w.proc.join(10)
    assert w.receive(1.0) == ("died", None)
