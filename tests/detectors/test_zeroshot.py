"""Zero-shot (ZED-style) detector: likelihood maths, colour transform, features, config, weights, registry."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402 - after the skip
from _helpers import REPO, SHARED, textured

from datasets.perturbations import resize
from detectors import create_detector
from detectors.zed_model import (
    ZedWeightsError,
    build_model,
    discretized_logistic_entropy,
    discretized_logistic_logp,
    load_zed,
    save_zed,
)
from detectors.zeroshot import (
    MIN_SIDE,
    ZedConfig,
    ZedDetector,
    ZedScoreMap,
    block_deltas,
    feature_names,
    image_features,
    select_zed_crops,
    shipped_config_path,
    tiny_config,
    to_levels,
    ycocg_pyramid,
    ycocg_r,
)
from forensics.io import LoadedImage


def _loaded(pixels: np.ndarray) -> LoadedImage:
    h, w = pixels.shape[:2]
    return LoadedImage(path=None, data=b"", sha256="0" * 64, format="PNG", mode="RGB", width=w, height=h, n_frames=1,
                       regions=(pixels,), region_origins=((0, 0),))  # fmt: skip


def _float(img_u8: np.ndarray) -> np.ndarray:
    return img_u8.astype(np.float32) / np.float32(255.0)


# -- likelihood maths -------------------------------------------------------------


@pytest.mark.parametrize("levels", [256, 511])
def test_logp_is_a_distribution_and_entropy_matches_the_full_sum(levels: int) -> None:
    mus = torch.tensor([-3.0, 0.0, 0.4, 7.5, 100.2, levels - 1.3, levels - 1.0, levels + 4.0], dtype=torch.float64)
    x = torch.arange(levels, dtype=torch.float64).view(-1, 1)
    for log_s in (-4.5, -1.5, 0.0, 1.4, 3.0, 5.5):
        ls = torch.full_like(mus, log_s)
        lp = discretized_logistic_logp(x, mus.view(1, -1), ls.view(1, -1), levels)
        p = lp.exp()
        assert torch.allclose(p.sum(0), torch.ones_like(mus), atol=1e-6), log_s
        full = -(p * lp).sum(0)
        fast = discretized_logistic_entropy(mus.float(), ls.float(), levels).double()
        assert (fast - full).abs().max() < 1e-3, (log_s, fast, full)


def test_entropy_is_the_logistic_differential_entropy_for_wide_distributions() -> None:
    h = discretized_logistic_entropy(torch.tensor([128.0]), torch.tensor([math.log(5.0)]), 256)
    assert abs(float(h) - (math.log(5.0) + 2.0)) < 1e-3  # far from the ends, unit bins: ln s + 2 nats


def test_logp_rejects_bad_levels() -> None:
    with pytest.raises(ValueError, match="levels must be >= 2, got 1"):
        discretized_logistic_logp(torch.zeros(1), torch.zeros(1), torch.zeros(1), 1)


# -- pixels ----------------------------------------------------------------------


def _inverse_ycocg_r(ycc: np.ndarray) -> np.ndarray:
    y, co, cg = (ycc[..., i].astype(np.int32) for i in range(3))
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    return np.stack([b + co, g, b], axis=-1)


def test_ycocg_r_is_lossless_and_in_range() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[0, :4] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]
    ycc = ycocg_r(rgb)
    assert ycc.dtype == np.int16
    assert ycc[..., 0].min() >= 0 and ycc[..., 0].max() <= 255 and np.abs(ycc[..., 1:]).max() <= 255
    assert np.array_equal(_inverse_ycocg_r(ycc), rgb)


def test_pyramid_is_rounded_2x2_means() -> None:
    crops = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    levels = ycocg_pyramid(crops, 3)
    assert [lv.shape for lv in levels] == [(2, 32, 32, 3), (2, 16, 16, 3), (2, 8, 8, 3), (2, 4, 4, 3)]
    mean = (crops.astype(np.int32).reshape(2, 16, 2, 16, 2, 3).sum(axis=(2, 4)) + 2) // 4
    assert np.array_equal(levels[1], ycocg_r(mean))
    with pytest.raises(ValueError, match="must be uint8"):
        ycocg_pyramid(crops.astype(np.float32), 3)
    with pytest.raises(ValueError, match="multiples of 2\\*\\*n_scales = 8"):
        ycocg_pyramid(crops[:, :20, :20], 3)


def test_to_levels_recovers_the_loader_values() -> None:
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(to_levels(_float(u8)), u8)


def test_crops_have_a_side_multiple_of_the_unit_and_large_images_are_ranked_decimated() -> None:
    small = _float(textured(100, 140))
    boxes = select_zed_crops((small,), crop_size=128, n_crops=3, unit=16)
    assert {b.size for b in boxes} == {96}
    big = np.zeros((3000, 2200, 3), np.float32)
    big[1000:1300, 700:1000] = _float(textured(300, 300, seed=3))  # the only texture
    boxes = select_zed_crops((big,), crop_size=128, n_crops=1, unit=16)
    b = boxes[0]
    assert b.size == 128 and 1000 - 8 <= b.top <= 1300 - 120 and 700 - 8 <= b.left <= 1000 - 120
    with pytest.raises(ValueError, match="at least 64 px on a side, got 40"):
        select_zed_crops((small[:40],), crop_size=128, n_crops=1, unit=16)


# -- features --------------------------------------------------------------------


def test_block_deltas_and_features() -> None:
    nll = np.zeros((2, 8, 8), np.float32)
    ent = np.ones((2, 8, 8), np.float32)
    ent[1] = 0.0
    b = block_deltas(nll, ent, 4)
    assert b.shape == (2, 2, 2) and np.allclose(b[0], -1) and np.allclose(b[1], 0)
    f = image_features([b], tau=[-0.5])
    assert np.allclose(f, [-0.5, 0.5, 0.5])
    assert np.isnan(image_features([b], tau=None)[2])
    with pytest.raises(ValueError, match="divide 8x8, got 3"):
        block_deltas(nll, ent, 3)


def test_smooth_upsampled_image_is_more_predictable_than_noise() -> None:
    """A random coder predicts each pixel near its coarse value: a smooth image costs less than expected, noise more."""
    det = create_detector("test_zed")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    smooth = to_levels(resize(resize(_float(textured(128, 128)), 0.25), 4.0))
    f_noise, f_smooth = det.features(_loaded(_float(noise))), det.features(_loaded(_float(smooth)))
    assert f_smooth.values[0] < f_noise.values[0]
    assert f_smooth.nll[0] < f_noise.nll[0]
    assert det.analyze(_loaded(_float(smooth))).score > det.analyze(_loaded(_float(noise))).score


def test_analyze_does_not_modify_the_image_and_reports_where_it_looked() -> None:
    px = _float(textured(160, 200))
    before = px.copy()
    res = create_detector("test_zed").analyze(_loaded(px))
    assert np.array_equal(px, before)
    assert res.status == "ok" and 0.0 <= res.score <= 1.0 and res.name == "zed"
    ev = res.evidence
    assert set(ev["features"]) == set(feature_names(2)) and len(ev["crop_delta"]) == ev["n_crops"] == len(ev["crops_in_image"])
    json.dumps(res.to_dict())


def test_small_image_is_not_applicable_and_bad_crops_are_refused() -> None:
    det = create_detector("test_zed")
    res = det.analyze(_loaded(_float(textured(MIN_SIDE - 1, 200))))
    assert res.status == "not_applicable" and res.score is None and f"{MIN_SIDE}x{MIN_SIDE}" in res.message
    with pytest.raises(ValueError, match="at least 64x64 px"):
        det.features(_loaded(_float(textured(40, 200))))
    with pytest.raises(ValueError, match="must be uint8"):
        det.features_of_crops(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="multiple of 8"):
        det.features_of_crops(np.zeros((1, 60, 60, 3), np.uint8))


def test_score_map_fit_reads_the_right_direction() -> None:
    rng = np.random.default_rng(0)
    names = feature_names(1)
    x = np.concatenate([rng.normal(0, 1, (50, 3)), rng.normal(0, 1, (50, 3)) - [2.0, 0, 0]])
    y = np.r_[np.zeros(50), np.ones(50)]
    x[3, 2] = np.nan  # missing frac: counted as the mean
    m = ZedScoreMap.fit(x, y, names=names)
    assert m.coef[0] < 0 and m.predict_proba(np.array([-3.0, 0, 0])) > 0.9 > 0.1 > m.predict_proba(np.array([2.0, 0, 0]))
    with pytest.raises(ValueError, match="both real"):
        ZedScoreMap.fit(x, np.zeros(100), names=names)


# -- config and weights --------------------------------------------------------------


def test_config_round_trip_and_errors() -> None:
    cfg = tiny_config(tau=[-0.25, -0.5], meta={"a": 1})
    assert ZedConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="crop_size must be a multiple of 8 and >= 32, got 20"):
        ZedConfig(crop_size=20)
    with pytest.raises(ValueError, match="n_scales must be in \\[1, 4\\], got 5"):
        ZedConfig(n_scales=5)
    with pytest.raises(ValueError, match="tau needs one value per scale \\(3\\), got 1"):
        ZedConfig(tau=(0.0,))
    with pytest.raises(ValueError, match="threshold must be in \\[0, 1\\], got 2"):
        ZedConfig(threshold=2)
    with pytest.raises(ValueError, match="unknown zero-shot config keys"):
        ZedConfig.from_dict({"nope": 1})


def test_weights_round_trip_and_sha256_check(tmp_path: Path) -> None:
    cfg = tiny_config()
    model = build_model(cfg, seed=3)
    written = save_zed(model, cfg, tmp_path / "zed.json")
    assert written.weights_file == "zed.safetensors" and len(written.weights_sha256) == 64
    loaded, cfg2 = load_zed(tmp_path / "zed.json")
    assert cfg2 == written
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    crops = to_levels(_float(textured(64, 64)))[None]
    f1 = ZedDetector(model=model, config=written).features_of_crops(crops).values
    f2 = ZedDetector(weights=tmp_path / "zed.json").features_of_crops(crops).values
    assert np.allclose(f1, f2, equal_nan=True)

    w = tmp_path / "zed.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    with pytest.raises(ZedWeightsError, match="corrupt or were replaced: sha256 is"):
        ZedDetector(weights=tmp_path / "zed.json")
    w.unlink()
    with pytest.raises(ZedWeightsError, match="weights are missing"):
        load_zed(tmp_path / "zed.json")
    with pytest.raises(ZedWeightsError, match="config is missing"):
        load_zed(tmp_path / "nope.json")


def test_build_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(5)
    a = torch.rand(1)
    torch.manual_seed(5)
    build_model(tiny_config(), seed=1)
    assert torch.equal(torch.rand(1), a)


def test_importing_detectors_imports_no_torch() -> None:
    code = "import sys, detectors, detectors.zeroshot, detectors.zed_training; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# -- the shipped weights ----------------------------------------------------------------


def _shipped() -> ZedDetector:
    if not shipped_config_path().is_file():
        pytest.skip("the shipped zero-shot weights are absent")
    return create_detector("zed")


def test_shipped_detector_loads_and_upsampled_photo_is_more_predictable() -> None:
    det = _shipped()
    assert det.config.score_map is not None and det.config.tau is not None and det.version.startswith("zed-")
    photo = _float(textured(256, 256, seed=4))
    up = resize(resize(photo, 0.5, interpolation="bicubic"), 2.0, interpolation="bicubic")
    f_photo, f_up = det.features(_loaded(photo)), det.features(_loaded(up))
    assert f_up.values[0] < f_photo.values[0]


def test_shipped_detector_on_a_shared_photo() -> None:
    det = _shipped()
    real = sorted((SHARED / "real").glob("*.jpg")) if SHARED.is_dir() else []
    if not real:
        pytest.skip("../shared/data is absent")
    from forensics.io import load_image

    res = det.analyze(load_image(real[0]))
    assert res.status == "ok" and res.evidence["n_crops"] >= 1
