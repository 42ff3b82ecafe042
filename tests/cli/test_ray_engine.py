from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from _helpers import textured
from cli.engine import EngineConfig, make_engine
from cli.walk import iter_files

pytest.importorskip("ray")


def _strip(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    rec.pop("timing", None)
    for d in rec.get("detectors", []):
        d.pop("time_s", None)
    return rec


def test_ray_records_match_local_engine(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(6):
        Image.fromarray(textured(150, 170, seed=i)).save(d / f"{i}.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    files = [e.path for e in iter_files([str(d)])]
    dets = ("test_spectral", "test_cnn")  # test_cnn runs as batched Ray actors
    local = [_strip(a.record) for a in make_engine(EngineConfig(dets, jobs=0)).map(files)]
    eng = make_engine(EngineConfig(dets, jobs=2, engine="ray", visuals=True, batch_images=4))
    try:
        out = list(eng.map(files))
        # the same files through fsspec URLs
        urls = [e.path for e in iter_files([f"file://{d}"])]
        via_url = [_strip(a.record) for a in eng.map(urls)]
    finally:
        eng.close()
    assert [_strip(a.record) for a in out] == local
    assert any(d["name"] == "cnn" and d["status"] == "ok" for d in local[0]["detectors"])
    assert out[1].visuals is not None and out[1].visuals.thumbnail is not None
    assert len(via_url) == len(local)
    for u, l in zip(via_url, local):
        assert u["status"] == l["status"] and u["score"] == l["score"] and u["file"]["sha256"] == l["file"]["sha256"]


def test_ray_actors_enforce_the_per_file_time_limit(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.png", "b_stuck_hang.png", "c.png"):
        Image.fromarray(textured(150, 170, seed=len(name))).save(d / name)
    files = [e.path for e in iter_files([str(d)])]
    dets = ("test_spectral", "test_hang_some")
    local = [_strip(a.record) for a in make_engine(EngineConfig(dets, jobs=0)).map([files[0], files[2]])]
    eng = make_engine(EngineConfig(dets, jobs=1, engine="ray", timeout_s=3.0, batch_images=2))
    try:
        out = [_strip(a.record) for a in eng.map(files)]
    finally:
        eng.close()
    assert [r["status"] for r in out] == ["ok", "error", "ok"]
    assert out[1]["error"]["code"] == "timeout" and files[1] in out[1]["error"]["message"]
    assert [out[0], out[2]] == local
