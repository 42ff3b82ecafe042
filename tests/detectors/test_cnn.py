"""CNN detector: crop selection, aggregation, paired augmentation, weights I/O, registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("timm")

from _helpers import REPO, textured

from detectors import create_detector, is_registered
from detectors.cnn import (
    MIN_SIDE,
    CNNDetector,
    aggregate_logits,
    tiny_model_config,
)
from detectors.cnn_model import (
    CNNInputError,
    CNNWeightsError,
    build_model,
    load_cnn,
    save_cnn,
)
from detectors.cnn_training import AugmentConfig, PairedAugment
from forensics.crops import crop_pixels, select_crops
from forensics.io import LoadedImage


def _loaded(pixels: np.ndarray | tuple[np.ndarray, ...], *, width: int | None = None, height: int | None = None) -> LoadedImage:
    regions = pixels if isinstance(pixels, tuple) else (pixels,)
    h, w = regions[0].shape[:2]
    return LoadedImage(
        path=None, data=b"", sha256="0" * 64, format="PNG", mode="RGB",
        width=width or w, height=height or h, n_frames=1, regions=regions,
    )  # fmt: skip


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return textured(h, w, seed=seed).astype(np.float32) / 255


@pytest.fixture(scope="module")
def tiny() -> CNNDetector:
    return create_detector("test_cnn")


# ----------------------------------------------------------------------------- registry and import


def test_registered_and_import_stays_light() -> None:
    assert is_registered("cnn") and is_registered("test_cnn")
    code = "import sys, detectors; detectors.list_detectors(); import detectors.cnn; print('torch' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.split() == ["False", "False"]


def test_analyze_scores_with_threshold_and_evidence(tiny: CNNDetector) -> None:
    res = tiny.analyze(_loaded(_img(200, 300)))
    assert res.status == "ok" and res.name == "cnn"
    assert 0.0 <= res.score <= 1.0
    assert res.threshold is not None  # the pipeline treats detectors with a threshold as pixel detectors
    ev = res.evidence
    assert 1 <= ev["n_crops"] <= tiny.config.n_crops and len(ev["crop_logits"]) == ev["n_crops"]
    assert ev["crop_size"] == tiny.config.crop_size
    json.dumps(res.to_dict())
    assert res.explanations


def test_seeded_tiny_model_is_deterministic() -> None:
    img = _loaded(_img(160, 160, seed=3))
    a = create_detector("test_cnn", seed=1).analyze(img).score
    b = create_detector("test_cnn", seed=1).analyze(img).score
    c = create_detector("test_cnn", seed=2).analyze(img).score
    assert a == b and a != c


@pytest.mark.parametrize("shape", [(63, 400), (400, 63), (10, 10)])
def test_small_images_are_not_applicable(tiny: CNNDetector, shape: tuple[int, int]) -> None:
    res = tiny.analyze(_loaded(_img(*shape)))
    assert res.status == "not_applicable" and res.score is None
    assert f"{MIN_SIDE}x{MIN_SIDE}" in res.message


@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (131, 67), (257, 509)])
def test_small_and_odd_sizes_are_scored(tiny: CNNDetector, shape: tuple[int, int]) -> None:
    res = tiny.analyze(_loaded(_img(*shape)))
    assert res.status == "ok" and res.evidence["crop_size"] == min(tiny.config.crop_size, *shape)


def test_huge_image_regions_are_used(tiny: CNNDetector) -> None:
    regions = (_img(128, 128, seed=1), _img(128, 128, seed=2), _img(128, 128, seed=3))
    res = tiny.analyze(_loaded(regions, width=6000, height=4000))
    assert res.status == "ok"
    assert {c[0] for c in res.evidence["crops"]} <= {0, 1, 2}


def test_model_input_checks_raise_named_error(tiny: CNNDetector) -> None:
    import torch

    for bad in (torch.zeros(3, 64, 64), torch.zeros(1, 1, 64, 64), torch.zeros(1, 3, 16, 64), torch.zeros(1, 3, 64, 64, dtype=torch.uint8)):
        with pytest.raises(CNNInputError):
            tiny.model(bad)


def test_stem_downsampling_can_be_removed() -> None:
    import torch

    cfg = tiny_model_config(remove_stem_stride=True)
    model = build_model(cfg, seed=0).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_build_model_leaves_global_rng_alone() -> None:
    import torch

    torch.manual_seed(123)
    before = torch.random.get_rng_state().clone()
    build_model(tiny_model_config(), seed=5)
    assert torch.equal(before, torch.random.get_rng_state())


# ----------------------------------------------------------------------------- crop selection


def test_crops_of_a_large_image_are_inside_and_spread() -> None:
    img = _img(600, 800)
    boxes = select_crops((img,), size=96, k=8)
    assert len(boxes) == 8
    for b in boxes:
        assert b.size == 96 and 0 <= b.top <= 600 - 96 and 0 <= b.left <= 800 - 96
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            inter = max(0, min(a.top, b.top) + 96 - max(a.top, b.top)) * max(0, min(a.left, b.left) + 96 - max(a.left, b.left))
            assert inter <= 0.25 * 96 * 96
    assert crop_pixels((img,), boxes).shape == (8, 96, 96, 3)


def test_small_image_gives_one_crop_of_its_short_side() -> None:
    boxes = select_crops((_img(70, 90),), size=96, k=8)
    assert all(b.size == 70 for b in boxes) and 1 <= len(boxes) <= 8
    assert all(b.top == 0 and 0 <= b.left <= 20 for b in boxes)


@pytest.mark.parametrize("shape", [(67, 131), (97, 203), (333, 129)])
def test_odd_sizes_cover_the_border(shape: tuple[int, int]) -> None:
    h, w = shape
    boxes = select_crops((_img(h, w),), size=64, k=64, max_overlap=1.0)
    assert max(b.top + b.size for b in boxes) == h and max(b.left + b.size for b in boxes) == w


def test_crops_prefer_texture_and_are_deterministic() -> None:
    img = np.full((256, 512, 3), 0.5, np.float32)
    img[:, 256:] = _img(256, 256)  # right half textured, left half flat
    boxes = select_crops((img,), size=64, k=6)
    assert all(b.left >= 256 - 32 for b in boxes)
    assert boxes == select_crops((img,), size=64, k=6)


def test_aggregations() -> None:
    z = np.array([-4.0, 0.0, 1.0, 2.0, 3.0, 10.0, -1.0, 1.0])
    assert aggregate_logits(z, "mean") == pytest.approx(z.mean())
    assert aggregate_logits(z, "max") == 10.0
    assert aggregate_logits(z, "median") == pytest.approx(1.0)
    assert aggregate_logits(z, "trimmed_mean") == pytest.approx(np.mean([0.0, 1.0, 1.0, 2.0]))
    assert aggregate_logits(z, "topk_mean") == pytest.approx(np.mean([1.0, 2.0, 3.0, 10.0]))
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_logits(z, "vote")


# ----------------------------------------------------------------------------- paired augmentation


def test_paired_augmentation_applies_identical_parameters() -> None:
    aug = PairedAugment(AugmentConfig(resize_p=1.0, blur_p=1.0, jpeg_p=1.0, texture_tries=3), crop_size=48)
    real = _img(160, 160, seed=4)
    fake = real.copy()
    rng = np.random.default_rng(0)
    for _ in range(5):
        r, f, params = aug(real, fake, rng)
        assert params["window_real"] == params["window_fake"]
        assert r.shape == f.shape == (48, 48, 3) and r.dtype == np.float32
        np.testing.assert_array_equal(r, f)  # same image, same draws: same pixels


def test_paired_augmentation_follows_the_same_window_for_different_content() -> None:
    # No JPEG and no blur: a linear resize of (1 - x) equals 1 - (resize of x), up to 8-bit rounding.
    aug = PairedAugment(AugmentConfig(resize_p=1.0, blur_p=0.0, jpeg_p=0.0, interpolations=("bilinear",)), crop_size=40)
    real = _img(150, 170, seed=5)
    rng = np.random.default_rng(1)
    r, f, _ = aug(real, 1.0 - real, rng)
    assert np.abs((1.0 - r) - f).max() <= 2.5 / 255


def test_paired_draws_are_reproducible_and_shared_by_unaligned_pairs() -> None:
    aug = PairedAugment(AugmentConfig(), crop_size=64)
    real, other = _img(200, 200, seed=6), _img(180, 240, seed=7)
    p1 = aug.make_params(real, other, np.random.default_rng(9), aligned=False)
    p2 = aug.make_params(real, other, np.random.default_rng(9), aligned=False)
    assert p1 == p2
    assert p1["window_real"][2] == p1["window_fake"][2]  # same window side, so the same rescale gives the same crop
    with pytest.raises(ValueError, match="equal shapes"):
        aug.make_params(real, other, np.random.default_rng(0), aligned=True)


# ----------------------------------------------------------------------------- weights


@pytest.fixture
def saved(tmp_path: Path, tiny: CNNDetector) -> Path:
    path = tmp_path / "w" / "cnn_x.json"
    save_cnn(tiny.model, tiny.config.with_(version="cnn-x"), path)
    return path


def test_saved_weights_round_trip(saved: Path, tiny: CNNDetector) -> None:
    cfg = json.loads(saved.read_text())
    assert cfg["weights_file"] == "cnn_x.safetensors" and len(cfg["weights_sha256"]) == 64
    assert (saved.parent / "cnn_x.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    img = _loaded(_img(128, 192, seed=8))
    det = CNNDetector(weights=saved)
    assert det.version == "cnn-x"
    assert det.analyze(img).score == pytest.approx(tiny.analyze(img).score, abs=1e-6)


def test_corrupt_weights_give_a_clear_error(saved: Path) -> None:
    wpath = saved.parent / "cnn_x.safetensors"
    data = bytearray(wpath.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wpath.write_bytes(bytes(data))
    with pytest.raises(CNNWeightsError, match="corrupt or were replaced: sha256"):
        load_cnn(saved)


def test_missing_weights_give_a_clear_error(saved: Path, tmp_path: Path) -> None:
    (saved.parent / "cnn_x.safetensors").unlink()
    with pytest.raises(CNNWeightsError, match="weights file is missing"):
        CNNDetector(weights=saved)
    with pytest.raises(CNNWeightsError, match="config is missing"):
        load_cnn(tmp_path / "nope.json")


def test_weights_for_another_network_are_refused(saved: Path) -> None:
    cfg = json.loads(saved.read_text())
    cfg["backbone"] = "resnet10t"
    saved.write_text(json.dumps(cfg))
    with pytest.raises(CNNWeightsError, match="do not fit"):
        load_cnn(saved)


def test_shipped_weights_match_their_hash() -> None:
    from detectors.cnn import shipped_config_path

    path = shipped_config_path()
    if not path.is_file():
        pytest.skip("no shipped CNN weights yet")
    _model, cfg = load_cnn(path)
    assert cfg.weights_sha256 and (path.parent / str(cfg.weights_file)).stat().st_size <= 25 * 1024 * 1024
    assert 0.0 <= cfg.threshold <= 1.0
    assert cfg.version.startswith("cnn")


def test_shared_photo_tiles_keep_the_jpeg_grid(shared_data: Path) -> None:
    from generators.fakes import photo_tiles

    photo = min((shared_data / "real").glob("*.jpg"))
    pt = photo_tiles(str(photo), size=128, k=2, align=8)
    assert pt.tiles and all(t.shape == (128, 128, 3) and t.dtype == np.float32 for t in pt.tiles)
    assert pt.quality is None or 1 <= pt.quality <= 100


def test_native_tiles_are_textured_crops_snapped_to_the_jpeg_grid() -> None:
    from forensics.crops import native_tiles

    region = textured(203, 187, seed=4).astype(np.float32) / 255
    boxes = select_crops((region,), size=64, k=3)
    tiles = native_tiles((region,), size=64, k=3, align=8)
    assert len(tiles) == 3
    for b, t in zip(boxes, tiles):
        top, left = b.top // 8 * 8, b.left // 8 * 8
        assert t.shape == (64, 64, 3) and not np.shares_memory(t, region)  # copies: the input is never exposed
        assert np.array_equal(t, region[top : top + 64, left : left + 64])
    with pytest.raises(ValueError, match="align"):
        native_tiles((region,), size=64, k=1, align=0)


# ----------------------------------------------------------------------------- where the evidence is


def _sig(z: float) -> float:
    return 1.0 / (1.0 + np.exp(-z))


def test_evidence_reports_the_max_crop_beside_the_aggregate(tiny: CNNDetector) -> None:
    res = tiny.analyze(_loaded(_img(200, 300)))
    ev = res.evidence
    z = np.asarray(ev["crop_logits"])
    assert ev["max_crop_index"] == int(np.argmax(z)) and ev["max_crop_logit"] == z.max()
    assert ev["max_crop_p"] == pytest.approx(_sig(z.max()), abs=1e-4)  # z is rounded to 4 decimals
    # the score is still the aggregate (mean), not the max
    assert res.score == pytest.approx(_sig(z.mean()), abs=1e-4)
    # a whole image: image coordinates are the region coordinates
    assert ev["crops_in_image"] == [[t, left] for _, t, left in ev["crops"]]
    json.dumps(res.to_dict())


def test_crops_in_image_add_the_region_origins(tiny: CNNDetector) -> None:
    from dataclasses import replace

    from detectors.cnn import crop_scores

    regions = (_img(128, 128, seed=1), _img(128, 128, seed=2), _img(128, 128, seed=3))
    origins = ((0, 0), (0, 5872), (3872, 2936))
    img = replace(_loaded(regions, width=6000, height=4000), region_origins=origins)
    ev = tiny.analyze(img).evidence
    want = [[origins[r][0] + t, origins[r][1] + left] for r, t, left in ev["crops"]]
    assert ev["crops_in_image"] == want
    cs = crop_scores(ev)
    assert [[c.top, c.left] for c in cs] == want and {c.size for c in cs} == {ev["crop_size"]}
    assert [c.p for c in cs] == pytest.approx([_sig(z) for z in ev["crop_logits"]])
    # without origins the crops cannot be placed: no crops_in_image, nothing to draw
    ev2 = tiny.analyze(_loaded(regions, width=6000, height=4000)).evidence
    assert "crops_in_image" not in ev2 and "max_crop_p" in ev2 and crop_scores(ev2) == ()


def test_crop_scores_ignore_malformed_evidence() -> None:
    from detectors.cnn import crop_scores

    good = {"crop_logits": [0.0, 1.0], "crops_in_image": [[0, 0], [10, 20]], "crop_size": 64}
    assert len(crop_scores(good)) == 2
    for bad in (
        {},
        {**good, "crop_size": True},
        {**good, "crops_in_image": [[0, 0]]},
        {**good, "crop_logits": [0.0, float("nan")]},
        {**good, "crop_logits": [0.0, "1"]},
        {**good, "crops_in_image": [[0, 0], [-1, 2]]},
        {**good, "crops_in_image": [[0, 0], [1.5, 2]]},
    ):
        assert crop_scores(bad) == ()


class _BrightnessNet:  # a stand-in network: the logit rises with a crop's mean brightness
    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(()))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return 16.0 * (x.mean(dim=(1, 2, 3)) - 0.55) + 0 * self.w

        return Net()


def _patched_image() -> np.ndarray:
    """A flat dark image with one bright textured 64 px patch at the top right (rows 32-96, cols 160-224)."""
    rng = np.random.default_rng(0)
    img = (0.3 + 0.01 * rng.standard_normal((256, 256, 3))).astype(np.float32)
    img[32:96, 160:224] = np.clip(0.8 + 0.15 * rng.standard_normal((64, 64, 3)), 0, 1)
    return np.clip(img, 0, 1).astype(np.float32)


def test_local_evidence_is_explained_but_does_not_decide() -> None:
    det = CNNDetector(model=_BrightnessNet.build(), config=tiny_model_config())
    res = det.analyze(_loaded(_patched_image()))
    ev = res.evidence
    i = ev["max_crop_index"]
    assert ev["crops_in_image"][i] == [32, 160]  # the bright patch
    assert ev["max_crop_p"] >= det.threshold > res.score  # one crop past the threshold, the mean not
    assert res.score == pytest.approx(_sig(np.mean(ev["crop_logits"])), abs=1e-4)
    local = [e for e in res.explanations if e.startswith("Local evidence")]
    assert len(local) == 1
    assert f"crop {i + 1} of {ev['n_crops']}" in local[0] and "top right of the image, x 160-224, y 32-96 px" in local[0]
    assert "The score stays the mean." in local[0]


@pytest.mark.parametrize(
    ("logits", "threshold", "local"),
    [
        ([-2.8, -2.6, -2.9, -2.7], 0.5, False),  # all lean real
        ([3.2, 3.4, 3.1, 3.3], 0.5, False),  # all lean AI: the mean is past the threshold too
        ([3.0, 1.5, 1.0, 1.0], 0.9, False),  # the max is past 0.9, the mean (0.84) is not, but it leans AI
        ([3.0, -1.5, -1.0, -1.0], 0.9, True),  # the max is past 0.9, the mean leans real
    ],
)
def test_local_evidence_needs_one_crop_past_the_threshold_and_a_mean_that_leans_real(
    logits: list[float], threshold: float, local: bool
) -> None:
    det = CNNDetector(model=_BrightnessNet.build(), config=tiny_model_config(), threshold=threshold)
    res = det._result(np.array(logits), select_crops((_img(160, 160),), size=64, k=4), 0.0)
    assert any(e.startswith("Local evidence") for e in res.explanations) is local
    assert len(res.explanations) == 1 + local and "crops_in_image" not in res.evidence
    assert res.score == pytest.approx(_sig(np.mean(logits)))
    if local:  # no image positions: the crop is named in its region
        assert "region 0, x " in res.explanations[1] and "of that region" in res.explanations[1]
