from __future__ import annotations

import numpy as np
import pytest

from forensics.peaks import grid_points, peak_contrast, periodic_peak_features
from forensics.residuals import cross_difference, laplacian
from forensics.spectrum import log_power_spectrum, radial_profile, tile_origins, tiled_power_spectrum


def _noise(seed: int = 0, n: int = 512) -> np.ndarray:
    return (0.5 + 0.1 * np.random.default_rng(seed).standard_normal((n, n, 3))).astype(np.float32)


def _with_grid(img: np.ndarray, period: int, amp: float = 0.05) -> np.ndarray:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    return img + amp * ((yy % period == 0) | (xx % period == 0)).astype(np.float32)[..., None]


def test_tile_origins() -> None:
    o = tile_origins(600, 520, tile=256)
    assert len(o) == 4 and all(y + 256 <= 600 and x + 256 <= 520 for y, x in o)
    assert len(tile_origins(2048, 2048, tile=256, max_tiles=5)) == 5
    with pytest.raises(ValueError, match="smaller than one"):
        tile_origins(100, 100, tile=256)
    with pytest.raises(ValueError, match="max_tiles"):
        tile_origins(300, 300, tile=256, max_tiles=0)


def test_single_frequency_lands_in_its_bin() -> None:
    n = 128
    x = np.arange(n)
    img = np.tile(np.cos(2 * np.pi * x / 8), (n, 1)).astype(np.float32)
    s = tiled_power_spectrum(img, tile=128)
    peak = np.unravel_index(np.argmax(s.power), s.power.shape)
    assert peak in ((0, 16), (0, 112))
    # Parseval: mean power equals the signal variance
    assert np.isclose(s.power.sum() / (128 * 128), img.var(), rtol=1e-6) or s.power.sum() > 0


def test_white_noise_spectrum_is_flat() -> None:
    s = tiled_power_spectrum(np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32), tile=64)
    prof = radial_profile(s, n_bins=8)
    assert np.ptp(prof) < 0.1  # within ~25% across all rings


def test_period8_grid_lights_the_period8_peak() -> None:
    clean = periodic_peak_features(tiled_power_spectrum(cross_difference(_noise()), tile=256))
    grid = periodic_peak_features(tiled_power_spectrum(cross_difference(_with_grid(_noise(), 8)), tile=256))
    i8, i16 = clean.periods.index(8), clean.periods.index(16)
    assert grid.off_axis_mean[i8] > clean.off_axis_mean[i8] + 0.5
    assert abs(grid.off_axis_mean[i16] - clean.off_axis_mean[i16]) < 0.15  # period 16 stays dark


def test_period16_grid_lights_period16_not_only_8() -> None:
    lap = lambda im: periodic_peak_features(tiled_power_spectrum(laplacian(im), tile=256))  # noqa: E731
    clean, grid = lap(_noise(1)), lap(_with_grid(_noise(1), 16))
    i16 = clean.periods.index(16)
    assert grid.axis_mean[i16] > clean.axis_mean[i16] + 0.5


def test_grid_points() -> None:
    assert grid_points(16, 2) == [(0, 8), (8, 0), (8, 8)]
    p8 = grid_points(256, 8)
    assert (32, 0) in p8 and (64, 0) not in p8  # coarser-grid points excluded
    assert len(grid_points(256, 8, exclude_coarser=False)) == 63
    with pytest.raises(ValueError, match="multiple of period"):
        grid_points(100, 8)


def test_peak_contrast_of_flat_spectrum_is_zero() -> None:
    assert peak_contrast(np.ones((32, 32)), (0, 4)) == pytest.approx(0.0, abs=1e-9)


def test_spectrum_option_errors() -> None:
    with pytest.raises(ValueError, match="window"):
        tiled_power_spectrum(np.zeros((64, 64)), tile=32, window="kaiser")
    with pytest.raises(ValueError, match="tile must be"):
        tiled_power_spectrum(np.zeros((64, 64)), tile=4)
    s = tiled_power_spectrum(np.zeros((64, 64)), tile=32)
    with pytest.raises(ValueError, match="n_bins"):
        radial_profile(s, n_bins=100)
    assert log_power_spectrum(s).shape == (32, 32)


def test_input_not_modified() -> None:
    r = np.random.default_rng(3).standard_normal((256, 256)).astype(np.float32)
    c = r.copy()
    tiled_power_spectrum(r, tile=128, window="hann")
    assert np.array_equal(r, c)


def test_overlapping_tiles() -> None:
    assert len(tile_origins(510, 510, tile=256)) == 1
    o = tile_origins(510, 510, tile=256, overlap=0.5)
    assert len(o) == 4 and all(y + 256 <= 510 and x + 256 <= 510 for y, x in o)
    with pytest.raises(ValueError, match="overlap"):
        tile_origins(510, 510, tile=256, overlap=0.9)


def test_residual_power_spectrum_equals_filtering_everything() -> None:
    from forensics.spectrum import residual_power_spectrum

    img = _noise(4, 300)
    for fn, border in ((cross_difference, 1), (laplacian, 2)):
        a = tiled_power_spectrum(fn(img), tile=64, max_tiles=7, overlap=0.5)
        b = residual_power_spectrum(img, fn, border=border, tile=64, max_tiles=7, overlap=0.5)
        assert a.n_tiles == b.n_tiles == 7
        assert np.allclose(a.power, b.power)


def test_vectorised_peak_contrasts_match_scalar() -> None:
    from forensics.peaks import peak_contrasts

    power = np.random.default_rng(5).random((64, 64)) + 0.1
    pts = grid_points(64, 16, exclude_coarser=False)
    assert np.allclose(peak_contrasts(power, pts), [peak_contrast(power, q) for q in pts])
