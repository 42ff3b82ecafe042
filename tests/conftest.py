"""Shared fixtures (helpers live in tests/_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from _helpers import SHARED, save, textured


@pytest.fixture
def rgb_png(tmp_path: Path) -> Path:
    return save(Image.fromarray(textured()), tmp_path / "img.png")


@pytest.fixture
def rgb_jpeg(tmp_path: Path) -> Path:
    return save(Image.fromarray(textured()), tmp_path / "img.jpg", quality=90)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


