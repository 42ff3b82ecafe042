"""forensics.crops: textured native-resolution crop geometry (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import textured
from forensics.crops import crop_pixels, native_tiles, select_crops, texture_energy


def _region(h: int = 150, w: int = 170, seed: int = 0) -> np.ndarray:
    return textured(h, w, seed=seed).astype(np.float32) / 255


def test_inputs_are_never_modified() -> None:
    region = _region()
    before = region.copy()
    boxes = select_crops((region,), size=64, k=4)
    tiles = native_tiles((region,), size=64, k=4, align=8)
    crops = crop_pixels((region,), boxes)
    tiles[0][:] = 0
    crops[0][:] = 0
    texture_energy(region)
    assert np.array_equal(region, before)


def test_crops_prefer_texture() -> None:
    region = np.full((128, 256, 3), 0.5, dtype=np.float32)
    region[:, 128:] = _region(128, 128)  # right half textured, left half flat
    best = select_crops((region,), size=64, k=1)[0]
    assert best.left >= 64 and best.energy > 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"size": 4, "k": 1}, r"size must be >= 8, got 4"), ({"size": 64, "k": 0}, r"k must be >= 1, got 0"),
     ({"size": 64, "k": 1, "max_overlap": 1.5}, r"max_overlap must be in \[0, 1\], got 1.5")],
)  # fmt: skip
def test_out_of_range_options_name_value_and_range(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        select_crops((_region(),), **kw)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        select_crops((_region(),), 64, 1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="align must be >= 1, got 0"):
        native_tiles((_region(),), size=64, k=1, align=0)
    with pytest.raises(ValueError, match="regions must not be empty"):
        select_crops((), size=64, k=1)
