from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from _helpers import encode, textured
from forensics.jpeg import STANDARD_LUMINANCE, estimate_quality, jpeg_info, quantization_tables, scaled_table


@pytest.mark.parametrize("q", [10, 50, 75, 90, 95, 100])
def test_quality_estimated_exactly_for_libjpeg(q: int) -> None:
    info = jpeg_info(encode(Image.fromarray(textured(64, 64)), "JPEG", quality=q))
    assert info is not None
    assert info.quality == q
    assert info.standard


def test_tables_match_pillow() -> None:
    data = encode(Image.fromarray(textured(64, 64)), "JPEG", quality=80)
    ours = quantization_tables(data)
    assert set(ours) == {0, 1}
    assert np.array_equal(ours[0], scaled_table(STANDARD_LUMINANCE, 80))


def test_custom_tables_not_standard() -> None:
    tbl = [list(range(1, 65)), list(range(2, 66))]
    data = encode(Image.fromarray(textured(64, 64)), "JPEG", qtables=tbl)
    info = jpeg_info(data)
    assert info is not None and not info.standard and info.mean_error > 0
    assert info.to_dict()["tables"]["0"][0][0] == 1


def test_non_jpeg_and_garbage() -> None:
    assert jpeg_info(encode(Image.new("RGB", (8, 8)), "PNG")) is None
    assert quantization_tables(b"\xff\xd8\xff\xdb\x00") == {}
    assert quantization_tables(b"") == {}
    assert estimate_quality({}) == (None, False, None)
    with pytest.raises(ValueError, match="quality"):
        scaled_table(STANDARD_LUMINANCE, 0)
