"""Building, saving and loading the generator's diffusers models.

The autoencoder is a KL-regularised VAE (Kingma & Welling, "Auto-Encoding
Variational Bayes", ICLR 2014) used as the first stage of a latent diffusion
model (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion
Models", CVPR 2022); the denoiser is a ``UNet2DModel`` in latent space trained
with the DDPM objective (Ho et al., NeurIPS 2020). Weights are stored only as
``.safetensors``; configs as JSON. Never pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generators.config import (
    AutoencoderConfig,
    GeneratorConfig,
    SchedulerConfig,
    UNetConfig,
)
from generators.training_utils import resolve_device

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DModel

__all__ = [
    "AUTOENCODER_FILE",
    "AUTOENCODER_NAMES",
    "AutoencoderModel",
    "CONFIG_FILE",
    "UNET_FILE",
    "WEIGHTS_DIR",
    "GeneratorModels",
    "build_autoencoder",
    "build_ddim_scheduler",
    "build_ddpm_scheduler",
    "build_unet",
    "load_autoencoder",
    "load_models",
    "reset_parameters",
    "save_autoencoder",
    "resolve_device",
    "save_models",
    "weights_sha256",
]

#: Where the shipped weights live.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CONFIG_FILE = "config.json"
AUTOENCODER_FILE = "autoencoder.safetensors"
UNET_FILE = "unet.safetensors"
#: Autoencoders loadable by name (:func:`load_autoencoder`): the default f=8 4-channel one
#: (``config.json`` + ``autoencoder.safetensors``), the f=8 16-channel one and the f=2 one.
AUTOENCODER_NAMES = ("f8c4", "f8c16", "f2")


def build_autoencoder(config: GeneratorConfig) -> "AutoencoderKL":
    """A freshly initialised :class:`diffusers.AutoencoderKL` from ``config.autoencoder``."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**asdict(config.autoencoder))


def build_unet(config: GeneratorConfig) -> "UNet2DModel":
    """A freshly initialised latent :class:`diffusers.UNet2DModel` from ``config.unet``."""
    from diffusers import UNet2DModel

    return UNet2DModel(**asdict(config.unet))


def build_ddpm_scheduler(config: SchedulerConfig) -> "DDPMScheduler":
    """The training-time :class:`diffusers.DDPMScheduler` (Ho et al. 2020)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**asdict(config))


def build_ddim_scheduler(config: SchedulerConfig) -> "DDIMScheduler":
    """The sampling :class:`diffusers.DDIMScheduler` (Song et al. 2021) on the same betas."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**asdict(config), set_alpha_to_one=False)


class _OnVaeDevice:
    """``device`` and ``dtype`` of a holder's ``vae`` parameters (shared by the model holders below)."""

    vae: "AutoencoderKL"

    @property
    def device(self) -> "torch.device":
        """Device of the models' parameters."""
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> "torch.dtype":
        """Floating dtype of the models' parameters."""
        return next(self.vae.parameters()).dtype


@dataclass
class GeneratorModels(_OnVaeDevice):
    """The generator's models, on one device, in eval mode.

    Attributes:
        config: The configuration the models were built from.
        vae: The autoencoder.
        unet: The latent denoiser.
        weights_sha256: sha256 over the weight files (hex), or ``None`` for
            models that were not loaded from files.
        source: Folder the weights came from, or ``None``.
    """

    config: GeneratorConfig
    vae: "AutoencoderKL"
    unet: "UNet2DModel"
    weights_sha256: str | None = None
    source: str | None = None

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along each side (``f``)."""
        return self.config.autoencoder.downsample_factor

    @classmethod
    def from_config(cls, config: GeneratorConfig, *, device: str = "cpu", seed: int | None = None) -> "GeneratorModels":
        """Randomly initialised models (for tests and training).

        Args:
            config: Model configuration.
            device: See :func:`resolve_device`.
            seed: Redraws the conv and linear weights with PyTorch's default
                initialisation from a ``torch.Generator`` seeded with this, so
                that no global RNG is involved; ``None``: torch's own draw.
        """
        dev = resolve_device(device)
        vae, unet = build_autoencoder(config), build_unet(config)
        if seed is not None:
            import torch

            g = torch.Generator().manual_seed(seed)
            reset_parameters(vae, g)
            reset_parameters(unet, g)
        return cls(config, vae.to(dev).eval(), unet.to(dev).eval())


def reset_parameters(module: "torch.nn.Module", generator: "torch.Generator") -> None:
    """Redraw conv/linear weights in place with PyTorch's default initialisation, from ``generator``."""
    import math

    import torch

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in = m.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    m.bias.uniform_(-bound, bound, generator=generator)


def weights_sha256(folder: str | os.PathLike[str]) -> str:
    """sha256 (hex) over config and weight files of a weights folder, in a fixed order."""
    h = hashlib.sha256()
    for name in (CONFIG_FILE, AUTOENCODER_FILE, UNET_FILE):
        p = Path(folder) / name
        h.update(name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def save_models(models: GeneratorModels, folder: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None) -> str:
    """Write ``config.json``, ``autoencoder.safetensors`` and ``unet.safetensors``.

    Args:
        models: The models to save (float32 copies are written).
        folder: Target folder (created).
        metadata: Extra JSON-able keys stored in ``config.json`` under ``"training"``.

    Returns:
        The new :func:`weights_sha256`.
    """
    from generators.training_utils import save_module

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"model": models.config.to_dict()}
    if metadata:
        doc["training"] = metadata
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for name, module in ((AUTOENCODER_FILE, models.vae), (UNET_FILE, models.unet)):
        save_module(module, out / name)
    return weights_sha256(out)


def load_models(
    folder: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    dtype: "torch.dtype | None" = None,
) -> GeneratorModels:
    """Load models from a weights folder (default: the shipped ``generators/weights``).

    Args:
        folder: Folder with ``config.json`` and the two ``.safetensors`` files.
        device: See :func:`resolve_device`.
        dtype: Parameter dtype; default float32 (also on CUDA, for exact reconstructions).

    Raises:
        FileNotFoundError: If a file is missing.
    """
    import torch
    from safetensors.torch import load_file

    src = Path(folder) if folder is not None else WEIGHTS_DIR
    for name in (CONFIG_FILE, AUTOENCODER_FILE, UNET_FILE):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name}: missing generator weights file")
    doc = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    config = GeneratorConfig.from_dict(doc["model"])
    dev = resolve_device(device)
    vae, unet = build_autoencoder(config), build_unet(config)
    vae.load_state_dict(load_file(str(src / AUTOENCODER_FILE)))
    unet.load_state_dict(load_file(str(src / UNET_FILE)))
    if dtype is not None and dtype != torch.float32:
        vae, unet = vae.to(dtype=dtype), unet.to(dtype=dtype)
    return GeneratorModels(
        config,
        vae.to(dev).eval(),
        unet.to(dev).eval(),
        weights_sha256=weights_sha256(src),
        source=str(src),
    )


@dataclass
class AutoencoderModel(_OnVaeDevice):
    """One autoencoder of the decoder zoo, loaded by :func:`load_autoencoder`.

    Attributes:
        name: One of :data:`AUTOENCODER_NAMES`.
        config: Its :class:`generators.config.AutoencoderConfig` (with the
            trained ``scaling_factor``).
        vae: The :class:`diffusers.AutoencoderKL`, in eval mode.
        weights_sha256: sha256 (hex) over its config and weight files.
        source: The weights file.
    """

    name: str
    config: AutoencoderConfig
    vae: "AutoencoderKL"
    weights_sha256: str
    source: str

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along each side (``f``)."""
        return self.config.downsample_factor

    def as_generator_models(self) -> GeneratorModels:
        """A :class:`GeneratorModels` without a UNet (``unet`` is ``None``), for reconstruction only."""
        lat = self.config.latent_channels
        cfg = GeneratorConfig(autoencoder=self.config, unet=UNetConfig(in_channels=lat, out_channels=lat))
        return GeneratorModels(cfg, self.vae, None, weights_sha256=self.weights_sha256, source=self.source)  # type: ignore[arg-type]


def _autoencoder_files(name: str, folder: Path) -> tuple[Path, Path]:
    if name == AUTOENCODER_NAMES[0]:
        return folder / CONFIG_FILE, folder / AUTOENCODER_FILE
    return folder / f"autoencoder_{name}.json", folder / f"autoencoder_{name}.safetensors"


def save_autoencoder(vae: "AutoencoderKL", config: AutoencoderConfig, name: str, folder: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None) -> Path:
    """Write a named zoo autoencoder as ``autoencoder_<name>.json`` + ``autoencoder_<name>.safetensors``.

    The default ``f8c4`` is part of the default generator and is written by
    :func:`save_models` instead.

    Raises:
        ValueError: For ``f8c4`` or a name outside :data:`AUTOENCODER_NAMES`.
    """
    from generators.training_utils import save_module

    if name not in AUTOENCODER_NAMES[1:]:
        raise ValueError(f"autoencoder name must be one of {list(AUTOENCODER_NAMES[1:])} (f8c4 is saved with save_models), got {name!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, st_path = _autoencoder_files(name, out)
    doc: dict[str, Any] = {"autoencoder": json.loads(json.dumps(asdict(config)))}
    if metadata:
        doc["training"] = metadata
    cfg_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    save_module(vae, st_path)
    return st_path


def load_autoencoder(
    name: str,
    *,
    device: str = "auto",
    dtype: "torch.dtype | None" = None,
    weights_dir: str | os.PathLike[str] | None = None,
) -> AutoencoderModel:
    """Load one autoencoder of the zoo by name.

    Args:
        name: ``"f8c4"`` (the default generator's: ``config.json`` +
            ``autoencoder.safetensors``), ``"f8c16"`` or ``"f2"``
            (``autoencoder_<name>.json`` + ``autoencoder_<name>.safetensors``).
        device: See :func:`generators.training_utils.resolve_device`.
        dtype: Parameter dtype (default float32).
        weights_dir: Folder to read (default: the shipped ``generators/weights``).

    Raises:
        ValueError: On an unknown name (naming the allowed ones).
        FileNotFoundError: If a file is missing (naming it).
    """
    import hashlib

    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    if name not in AUTOENCODER_NAMES:
        raise ValueError(f"autoencoder name must be one of {list(AUTOENCODER_NAMES)}, got {name!r}")
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    cfg_path, st_path = _autoencoder_files(name, folder)
    for p in (cfg_path, st_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing weights file of autoencoder {name!r}")
    doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    section = doc["model"]["autoencoder"] if name == AUTOENCODER_NAMES[0] else doc["autoencoder"]
    config = GeneratorConfig.from_dict({"autoencoder": section, "unet": {"in_channels": section.get("latent_channels", 8), "out_channels": section.get("latent_channels", 8)}}).autoencoder
    vae = AutoencoderKL(**asdict(config))
    vae.load_state_dict(load_file(str(st_path)))
    if dtype is not None and dtype != torch.float32:
        vae = vae.to(dtype=dtype)
    h = hashlib.sha256()
    for p in (cfg_path, st_path):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return AutoencoderModel(name, config, vae.to(resolve_device(device)).eval(), h.hexdigest(), str(st_path))
