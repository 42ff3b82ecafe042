from __future__ import annotations

import numpy as np
import pytest

from forensics.residuals import SRM_KERNELS, correlate_valid, cross_difference, laplacian, luminance, srm_residuals


def test_constant_image_has_zero_residual() -> None:
    img = np.full((16, 16, 3), 0.4, dtype=np.float32)
    assert np.allclose(laplacian(img), 0)
    assert np.allclose(cross_difference(img), 0)
    for r in srm_residuals(img).values():
        assert np.allclose(r, 0, atol=1e-6)


def test_shapes_and_dtypes() -> None:
    img = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    assert laplacian(img).shape == (18, 28, 3)
    assert cross_difference(img).shape == (19, 29, 3)
    assert cross_difference(img[..., 0]).shape == (19, 29)
    maps = srm_residuals(img)
    assert set(maps) == set(SRM_KERNELS)
    assert all(m.shape == (16, 26, 3) and m.dtype == np.float32 for m in maps.values())


def test_cross_difference_removes_rows_and_columns() -> None:
    # any image of the form f(x) + g(y) is annihilated by the cross-difference
    rng = np.random.default_rng(1)
    img = (rng.random((1, 32)) + rng.random((32, 1))).astype(np.float32)
    assert np.allclose(cross_difference(img), 0, atol=1e-6)
    assert not np.allclose(laplacian(img), 0)


def test_known_values() -> None:
    img = np.zeros((5, 5), dtype=np.float32)
    img[2, 2] = 1.0
    lap = laplacian(img)
    assert lap[1, 1] == -4 and lap[0, 1] == 1 and lap[1, 0] == 1
    xd = cross_difference(img)
    assert xd[2, 2] == 1 and xd[1, 1] == 1 and xd[1, 2] == -1 and xd[2, 1] == -1


def test_input_not_modified() -> None:
    img = np.random.default_rng(2).random((10, 10, 3)).astype(np.float32)
    copy = img.copy()
    laplacian(img), cross_difference(img), srm_residuals(img), luminance(img)
    assert np.array_equal(img, copy)


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="dtype"):
        laplacian(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 3x3"):
        laplacian(np.zeros((2, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        laplacian(np.zeros((2, 2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="unknown SRM kernel"):
        srm_residuals(np.zeros((8, 8), dtype=np.float32), kernels=("nope",))
    with pytest.raises(ValueError, match="kernel must be 2-D"):
        correlate_valid(np.zeros((8, 8), dtype=np.float32), np.ones(3))
