from __future__ import annotations

import numpy as np
import pytest

from _helpers import textured
from datasets.perturbations import (
    Compose,
    GaussianBlur,
    Jpeg,
    RandomCrop,
    RandomResize,
    crop,
    gaussian_blur,
    jpeg_compress,
    named_perturbation,
    resize,
)


@pytest.fixture
def img() -> np.ndarray:
    return textured(96, 128).astype(np.float32) / 255.0


def test_kernels_shapes_dtypes(img: np.ndarray) -> None:
    assert jpeg_compress(img, 75).shape == img.shape
    assert resize(img, 0.5).shape == (48, 64, 3)
    assert gaussian_blur(img, 1.0).dtype == np.float32
    assert crop(img, 10, 20, 30, 40).shape == (30, 40, 3)


def test_kernels_do_not_modify_input(img: np.ndarray) -> None:
    c = img.copy()
    jpeg_compress(img, 50), resize(img, 1.3), gaussian_blur(img, 2.0), crop(img, 0, 0, 8, 8)
    assert np.array_equal(img, c)


def test_jpeg_quality_orders_error(img: np.ndarray) -> None:
    e = [np.abs(jpeg_compress(img, q) - img).mean() for q in (30, 70, 95)]
    assert e[0] > e[1] > e[2]


def test_same_rng_same_output(img: np.ndarray) -> None:
    t = Compose((RandomCrop(64), RandomResize(0.5, 1.5), GaussianBlur(0.1, 1.0, p=0.5), Jpeg(30, 100)))
    a = t(img, np.random.default_rng(7))
    b = t(img, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_paired_params_apply_identically(img: np.ndarray) -> None:
    # a real image and its aligned fake get the same draw
    t = Jpeg(40, 90)
    params = t.make_params(img, np.random.default_rng(1))
    other = img[::-1].copy()
    assert np.array_equal(t.apply(other, params), jpeg_compress(other, params["quality"]))


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: Jpeg(0, 50), "q_min"),
        (lambda: Jpeg(50, 40), "q_min"),
        (lambda: Jpeg(p=2), "p must"),
        (lambda: RandomResize(0, 1), "s_min"),
        (lambda: RandomResize(interpolations=("cubicle",)), "interpolations"),
        (lambda: GaussianBlur(2, 1), "sigma_min"),
        (lambda: RandomCrop(4), "size"),
    ],
)
def test_validation_in_init(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_kernel_validation(img: np.ndarray) -> None:
    with pytest.raises(ValueError, match="quality"):
        jpeg_compress(img, 101)
    with pytest.raises(ValueError, match="outside"):
        crop(img, 90, 0, 10, 10)
    with pytest.raises(ValueError, match="shape"):
        resize(img[..., 0], 0.5)


def test_named(img: np.ndarray) -> None:
    assert named_perturbation("none", img) is img
    assert named_perturbation("resize0.5", img).shape == (48, 64, 3)
    assert named_perturbation("jpeg75", img).shape == img.shape
    with pytest.raises(ValueError, match="unknown perturbation"):
        named_perturbation("sharpen", img)
    with pytest.raises(ValueError, match="bad perturbation"):
        named_perturbation("jpeg500", img)


def test_unsharp_mask_and_reencode_keep_shape_and_do_not_mutate() -> None:
    from datasets.perturbations import REENCODINGS, reencode, unsharp_mask

    rng = np.random.default_rng(0)
    img = rng.random((40, 48, 3), dtype=np.float32)
    before = img.copy()
    sharp = unsharp_mask(img, radius=1.5, percent=150)
    assert sharp.shape == img.shape and sharp.dtype == np.float32
    assert np.abs(np.diff(sharp, axis=1)).mean() > np.abs(np.diff(img, axis=1)).mean() * 0.99
    for kind in REENCODINGS:
        out = reencode(img, kind, quality=80)
        assert out.shape == img.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        if kind != "png":
            assert np.abs(out - img).mean() > 1e-3, kind
    np.testing.assert_array_equal(img, before)
    with pytest.raises(ValueError, match="kind must be one of"):
        reencode(img, "gif")
    with pytest.raises(ValueError, match="radius"):
        unsharp_mask(img, radius=0, percent=50)


def test_sharpen_and_reencode_transforms_draw_then_apply_deterministically() -> None:
    from datasets.perturbations import Reencode, Sharpen

    img = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
    for t in (Sharpen(p=1.0), Reencode(kinds=("webp", "jpeg444"), p=1.0)):
        params = t.make_params(img, np.random.default_rng(5))
        np.testing.assert_array_equal(t.apply(img, params), t.apply(img, params))
        assert params["apply"]
    assert not Sharpen(p=0.0).make_params(img, np.random.default_rng(0))["apply"]
    with pytest.raises(ValueError, match="kinds must be"):
        Reencode(kinds=("bmp",))
    with pytest.raises(ValueError, match="percent"):
        Sharpen(percent=(10, 900))
