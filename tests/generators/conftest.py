"""Fixtures shared by the generator tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest on one thread, and 2 threads crawl when another job holds a core."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_zoo_weights(tmp_path_factory: pytest.TempPathFactory):
    """A weights folder with every zoo decoder in a tiny, seeded config, written once per run.

    f8c4 and f8c16: f=8 AutoencoderKLs of widths 8/8/16/16 (a 64 px image has an
    8x8 latent); f2: the tiny f=2 generator's autoencoder with 12 channels;
    taef2: TAEF2 at width 8 (the real layout, narrowed).
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from generators.config import GeneratorConfig, UNetConfig, f8_autoencoder_config, tiny_generator_config
    from generators.models import GeneratorModels, build_autoencoder, reset_parameters, save_autoencoder, save_models
    from generators.taef2 import TAEF2, TAEF2Config, save_taef2

    folder = tmp_path_factory.mktemp("tiny_zoo_weights")
    tiny_unet = tiny_generator_config().unet

    def f8(channels: int):
        ae = f8_autoencoder_config(channels, block_out_channels=(8, 8, 16, 16), norm_num_groups=4)
        unet = UNetConfig(**{**tiny_unet.__dict__, "in_channels": channels, "out_channels": channels})
        return GeneratorConfig(autoencoder=ae, unet=unet)

    save_models(GeneratorModels.from_config(f8(4), device="cpu", seed=0), folder)
    for name, cfg in (("f8c16", f8(16)), ("f2", tiny_generator_config(latent_channels=12))):
        vae = build_autoencoder(cfg)
        reset_parameters(vae, torch.Generator().manual_seed(1))
        save_autoencoder(vae, cfg.autoencoder, name, folder)
    taef2 = TAEF2(TAEF2Config(width=8, mlp_expansion=2))
    reset_parameters(taef2, torch.Generator().manual_seed(2))
    save_taef2(taef2, folder / "taef2.safetensors", dtype=torch.float32)
    return folder
