"""Zero-shot coder training: config, augmentation, the smoke run through ``detect train`` (resume, determinism), feature cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from _helpers import REPO, SHARED, textured  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from cli.main import main  # noqa: E402
from datasets.samples import Sample  # noqa: E402
from detectors.zed_training import (  # noqa: E402
    ZedAugmentConfig,
    ZedTrainConfig,
    augment_patch,
    features_for_samples,
    load_zed_train_config,
    real_samples,
)

SMOKE = str(REPO / "configs" / "zed_smoke.json")


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["train", "--config", SMOKE, *args], catch_exceptions=False)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_shipped_configs_parse_and_round_trip() -> None:
    for name in ("zed_smoke.json", "zed_v1.json"):
        cfg = load_zed_train_config(REPO / "configs" / name)
        assert ZedTrainConfig.from_dict(cfg.to_dict()) == cfg
    assert load_zed_train_config(REPO / "configs" / "zed_v1.json").schedule.num_threads == 1


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "zed", "schedule": {"stepz": 3}}))
    with pytest.raises(ValueError, match="schedule: unknown keys \\['stepz'\\]"):
        load_zed_train_config(bad)
    with pytest.raises(ValueError, match="augment.jpeg_p must be in \\[0, 1\\], got 1.5"):
        ZedAugmentConfig(jpeg_p=1.5)
    with pytest.raises(ValueError, match="resize_range must satisfy 0 < lo <= hi <= 1"):
        ZedAugmentConfig(resize_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="kind must be 'zed'"):
        ZedTrainConfig(kind="cnn")
    with pytest.raises(ValueError, match="schedule.patch 128 must be <= the tile side 96"):
        ZedTrainConfig.from_dict({"data": {"kind": "synthetic", "synthetic_size": 96}})


def test_augment_patch_is_seeded_and_leaves_the_tile_alone() -> None:
    tile = textured(160, 160)
    before = tile.copy()
    aug = ZedAugmentConfig(resize_p=0.5, sharpen_p=0.5, jpeg_p=0.5, reencode_p=0.5)
    a = [augment_patch(tile, aug, patch=64, rng=np.random.default_rng(s)) for s in range(6)]
    b = [augment_patch(tile, aug, patch=64, rng=np.random.default_rng(s)) for s in range(6)]
    assert all(x.shape == (64, 64, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.array_equal(tile, before)
    with pytest.raises(ValueError, match="H, W >= 64"):
        augment_patch(tile[:40], aug, patch=64, rng=np.random.default_rng(0))


def test_smoke_trains_then_resume_continues_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _run("--out", str(out), "--steps", "2", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2
    first = [d["bits"] for d in _log(out) if "bits" in d]

    res = _run("--out", str(out), "--resume", "--steps", "4", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 4
    log = _log(out)
    steps = [d["step"] for d in log if "bits" in d]
    assert steps == sorted(steps) and steps[-1] == 4 and [d["bits"] for d in log if "bits" in d][: len(first)] == first
    assert [d for d in log if d.get("event") == "finalized"]

    from detectors.zeroshot import ZedDetector

    det = ZedDetector(weights=out / "final" / "zed.json")  # loads, passes the sha256 check, has its map and tau
    assert det.config.score_map is not None and det.config.tau is not None and 0 <= det.threshold <= 1
    assert det.config.meta["steps"] == 4


def test_same_config_same_losses(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _run("--out", str(out), "--steps", "3", "--no-export", "-q").exit_code == 0
    losses = [[d["bits"] for d in _log(o) if "bits" in d] for o in (a, b)]
    assert losses[0] == losses[1]
    assert (a / "checkpoint" / "model.safetensors").read_bytes() == (b / "checkpoint" / "model.safetensors").read_bytes()


def test_resume_without_checkpoint_fails_cleanly(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["train", "--config", SMOKE, "--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 2 and "checkpoint file missing" in res.output


def test_stopped_by_time_limit_then_resumed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _run("--out", str(out), "--steps", "400", "--max-minutes", "0.001", "-q")
    assert res.exit_code == 0 and "stopped" in res.output
    done = json.loads((out / "checkpoint" / "state.json").read_text())["step"]
    assert 1 <= done < 400 and [d for d in _log(out) if d.get("event") == "stopped"]


def test_features_for_samples_uses_its_cache(tmp_path: Path) -> None:
    from detectors import create_detector

    det = create_detector("test_zed")
    files = []
    for i, (h, w) in enumerate([(96, 128), (40, 100)]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(textured(h, w, seed=i)).save(p)
        files.append(Sample(str(p), "real", split="test"))
    cache = tmp_path / "features.jsonl"
    rows = features_for_samples(det, files, ["none", "jpeg75"], cache=cache)
    assert [r["status"] for r in rows] == ["ok", "ok", "not_applicable", "not_applicable"]
    assert len(rows[0]["features"]) == 6
    n_lines = len(cache.read_text().splitlines())
    again = features_for_samples(det, files, ["none", "jpeg75"], cache=cache)
    assert again == rows and len(cache.read_text().splitlines()) == n_lines  # nothing recomputed


def test_training_photos_are_real_only() -> None:
    if not (SHARED / "manifest.json").is_file() or not (SHARED.parent / "data2" / "manifest.json").is_file():
        pytest.skip("../shared/data or data2 is absent")
    cfg = load_zed_train_config(REPO / "configs" / "zed_v1.json")
    samples = real_samples(cfg.data)
    assert samples and all(s.label == "real" and s.split == "train" for s in samples)
