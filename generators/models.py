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

from generators.config import GeneratorConfig, SchedulerConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DModel

__all__ = [
    "AUTOENCODER_FILE",
    "CONFIG_FILE",
    "UNET_FILE",
    "WEIGHTS_DIR",
    "GeneratorModels",
    "build_autoencoder",
    "build_ddim_scheduler",
    "build_ddpm_scheduler",
    "build_unet",
    "load_models",
    "resolve_device",
    "save_models",
    "weights_sha256",
]

#: Where the shipped weights live.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CONFIG_FILE = "config.json"
AUTOENCODER_FILE = "autoencoder.safetensors"
UNET_FILE = "unet.safetensors"


def resolve_device(device: str = "auto") -> "torch.device":
    """Pick the compute device.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``
            (optionally ``"cuda:N"``).

    Raises:
        ValueError: On an unknown name, or ``"cuda"`` when CUDA is unavailable.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        return torch.device(device)
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


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


@dataclass
class GeneratorModels:
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
    def device(self) -> "torch.device":
        """Device of the models' parameters."""
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> "torch.dtype":
        """Floating dtype of the models' parameters."""
        return next(self.vae.parameters()).dtype

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
            _reset_parameters(vae, g)
            _reset_parameters(unet, g)
        return cls(config, vae.to(dev).eval(), unet.to(dev).eval())


def _reset_parameters(module: "torch.nn.Module", generator: "torch.Generator") -> None:
    """PyTorch's default conv/linear initialisation, drawn from ``generator``."""
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
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"model": models.config.to_dict()}
    if metadata:
        doc["training"] = metadata
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for name, module in ((AUTOENCODER_FILE, models.vae), (UNET_FILE, models.unet)):
        state = {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(out / name))
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
