"""``detect train``: the smoke config runs, checkpoints, resumes and is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("timm")

from _helpers import REPO
from click.testing import CliRunner

from cli.main import main

SMOKE = str(REPO / "configs" / "cnn_smoke.json")


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["train", "--config", SMOKE, *args], catch_exceptions=False)


def test_smoke_trains_then_resume_continues(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _run("--out", str(out), "--steps", "2", "-q")
    assert res.exit_code == 0, res.output
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "checkpoint" / "optimizer.safetensors").is_file()
    assert (out / "best" / "cnn.json").is_file()
    first = [d["loss"] for d in _log(out) if "loss" in d and "val" not in d]

    res = _run("--out", str(out), "--resume", "--steps", "4", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 4
    log = _log(out)
    steps = [d["step"] for d in log if "loss" in d and "val" not in d]
    assert steps == sorted(steps) and steps[-1] == 4 and steps[: len(first)] == [2]
    assert [d for d in log if d.get("event") == "finished"][-1]["step"] == 4

    from detectors.cnn import CNNDetector

    CNNDetector(weights=out / "best" / "cnn.json")  # the best weights load (and pass the hash check)


def test_same_config_same_losses(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _run("--out", str(out), "--steps", "2", "-q").exit_code == 0
    losses = [[d["loss"] for d in _log(o) if "loss" in d and "val" not in d] for o in (a, b)]
    assert losses[0] == losses[1]
    assert (a / "checkpoint" / "model.safetensors").read_bytes() == (b / "checkpoint" / "model.safetensors").read_bytes()


def test_resume_without_checkpoint_fails_cleanly(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["train", "--config", SMOKE, "--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 2
    assert "cannot resume" in res.output


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "schedule": {"stepz": 3}}))
    res = CliRunner().invoke(main, ["train", "--config", str(bad)])
    assert res.exit_code == 2
    assert "unknown keys" in res.output


def test_train_is_listed_in_help() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert "train " in res.output and "Train the CNN detector." in res.output
