"""``detect generate`` and ``detect train-generator`` with a tiny generator (CPU, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _helpers import textured  # noqa: E402
from cli.main import main  # noqa: E402
from generators.config import GeneratorTrainConfig, tiny_generator_config  # noqa: E402


@pytest.fixture
def weights(tiny_generator_weights: Path) -> Path:
    return tiny_generator_weights


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(textured(40, 48, seed=1)).save(folder / "a.png")
    Image.fromarray(textured(30, 22, seed=2)).save(folder / "b.jpg", quality=92)
    return folder


def _run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_the_commands() -> None:
    out = _run("--help").output
    assert "generate" in out and "train-generator" in out


def test_generate_writes_pngs_and_sidecars(weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _run("generate", "--n", "3", "--size", "16", "--steps", "2", "--seed", "5", "--batch-size", "2", "--device", "cpu", "--weights", str(weights), "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    pngs = sorted(out.glob("sample_*.png"))
    assert [p.name for p in pngs] == ["sample_00000.png", "sample_00001.png", "sample_00002.png"]
    assert Image.open(pngs[0]).size == (16, 16) and Image.open(pngs[0]).mode == "RGB"
    side = json.loads((out / "sample_00002.json").read_text())
    assert side["seed"] == 7 and side["steps"] == 2 and side["scheduler"]["class"] == "DDIMScheduler"
    assert len(side["weights_sha256"]) == 64 and side["device"] == "cpu" and side["seconds"] > 0
    summary = json.loads((out / "generation.json").read_text())
    assert summary["n"] == 3 and summary["samples_per_second"] > 0


def test_generate_same_seed_same_image(weights: Path, tmp_path: Path) -> None:
    for name, bs in (("x", "1"), ("y", "2")):
        _run("generate", "--n", "2", "--size", "16", "--steps", "2", "--seed", "9", "--batch-size", bs, "--device", "cpu", "--weights", str(weights), "--out", str(tmp_path / name), "-q")
    for i in range(2):
        a = np.asarray(Image.open(tmp_path / "x" / f"sample_0000{i}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "y" / f"sample_0000{i}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1


def test_reconstruct_keeps_size_and_name(weights: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    r = _run("generate", "--from-real", str(photos), "--mode", "reconstruct", "--weights", str(weights), "--device", "cpu", "--out", str(out), "--tile-size", "32", "--tile-overlap", "8", "-q")
    assert r.exit_code == 0, r.output
    assert Image.open(out / "a.png").size == (48, 40)
    assert Image.open(out / "b.png").size == (22, 30)
    side = json.loads((out / "a.json").read_text())
    assert side["mode"] == "reconstruct" and side["source"].endswith("a.png") and side["tiles"] > 1


def test_regenerate_writes_aligned_fakes(weights: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "regen"
    r = _run("generate", "--from-real", str(photos), "--mode", "regenerate", "--strength", "0.5", "--steps", "4", "--weights", str(weights), "--device", "cpu", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    side = json.loads((out / "b.json").read_text())
    assert side["strength"] == 0.5 and side["steps"] == 2 and side["seed"] == 1
    assert Image.open(out / "b.png").size == (22, 30)


@pytest.mark.parametrize("strength", ["0", "1.5", "-0.2"])
def test_bad_strength_exits_2(weights: Path, photos: Path, tmp_path: Path, strength: str) -> None:
    r = CliRunner().invoke(main, ["generate", "--from-real", str(photos), "--mode", "regenerate", "--strength", strength, "--weights", str(weights), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "--strength" in r.output and "(0, 1]" in r.output


def test_empty_folder_exits_2(weights: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["generate", "--from-real", str(empty), "--weights", str(weights), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no photos" in r.output


def test_mode_without_from_real_exits_2(weights: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["generate", "--mode", "regenerate", "--weights", str(weights), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--from-real" in r.output


def test_train_generator_smoke_then_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(textured(40 + 8 * i, 48, seed=i)).save(data / f"p{i}.png")
    cfg = tiny_generator_config()
    train = GeneratorTrainConfig(crop_size=16, batch_size=4, ae_steps=4, unet_crop_size=16, unet_batch_size=4, unet_steps=3,
                        checkpoint_every=2, log_every=1, sample_count=4, sample_size=16, sample_steps=2, warmup_steps=1, num_threads=1)
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"model": cfg.to_dict(), "train": train.__dict__}))
    out = tmp_path / "run"
    r = _run("train-generator", str(data), "--config", str(conf), "--out", str(out), "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert (state["ae_step"], state["unet_step"]) == (4, 3)
    assert (out / "samples.png").is_file() and (out / "weights" / "unet.safetensors").is_file()
    assert (out / "checkpoint" / "optim_unet.safetensors").is_file()
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))
    rows = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert {row["phase"] for row in rows} == {"autoencoder", "unet"}

    # a second run without --resume refuses to overwrite
    assert CliRunner().invoke(main, ["train-generator", str(data), "--config", str(conf), "--out", str(out)]).exit_code == 2

    conf.write_text(json.dumps({"model": cfg.to_dict(), "train": {**train.__dict__, "ae_steps": 6, "unet_steps": 5}}))
    r = _run("train-generator", str(data), "--config", str(conf), "--out", str(out), "--device", "cpu", "--resume", "-q")
    assert r.exit_code == 0, r.output
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert (state["ae_step"], state["unet_step"]) == (6, 5)
    assert len(state["invocations"]) == 2
    assert state["model_config"]["autoencoder"]["scaling_factor"] != 1.0


# -- the decoder zoo: --mode reconstruct --decoder NAME|all ----------------------------


def test_decoder_taef2_with_the_shipped_weights(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "taef2"
    r = _run("generate", "--from-real", str(photos), "--mode", "reconstruct", "--decoder", "taef2", "--device", "cpu", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    assert Image.open(out / "a.png").size == (48, 40) and Image.open(out / "b.png").size == (22, 30)
    side = json.loads((out / "a.json").read_text())
    assert side["decoder"] == "taef2" and side["downsample_factor"] == 8 and side["latent_channels"] == 32
    assert side["weights_source"].endswith("taef2.safetensors") and side["tile_size"] == 512 and side["tiles"] == 1
    rec = np.asarray(Image.open(out / "a.png"), dtype=np.float64)
    src = np.asarray(Image.open(photos / "a.png"), dtype=np.float64)
    assert np.abs(rec - src).mean() < 40  # a reconstruction of the photo, not noise
    summary = json.loads((out / "generation.json").read_text())
    assert summary["decoders"] == ["taef2"] and summary["files"] == ["a.png", "b.png"]


def test_decoder_all_writes_one_folder_per_decoder(tiny_zoo_weights: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    r = _run("generate", "--from-real", str(photos), "--decoder", "all", "--weights", str(tiny_zoo_weights), "--device", "cpu", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    for name in ("f8c4", "f8c16", "taef2", "f2"):
        assert Image.open(out / name / "a.png").size == (48, 40)
        assert Image.open(out / name / "b.png").size == (22, 30)
        side = json.loads((out / name / "b.json").read_text())
        assert side["decoder"] == name and side["file"] == f"{name}/b.png" and side["source"].endswith("b.jpg")
    summary = json.loads((out / "generation.json").read_text())
    assert summary["decoders"] == ["f8c4", "f8c16", "taef2", "f2"] and summary["skipped_decoders"] == []
    assert summary["files_by_decoder"]["f2"] == ["f2/a.png", "f2/b.png"]


def test_decoder_all_skips_a_decoder_without_weights(tiny_zoo_weights: Path, photos: Path, tmp_path: Path) -> None:
    import shutil

    weights = tmp_path / "w"
    shutil.copytree(tiny_zoo_weights, weights)
    (weights / "autoencoder_f8c16.json").unlink()
    out = tmp_path / "all"
    r = _run("generate", "--from-real", str(photos), "--decoder", "all", "--weights", str(weights), "--device", "cpu", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "generation.json").read_text())
    assert summary["decoders"] == ["f8c4", "taef2", "f2"]
    assert [m["decoder"] for m in summary["skipped_decoders"]] == ["f8c16"] and "autoencoder_f8c16.json" in summary["skipped_decoders"][0]["error"]
    assert not (out / "f8c16").exists() and (out / "taef2" / "a.png").is_file()


def test_decoder_with_missing_weights_exits_2(photos: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no_weights"
    empty.mkdir()
    r = CliRunner().invoke(main, ["generate", "--from-real", str(photos), "--decoder", "f8c16", "--weights", str(empty), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "f8c16" in r.output and "autoencoder_f8c16.json" in r.output


def test_decoder_tile_size_from_the_command_line(tiny_zoo_weights: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    r = _run("generate", "--from-real", str(photos), "--decoder", "taef2", "--weights", str(tiny_zoo_weights), "--tile-size", "32", "--tile-overlap", "8", "--device", "cpu", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    side = json.loads((out / "a.json").read_text())
    assert (side["tile_size"], side["tile_overlap"]) == (32, 8) and side["tiles"] > 1


@pytest.mark.parametrize("args, message", [
    (["--decoder", "taef2"], "--from-real"),
    (["--decoder", "sdxl"], "Invalid value for '--decoder'"),
])
def test_decoder_usage_errors_exit_2(tmp_path: Path, args: list, message: str) -> None:
    r = CliRunner().invoke(main, ["generate", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and message in r.output


def test_decoder_with_regenerate_exits_2(photos: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["generate", "--from-real", str(photos), "--mode", "regenerate", "--decoder", "f2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--decoder applies only with --mode reconstruct" in r.output
