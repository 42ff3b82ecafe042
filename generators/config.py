"""Frozen configuration dataclasses of the reference latent-diffusion generator.

diffusers style: a model's constructor *is* its config, so every model config
here maps one to one onto the keyword arguments of the diffusers class it
builds (``AutoencoderKL(**asdict(cfg))``, ``UNet2DModel(**asdict(cfg))``).
Configs are stored as JSON next to the ``.safetensors`` weights. This module
imports no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "AutoencoderConfig",
    "GeneratorConfig",
    "SchedulerConfig",
    "GeneratorTrainConfig",
    "UNetConfig",
    "f8_autoencoder_config",
    "load_json_config",
    "tiny_generator_config",
]


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; allowed: {sorted(names)}")
    return cls(**{k: _tuplify(v) for k, v in data.items()})


@dataclass(frozen=True)
class AutoencoderConfig:
    """Keyword arguments of :class:`diffusers.AutoencoderKL` (Kingma & Welling 2014 VAE).

    The downsampling factor is ``2 ** (len(block_out_channels) - 1)``. The mid-block
    attention is off by default so that the model is fully convolutional: tiles of
    any size then see the same operator, which keeps tiled reconstruction seamless.
    ``scaling_factor`` is ``1 / std`` of the training latents, set after training.
    """

    in_channels: int = 3
    out_channels: int = 3
    down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",) * 3
    up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",) * 3
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    act_fn: str = "silu"
    latent_channels: int = 8
    norm_num_groups: int = 16
    sample_size: int = 64
    scaling_factor: float = 1.0
    force_upcast: bool = False
    mid_block_add_attention: bool = False

    @property
    def downsample_factor(self) -> int:
        """Spatial factor between pixels and latents (``f``)."""
        return 2 ** (len(self.block_out_channels) - 1)


@dataclass(frozen=True)
class UNetConfig:
    """Keyword arguments of :class:`diffusers.UNet2DModel`, the latent denoiser (Rombach et al. 2022)."""

    sample_size: int = 16
    in_channels: int = 8
    out_channels: int = 8
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    norm_num_groups: int = 16
    attention_head_dim: int = 32
    add_attention: bool = True
    dropout: float = 0.0


@dataclass(frozen=True)
class SchedulerConfig:
    """Noise schedule shared by training (DDPM, Ho et al. 2020) and sampling (DDIM, Song et al. 2021)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"
    clip_sample: bool = False
    steps_offset: int = 1
    timestep_spacing: str = "leading"


@dataclass(frozen=True)
class GeneratorConfig:
    """The whole generator: autoencoder, latent UNet and noise schedule."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)

    def __post_init__(self) -> None:
        ae, un = self.autoencoder, self.unet
        if un.in_channels != ae.latent_channels or un.out_channels != ae.latent_channels:
            raise ValueError(
                f"unet in/out channels ({un.in_channels}, {un.out_channels}) must equal "
                f"autoencoder latent_channels ({ae.latent_channels})"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        """Inverse of :meth:`to_dict`; missing sections take their defaults."""
        unknown = sorted(set(data) - {"autoencoder", "unet", "scheduler"})
        if unknown:
            raise ValueError(f"GeneratorConfig: unknown sections {unknown}")
        return cls(
            autoencoder=_from_dict(AutoencoderConfig, data.get("autoencoder", {})),
            unet=_from_dict(UNetConfig, data.get("unet", {})),
            scheduler=_from_dict(SchedulerConfig, data.get("scheduler", {})),
        )

    def with_scaling_factor(self, scaling_factor: float) -> "GeneratorConfig":
        """A copy whose autoencoder carries ``scaling_factor``."""
        return replace(self, autoencoder=replace(self.autoencoder, scaling_factor=float(scaling_factor)))


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """How ``detect train-generator`` trains: first the autoencoder, then the latent UNet.

    The autoencoder loss is the LDM first stage's (Rombach et al. 2022, App. G;
    Esser et al., "Taming Transformers", CVPR 2021): pixel terms, a perceptual
    term on pretrained ImageNet features (:mod:`generators.losses`), a tiny KL
    term, and after ``adversarial_start`` steps a patch-GAN hinge term whose
    weight is balanced adaptively against the reconstruction gradient.

    Attributes:
        seed: Seeds every ``torch.Generator`` and the crop sampler.
        crop_size: Side of the random native-resolution crops (pixels) for the
            autoencoder; a multiple of the downsampling factor.
        batch_size: Crops per autoencoder step.
        ae_steps: Autoencoder optimisation steps.
        ae_lr: AdamW learning rate of the autoencoder.
        kl_weight: Weight of the KL term (tiny: reconstruction first).
        l1_weight: Weight of the L1 pixel loss.
        mse_weight: Weight of the MSE pixel loss.
        perceptual_weight: Weight of the EfficientNet-Lite0 feature distance (0: off).
        adversarial_weight: Weight of the generator's hinge loss (0: no discriminator).
        adversarial_start: Autoencoder step from which the adversarial terms are on.
        disc_lr: AdamW learning rate of the patch discriminator.
        unet_crop_size: Pixel crop side for UNet training (latent side is this / f).
        unet_batch_size: Crops per UNet step.
        unet_steps: UNet optimisation steps.
        unet_lr: AdamW learning rate of the UNet.
        lr_floor: Final learning rate as a fraction of the peak (cosine schedule,
            :func:`generators.optimization.cosine_lr_factor`).
        checkpoint_every: Save a checkpoint every this many steps.
        log_every: Append to the loss log every this many steps.
        max_images: Use at most this many training photos (``None``: all).
        sample_count: Samples in the final grid.
        sample_size: Pixel side of the grid's samples.
        sample_steps: DDIM steps for the grid.
        num_threads: ``torch.set_num_threads`` on CPU (``None``: leave as is).
        mixed_precision: ``"auto"`` (bf16/fp16 autocast on CUDA, none on CPU) or ``"no"``.
        warmup_steps: Linear learning-rate warm-up steps of each phase.
    """

    seed: int = 0
    crop_size: int = 64
    batch_size: int = 16
    ae_steps: int = 1000
    ae_lr: float = 1e-3
    kl_weight: float = 1e-6
    l1_weight: float = 0.1
    mse_weight: float = 1.0
    perceptual_weight: float = 0.0
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    disc_lr: float = 2e-4
    unet_crop_size: int = 64
    unet_batch_size: int = 16
    unet_steps: int = 1000
    unet_lr: float = 5e-4
    lr_floor: float = 0.05
    checkpoint_every: int = 100
    log_every: int = 10
    max_images: int | None = None
    sample_count: int = 16
    sample_size: int = 64
    sample_steps: int = 50
    num_threads: int | None = 2
    mixed_precision: str = "auto"
    warmup_steps: int = 50

    def __post_init__(self) -> None:
        for name in ("crop_size", "batch_size", "unet_crop_size", "unet_batch_size", "checkpoint_every", "log_every", "sample_count", "sample_size", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("ae_steps", "unet_steps", "warmup_steps", "adversarial_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("kl_weight", "l1_weight", "mse_weight", "perceptual_weight", "adversarial_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"lr_floor must be in [0, 1], got {self.lr_floor}")
        if self.mixed_precision not in ("auto", "no"):
            raise ValueError(f"mixed_precision must be 'auto' or 'no', got {self.mixed_precision!r}")


def load_json_config(path: str | os.PathLike[str]) -> tuple[GeneratorConfig, GeneratorTrainConfig]:
    """Read a training config file ``{"model": {...}, "train": {...}}``.

    Raises:
        ValueError: On unknown keys or bad values, naming the file.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: cannot read config: {exc}") from None
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ValueError(f"{p}: unknown top-level keys {unknown}; allowed: ['model', 'train']")
    try:
        return GeneratorConfig.from_dict(data.get("model", {})), _from_dict(GeneratorTrainConfig, data.get("train", {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p}: {exc}") from None


def tiny_generator_config(latent_channels: int = 4) -> GeneratorConfig:
    """A very small generator (f=2, 8 to 16 channels) for tests and smoke runs."""
    return GeneratorConfig(
        autoencoder=AutoencoderConfig(
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(8, 16),
            latent_channels=latent_channels,
            norm_num_groups=4,
            sample_size=16,
        ),
        unet=UNetConfig(
            sample_size=8,
            in_channels=latent_channels,
            out_channels=latent_channels,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
            attention_head_dim=8,
        ),
    )


def f8_autoencoder_config(
    latent_channels: int = 4,
    *,
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64),
    norm_num_groups: int = 8,
) -> AutoencoderConfig:
    """The f=8 layout of the SD/SDXL/SD3/FLUX autoencoders, narrowed.

    Four blocks (three 2x downsamplings), ``UpDecoderBlock2D`` (nearest 2x
    upsampling + 3x3 convolutions), a mid block without attention and two
    ResNet layers per block, as in Rombach et al. 2022's ``f=8`` first stage.

    Args:
        latent_channels: 4 (SD 1/2/XL class) or 16 (SD3/FLUX class), >= 1.
        block_out_channels: Four widths (the real models use 128/256/512/512).
        norm_num_groups: GroupNorm groups; must divide every width.
    """
    if len(block_out_channels) != 4:
        raise ValueError(f"block_out_channels must have 4 widths (f=8), got {block_out_channels}")
    return AutoencoderConfig(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=2,
        latent_channels=latent_channels,
        norm_num_groups=norm_num_groups,
        sample_size=256,
    )
