"""Sampling, reconstruction and SDEdit regeneration with the latent-diffusion generator.

Methods:

* fresh samples: DDIM sampling (Song et al., "Denoising Diffusion Implicit
  Models", ICLR 2021) of a latent diffusion model (Rombach et al.,
  "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022);
* ``reconstruct``: a VAE round trip (Kingma & Welling, "Auto-Encoding
  Variational Bayes", ICLR 2014) at native resolution, tiled with blend windows;
* ``regenerate``: SDEdit (Meng et al., "SDEdit: Guided Image Synthesis and
  Editing with Stochastic Differential Equations", ICLR 2022): noise the
  photo's latent to ``strength`` and denoise it with DDIM.

Images in and out are ``float32`` numpy arrays ``(H, W, 3)`` in ``[0, 1]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from generators.models import GeneratorModels, build_ddim_scheduler
from generators.tiling import default_tiles, tile_starts, tiled_apply

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LatentDiffusionPipeline", "ReconstructionOutput", "SampleOutput", "StepCallback", "reconstruct_tiled"]

#: ``callback(step_index, total_steps)`` after each denoising step.
StepCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class SampleOutput:
    """Fresh samples.

    Attributes:
        images: ``float32`` ``(N, H, W, 3)`` in ``[0, 1]``.
        steps: DDIM steps run.
        eta: DDIM eta (0: deterministic given the initial noise).
        seconds: Wall time of the call.
    """

    images: np.ndarray
    steps: int
    eta: float
    seconds: float


@dataclass(frozen=True)
class ReconstructionOutput:
    """An aligned fake made from one photo.

    Attributes:
        image: ``float32`` ``(H, W, 3)`` in ``[0, 1]``, the input's size.
        mode: ``"reconstruct"`` or ``"regenerate"``.
        strength: SDEdit strength (``None`` for ``reconstruct``).
        steps: DDIM steps actually run (0 for ``reconstruct``).
        tiles: Autoencoder (encoder) tiles used (1: untiled).
        seconds: Wall time of the call.
    """

    image: np.ndarray
    mode: str
    strength: float | None
    steps: int
    tiles: int
    seconds: float


def _to_tensor(image: np.ndarray, device: "torch.device", dtype: "torch.dtype") -> "torch.Tensor":
    import torch

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return (t * 2 - 1).to(device, dtype)


def _to_numpy(x: "torch.Tensor") -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def _pad_to(x: "torch.Tensor", multiple: int) -> "torch.Tensor":
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def reconstruct_tiled(
    roundtrip: Callable[["torch.Tensor"], "torch.Tensor"],
    image: np.ndarray,
    *,
    factor: int,
    tile_size: int,
    tile_overlap: int,
    device: "torch.device",
    dtype: "torch.dtype",
    on_tile: Callable[[int, int], None] | None = None,
) -> ReconstructionOutput:
    """An autoencoder round trip of one photo at native resolution, tiled with blend windows.

    The photo is padded to a multiple of ``factor`` (reflect), cut into
    overlapping tiles of ``tile_size`` (each encoded and decoded on its own),
    blended with :func:`generators.tiling.tiled_apply`'s windows, and cropped
    back. Every decoder of the zoo (:mod:`generators.zoo`) goes through here.

    Args:
        roundtrip: Maps ``(B, 3, h, w)`` in ``[-1, 1]`` (``h``, ``w`` multiples
            of ``factor``) to its reconstruction, same shape, in about ``[-1, 1]``.
        image: ``(H, W, 3)`` float in ``[0, 1]``.
        factor: The autoencoder's downsampling factor ``f``.
        tile_size: Tile side in pixels, a multiple of ``factor``.
        tile_overlap: Overlap in pixels, in ``[0, tile_size)``, a multiple of ``factor``.
        device: Where the tensors go.
        dtype: Their dtype.
        on_tile: Called as ``on_tile(done, total)`` after each batch of tiles.

    Returns:
        A :class:`ReconstructionOutput` (``float32`` ``(H, W, 3)`` in ``[0, 1]``).

    Raises:
        ValueError: If ``image`` is not ``(H, W, 3)``.
    """
    import torch

    t0 = time.perf_counter()
    h, w = image.shape[:2]
    x = _pad_to(_to_tensor(image, device, dtype), factor)
    counter = {"n": 0}

    def count(done: int, total: int) -> None:
        counter["n"] = total
        if on_tile:
            on_tile(done, total)

    with torch.inference_mode():
        y = tiled_apply(roundtrip, x, tile=tile_size, overlap=tile_overlap, align=factor, on_tile=count)
    out = _to_numpy(y[:, :, :h, :w])[0]
    return ReconstructionOutput(out, "reconstruct", None, 0, counter["n"], time.perf_counter() - t0)


class LatentDiffusionPipeline:
    """The generator's three uses, diffusers style (the loops are written out).

    Args:
        models: Autoencoder and latent UNet (see :func:`generators.models.load_models`).
        tile_size: Autoencoder tile side in pixels for photos larger than it
            (rounded down to a multiple of the downsampling factor). Default
            (``None``): :func:`generators.tiling.default_tiles` of the model's ``f``
            (64 px for f=2, 128 px for f=8, their training crop sizes): GroupNorm
            statistics taken over much larger windows drift from training and cost PSNR.
        tile_overlap: Overlap between autoencoder tiles in pixels (default: as ``tile_size``).
        latent_tile_size: Latent tile side for the UNet on large latents.
        latent_tile_overlap: Overlap between UNet tiles in latent cells.
        decode_tile_size: Decoder tile side in pixels for *generated* latents
            (``sample``, ``regenerate``). Larger than ``tile_size``: per-tile
            GroupNorm statistics of small tiles turn the low frequencies of
            generated latents into visible blocks.
    """

    def __init__(
        self,
        models: GeneratorModels,
        *,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        latent_tile_size: int = 128,
        latent_tile_overlap: int = 32,
        decode_tile_size: int = 512,
    ) -> None:
        f = models.downsample_factor
        tile_default, overlap_default = default_tiles(f)
        tile_size = tile_default if tile_size is None else tile_size
        tile_overlap = min(overlap_default, tile_size // 4) if tile_overlap is None else tile_overlap
        if tile_size < 4 * f:
            raise ValueError(f"tile_size must be >= {4 * f} pixels, got {tile_size}")
        if not 0 <= tile_overlap < tile_size:
            raise ValueError(f"tile_overlap must be in [0, {tile_size}), got {tile_overlap}")
        self.models = models
        self.f = f
        self.unet_factor = 2 ** (len(models.config.unet.block_out_channels) - 1)
        self.tile_size = tile_size // f * f
        self.tile_overlap = tile_overlap // f * f
        if decode_tile_size < self.tile_size:
            raise ValueError(f"decode_tile_size must be >= tile_size ({self.tile_size}), got {decode_tile_size}")
        self.decode_tile_size = decode_tile_size // f * f
        lt = max(latent_tile_size // self.unet_factor * self.unet_factor, self.unet_factor)
        self.latent_tile_size = lt
        self.latent_tile_overlap = min(latent_tile_overlap, lt - 1)
        self.scaling_factor = models.config.autoencoder.scaling_factor

    # -- building blocks -------------------------------------------------

    def _encode(self, x: "torch.Tensor") -> "torch.Tensor":
        """``(B, 3, H, W)`` in [-1, 1] → unscaled posterior mode ``(B, C, H/f, W/f)``."""
        return self.models.vae.encode(x).latent_dist.mode()

    def _decode(self, z: "torch.Tensor") -> "torch.Tensor":
        return self.models.vae.decode(z).sample

    def encode(self, x: "torch.Tensor") -> "torch.Tensor":
        """Scaled latents of ``x`` ``(B, 3, H, W)`` in [-1, 1] (H, W multiples of f); tiled when large."""
        import torch

        with torch.inference_mode():
            z = tiled_apply(self._encode, x, tile=self.tile_size, overlap=self.tile_overlap, scale=Fraction(1, self.f), align=self.f)
        return z * self.scaling_factor

    def decode(self, latents: "torch.Tensor", *, tile_size: int | None = None) -> "torch.Tensor":
        """Pixels in [-1, 1] of scaled ``latents``; tiled when larger than ``tile_size``
        pixels (default ``decode_tile_size``)."""
        import torch

        tile = (tile_size or self.decode_tile_size) // self.f
        with torch.inference_mode():
            return tiled_apply(
                self._decode,
                latents / self.scaling_factor,
                tile=tile,
                overlap=min(max(self.tile_overlap // self.f, tile // 8), tile - 1),
                scale=self.f,
            )

    def _predict_noise(self, latents: "torch.Tensor", t: "torch.Tensor") -> "torch.Tensor":
        """UNet noise prediction, tiled with blend windows (MultiDiffusion) on large latents."""
        unet = self.models.unet
        return tiled_apply(
            lambda z: unet(z, t).sample,
            latents,
            tile=self.latent_tile_size,
            overlap=self.latent_tile_overlap,
            align=self.unet_factor,
        )

    def _denoise(
        self,
        latents: "torch.Tensor",
        timesteps: "torch.Tensor",
        scheduler: object,
        *,
        eta: float,
        generator: object,
        callback: StepCallback | None,
    ) -> "torch.Tensor":
        import torch

        with torch.inference_mode():
            for i, t in enumerate(timesteps):
                # 3a. predict the noise residual
                model_input = scheduler.scale_model_input(latents, t)  # type: ignore[attr-defined]
                noise_pred = self._predict_noise(model_input, t)
                # 3b. x_t -> x_{t-1} (DDIM update)
                latents = scheduler.step(noise_pred, t, latents, eta=eta, generator=generator).prev_sample  # type: ignore[attr-defined]
                if callback:
                    callback(i + 1, len(timesteps))
        return latents

    # -- fresh samples ----------------------------------------------------

    def sample(
        self,
        n: int = 1,
        *,
        size: int = 256,
        steps: int = 50,
        eta: float = 0.0,
        generator: "torch.Generator | Sequence[torch.Generator] | None" = None,
        callback: StepCallback | None = None,
    ) -> SampleOutput:
        """Generate ``n`` images from noise with DDIM.

        Args:
            n: Number of images, >= 1.
            size: Pixel side, a positive multiple of ``f * 2**(unet levels - 1)``.
            steps: DDIM steps, >= 1.
            eta: DDIM eta in ``[0, 1]``.
            generator: One generator, or one per image (then each image depends
                only on its own generator, whatever the batch).
            callback: Called after each step.

        Raises:
            ValueError: On a bad ``n``, ``size``, ``steps`` or ``eta``.
        """
        from diffusers.utils.torch_utils import randn_tensor

        mult = self.f * self.unet_factor
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if size < mult or size % mult:
            raise ValueError(f"size must be a positive multiple of {mult}, got {size}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        if isinstance(generator, (list, tuple)) and len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for n={n} images")
        t0 = time.perf_counter()
        device, dtype = self.models.device, self.models.dtype
        c = self.models.config.autoencoder.latent_channels
        # 1. prepare latents
        shape = (n, c, size // self.f, size // self.f)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        # 2. set timesteps
        scheduler = build_ddim_scheduler(self.models.config.scheduler)
        scheduler.set_timesteps(steps, device=device)
        latents = latents * scheduler.init_noise_sigma
        # 3. denoising loop
        latents = self._denoise(latents, scheduler.timesteps, scheduler, eta=eta, generator=generator, callback=callback)
        # 4. decode the latents to pixels
        images = _to_numpy(self.decode(latents))
        return SampleOutput(images=images, steps=steps, eta=eta, seconds=time.perf_counter() - t0)

    # -- aligned fakes ----------------------------------------------------

    def reconstruct(
        self,
        image: np.ndarray,
        *,
        generator: "torch.Generator | None" = None,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> ReconstructionOutput:
        """VAE round trip of one photo at native resolution.

        Photos larger than ``tile_size`` are processed in overlapping tiles
        (encode and decode per tile), blended with windows (see
        :func:`reconstruct_tiled`).

        Args:
            image: ``(H, W, 3)`` float in ``[0, 1]``.
            generator: ``None``: decode the posterior's mode (deterministic). A
                generator: decode a latent drawn from the posterior with it.
            on_tile: Called as ``on_tile(done, total)`` after each tile.

        Returns:
            The reconstruction, same size as ``image``.
        """
        vae = self.models.vae

        def roundtrip(tile: "torch.Tensor") -> "torch.Tensor":
            dist = vae.encode(tile).latent_dist
            z = dist.mode() if generator is None else dist.sample(generator=generator)
            return vae.decode(z).sample

        return reconstruct_tiled(
            roundtrip,
            image,
            factor=self.f,
            tile_size=self.tile_size,
            tile_overlap=self.tile_overlap,
            device=self.models.device,
            dtype=self.models.dtype,
            on_tile=on_tile,
        )

    def regenerate(
        self,
        image: np.ndarray,
        *,
        strength: float = 0.3,
        steps: int = 50,
        eta: float = 0.0,
        generator: "torch.Generator | None" = None,
        callback: StepCallback | None = None,
    ) -> ReconstructionOutput:
        """SDEdit: noise the photo's latent to ``strength``, then denoise it with DDIM.

        Args:
            image: ``(H, W, 3)`` float in ``[0, 1]``.
            strength: Fraction of the schedule to re-run, in ``(0, 1]``
                (1: nothing of the photo is kept but its size).
            steps: DDIM steps of a full schedule (``round(steps * strength)``,
                at least 1, are run).
            eta: DDIM eta in ``[0, 1]``.
            generator: Draws the noise.
            callback: Called after each step.

        Raises:
            ValueError: If ``strength`` is outside ``(0, 1]`` or ``steps < 1``.
        """
        from diffusers.utils.torch_utils import randn_tensor

        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        device = self.models.device
        x = _pad_to(_to_tensor(image, device, self.models.dtype), self.f * self.unet_factor)
        # 1. prepare latents: encode the photo
        latents = self.encode(x)
        # 2. set timesteps, keeping the last `strength` of the schedule
        scheduler = build_ddim_scheduler(self.models.config.scheduler)
        scheduler.set_timesteps(steps, device=device)
        run = max(1, min(int(round(steps * strength)), steps))
        timesteps = scheduler.timesteps[steps - run :]
        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)
        latents = scheduler.add_noise(latents, noise, timesteps[:1])
        # 3. denoising loop
        latents = self._denoise(latents, timesteps, scheduler, eta=eta, generator=generator, callback=callback)
        # 4. decode, crop back to the photo's size
        y = self.decode(latents)
        ph, pw = x.shape[-2:]
        tiles = len(tile_starts(ph, self.tile_size, self.tile_overlap, align=self.f)) * len(tile_starts(pw, self.tile_size, self.tile_overlap, align=self.f))
        out = _to_numpy(y[:, :, :h, :w])[0]
        return ReconstructionOutput(out, "regenerate", float(strength), run, tiles, time.perf_counter() - t0)
