"""The torch side of the zero-shot detector: a multi-resolution lossless coder of real photos.

Imported lazily by :mod:`detectors.zeroshot` (inside the detector's factory and
methods) so that ``import detectors`` never imports torch.

The coder (after SReC, Cao et al., "Lossless Image Compression through
Super-Resolution", 2020, which ZED builds on) models an 8-bit image scale by
scale: the image at scale ``s`` (``s = 0`` is the full resolution) is coded
given the 2x-coarser image at scale ``s + 1`` (rounded 2x2 means of the RGB
values). One small convnet per scale reads the coarse image, in lossless
YCoCg-R (:func:`detectors.zeroshot.ycocg_r`), and gives, for each of the four
fine pixels under every coarse pixel, a discretized logistic distribution of
its luma and its two chroma values (PixelCNN++, Salimans et al., ICLR 2017):

* the mean is the coarse value plus a learned offset; chroma means also follow
  the pixel's own luma residual (and Cg its Co residual), since a coder codes
  Y, then Co, then Cg;
* the values are integers, so each distribution puts the mass of one unit bin
  on each level and its tails on the two end levels (0 and 255 for luma, -255
  and 255 for chroma).

Two numbers come out per value: the **actual coding cost** ``-log2 p(x)`` and
the **cost the model expects**, the entropy of its own distribution there.
:func:`discretized_logistic_entropy` reads the entropy from a table of full
bin sums away from the ends of the range and corrects for the end bins in
closed form (or sums the 25 unit bins around the mean exactly where that is
not accurate), so no 256-bin sum is needed per value.

Weights are ``.safetensors`` beside the detector's JSON config, which records
their sha256; :func:`load_zed` checks both and raises :class:`ZedWeightsError`
with a plain message. No pickles are read or written.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors.zed_config import ZedConfig, ZedWeightsError, read_config

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "PARAMS_PER_PIXEL",
    "ZedWeightsError",
    "build_model",
    "costs",
    "discretized_logistic_entropy",
    "discretized_logistic_logp",
    "load_zed",
    "pyramid_tensors",
    "save_zed",
]

#: Per fine pixel: 3 mean offsets, 3 log-scales, 3 channel-coupling coefficients.
PARAMS_PER_PIXEL = 9
#: Number of levels of the luma (0..255) and of each chroma value (-255..255, shifted by 255).
LUMA_LEVELS, CHROMA_LEVELS = 256, 511
#: Half-width of the exact window of :func:`discretized_logistic_entropy`, in unit bins.
ENTROPY_WINDOW = 12
_LOG_S_MIN = -4.5  # smallest log-scale (s = 0.011 levels): a near-certain value


def discretized_logistic_logp(x: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor, levels: int) -> torch.Tensor:
    """Log-probability of integer values under a discretized logistic with end bins absorbing the tails.

    Args:
        x: Values, float tensor of integers in ``[0, levels - 1]``.
        mu: Means, same shape, any real.
        log_s: Natural log of the scale, same shape.
        levels: Number of levels, >= 2.

    Returns:
        ``log p(x)`` in nats, same shape, <= 0. Differentiable in ``mu`` and ``log_s``.
    """
    import torch
    import torch.nn.functional as F

    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    centered = x - mu
    inv = torch.exp(-log_s)
    plus, minus = inv * (centered + 0.5), inv * (centered - 0.5)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest level
    log_sf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)): the highest level
    # sigmoid(plus) - sigmoid(minus), computed on the side of the curve where it does not cancel
    delta = torch.where(minus > 0, torch.sigmoid(-minus) - torch.sigmoid(-plus), torch.sigmoid(plus) - torch.sigmoid(minus))
    mid = inv * centered
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid)  # a unit bin's mass ~ the density at its centre
    interior = torch.where(delta > 1e-5, torch.log(delta.clamp_min(1e-12)), log_pdf_mid)
    return torch.where(x <= 0, log_cdf_plus, torch.where(x >= levels - 1, log_sf_minus, interior))


def _g(z: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    """Antiderivative of ``-f ln f`` for the logistic density f, in ``z = (x - mu) / s``.

    With ``u = sigmoid(z)`` (so ``f dx = du``): ``-u ln u + (1-u) ln(1-u) + u (2 + ln s)``;
    from ``z = -inf`` to ``+inf`` it gives ``2 + ln s``, the logistic's differential entropy.
    """
    import torch
    import torch.nn.functional as F

    u, v = torch.sigmoid(z), torch.sigmoid(-z)
    return -u * F.logsigmoid(z) + v * F.logsigmoid(-z) + u * (2.0 + log_s)


def _entropy_windowed(mu: torch.Tensor, log_s: torch.Tensor, levels: int, window: int) -> torch.Tensor:
    """The exact-window entropy (see :func:`discretized_logistic_entropy`), for any mean and scale."""
    import torch

    inv = torch.exp(-log_s)
    c = torch.round(mu.detach()).clamp(0, levels - 1)
    k = torch.arange(-window, window + 1, dtype=mu.dtype, device=mu.device).view(-1, *([1] * mu.ndim))
    j = c.unsqueeze(0) + k
    inf = torch.tensor(float("inf"), dtype=mu.dtype, device=mu.device)
    z_hi = torch.where(j >= levels - 1, inf, (j + 0.5 - mu) * inv)
    z_lo = torch.where(j <= 0, -inf, (j - 0.5 - mu) * inv)
    p = torch.where(z_lo > 0, torch.sigmoid(-z_lo) - torch.sigmoid(-z_hi), torch.sigmoid(z_hi) - torch.sigmoid(z_lo))
    p = torch.where((j >= 0) & (j <= levels - 1), p.clamp_min(0.0), torch.zeros_like(p))
    h = -torch.special.xlogy(p, p).sum(0)
    # left of the window: the end bin 0, then the unit bins 1..jl in closed form
    jl = c - window - 1
    z0 = (0.5 - mu) * inv
    p0 = torch.sigmoid(z0)
    h = h + torch.where(jl >= 0, -torch.special.xlogy(p0, p0), torch.zeros_like(h))
    h = h + torch.where(jl >= 1, _g((jl + 0.5 - mu) * inv, log_s) - _g(z0, log_s), torch.zeros_like(h))
    # right of the window: the unit bins jr..levels-2 in closed form, then the end bin
    jr = c + window + 1
    z_top = (levels - 1.5 - mu) * inv
    p_top = torch.sigmoid(-z_top)
    h = h + torch.where(jr <= levels - 1, -torch.special.xlogy(p_top, p_top), torch.zeros_like(h))
    h = h + torch.where(jr <= levels - 2, _g(z_top, log_s) - _g((jr - 0.5 - mu) * inv, log_s), torch.zeros_like(h))
    return h.clamp_min(0.0)


#: Grid of the unclipped-entropy table: log-scale from _LOG_S_MIN to _TABLE_LOG_S_MAX, fractional mean 0..1.
_TABLE_LOG_S_MAX, _TABLE_N_LOG_S, _TABLE_N_PHI = 4.2, 280, 257


@functools.lru_cache(maxsize=1)
def _unclipped_entropy_table() -> np.ndarray:
    """Entropy (nats) of the discretized logistic without end bins, ``float32`` ``(n_log_s, n_phi)``.

    Entry ``[i, j]`` is for ``log s = _LOG_S_MIN + i * step`` and a mean ``j / (n_phi - 1)``
    past an integer, summed over every bin holding mass (float64). Read-only; built once per process.
    """
    out = np.zeros((_TABLE_N_LOG_S, _TABLE_N_PHI))
    phi = np.linspace(0.0, 1.0, _TABLE_N_PHI)[None]
    for i, ls in enumerate(np.linspace(_LOG_S_MIN, _TABLE_LOG_S_MAX, _TABLE_N_LOG_S)):
        s = math.exp(ls)
        k = np.arange(-int(math.ceil(30 * s)) - 3, int(math.ceil(30 * s)) + 4)[:, None]
        cdf = lambda x, s=s: 0.5 * (1.0 + np.tanh(x / (2.0 * s)))  # noqa: E731 - the logistic CDF
        p = cdf(k + 0.5 - phi) - cdf(k - 0.5 - phi)
        out[i] = -(p * np.log(np.where(p > 0, p, 1.0))).sum(0)
    table = out.astype(np.float32)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=1)
def _table_tensor() -> torch.Tensor:
    """:func:`_unclipped_entropy_table` as a flat torch tensor (a private copy)."""
    import torch

    return torch.tensor(_unclipped_entropy_table()).view(-1)


def discretized_logistic_entropy(mu: torch.Tensor, log_s: torch.Tensor, levels: int, *, window: int = ENTROPY_WINDOW) -> torch.Tensor:
    """Entropy of the discretized logistic of :func:`discretized_logistic_logp`, per value.

    Away from the ends of the range, the entropy depends only on the scale and
    on where the mean falls between two integers: it is read from a table of
    the full bin sums (bilinear in log-scale and fractional mean; beyond
    ``s = e^4.2`` the differential entropy ``ln s + 2``, which the bin sum
    equals there to 1e-5). The end bins' share is corrected in closed form:
    the unit bins beyond an end are replaced by their end bin, whose
    difference is ``-f ln f`` integrated (:func:`_g`) against ``-p ln p``.
    Where that is not accurate (scale below 0.25 levels, or below 4 within 16
    levels of an end, or a mean outside the range) the entropy is computed
    exactly over the ``2 * window + 1`` unit bins around the mean (9 bins
    for scales below 0.5), with the same closed form beyond them. Measured against the full sum over all bins:
    below 5e-4 nats for scales 0.011..400 levels and means anywhere
    (``tests/detectors/test_zeroshot.py``).

    Args:
        mu: Means, float tensor, any shape.
        log_s: Natural log of the scales, same shape, >= the coder's minimum (-4.5).
        levels: Number of levels, >= 2.
        window: Half-width of the exact window in bins, >= 1.

    Returns:
        Entropy in nats, ``float32``, same shape, >= 0.
    """
    import torch

    if levels < 2 or window < 1:
        raise ValueError(f"need levels >= 2 and window >= 1, got {levels} and {window}")
    mu, log_s = mu.float(), log_s.float()
    table = _table_tensor().to(mu.device)
    step = (_TABLE_LOG_S_MAX - _LOG_S_MIN) / (_TABLE_N_LOG_S - 1)
    fi = (log_s.clamp(_LOG_S_MIN, _TABLE_LOG_S_MAX) - _LOG_S_MIN) / step
    i0 = fi.floor().clamp(0, _TABLE_N_LOG_S - 2)
    wi = fi - i0
    fj = (mu - mu.floor()) * (_TABLE_N_PHI - 1)
    j0 = fj.floor().clamp(0, _TABLE_N_PHI - 2)
    wj = fj - j0
    idx = (i0 * _TABLE_N_PHI + j0).long()
    lo = table[idx] * (1 - wj) + table[idx + 1] * wj
    hi = table[idx + _TABLE_N_PHI] * (1 - wj) + table[idx + _TABLE_N_PHI + 1] * wj
    h = torch.where(log_s > _TABLE_LOG_S_MAX, log_s + 2.0, lo * (1 - wi) + hi * wi)
    s = torch.exp(log_s)
    d = torch.minimum(mu + 0.5, levels - 0.5 - mu)  # distance of the mean to the nearer end of the range
    exact = (s < 0.25) | ((d < 16) & (s < 4)) | (d < 0)
    edge = (d < 30 * s) & ~exact
    if edge.any():
        m, ls = mu[edge], log_s[edge]
        inv = torch.exp(-ls)
        z0, z_top = (0.5 - m) * inv, (levels - 1.5 - m) * inv
        p0, p_top = torch.sigmoid(z0), torch.sigmoid(-z_top)
        h[edge] = h[edge] - _g(z0, ls) - _g(-z_top, ls) - torch.special.xlogy(p0, p0) - torch.special.xlogy(p_top, p_top)
    narrow = exact & (s < 0.5)  # nearly all the mass within 4 bins: a narrower exact window is as accurate
    wide = exact & ~narrow
    if narrow.any():
        h[narrow] = _entropy_windowed(mu[narrow], log_s[narrow], levels, min(window, 4))
    if wide.any():
        h[wide] = _entropy_windowed(mu[wide], log_s[wide], levels, window)
    return h.clamp_min(0.0)


def build_model(config: ZedConfig, *, seed: int | None = 0) -> torch.nn.Module:
    """Build the coder (one small convnet per scale), random init, deterministic for a seed.

    The global torch RNG used by the initialisers is forked and restored, so
    building never changes the caller's RNG.

    Args:
        config: Network fields ``channels``, ``depth`` and ``n_scales`` are read.
        seed: Seed of the initial weights; ``None`` keeps torch's default draw.

    Returns:
        A :class:`ZedCoder` (``torch.nn.Module``).
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ScaleNet(nn.Module):
        """Coarse YCoCg image ``(B, 3, h, w)`` -> distribution parameters ``(B, 9, 2h, 2w)``."""

        def __init__(self, channels: int, depth: int) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, channels, 3, padding=1, padding_mode="replicate")
            self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth))
            self.head = nn.Conv2d(channels, 4 * PARAMS_PER_PIXEL, 1)
            with torch.no_grad():
                self.head.weight.mul_(0.1)
                self.head.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            for conv in self.blocks:
                h = h + conv(F.relu(h))
            return F.pixel_shuffle(self.head(F.relu(h)), 2)

    class ZedCoder(nn.Module):
        """Per-scale conditional distributions of the fine YCoCg values given the coarse image."""

        def __init__(self) -> None:
            super().__init__()
            self.nets = nn.ModuleList(ScaleNet(config.channels, config.depth) for _ in range(config.n_scales))

        def distributions(self, scale: int, coarse: torch.Tensor, fine: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
            """``(mean, log_scale, levels)`` of Y, Co + 255 and Cg + 255 at every fine pixel.

            Args:
                scale: Which net, in ``[0, n_scales)``.
                coarse: ``float32`` ``(B, 3, h, w)`` YCoCg-R levels of the coarse image
                    (Y in ``[0, 255]``, Co and Cg in ``[-255, 255]``).
                fine: ``float32`` ``(B, 3, 2h, 2w)``, the fine image the same way (its
                    luma and Co feed the chroma means, as in a Y-Co-Cg coding order).
            """
            if not 0 <= scale < len(self.nets):
                raise ValueError(f"scale must be in [0, {len(self.nets)}), got {scale}")
            x = torch.cat([(coarse[:, :1] - 128.0) / 64.0, coarse[:, 1:] / 64.0], dim=1)
            raw = self.nets[scale](x)
            base = F.interpolate(coarse, scale_factor=2, mode="nearest")
            mu = base + 8.0 * raw[:, 0:3]
            log_s = _LOG_S_MIN + F.softplus(raw[:, 3:6] + 5.5)
            a, b, c = (2.0 * torch.tanh(raw[:, i : i + 1]) for i in (6, 7, 8))
            mu_y = mu[:, 0:1]
            mu_co = mu[:, 1:2] + a * (fine[:, 0:1] - mu_y)
            mu_cg = mu[:, 2:3] + b * (fine[:, 0:1] - mu_y) + c * (fine[:, 1:2] - mu_co)
            return [
                (mu_y, log_s[:, 0:1], LUMA_LEVELS),
                (mu_co + 255.0, log_s[:, 1:2], CHROMA_LEVELS),
                (mu_cg + 255.0, log_s[:, 2:3], CHROMA_LEVELS),
            ]

        def log_probs(self, scale: int, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
            """``log p`` (nats) of each fine value, ``(B, 3, 2h, 2w)``; differentiable (the training loss)."""
            targets = (fine[:, 0:1], fine[:, 1:2] + 255.0, fine[:, 2:3] + 255.0)
            return torch.cat(
                [discretized_logistic_logp(t, m, ls, n) for t, (m, ls, n) in zip(targets, self.distributions(scale, coarse, fine))], dim=1
            )

        def costs(self, scale: int, coarse: torch.Tensor, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Actual and expected coding cost in nats, each ``(B, 3, 2h, 2w)`` (no gradient)."""
            with torch.no_grad():
                dists = self.distributions(scale, coarse, fine)
                targets = (fine[:, 0:1], fine[:, 1:2] + 255.0, fine[:, 2:3] + 255.0)
                nll = torch.cat([-discretized_logistic_logp(t, m, ls, n) for t, (m, ls, n) in zip(targets, dists)], dim=1)
                ent = torch.cat([discretized_logistic_entropy(m, ls, n) for m, ls, n in dists], dim=1)
            return nll, ent

    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        return ZedCoder()


def pyramid_tensors(levels: list[Any], *, device: Any = "cpu") -> list[torch.Tensor]:
    """Torch ``float32`` ``(B, 3, H, W)`` tensors of a YCoCg pyramid from :func:`detectors.zeroshot.ycocg_pyramid`."""
    import torch

    return [torch.from_numpy(lv).permute(0, 3, 1, 2).float().contiguous().to(device) for lv in levels]


def costs(model: torch.nn.Module, levels: list[Any]) -> list[tuple[Any, Any]]:
    """Actual and expected coding cost per fine pixel (bits, the 3 values summed), at every scale.

    Args:
        model: A coder from :func:`build_model`.
        levels: The YCoCg pyramid ``[x_0, ..., x_n]`` of a batch of crops
            (``int16`` ``(B, S / 2^s, S / 2^s, 3)``), ``n >= model's n_scales``.

    Returns:
        For each scale ``s < n_scales``: ``(nll, expected)``, ``float32``
        ``(B, S / 2^s, S / 2^s)`` numpy arrays, >= 0, in bits per pixel.
    """
    t = pyramid_tensors(levels)
    out = []
    for s in range(len(model.nets)):  # type: ignore[attr-defined]
        nll, ent = model.costs(s, t[s + 1], t[s])  # type: ignore[attr-defined]
        out.append(((nll.sum(1) / math.log(2)).numpy(), (ent.sum(1) / math.log(2)).numpy()))
    return out


def save_zed(model: torch.nn.Module, config: ZedConfig, json_path: str | Path) -> ZedConfig:
    """Write ``model`` as ``.safetensors`` beside ``json_path`` and the config (with the sha256) as JSON.

    Args:
        model: A coder from :func:`build_model` for ``config``.
        config: Its config; ``weights_file`` defaults to the JSON's stem + ``.safetensors``.
        json_path: Where to write the config JSON.

    Returns:
        The config as written (weights file name and sha256 filled in).
    """
    from detectors.weights_io import write_weights

    return write_weights(model, config, json_path, fmt="aidetect-zed/1")


def load_zed(json_path: str | Path, *, device: str = "cpu") -> tuple[torch.nn.Module, ZedConfig]:
    """Load the coder from its config JSON and the ``.safetensors`` file it names (sha256 checked).

    Args:
        json_path: The config, e.g. ``detectors/weights/zed_v1.json``.
        device: ``cpu`` or ``cuda`` (:func:`generators.training_utils.resolve_device`).

    Returns:
        ``(model, config)``, the model in eval mode.

    Raises:
        ZedWeightsError: If the config or weights file is missing, the hash
            differs (corrupt or replaced file), or the tensors do not fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from detectors.weights_io import file_sha256
    from generators.training_utils import resolve_device

    json_path = Path(json_path)
    config = read_config(json_path)
    if not config.weights_file or not config.weights_sha256:
        raise ZedWeightsError(f"{json_path}: the config names no weights file and sha256")
    wpath = json_path.parent / config.weights_file
    if not wpath.is_file():
        raise ZedWeightsError(f"{wpath}: zero-shot coder weights are missing; reinstall the package or train them with `detect train --config configs/zed_v1.json`")
    digest = file_sha256(wpath)
    if digest != config.weights_sha256:
        raise ZedWeightsError(f"{wpath}: zero-shot coder weights are corrupt or were replaced: sha256 is {digest}, but {json_path.name} expects {config.weights_sha256}")
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:  # pragma: no cover - the hash check catches this first
        raise ZedWeightsError(f"{wpath}: cannot read the weights: {exc}") from None
    model = build_model(config, seed=None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ZedWeightsError(f"{wpath}: weights do not fit the coder the config describes: {str(exc)[:300]}") from None
    return model.to(resolve_device(device)).eval(), config
