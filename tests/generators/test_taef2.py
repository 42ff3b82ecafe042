"""TAEF2: the module written from the tensor shapes, the shipped weights, and the checked loader."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from _helpers import REPO, SHARED  # noqa: E402
from generators.taef2 import TAEF2, TAEF2_FILE, TAEF2Config, check_state_dict, load_taef2, save_taef2  # noqa: E402

UPSTREAM = SHARED.parent / "data2" / "weights" / "taef2"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(a, b, data_range=1.0))


def test_layout_matches_the_upstream_state_dict_listing() -> None:
    """Every tensor of STATE_DICT.md's tables, by name and shape, and nothing else (1,338,528 + 1,338,499 parameters)."""
    model = TAEF2()
    enc = {k: tuple(v.shape) for k, v in model.encoder.state_dict().items()}
    dec = {k: tuple(v.shape) for k, v in model.decoder.state_dict().items()}
    assert len(enc) == len(dec) == 79
    assert sum(int(np.prod(s)) for s in enc.values()) == 1_338_528
    assert sum(int(np.prod(s)) for s in dec.values()) == 1_338_499
    assert enc["0.weight"] == (64, 3, 3, 3) and enc["14.weight"] == (32, 64, 3, 3) and "2.bias" not in enc
    assert enc["11.pool.0.weight"] == (256, 64, 1, 1) and enc["13.pool.1.bias"] == (256,) and "10.pool.0.weight" not in enc
    assert dec["1.weight"] == (64, 32, 3, 3) and dec["19.weight"] == (3, 64, 3, 3) and dec["5.pool.3.weight"] == (64, 256, 1, 1)
    assert "7.bias" not in dec and "6.weight" not in dec  # upsample then bias-free conv


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="../shared/data2 is absent")
def test_layout_matches_the_upstream_files() -> None:
    model = TAEF2()
    for part in ("encoder", "decoder"):
        sd = torch.load(UPSTREAM / f"taef2_{part}.pth", map_location="cpu", weights_only=True)
        check_state_dict(getattr(model, part).state_dict(), sd, source=part)


def test_shapes_and_factor_8() -> None:
    model = TAEF2(TAEF2Config(width=8, mlp_expansion=2)).eval()
    x = torch.rand(2, 3, 64, 40)
    with torch.inference_mode():
        z = model.encode(x)
        y = model.decode(z)
    assert z.shape == (2, 32, 8, 5) and y.shape == x.shape


def test_shipped_weights_load_and_reconstruct_a_smooth_image() -> None:
    model = load_taef2()
    assert model.config == TAEF2Config()
    yy, xx = np.mgrid[:64, :96] / 96
    img = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy)[..., None] * np.array([1.0, 0.8, 0.6]) + 0.1 * ((xx > 0.5) & (yy < 0.4))[..., None]
    img = img.astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    with torch.inference_mode():
        z = model.encode(x)
        y = model.decode(z).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert z.shape == (1, 32, 8, 12)
    # measured 25.8 dB (a 64x96 image is mostly border); random weights give 5.5 dB
    assert _psnr(img, y) > 20.0


def test_soft_clamp_bounds_the_latent() -> None:
    assert isinstance(TAEF2().decoder[0], torch.nn.Identity)  # the shipped reading: no clamp
    model = TAEF2(TAEF2Config(width=8, mlp_expansion=2, latent_clamp=3.0))
    z = torch.tensor([-100.0, -3.0, 0.0, 0.5, 100.0])
    out = model.decoder[0](z)
    assert out.abs().max() <= 3.0 and abs(float(out[3]) - 0.5) < 0.01


def _write(state: dict, path: Path, config: TAEF2Config) -> Path:
    from safetensors.torch import save_file

    save_file(state, str(path), metadata={"config": json.dumps(asdict(config))})
    return path


def test_wrong_shape_names_tensor_and_both_shapes(tmp_path: Path) -> None:
    cfg = TAEF2Config(width=8, mlp_expansion=2)
    state = {k: v.clone() for k, v in TAEF2(cfg).state_dict().items()}
    state["decoder.1.weight"] = torch.zeros(8, 16, 3, 3)  # expects (8, 32, 3, 3): 32 latent channels
    path = _write(state, tmp_path / "bad.safetensors", cfg)
    with pytest.raises(ValueError) as err:
        load_taef2(path)
    msg = str(err.value)
    assert str(path) in msg and "'decoder.1.weight'" in msg
    assert "(8, 16, 3, 3)" in msg and "expected (8, 32, 3, 3)" in msg


def test_missing_and_unexpected_tensors_are_named(tmp_path: Path) -> None:
    cfg = TAEF2Config(width=8, mlp_expansion=2)
    state = {k: v.clone() for k, v in TAEF2(cfg).state_dict().items()}
    del state["encoder.11.pool.1.weight"]
    state["encoder.99.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"missing tensor 'encoder\.11\.pool\.1\.weight' \(expected shape \(16,\)\).*unexpected tensor 'encoder\.99\.weight'"):
        load_taef2(_write(state, tmp_path / "bad.safetensors", cfg))


def test_full_size_weights_into_a_tiny_config_fail_clearly(tmp_path: Path) -> None:
    """The shipped tensors under a tiny config's metadata: many mismatches, summarised."""
    from safetensors.torch import load_file

    state = load_file(str(TAEF2_FILE))
    with pytest.raises(ValueError, match=r"tensor 'encoder\.0\.weight' has shape \(64, 3, 3, 3\), expected \(8, 3, 3, 3\).*more"):
        load_taef2(_write(state, tmp_path / "bad.safetensors", TAEF2Config(width=8)))


def test_missing_file_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load_taef2(tmp_path / "nowhere.safetensors")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "c.safetensors"), metadata={"config": '{"width": 0}'})
    with pytest.raises(ValueError, match="width must be >= 1"):
        load_taef2(tmp_path / "c.safetensors")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = TAEF2(TAEF2Config(width=8, mlp_expansion=2, latent_clamp=2.5))
    save_taef2(model, tmp_path / "m.safetensors", dtype=torch.float32, metadata={"note": "x"})
    back = load_taef2(tmp_path / "m.safetensors")
    assert back.config == model.config
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())


def test_shipped_file_is_safetensors_with_provenance() -> None:
    from safetensors import safe_open

    assert TAEF2_FILE.parent == REPO / "generators" / "weights"
    with safe_open(str(TAEF2_FILE), framework="pt") as fh:
        meta = fh.metadata()
        assert fh.get_tensor("encoder.0.weight").dtype == torch.float16
    assert meta["licence"] == "MIT" and "madebyollin/taesd" in meta["upstream"]
    assert "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6" in meta["sources"]
    assert (TAEF2_FILE.parent / "taef2_LICENSE.md").is_file()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
def test_real_photo_crop_reconstructs_at_tiny_vae_quality() -> None:
    """A 256 px crop of a held-out real photo; the wrong readings of the shapes give 6-20 dB here."""
    from datasets.samples import load_dataset
    from forensics.io import load_image

    path = next(s.path for s in load_dataset(SHARED / "manifest.json") if s.split == "test" and s.label == "real")
    px = load_image(path).regions[0]
    h, w = px.shape[:2]
    crop = np.ascontiguousarray(px[(h - 256) // 2 : (h + 256) // 2, (w - 256) // 2 : (w + 256) // 2])
    model = load_taef2()
    with torch.inference_mode():
        y = model(torch.from_numpy(crop).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert _psnr(crop, y) > 22.0
