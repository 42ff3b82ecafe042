"""TAEF2: a tiny convolutional autoencoder for the FLUX.2 latent space, as a second decoder.

The weights are the tiny autoencoder that Ollin Boer Bohan distilled from the
FLUX.2 VAE (``madebyollin/taesd``, MIT licence; see
``generators/weights/taef2_LICENSE.md`` and the model card). No code came with
them: this module is written from the tensor names and shapes alone
(``STATE_DICT.md`` of the shared copy), and the choices the shapes leave open
were settled by reconstruction PSNR on real photos (table in
``generators/weights/MODEL_CARD.md``, section "TAEF2").

What the shapes say:

* the encoder is a plain stack: a 3x3 stem conv (3 -> 64), residual blocks of
  three 3x3 convs, and three bias-free 3x3 convs that downsample by 2
  (stride 2), then a 3x3 conv to 32 latent channels: ``f = 8``, 32 channels,
  the FLUX.2 VAE's latent layout;
* the decoder mirrors it with nearest-neighbour 2x upsampling followed by a
  bias-free 3x3 conv, three times, and a 3x3 conv to RGB. Its first layer has
  no parameters (the identity here; a soft clamp of the latent would fit the
  shapes too), its third none either (ReLU);
* the blocks at the 1/8 resolution (encoder 11-13, decoder 3-5) carry an
  extra branch named ``pool``: a 1x1 conv 64 -> 256 without bias, a 256-wide
  affine norm (weight and bias, no running statistics), a parameter-free
  activation and a 1x1 conv 256 -> 64 without bias;
* no tensor scales or shifts the latent: the decoder reads the encoder's
  output as is (both live in the FLUX.2 VAE's raw latent space).

Settled empirically (round-trip PSNR of 256 px crops of the train split's
real photos, ``scripts/convert_taef2.py --ablation``): pixels in ``[0, 1]``
(not ``[-1, 1]``); ReLU activations with a ReLU after each residual sum; the
``pool`` branch is a per-pixel channel MLP with a channel LayerNorm, added to
the block's input before its convolutions; no clamp of the latent. Some of
these margins are small (tenths of a dB); the model card lists them.

The downsampling path (stride-2 convs) and the nearest 2x upsampling + 3x3
conv decoder are the layout of the latent-diffusion autoencoders (Rombach et
al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR
2022) whose period-8 traces the detectors must learn.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

__all__ = [
    "TAEF2",
    "TAEF2_FILE",
    "TAEF2Config",
    "ChannelLayerNorm",
    "ResidualBlock",
    "SoftClamp",
    "check_state_dict",
    "load_taef2",
    "save_taef2",
]

#: The shipped weights (converted by ``scripts/convert_taef2.py``).
TAEF2_FILE = Path(__file__).resolve().parent / "weights" / "taef2.safetensors"


@dataclass(frozen=True)
class TAEF2Config:
    """Shape of the tiny autoencoder (the defaults are the shipped TAEF2's).

    Attributes:
        width: Feature channels of every conv layer (64).
        latent_channels: Latent channels (32, as the FLUX.2 VAE).
        mlp_expansion: Hidden width of the low-resolution blocks' channel MLP
            as a multiple of ``width`` (4).
        latent_clamp: The decoder first maps the latent through
            ``c * tanh(z / c)`` with this ``c`` (``None``: identity). The shipped
            model uses ``None``: with ``c = 3`` the round trip lost 0.06 dB
            median PSNR and was worse on 49 of 66 train-split crops.
    """

    width: int = 64
    latent_channels: int = 32
    mlp_expansion: int = 4
    latent_clamp: float | None = None

    def __post_init__(self) -> None:
        for name in ("width", "latent_channels", "mlp_expansion"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_clamp is not None and self.latent_clamp <= 0:
            raise ValueError(f"latent_clamp must be > 0 or None, got {self.latent_clamp}")

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along each side (8)."""
        return 8



class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel of a ``(B, C, H, W)`` map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

class ResidualBlock(nn.Module):
    """``relu(x' + convs(x'))`` with ``x' = x + mlp(x)`` when the block has a channel MLP.

    ``convs``: 3x3 conv, ReLU, 3x3 conv, ReLU, 3x3 conv (state-dict names
    ``conv.0/2/4``); ``mlp`` (``pool.0/1/3``): 1x1 conv to ``expansion * c``
    (no bias), channel LayerNorm, ReLU, 1x1 conv back (no bias).
    """

    def __init__(self, channels: int, *, mlp_expansion: int = 0) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1)
        )
        self.pool = (
            nn.Sequential(
                nn.Conv2d(c, mlp_expansion * c, 1, bias=False),
                ChannelLayerNorm(mlp_expansion * c),
                nn.ReLU(),
                nn.Conv2d(mlp_expansion * c, c, 1, bias=False),
            )
            if mlp_expansion
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)

class SoftClamp(nn.Module):
    """``c * tanh(z / c)``: bounds out-of-range latents smoothly."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.c * torch.tanh(z / self.c)

class TAEF2(nn.Module):
    """Tiny FLUX.2 autoencoder; the constructor is the config.

    Args:
        config: Layer widths (default: the shipped model's).
    """

    def __init__(self, config: TAEF2Config | None = None) -> None:
        super().__init__()
        cfg = config or TAEF2Config()
        self.config = cfg
        w, z, e = cfg.width, cfg.latent_channels, cfg.mlp_expansion

        def conv(cin: int, cout: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)

        def blocks(n: int, mlp: bool) -> list[nn.Module]:
            return [ResidualBlock(w, mlp_expansion=e if mlp else 0) for _ in range(n)]

        down = [conv(w, w, stride=2, bias=False)]
        self.encoder = nn.Sequential(
            conv(3, w), *blocks(1, False),                 # 0-1: full resolution
            *down, *blocks(3, False),                      # 2-5: 1/2
            conv(w, w, stride=2, bias=False), *blocks(3, False),  # 6-9: 1/4
            conv(w, w, stride=2, bias=False), *blocks(3, True),   # 10-13: 1/8, with channel MLPs
            conv(w, z),                                    # 14: latent
        )  # fmt: skip

        def up() -> list[nn.Module]:
            return [nn.Upsample(scale_factor=2, mode="nearest"), conv(w, w, bias=False)]

        self.decoder = nn.Sequential(
            SoftClamp(cfg.latent_clamp) if cfg.latent_clamp else nn.Identity(), conv(z, w), nn.ReLU(),  # 0-2
            *blocks(3, True),                                    # 3-5: 1/8, with channel MLPs
            *up(), *blocks(3, False),                            # 6-10: 1/4
            *up(), *blocks(3, False),                            # 11-15: 1/2
            *up(), *blocks(1, False),                            # 16-18: full resolution
            conv(w, 3),                                          # 19: RGB
        )  # fmt: skip

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along each side (8)."""
        return 8

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of images.

        Args:
            x: ``(B, 3, H, W)`` float in ``[0, 1]``; ``H`` and ``W`` multiples of 8.

        Returns:
            ``(B, latent_channels, H/8, W/8)`` in the FLUX.2 VAE's raw latent space
            (no scaling or shift).
        """
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixels of latents: ``(B, C, h, w)`` -> ``(B, 3, 8h, 8w)``, about ``[0, 1]`` (not clamped)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Round trip ``decode(encode(x))``."""
        return self.decode(self.encode(x))


def check_state_dict(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], *, source: str = "state dict") -> None:
    """Check that ``state`` has exactly the tensor names and shapes of ``expected``.

    Args:
        expected: A model's own ``state_dict()``.
        state: The tensors to load.
        source: Names the file in the message.

    Raises:
        ValueError: Naming every tensor whose shape differs (expected and
            actual shape), and every missing or unexpected name.
    """
    problems = []
    for name, ref in expected.items():
        if name not in state:
            problems.append(f"missing tensor {name!r} (expected shape {tuple(ref.shape)})")
        elif tuple(state[name].shape) != tuple(ref.shape):
            problems.append(f"tensor {name!r} has shape {tuple(state[name].shape)}, expected {tuple(ref.shape)}")
    for name in state:
        if name not in expected:
            problems.append(f"unexpected tensor {name!r} (shape {tuple(state[name].shape)})")
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ValueError(f"{source}: does not fit the TAEF2 layout: {shown}")


def load_taef2(
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> TAEF2:
    """Load TAEF2 from a ``.safetensors`` file written by ``scripts/convert_taef2.py``.

    The file holds ``encoder.*`` and ``decoder.*`` tensors and, in its
    metadata, the ``TAEF2Config`` as JSON under ``"config"``.

    Args:
        path: The file (default: the shipped ``generators/weights/taef2.safetensors``).
        device: Target device (a name or ``torch.device``; no CUDA assumed).
        dtype: Parameter dtype (default float32; the file stores float16).

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If a tensor's name or shape does not fit the config
            (names the tensor and both shapes).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    src = Path(path) if path is not None else TAEF2_FILE
    if not src.is_file():
        raise FileNotFoundError(f"{src}: missing TAEF2 weights file (convert them with scripts/convert_taef2.py)")
    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata() or {}
    try:
        cfg = TAEF2Config(**json.loads(meta["config"])) if "config" in meta else TAEF2Config()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{src}: bad TAEF2 config in the file's metadata: {exc}") from None
    model = TAEF2(cfg)
    state = load_file(str(src))
    check_state_dict(model.state_dict(), state, source=str(src))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device=device, dtype=dtype or torch.float32).eval()


def save_taef2(model: TAEF2, path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float16, metadata: Mapping[str, str] | None = None) -> None:
    """Write ``model`` as the ``.safetensors`` file :func:`load_taef2` reads.

    Args:
        model: The model (its config goes into the file's metadata).
        path: Target file.
        dtype: Storage dtype of the tensors (float16 keeps the upstream weights bit for bit).
        metadata: Extra string metadata (provenance).
    """
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={**(metadata or {}), "config": json.dumps(asdict(model.config))})
