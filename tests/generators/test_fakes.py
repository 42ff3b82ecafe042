"""Calibration fakes made on the fly by the (tiny) generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _helpers import textured  # noqa: E402
from datasets.samples import Sample  # noqa: E402
from forensics.jpeg import jpeg_info  # noqa: E402
from generators.fakes import make_calibration_fakes  # noqa: E402


@pytest.fixture
def weights(tiny_generator_weights: Path) -> Path:
    return tiny_generator_weights


def _reals(folder: Path) -> list[Sample]:
    folder.mkdir()
    out = []
    for i, (h, w, q) in enumerate([(150, 170, 85), (90, 100, 95), (40, 40, 70)]):
        p = folder / f"r{i}.jpg"
        Image.fromarray(textured(h, w, seed=i)).save(p, quality=q)
        out.append(Sample(str(p), "real"))
    return out


def test_fakes_are_jpegs_at_the_reals_qualities_with_aligned_tiles(weights: Path, tmp_path: Path) -> None:
    reals = _reals(tmp_path / "reals")
    made = make_calibration_fakes(reals, tmp_path / "out", n_samples=2, n_reconstruct=5, size=16, steps=2, tile=64, weights=str(weights), device="cpu")
    gens = [s.generator for s in made.samples]
    assert gens.count("bundled_sample") == 2
    # one tile per real photo of at least 64 px: the 40 px photo gives none
    assert gens.count("bundled_reconstruct") == 2
    assert sum(s.label == "real" for s in made.samples) == 2
    for s in made.samples:
        data = Path(s.path).read_bytes()
        info = jpeg_info(data)
        assert info is not None and info.quality in (85, 95, 70)
    real_tiles = [s for s in made.samples if s.label == "real"]
    fakes = [s for s in made.samples if s.generator == "bundled_reconstruct"]
    for r, f in zip(real_tiles, fakes):
        with Image.open(r.path) as a, Image.open(f.path) as b:
            assert a.size == b.size == (64, 64)  # native-resolution tile, not a resize
        assert jpeg_info(Path(r.path).read_bytes()).quality == jpeg_info(Path(f.path).read_bytes()).quality
    assert len(made.weights_sha256) == 64


def test_same_seed_same_samples(weights: Path, tmp_path: Path) -> None:
    reals = _reals(tmp_path / "reals")
    a = make_calibration_fakes(reals, tmp_path / "a", n_samples=1, n_reconstruct=0, size=16, steps=2, weights=str(weights), device="cpu", seed=3)
    b = make_calibration_fakes(reals, tmp_path / "b", n_samples=1, n_reconstruct=0, size=16, steps=2, weights=str(weights), device="cpu", seed=3)
    assert Path(a.samples[0].path).read_bytes() == Path(b.samples[0].path).read_bytes()


@pytest.mark.parametrize("kw", [{"n_samples": -1}, {"steps": 0}, {"tile": 32}])
def test_bad_arguments(weights: Path, tmp_path: Path, kw: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        make_calibration_fakes([], tmp_path, weights=str(weights), device="cpu", **kw)


def test_match_low_frequency_colour_restores_chroma_and_keeps_fine_luma() -> None:
    from generators.fakes import match_low_frequency_colour

    rng = np.random.default_rng(0)
    real = np.clip(rng.random((64, 64, 3)) * 0.3 + np.array([0.6, 0.3, 0.1]), 0, 1).astype(np.float32)
    grey = real.mean(axis=2, keepdims=True)
    fake = np.clip(grey + 0.3 * (real - grey), 0, 1).astype(np.float32)  # desaturated
    fake[::8, :, :] += 0.05  # a period-8 luma trace
    fake = np.clip(fake, 0, 1)
    before = fake.copy()
    out = match_low_frequency_colour(fake, real)
    np.testing.assert_array_equal(fake, before)
    assert out.shape == fake.shape and out.dtype == np.float32
    assert np.abs(out.mean((0, 1)) - real.mean((0, 1))).max() < 0.02 < np.abs(fake.mean((0, 1)) - real.mean((0, 1))).max()
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(out @ luma, fake @ luma, atol=0.02)  # luma (and its trace) kept
    with pytest.raises(ValueError, match="equal"):
        match_low_frequency_colour(fake, real[:32])
    with pytest.raises(ValueError, match="sigma"):
        match_low_frequency_colour(fake, real, sigma=0)
