from __future__ import annotations

import io
from pathlib import Path

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


def test_write_processed_copies(tmp_path) -> None:
    from datasets.processing import write_processed_copies
    from datasets.samples import Sample

    good = tmp_path / "a.png"
    Image.fromarray(textured(64, 96, seed=4)).save(good)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image")
    rows = [Sample(str(good), "real", None, "cam", "calib"), Sample(str(bad), "ai", "g", "g", "calib")]
    written, failed = write_processed_copies(rows, tmp_path / "out", chains=["webp_q80", "screenshot_png_0.8"])
    assert [Path(w.path).parent.name for w in written] == ["original", "webp_q80", "screenshot_png_0.8"]
    assert all(w.label == "real" and w.split == "calib" for w in written)
    assert [w.source for w in written] == ["cam+original", "cam+webp_q80", "cam+screenshot_png_0.8"]
    assert all(Path(w.path).is_file() for w in written)
    assert len(failed) == 1 and failed[0][0] == str(bad)
    with pytest.raises(ValueError, match="unknown processing chain"):
        write_processed_copies(rows, tmp_path / "x", chains=["nope"])
