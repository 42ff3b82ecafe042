"""The decoder zoo: aligned fakes of one photo through several latent-diffusion autoencoders.

Each decoder is an autoencoder round trip at native resolution (tiled with
blend windows, :func:`generators.pipeline.reconstruct_tiled`). The fakes keep
the photo's content and size and carry only the decoder's traces, which is
what the pixel detectors must learn (aligned training: the real photo and its
reconstruction differ by nothing else).

=========  ======  ========  ==========================================================
name       f       latent    what
=========  ======  ========  ==========================================================
``f8c4``   8       4 ch      the project's f=8 AutoencoderKL, SD 1.x/2.x/XL layout
``f8c16``  8       16 ch     the project's f=8 AutoencoderKL, SD3/FLUX.1 width
``taef2``  8       32 ch     TAEF2, the tiny FLUX.2 autoencoder (:mod:`generators.taef2`)
``f2``     2       12 ch     the project's first, nearly lossless autoencoder
=========  ======  ========  ==========================================================

The KL autoencoders (Kingma & Welling 2014; Rombach et al., CVPR 2022) are
loaded by :func:`generators.models.load_autoencoder`; their weights are trained
by ``detect train-generator`` and may be absent from a checkout (then loading
raises :class:`FileNotFoundError` naming the file).

Example::

    from generators import reconstruct
    fake = reconstruct(photo, decoder="taef2").image      # (H, W, 3) float32 in [0, 1]

    from generators.zoo import load_decoder
    dec = load_decoder("f8c4", device="cpu")              # load once, reconstruct many
    fakes = [dec.reconstruct(p).image for p in photos]
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from generators.tiling import KL_TILES, default_tiles

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from generators.pipeline import ReconstructionOutput

__all__ = ["DECODER_NAMES", "DecoderSpec", "LoadedDecoder", "decoder_spec", "decoder_specs", "default_tiles", "load_decoder", "reconstruct"]


@dataclass(frozen=True)
class DecoderSpec:
    """What one zoo decoder is.

    Attributes:
        name: Zoo name (``"f8c4"``, ``"f8c16"``, ``"taef2"``, ``"f2"``).
        kind: ``"autoencoder_kl"`` (diffusers ``AutoencoderKL``) or ``"taef2"``.
        downsample_factor: Pixels per latent cell along each side.
        latent_channels: Latent channels.
        description: One line for listings and sidecars.
        tile_size: Default tile side in pixels for the round trip.
        tile_overlap: Default blend overlap in pixels.
    """

    name: str
    kind: str
    downsample_factor: int
    latent_channels: int
    description: str
    tile_size: int
    tile_overlap: int


_SPECS = (
    # tiles: the KL autoencoders use GroupNorm, whose statistics should come from windows
    # close to their training crops (64 px for f2, 128 px for the f=8 ones: see
    # scripts/train_generator_config_*.json; 512 px tiles cost the f2 model 3.5 dB); TAEF2 has
    # no spatial normalisation, so large tiles only bound memory. Tile starts are multiples
    # of f, so the decoders' period-f grid keeps one phase across tiles.
    DecoderSpec("f8c4", "autoencoder_kl", 8, 4, "f=8, 4-channel AutoencoderKL (SD 1.x/2.x/XL layout)", *KL_TILES[8]),
    DecoderSpec("f8c16", "autoencoder_kl", 8, 16, "f=8, 16-channel AutoencoderKL (SD3/FLUX.1 latent width)", *KL_TILES[8]),
    DecoderSpec("taef2", "taef2", 8, 32, "TAEF2: tiny autoencoder distilled from the FLUX.2 VAE (madebyollin, MIT)", 512, 64),
    DecoderSpec("f2", "autoencoder_kl", 2, 12, "f=2, 12-channel AutoencoderKL (nearly lossless)", *KL_TILES[2]),
)

#: The zoo's decoders, in the order ``--decoder all`` runs them.
DECODER_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS)


def decoder_specs() -> tuple[DecoderSpec, ...]:
    """Every decoder of the zoo."""
    return _SPECS


def decoder_spec(name: str) -> DecoderSpec:
    """The spec of one decoder.

    Raises:
        ValueError: If ``name`` is not a zoo decoder (names the allowed ones).
    """
    for s in _SPECS:
        if s.name == name:
            return s
    raise ValueError(f"decoder must be one of {list(DECODER_NAMES)}, got {name!r}")


@dataclass
class LoadedDecoder:
    """A zoo decoder loaded on one device, ready to reconstruct photos.

    Attributes:
        spec: What it is (``tile_size``/``tile_overlap`` are the ones in use).
        weights_sha256: sha256 (hex) of its weight files.
        source: The weights file it came from.
        device: Its device.
        dtype: Its parameter dtype.
    """

    spec: DecoderSpec
    weights_sha256: str
    source: str
    device: "torch.device"
    dtype: "torch.dtype"
    _roundtrip: Callable[..., Callable[["torch.Tensor"], "torch.Tensor"]]

    def reconstruct(
        self,
        image: np.ndarray,
        *,
        generator: "torch.Generator | None" = None,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> "ReconstructionOutput":
        """Round trip of one photo at native resolution (tiled above ``spec.tile_size``).

        Args:
            image: ``(H, W, 3)`` float in ``[0, 1]``. Not modified.
            generator: KL decoders: ``None`` decodes the posterior's mode
                (deterministic), a generator draws the latent from the
                posterior. TAEF2 is deterministic and ignores it.
            on_tile: Called as ``on_tile(done, total)`` after each batch of tiles.

        Returns:
            ``ReconstructionOutput`` whose ``image`` is ``float32`` ``(H, W, 3)`` in ``[0, 1]``.

        Raises:
            ValueError: If ``image`` is not ``(H, W, 3)``.
        """
        from generators.pipeline import reconstruct_tiled

        return reconstruct_tiled(
            self._roundtrip(generator),
            image,
            factor=self.spec.downsample_factor,
            tile_size=self.spec.tile_size,
            tile_overlap=self.spec.tile_overlap,
            device=self.device,
            dtype=self.dtype,
            on_tile=on_tile,
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_tiles(spec: DecoderSpec, tile_size: int | None, tile_overlap: int | None) -> DecoderSpec:
    f = spec.downsample_factor
    tile = spec.tile_size if tile_size is None else tile_size // f * f
    # a default overlap never exceeds a quarter of a custom tile
    overlap = min(spec.tile_overlap, tile // 4 // f * f) if tile_overlap is None else tile_overlap // f * f
    if tile < 4 * f:
        raise ValueError(f"tile_size must be >= {4 * f} pixels for decoder {spec.name!r}, got {tile_size}")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile_overlap must be in [0, {tile}) for decoder {spec.name!r}, got {tile_overlap}")
    return replace(spec, tile_size=tile, tile_overlap=overlap)


def load_decoder(
    name: str,
    *,
    device: str = "auto",
    weights_dir: str | os.PathLike[str] | None = None,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
) -> LoadedDecoder:
    """Load one zoo decoder.

    Args:
        name: One of :data:`DECODER_NAMES`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        weights_dir: Folder with the weight files (default: the shipped
            ``generators/weights``): ``config.json`` + ``autoencoder.safetensors``
            (f8c4), ``autoencoder_<name>.json/.safetensors`` (f8c16, f2) and
            ``taef2.safetensors``.
        tile_size: Tile side in pixels (default: the spec's; rounded down to a multiple of ``f``).
        tile_overlap: Blend overlap in pixels (default: the spec's).

    Raises:
        ValueError: On an unknown name, bad tiles, or weights whose layout is
            not the named decoder's (e.g. an f=2 model where f8c4 is expected).
        FileNotFoundError: If its weights are not there (names the file).
    """
    from generators.models import resolve_device

    spec = _check_tiles(decoder_spec(name), tile_size, tile_overlap)
    dev = resolve_device(device)
    folder = Path(weights_dir) if weights_dir is not None else None
    if spec.kind == "taef2":
        from generators.taef2 import TAEF2_FILE, load_taef2

        path = folder / TAEF2_FILE.name if folder is not None else TAEF2_FILE
        model = load_taef2(path, device=dev)

        def taef2_roundtrip(generator: "torch.Generator | None") -> Callable[["torch.Tensor"], "torch.Tensor"]:
            # TAEF2 works on [0, 1] pixels; the tiler on [-1, 1]
            return lambda x: model((x + 1) / 2) * 2 - 1

        return LoadedDecoder(spec, _sha256(path), str(path), dev, next(model.parameters()).dtype, taef2_roundtrip)

    from generators.models import load_autoencoder

    try:
        ae = load_autoencoder(name, device=str(dev), weights_dir=folder)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"decoder {name!r}: {exc} (train it with `detect train-generator`, or pick another --decoder)") from None
    got = (ae.config.downsample_factor, ae.config.latent_channels)
    if got != (spec.downsample_factor, spec.latent_channels):
        raise ValueError(
            f"decoder {name!r}: {ae.source} holds an f={got[0]}, {got[1]}-channel autoencoder, "
            f"expected f={spec.downsample_factor} with {spec.latent_channels} channels"
        )
    vae = ae.vae

    def kl_roundtrip(generator: "torch.Generator | None") -> Callable[["torch.Tensor"], "torch.Tensor"]:
        def roundtrip(x: "torch.Tensor") -> "torch.Tensor":
            dist = vae.encode(x).latent_dist
            return vae.decode(dist.mode() if generator is None else dist.sample(generator=generator)).sample

        return roundtrip

    return LoadedDecoder(spec, ae.weights_sha256, ae.source, ae.device, ae.dtype, kl_roundtrip)


def reconstruct(
    image: np.ndarray,
    *,
    decoder: "str | LoadedDecoder" = "f8c4",
    generator: "torch.Generator | None" = None,
    device: str = "auto",
    weights_dir: str | os.PathLike[str] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> "ReconstructionOutput":
    """An aligned fake of one photo: its round trip through one zoo decoder, at native resolution.

    Args:
        image: ``(H, W, 3)`` float in ``[0, 1]``. Not modified.
        decoder: A name of :data:`DECODER_NAMES` (loaded for this call), or a
            decoder from :func:`load_decoder` (load once for many photos).
        generator: See :meth:`LoadedDecoder.reconstruct`.
        device: With a decoder name: where to load it.
        weights_dir: With a decoder name: see :func:`load_decoder`.
        on_tile: Called as ``on_tile(done, total)`` after each batch of tiles.

    Returns:
        ``ReconstructionOutput`` (``image``: ``float32`` ``(H, W, 3)`` in ``[0, 1]``).

    Raises:
        ValueError: On an unknown decoder or a bad image shape.
        FileNotFoundError: If the decoder's weights are missing.
    """
    dec = decoder if isinstance(decoder, LoadedDecoder) else load_decoder(decoder, device=device, weights_dir=weights_dir)
    return dec.reconstruct(image, generator=generator, on_tile=on_tile)
