from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _helpers import textured
from datasets.processing import PROCESSING_CHAINS, apply_chain, chain_names

FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


@pytest.mark.parametrize("name", chain_names())
def test_each_chain_writes_a_decodable_file_of_its_format(name: str) -> None:
    src = Image.fromarray(textured(300, 1400, seed=3))
    before = np.asarray(src).copy()
    out = apply_chain(src, name)
    again = apply_chain(src, name)
    assert out.data == again.data, "chains are deterministic"
    assert np.array_equal(np.asarray(src), before), "the input is not modified"
    with Image.open(io.BytesIO(out.data)) as im:
        assert im.format == FORMATS[out.ext]
        assert im.size == (out.width, out.height)
        assert im.mode == "RGB"


def test_chain_geometry() -> None:
    src = Image.fromarray(textured(300, 1400, seed=1))
    assert apply_chain(src, "web1024_pil_q85").width == 1024
    assert apply_chain(src, "web1024_cv2_q90").width == 1024
    up = apply_chain(src, "upscale1.5_q92")
    assert (up.width, up.height) == (2100, 450)
    shot = apply_chain(src, "screenshot_png_0.8")
    assert (shot.width, shot.height) == (1120, 240)
    small = Image.fromarray(textured(200, 300, seed=1))
    assert apply_chain(small, "web1024_pil_q85").width == 300, "never upscales to reach 1024"
    assert apply_chain(src, "social_2048_q85_1080_q72").width == 1080


def test_double_jpeg_differs_from_single() -> None:
    src = Image.fromarray(textured(256, 256, seed=2))
    single = io.BytesIO()
    src.save(single, format="JPEG", quality=75)
    assert apply_chain(src, "double_jpeg_q90_q75").data != single.getvalue()


def test_unknown_chain_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown processing chain 'nope'; choose from web1024_pil_q85"):
        apply_chain(Image.new("RGB", (8, 8)), "nope")
    assert len(PROCESSING_CHAINS) >= 8
