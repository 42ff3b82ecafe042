"""The decoder zoo (generators.zoo) with tiny configs: f=8 decoders see an 8x8 latent of a 64 px image."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _helpers import textured  # noqa: E402
from generators.zoo import DECODER_NAMES, LoadedDecoder, decoder_spec, load_decoder, reconstruct  # noqa: E402


def _img(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return textured(h, w, seed=seed).astype(np.float32) / 255


def test_names_and_specs() -> None:
    assert DECODER_NAMES == ("f8c4", "f8c16", "taef2", "f2")
    assert [(decoder_spec(n).downsample_factor, decoder_spec(n).latent_channels) for n in DECODER_NAMES] == [(8, 4), (8, 16), (8, 32), (2, 12)]
    with pytest.raises(ValueError, match=r"decoder must be one of \['f8c4', 'f8c16', 'taef2', 'f2'\], got 'sd'"):
        decoder_spec("sd")


def test_package_exports_reconstruct() -> None:
    import generators

    assert generators.reconstruct is reconstruct


@pytest.mark.parametrize("name", DECODER_NAMES)
def test_each_decoder_keeps_size_and_range(tiny_zoo_weights: Path, name: str) -> None:
    dec = load_decoder(name, device="cpu", weights_dir=tiny_zoo_weights)
    assert dec.spec.name == name and len(dec.weights_sha256) == 64
    img = _img(64, 64)
    before = img.copy()
    out = dec.reconstruct(img)
    assert out.image.shape == (64, 64, 3) and out.image.dtype == np.float32
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    assert out.mode == "reconstruct" and out.tiles == 1
    np.testing.assert_array_equal(img, before)  # input untouched
    odd = dec.reconstruct(_img(37, 70, seed=1))  # padded to a multiple of f, cropped back
    assert odd.image.shape == (37, 70, 3)


def test_f8_latent_is_8x8_for_64px(tiny_zoo_weights: Path) -> None:
    from generators.models import load_autoencoder

    ae = load_autoencoder("f8c4", device="cpu", weights_dir=tiny_zoo_weights)
    with torch.inference_mode():
        z = ae.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 4, 8, 8)


def test_tiled_matches_whole_on_taef2_layout(tiny_zoo_weights: Path) -> None:
    """TAEF2 has no spatial normalisation: blended tiles stay close to the untiled round trip."""
    img = _img(96, 128, seed=2)
    whole = load_decoder("taef2", device="cpu", weights_dir=tiny_zoo_weights, tile_size=512).reconstruct(img)
    tiled = load_decoder("taef2", device="cpu", weights_dir=tiny_zoo_weights, tile_size=64, tile_overlap=32).reconstruct(img)
    assert whole.tiles == 1 and tiled.tiles > 1
    assert np.abs(whole.image - tiled.image).mean() < 0.02


def test_generator_samples_the_posterior_reproducibly(tiny_zoo_weights: Path) -> None:
    dec = load_decoder("f8c16", device="cpu", weights_dir=tiny_zoo_weights)
    img = _img()
    mode = dec.reconstruct(img).image
    a = dec.reconstruct(img, generator=torch.Generator().manual_seed(3)).image
    b = dec.reconstruct(img, generator=torch.Generator().manual_seed(3)).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, mode)
    np.testing.assert_array_equal(mode, dec.reconstruct(img).image)


def test_reconstruct_by_name_equals_loaded(tiny_zoo_weights: Path) -> None:
    img = _img(seed=4)
    dec = load_decoder("f2", device="cpu", weights_dir=tiny_zoo_weights)
    assert isinstance(dec, LoadedDecoder)
    by_name = reconstruct(img, decoder="f2", device="cpu", weights_dir=tiny_zoo_weights).image
    np.testing.assert_array_equal(by_name, reconstruct(img, decoder=dec).image)


def test_missing_weights_name_the_file(tiny_zoo_weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "w"
    shutil.copytree(tiny_zoo_weights, folder)
    (folder / "autoencoder_f8c16.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"decoder 'f8c16': .*autoencoder_f8c16\.safetensors"):
        load_decoder("f8c16", device="cpu", weights_dir=folder)
    with pytest.raises(FileNotFoundError, match=r"taef2\.safetensors"):
        load_decoder("taef2", device="cpu", weights_dir=tmp_path)


def test_wrong_layout_for_the_name_is_refused(tiny_generator_weights: Path) -> None:
    """An f=2 generator's config.json where f8c4 belongs (the state before the f=8 weights ship)."""
    with pytest.raises(ValueError, match=r"decoder 'f8c4': .* holds an f=2, 4-channel autoencoder, expected f=8 with 4 channels"):
        load_decoder("f8c4", device="cpu", weights_dir=tiny_generator_weights)


def test_bad_tiles_and_image(tiny_zoo_weights: Path) -> None:
    with pytest.raises(ValueError, match="tile_size must be >= 32"):
        load_decoder("taef2", device="cpu", weights_dir=tiny_zoo_weights, tile_size=16)
    with pytest.raises(ValueError, match=r"tile_overlap must be in \[0, 64\)"):
        load_decoder("taef2", device="cpu", weights_dir=tiny_zoo_weights, tile_size=64, tile_overlap=64)
    dec = load_decoder("taef2", device="cpu", weights_dir=tiny_zoo_weights)
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\)"):
        dec.reconstruct(np.zeros((8, 8), dtype=np.float32))


def test_default_tiles_follow_the_factor(tiny_zoo_weights: Path) -> None:
    from generators.models import load_models
    from generators.pipeline import LatentDiffusionPipeline
    from generators.zoo import default_tiles

    assert default_tiles(2) == (64, 16) and default_tiles(8) == (128, 32) and default_tiles(4) == (64, 16)
    pipe = LatentDiffusionPipeline(load_models(tiny_zoo_weights, device="cpu"))  # the tiny f8c4 generator
    assert (pipe.f, pipe.tile_size, pipe.tile_overlap) == (8, 128, 32)
    assert LatentDiffusionPipeline(load_models(tiny_zoo_weights, device="cpu"), tile_size=64).tile_overlap == 16


def test_custom_tile_size_alone_shrinks_the_default_overlap(tiny_zoo_weights: Path) -> None:
    dec = load_decoder("taef2", device="cpu", weights_dir=tiny_zoo_weights, tile_size=48)
    assert (dec.spec.tile_size, dec.spec.tile_overlap) == (48, 8)
    assert dec.reconstruct(_img(64, 64)).tiles == 4
