"""Reference latent-diffusion generator (diffusers): synthetic images and AI
reconstructions of real photos, for training, calibrating and stress-testing
the detectors against a generator whose every setting is known.

A small latent diffusion model (Rombach et al., CVPR 2022): a KL autoencoder
(``AutoencoderKL``), a latent ``UNet2DModel`` trained with DDPM (Ho et al.
2020), DDIM sampling (Song et al., ICLR 2021) and SDEdit regeneration (Meng
et al., ICLR 2022). Trained weights ship in ``generators/weights`` (see its
``MODEL_CARD.md``).

Importing this package imports no torch: the names below are loaded on first
use.

Example::

    from generators import LatentDiffusionPipeline, load_models
    pipe = LatentDiffusionPipeline(load_models(device="auto"))
    fakes = pipe.sample(4, size=256, steps=50, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AutoencoderConfig",
    "GeneratorConfig",
    "GeneratorModels",
    "LatentDiffusionPipeline",
    "ReconstructionOutput",
    "SampleOutput",
    "AutoencoderModel",
    "GeneratorTrainConfig",
    "GeneratorTrainResult",
    "SchedulerConfig",
    "UNetConfig",
    "load_autoencoder",
    "load_models",
    "resolve_device",
    "save_models",
    "tiny_generator_config",
    "train_generator",
    "reconstruct",
]

_WHERE = {
    "AutoencoderConfig": "generators.config",
    "GeneratorConfig": "generators.config",
    "SchedulerConfig": "generators.config",
    "GeneratorTrainConfig": "generators.config",
    "UNetConfig": "generators.config",
    "tiny_generator_config": "generators.config",
    "GeneratorModels": "generators.models",
    "AutoencoderModel": "generators.models",
    "load_autoencoder": "generators.models",
    "load_models": "generators.models",
    "resolve_device": "generators.training_utils",
    "save_models": "generators.models",
    "LatentDiffusionPipeline": "generators.pipeline",
    "ReconstructionOutput": "generators.pipeline",
    "SampleOutput": "generators.pipeline",
    "GeneratorTrainResult": "generators.train",
    "train_generator": "generators.train",
    "reconstruct": "generators.zoo",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'generators' has no attribute {name!r}")
