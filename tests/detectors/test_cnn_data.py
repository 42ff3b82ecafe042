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
