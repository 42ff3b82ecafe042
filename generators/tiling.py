"""Overlapping tiles blended with windows, so memory stays bounded on large photos.

A function that maps a ``(B, C, h, w)`` tensor to ``(B, C', h*s, w*s)`` (``s``
a rational scale: ``1/f`` for the encoder, ``f`` for the decoder, 1 for a round
trip or the latent denoiser) is run on overlapping tiles; each tile's output is
weighted by a window that ramps linearly over the overlap on its interior sides
(and is flat at the image border), and the weighted sum is divided by the sum
of weights. This is the overlap-add used by MultiDiffusion (Bar-Tal et al.,
"MultiDiffusion: Fusing Diffusion Paths for Controlled Image Generation",
ICML 2023) for the denoiser, applied here to the autoencoder too. Tile edges,
where zero padding bends the convolutions, get the least weight, so no seams
show. Peak activation memory depends on the tile size, not on the photo.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["KL_TILES", "default_tiles", "tile_starts", "tiled_apply"]

#: Round-trip tile side and overlap in pixels of a KL autoencoder, by its downsampling factor
#: (the decoder zoo's specs use these; see :mod:`generators.zoo` for why the tiles are small).
KL_TILES: dict[int, tuple[int, int]] = {2: (64, 16), 8: (128, 32)}


def default_tiles(downsample_factor: int) -> tuple[int, int]:
    """Round-trip tile side and overlap in pixels for a KL autoencoder with this ``f``.

    f=2: 64/16, f=8: 128/32 (:data:`KL_TILES`); other factors get ``16 f`` / ``4 f``.
    """
    return KL_TILES.get(downsample_factor, (16 * downsample_factor, 4 * downsample_factor))


def tile_starts(length: int, tile: int, overlap: int, *, align: int = 1) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap`` overlap.

    Args:
        length: Extent to cover, > 0.
        tile: Tile side, a multiple of ``align``.
        overlap: Minimum overlap between neighbours, in ``[0, tile)``.
        align: Every start is a multiple of this (``length`` must be too).

    Returns:
        Increasing starts; the last tile ends exactly at ``length``. One start
        (0) when ``length <= tile``.

    Raises:
        ValueError: If ``overlap`` is outside ``[0, tile)`` or the sizes are not aligned.
    """
    if tile <= 0 or tile % align:
        raise ValueError(f"tile must be a positive multiple of {align}, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile}), got {overlap}")
    if length % align:
        raise ValueError(f"length must be a multiple of {align}, got {length}")
    if length <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, ramp: int, *, left: bool, right: bool) -> "torch.Tensor":
    import torch

    w = torch.ones(n)
    if ramp > 0:
        r = (torch.arange(min(ramp, n), dtype=torch.float32) + 0.5) / ramp
        if left:
            w[: len(r)] = torch.minimum(w[: len(r)], r)
        if right:
            w[n - len(r) :] = torch.minimum(w[n - len(r) :], r.flip(0))
    return w


def tiled_apply(
    fn: Callable[["torch.Tensor"], "torch.Tensor"],
    x: "torch.Tensor",
    *,
    tile: int,
    overlap: int,
    scale: Fraction | int = 1,
    align: int = 1,
    tile_batch: int = 16,
    on_tile: Callable[[int, int], None] | None = None,
) -> "torch.Tensor":
    """Apply ``fn`` on overlapping tiles of ``x`` and blend the outputs with windows.

    Args:
        fn: Maps ``(B, C, th, tw)`` to ``(B, C', th*scale, tw*scale)``.
        x: Input ``(B, C, H, W)``; ``H`` and ``W`` multiples of ``align``.
        tile: Tile side in input units (a multiple of ``align``).
        overlap: Minimum overlap between tiles in input units (``[0, tile)``).
        scale: Output size / input size, such that ``align * scale`` is an integer.
        align: Tile starts are multiples of this.
        tile_batch: Tiles passed to ``fn`` at once (stacked on the batch axis);
            peak memory grows with it.
        on_tile: Called as ``on_tile(done, total)`` after each batch of tiles.

    Returns:
        ``(B, C', H*scale, W*scale)`` in ``fn``'s dtype. Identical to ``fn(x)`` when
        ``x`` fits in one tile.
    """
    import torch

    s = Fraction(scale)
    _, _, h, w = x.shape
    ys = tile_starts(h, tile, overlap, align=align)
    xs = tile_starts(w, tile, overlap, align=align)
    total = len(ys) * len(xs)
    if total == 1:
        out = fn(x)
        if on_tile:
            on_tile(1, 1)
        return out
    if tile_batch < 1:
        raise ValueError(f"tile_batch must be >= 1, got {tile_batch}")
    if (align * s).denominator != 1:
        raise ValueError(f"align * scale must be an integer, got {align} * {s}")
    ramp = int(overlap * s)
    th, tw = min(tile, h), min(tile, w)
    boxes = [(yi, xi, y0, x0) for yi, y0 in enumerate(ys) for xi, x0 in enumerate(xs)]
    out = weight = None
    done = 0
    b = x.shape[0]
    for k in range(0, total, tile_batch):
        chunk = boxes[k : k + tile_batch]
        # equal-size tiles go through fn together: fewer, larger ops (GroupNorm is per sample)
        pieces = fn(torch.cat([x[:, :, y0 : y0 + th, x0 : x0 + tw] for _, _, y0, x0 in chunk], dim=0))
        for n, (yi, xi, y0, x0) in enumerate(chunk):
            piece = pieces[n * b : (n + 1) * b]
            if out is None:
                out = torch.zeros((b, piece.shape[1], int(h * s), int(w * s)), dtype=piece.dtype, device=piece.device)
                weight = torch.zeros((1, 1, int(h * s), int(w * s)), dtype=piece.dtype, device=piece.device)
            ph, pw = piece.shape[-2:]
            wy = _ramp(ph, ramp, left=yi > 0, right=yi < len(ys) - 1)
            wx = _ramp(pw, ramp, left=xi > 0, right=xi < len(xs) - 1)
            win = (wy[:, None] * wx[None, :]).to(piece.device, piece.dtype)
            oy, ox = int(y0 * s), int(x0 * s)
            out[:, :, oy : oy + ph, ox : ox + pw] += piece * win
            weight[:, :, oy : oy + ph, ox : ox + pw] += win
        done += len(chunk)
        if on_tile:
            on_tile(done, total)
    assert out is not None and weight is not None
    return out / weight
