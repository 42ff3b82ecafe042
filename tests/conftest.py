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




@pytest.fixture(scope="session")
def tiny_generator_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder of the tiny, seeded test generator (8x8 latents), written once per run."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from generators.config import tiny_generator_config
    from generators.models import GeneratorModels, save_models

    folder = tmp_path_factory.mktemp("tiny_generator_weights")
    save_models(GeneratorModels.from_config(tiny_generator_config(), device="cpu", seed=0), folder)
    return folder
