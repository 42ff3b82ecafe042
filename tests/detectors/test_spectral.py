from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from _helpers import encode, textured
from detectors import create_detector, list_detectors
from detectors.base import DetectorResult
from detectors.spectral import FEATURE_NAMES, LogisticModel, SpectralDetector, extract_spectral_features, fit_logistic
from forensics.io import load_image_bytes


def test_registry_has_spectral_and_test_variant() -> None:
    names = list_detectors()
    assert "spectral" in names and "test_spectral" in names
    assert list_detectors("test_*") == [n for n in names if n.startswith("test_")]
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        create_detector("nope")


def test_result_is_dataclass_with_score_in_range() -> None:
    det = create_detector("test_spectral")
    img = load_image_bytes(encode(Image.fromarray(textured(200, 300)), "PNG"), path="x.png")
    r = det.analyze(img)
    assert isinstance(r, DetectorResult)
    assert r.status == "ok" and 0 <= r.score <= 1 and r.threshold is not None
    assert r.evidence["tile"] == 128
    json.dumps(r.to_dict())


def test_small_image_not_applicable() -> None:
    det = create_detector("test_spectral")
    img = load_image_bytes(encode(Image.new("RGB", (40, 40)), "PNG"), path="tiny.png")
    r = det.analyze(img)
    assert r.status == "not_applicable" and r.score is None and "40x40" in r.message


def test_features_shape_and_determinism() -> None:
    region = textured(300, 300).astype(np.float32) / 255
    a = extract_spectral_features((region,))
    b = extract_spectral_features((region.copy(),))
    assert a.values.shape == (len(FEATURE_NAMES),)
    assert np.array_equal(a.values, b.values)
    with pytest.raises(ValueError, match="minimum"):
        extract_spectral_features((region[:50, :50],))


def test_period8_grid_raises_the_score_of_a_model_trained_on_it() -> None:
    # A model trained to separate clean noise from period-8-grid noise must score an unseen grid image higher.
    rng = np.random.default_rng(0)

    def sample(grid: bool) -> np.ndarray:
        img = 0.5 + 0.08 * rng.standard_normal((256, 256, 3))
        if grid:
            yy, xx = np.mgrid[:256, :256]
            img = img + 0.03 * ((yy % 8 == 0) | (xx % 8 == 0))[..., None]
        return img.astype(np.float32)

    x = np.array([extract_spectral_features((sample(g),)).values for g in [False, True] * 10])
    y = np.array([0, 1] * 10, dtype=float)
    model = fit_logistic(x, y, l2=1.0)
    det = SpectralDetector(model=model, threshold=0.5)
    clean = det.analyze(load_image_bytes(encode(Image.fromarray((sample(False) * 255).clip(0, 255).astype(np.uint8)), "PNG")))
    grid = det.analyze(load_image_bytes(encode(Image.fromarray((sample(True) * 255).clip(0, 255).astype(np.uint8)), "PNG")))
    assert grid.score > 0.5 > clean.score


def test_model_json_roundtrip_and_validation() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, len(FEATURE_NAMES)))
    y = (x[:, 0] > 0).astype(float)
    m = fit_logistic(x, y, meta={"version": "t"})
    m2 = LogisticModel.from_json(m.to_json())
    assert np.allclose(m.predict_proba(x), m2.predict_proba(x))
    bad = json.loads(m.to_json())
    bad["coef"] = bad["coef"][:3]
    with pytest.raises(ValueError, match="do not match"):
        LogisticModel.from_json(json.dumps(bad))
    with pytest.raises(ValueError, match="only 0 and 1"):
        fit_logistic(x, y * 2)


def test_shipped_model_card_and_weights_agree() -> None:
    from importlib import resources

    meta = json.loads(resources.files("detectors").joinpath("weights", "spectral_v2.json").read_text())["meta"]
    card = resources.files("detectors").joinpath("weights", "SPECTRAL_MODEL_CARD.md").read_text()
    assert meta["version"] in card
    assert f"{meta['threshold_likely_ai']:.4f}" in card
    assert meta["splits"]["test"]["real"] > 0
