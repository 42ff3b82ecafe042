"""Configuration of the zero-shot detector: the coder, the analysis, the calibrated map (no torch).

Shared by :mod:`detectors.zeroshot` (the detector) and :mod:`detectors.zed_model`
(the coder and its weights I/O), which both import it; it imports neither.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["CONFIG_FORMAT", "FEATURE_NAMES", "ZedConfig", "ZedScoreMap", "ZedWeightsError", "feature_names", "read_config"]

#: Format tag written into every config JSON.
CONFIG_FORMAT = "aidetect-zed/1"


class ZedWeightsError(RuntimeError):
    """The zero-shot coder's weights or config are missing, corrupt, or do not match."""


def feature_names(n_scales: int) -> tuple[str, ...]:
    """Names of the features for ``n_scales`` scales: ``d{s}_mean``, ``d{s}_std``, ``d{s}_frac`` per scale."""
    return tuple(f"d{s}_{k}" for s in range(n_scales) for k in ("mean", "std", "frac"))


#: The features of the default three scales.
FEATURE_NAMES: tuple[str, ...] = feature_names(3)


@dataclass(frozen=True)
class ZedScoreMap:
    """Standardised logistic map from features to P(AI): ``sigmoid(((x - mean) / std) @ coef + intercept)``.

    Attributes:
        feature_names: Names of the inputs, in order.
        mean: Feature means on the fitting set, one per feature.
        std: Feature standard deviations (> 0).
        coef: Weights on the standardised features.
        intercept: Bias.
    """

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        for name in ("feature_names", "mean", "std", "coef"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        d = len(self.feature_names)
        if not (len(self.mean) == len(self.std) == len(self.coef) == d):
            raise ValueError(f"score map needs one mean, std and coef per feature ({d}), got {len(self.mean)}, {len(self.std)}, {len(self.coef)}")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"score map std must be > 0, got {self.std}")

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Logit for features ``(D,)`` or ``(N, D)``; NaN features count as their mean."""
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        return np.nan_to_num(z, nan=0.0) @ np.asarray(self.coef) + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(AI) in ``[0, 1]`` for features ``(D,)`` or ``(N, D)``."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(x), -50.0, 50.0)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, names: Sequence[str], l2: float = 1.0, sample_weight: np.ndarray | None = None) -> ZedScoreMap:
        """Fit by L2-regularised Newton steps (:func:`detectors.logistic.fit_logistic_regression`).

        Args:
            x: ``(N, D)`` features (NaN entries are replaced by the column mean).
            y: ``(N,)`` labels in ``{0, 1}`` (1 = AI).
            names: The ``D`` feature names.
            l2: Ridge penalty on the standardised weights, >= 0 (the intercept is free).
            sample_weight: Optional ``(N,)`` non-negative weights (e.g. class balance).

        Raises:
            ValueError: On mismatched shapes, a negative ``l2``, or one class only.
        """
        from detectors.logistic import fit_logistic_regression

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[1] != len(names):
            raise ValueError(f"need x (N, {len(names)}) and y (N,), got {x.shape} and {y.shape}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        if len(np.unique(y)) != 2:
            raise ValueError("the score map needs both real (0) and AI (1) examples")
        mean = np.nanmean(x, axis=0)
        x = np.where(np.isnan(x), mean, x)
        std = x.std(axis=0)
        std[std < 1e-9] = 1.0
        z = np.hstack([(x - mean) / std, np.ones((x.shape[0], 1))])
        reg = np.full(z.shape[1], float(l2))
        reg[-1] = 0.0
        beta = fit_logistic_regression(z, y, reg=reg, sample_weight=sample_weight, jitter=1e-9, iterations=100, tol=1e-10)
        return cls(tuple(names), tuple(float(v) for v in mean), tuple(float(v) for v in std), tuple(float(v) for v in beta[:-1]), float(beta[-1]))


@dataclass(frozen=True)
class ZedConfig:
    """Everything needed to rebuild the coder and use it (stored as JSON).

    Attributes:
        channels: Width of each scale's convnet, >= 1.
        depth: Residual 3x3 convolutions per scale after the stem, >= 0.
        n_scales: Scales coded, each from the 2x-coarser one, in ``[1, 4]``.
        crop_size: Side of the full-resolution crops analysed, a multiple of
            ``2 ** n_scales``, >= ``4 * 2 ** n_scales``.
        n_crops: Most crops per image, >= 1.
        block: Side of the blocks delta is averaged over at full resolution
            (halved per scale, at least 2), a power of 2 that divides ``crop_size``.
        tau: Per scale, the block delta (bits/pixel) below which a block is
            "surprisingly predictable"; ``None`` until measured (then the
            ``frac`` features are NaN).
        score_map: The calibrated map, or ``None`` (then the score is a plain
            sigmoid of ``-d0_mean``: an uncalibrated zero-shot score).
        threshold: P(AI) at or above which the detector alone says ``likely_ai``, in ``[0, 1]``.
        version: Version string reported in every result, e.g. ``"zed-v1"``.
        weights_file: Name of the ``.safetensors`` file beside the JSON.
        weights_sha256: Hex sha256 of that file, or ``None`` (random init, tests).
        meta: Free-form training metadata (data, hardware, metrics).
    """

    channels: int = 32
    depth: int = 4
    n_scales: int = 3
    crop_size: int = 128
    n_crops: int = 8
    block: int = 16
    tau: tuple[float, ...] | None = None
    score_map: ZedScoreMap | None = None
    threshold: float = 0.5
    version: str = "zed-unversioned"
    weights_file: str | None = None
    weights_sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channels < 1 or self.depth < 0:
            raise ValueError(f"channels must be >= 1 and depth >= 0, got {self.channels} and {self.depth}")
        if not 1 <= self.n_scales <= 4:
            raise ValueError(f"n_scales must be in [1, 4], got {self.n_scales}")
        unit = 2**self.n_scales
        if self.crop_size % unit or self.crop_size < 4 * unit:
            raise ValueError(f"crop_size must be a multiple of {unit} and >= {4 * unit}, got {self.crop_size}")
        if self.n_crops < 1:
            raise ValueError(f"n_crops must be >= 1, got {self.n_crops}")
        if self.block < 2 or self.block & (self.block - 1) or self.crop_size % self.block:
            raise ValueError(f"block must be a power of 2 >= 2 dividing crop_size {self.crop_size}, got {self.block}")
        if self.tau is not None:
            object.__setattr__(self, "tau", tuple(float(t) for t in self.tau))
            if len(self.tau) != self.n_scales:
                raise ValueError(f"tau needs one value per scale ({self.n_scales}), got {len(self.tau)}")
        if isinstance(self.score_map, dict):
            object.__setattr__(self, "score_map", ZedScoreMap(**self.score_map))
        if self.score_map is not None and self.score_map.feature_names != feature_names(self.n_scales):
            raise ValueError(f"score map features {self.score_map.feature_names} are not {feature_names(self.n_scales)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (with a ``format`` tag)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["tau"] = None if self.tau is None else list(self.tau)
        d["score_map"] = None if self.score_map is None else self.score_map.to_dict()
        return {"format": CONFIG_FORMAT, **json.loads(json.dumps(d))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZedConfig:
        """Inverse of :meth:`to_dict`; unknown keys or another format raise ``ValueError``."""
        d = dict(d)
        fmt = d.pop("format", CONFIG_FORMAT)
        if fmt != CONFIG_FORMAT:
            raise ValueError(f"unsupported zero-shot config format {fmt!r} (expected {CONFIG_FORMAT!r})")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown zero-shot config keys: {sorted(unknown)}")
        if isinstance(d.get("score_map"), dict):
            d["score_map"] = ZedScoreMap(**d["score_map"])
        return cls(**d)

    def with_(self, **changes: Any) -> ZedConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    @property
    def unit(self) -> int:
        """Crop sides are multiples of this: ``max(2 ** n_scales, block)``."""
        return max(2**self.n_scales, self.block)

    def block_side(self, scale: int) -> int:
        """Block side at ``scale``: ``block / 2**scale``, at least 2."""
        return max(2, self.block >> scale)


def read_config(json_path: str | Path) -> ZedConfig:
    """Read a zero-shot config JSON.

    Raises:
        ZedWeightsError: If the file is missing or is not a valid config.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise ZedWeightsError(f"{json_path}: zero-shot config is missing; reinstall the package or train it with `detect train --config configs/zed_v1.json`")
    try:
        return ZedConfig.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ZedWeightsError(f"{json_path}: invalid zero-shot config: {exc}") from None
