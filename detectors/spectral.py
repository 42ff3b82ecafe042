"""Spectral detector: periodic residual peaks and spectral shape, scored by logistic regression.

Method: high-pass residuals (cross-difference and Laplacian) of full-resolution
tiles, their Welch-averaged power spectra, the contrast of the periodic peaks
at periods 2, 4, 8 and 16, and the radial profile of the spectrum. A small
logistic regression trained by ``scripts/train_spectral.py`` maps the
features to P(AI).

References:
    Q. Bammey, "Synthbuster: Towards Detection of Diffusion Model Generated
    Images", IEEE Open Journal of Signal Processing, 2023.
    R. Corvi, D. Cozzolino, G. Poggi, K. Nagano, L. Verdoliva, "Intriguing
    properties of synthetic images: from generative adversarial networks to
    diffusion models", CVPR Workshops 2023.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from detectors.base import DetectorResult, register_detector
from detectors.logistic import fit_logistic_regression
from forensics.io import LoadedImage
from forensics.peaks import periodic_peak_features
from forensics.residuals import cross_difference, laplacian, luminance
from forensics.spectrum import PowerSpectrum, log_power_spectrum, radial_profile, residual_power_spectrum

__all__ = [
    "FEATURE_NAMES",
    "LogisticModel",
    "MIN_SIDE",
    "SpectralAnalysis",
    "SpectralDetector",
    "SpectralFeatures",
    "extract_spectral_features",
    "fit_logistic",
    "spectral_visuals",
]

#: Smallest image side the detector analyses (one 64 px tile plus the filter border).
MIN_SIDE = 66
_PERIODS = (2, 4, 8, 16)
_N_RADIAL = 8

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"xd_p{p}_{k}" for p in _PERIODS for k in ("off", "max"))
    + tuple(f"lap_p{p}_{k}" for p in _PERIODS for k in ("axis", "off", "max"))
    + tuple(f"lap_radial_{i}" for i in range(_N_RADIAL))
    + ("lap_log_energy",)
)


@dataclass(frozen=True)
class SpectralFeatures:
    """Feature vector of one image.

    Attributes:
        values: ``float64`` array ``(len(FEATURE_NAMES),)``.
        tile: Tile side used, in pixels (256, 128 or 64).
        n_tiles: Number of tiles averaged over all regions.
        xd_spectrum: The cross-difference residual spectrum (for display).
    """

    values: np.ndarray
    tile: int
    n_tiles: int
    xd_spectrum: PowerSpectrum

    def as_dict(self) -> dict[str, float]:
        """Named features, rounded, for the record's evidence."""
        return {n: round(float(v), 4) for n, v in zip(FEATURE_NAMES, self.values)}


def _choose_tile(regions: tuple[np.ndarray, ...]) -> int:
    side = min(min(r.shape[0], r.shape[1]) for r in regions) - 2
    for t in (256, 128, 64):
        if side >= t:
            return t
    raise ValueError(f"image side {side + 2} px is below the minimum of {MIN_SIDE} px")


def _merge(spectra: list[PowerSpectrum]) -> PowerSpectrum:
    n = sum(s.n_tiles for s in spectra)
    power = sum(s.power * s.n_tiles for s in spectra) / n
    return PowerSpectrum(power=power, tile=spectra[0].tile, n_tiles=n)


def extract_spectral_features(regions: tuple[np.ndarray, ...], *, max_tiles: int = 32) -> SpectralFeatures:
    """Compute the spectral feature vector.

    Tiles overlap by half (Welch 1967), so a 512 px image gives 4 tiles of 256 rather than 1.

    Args:
        regions: One or more full-resolution RGB regions, ``float32``
            ``(H, W, 3)`` in ``[0, 1]``, each at least ``MIN_SIDE`` on both sides.
        max_tiles: Total tile budget, shared evenly between regions, >= 1.

    Returns:
        A :class:`SpectralFeatures`.

    Raises:
        ValueError: If a region is too small or ``max_tiles`` < 1.
    """
    if max_tiles < 1:
        raise ValueError(f"max_tiles must be >= 1, got {max_tiles}")
    if not regions:
        raise ValueError("regions must not be empty")
    tile = _choose_tile(regions)
    per_region = max(1, max_tiles // len(regions))
    xd, lap = [], []
    for region in regions:
        xd.append(residual_power_spectrum(region, cross_difference, border=1, tile=tile, max_tiles=per_region, overlap=0.5))
        lap.append(residual_power_spectrum(region, laplacian, border=2, tile=tile, max_tiles=per_region, overlap=0.5))
    xd_s, lap_s = _merge(xd), _merge(lap)
    fx = periodic_peak_features(xd_s, periods=_PERIODS)
    fl = periodic_peak_features(lap_s, periods=_PERIODS)
    prof = radial_profile(lap_s, n_bins=_N_RADIAL)
    energy = float(np.log10(lap_s.power.mean() + 1e-12))
    vals = []
    for i in range(len(_PERIODS)):
        vals += [fx.off_axis_mean[i], fx.max[i]]
    for i in range(len(_PERIODS)):
        vals += [fl.axis_mean[i], fl.off_axis_mean[i], fl.max[i]]
    vals += list(prof - energy)  # spectral shape, independent of overall level
    vals.append(energy)
    return SpectralFeatures(values=np.asarray(vals, dtype=np.float64), tile=tile, n_tiles=xd_s.n_tiles, xd_spectrum=xd_s)


def spectral_visuals(region: np.ndarray, spectrum: PowerSpectrum, *, size: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Display images: a residual crop and the centred log spectrum.

    Args:
        region: ``float32`` ``(H, W, 3)`` in ``[0, 1]``.
        spectrum: The spectrum to show.
        size: Side of the residual crop, >= 16.

    Returns:
        ``(residual, spectrum)``, both ``uint8`` 2-D arrays: the Laplacian residual
        of the centre crop of the luminance (contrast stretched at the 1st/99th
        percentiles) and the log power spectrum scaled to ``[0, 255]``.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    h, w = region.shape[:2]
    s = min(size + 2, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    res = laplacian(luminance(region[y0 : y0 + s, x0 : x0 + s]))
    lo, hi = np.percentile(res, [1, 99])
    res_u8 = (np.clip((res - lo) / max(hi - lo, 1e-6), 0, 1) * 255 + 0.5).astype(np.uint8)
    logp = log_power_spectrum(spectrum)
    lo, hi = np.percentile(logp, [1, 99.8])
    spec_u8 = (np.clip((logp - lo) / max(hi - lo, 1e-6), 0, 1) * 255 + 0.5).astype(np.uint8)
    return res_u8, spec_u8


@dataclass(frozen=True)
class LogisticModel:
    """Standardised logistic regression: ``P = sigmoid(((x - mean) / std) @ coef + intercept)``.

    Attributes:
        feature_names: Names of the inputs, in order.
        mean: ``float64`` ``(D,)`` feature means from the training set.
        std: ``float64`` ``(D,)`` feature standard deviations (> 0).
        coef: ``float64`` ``(D,)`` weights.
        intercept: Bias.
        meta: Free-form training metadata (data, command, metrics).
    """

    feature_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    meta: dict[str, Any]

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Logit for ``x`` of shape ``(D,)`` or ``(N, D)``."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return z @ self.coef + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(AI) in ``[0, 1]`` for ``x`` of shape ``(D,)`` or ``(N, D)``."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.decision(x), -50, 50)))

    def to_json(self) -> str:
        """Serialise to JSON (plain numbers only: no pickles)."""
        return json.dumps(
            {
                "feature_names": list(self.feature_names),
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "coef": self.coef.tolist(),
                "intercept": float(self.intercept),
                "meta": self.meta,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "LogisticModel":
        """Load from :meth:`to_json` output, checking feature names and shapes."""
        d = json.loads(text)
        names = tuple(d["feature_names"])
        arrs = [np.asarray(d[k], dtype=np.float64) for k in ("mean", "std", "coef")]
        if any(a.shape != (len(names),) for a in arrs):
            raise ValueError("model arrays do not match the number of feature names")
        if np.any(arrs[1] <= 0):
            raise ValueError("model std must be > 0")
        return cls(names, arrs[0], arrs[1], arrs[2], float(d["intercept"]), dict(d.get("meta", {})))


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1.0,
    iterations: int = 50,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    sample_weight: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> LogisticModel:
    """Fit an L2-regularised logistic regression on standardised features (:mod:`detectors.logistic`).

    Args:
        x: ``(N, D)`` features.
        y: ``(N,)`` labels in {0, 1} (1 = AI).
        l2: Ridge penalty on the standardised weights, >= 0.
        iterations: Newton steps, >= 1.
        feature_names: Names for the ``D`` columns.
        sample_weight: Optional ``(N,)`` non-negative weights (e.g. class balance).
        meta: Metadata stored with the model.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (N, D) and y (N,), got {x.shape} and {y.shape}")
    if l2 < 0 or iterations < 1:
        raise ValueError(f"need l2 >= 0 and iterations >= 1, got {l2}, {iterations}")
    if not set(np.unique(y)) <= {0.0, 1.0}:
        raise ValueError("y must contain only 0 and 1")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = np.hstack([(x - mean) / std, np.ones((x.shape[0], 1))])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    beta = fit_logistic_regression(z, y, reg=reg, sample_weight=sample_weight, jitter=1e-9, iterations=iterations, tol=1e-8)
    return LogisticModel(tuple(feature_names), mean, std, beta[:-1].copy(), float(beta[-1]), dict(meta or {}))


def load_shipped_model(name: str = "spectral_v2.json") -> LogisticModel:
    """Load the spectral model shipped in ``detectors/weights/``."""
    text = resources.files("detectors").joinpath("weights", name).read_text(encoding="utf-8")
    return LogisticModel.from_json(text)


@dataclass(frozen=True)
class SpectralAnalysis:
    """A detector result together with the features behind it (``None`` when not applicable)."""

    result: DetectorResult
    features: SpectralFeatures | None


class SpectralDetector:
    """Scores P(AI) from residual spectra.

    Args:
        model: The trained model; defaults to the shipped one.
        threshold: Score at or above which this detector alone says ``likely_ai``;
            defaults to the model's calibrated threshold.
        max_tiles: Tile budget per image, >= 1.
    """

    name = "spectral"

    def __init__(
        self,
        *,
        model: LogisticModel | None = None,
        threshold: float | None = None,
        max_tiles: int = 32,
    ) -> None:
        if max_tiles < 1:
            raise ValueError(f"max_tiles must be >= 1, got {max_tiles}")
        self.model = model if model is not None else load_shipped_model()
        if tuple(self.model.feature_names) != FEATURE_NAMES:
            raise ValueError("model feature names do not match this detector's features")
        self.version = str(self.model.meta.get("version", "spectral-unversioned"))
        self.threshold = threshold if threshold is not None else self.model.meta.get("threshold_likely_ai")
        self.max_tiles = max_tiles

    def features(self, image: LoadedImage) -> SpectralFeatures:
        """Feature vector of a loaded image (see :func:`extract_spectral_features`)."""
        return extract_spectral_features(image.regions, max_tiles=self.max_tiles)

    def analyze(self, image: LoadedImage) -> DetectorResult:
        """Score one image; images below ``MIN_SIDE`` are not applicable."""
        return self.analyze_with_features(image).result

    def analyze_with_features(self, image: LoadedImage) -> "SpectralAnalysis":
        """Like :meth:`analyze`, also returning the features (for display)."""
        t0 = time.perf_counter()
        if min(image.width, image.height) < MIN_SIDE:
            return SpectralAnalysis(
                DetectorResult(
                    name=self.name,
                    version=self.version,
                    status="not_applicable",
                    threshold=self.threshold,
                    message=f"image is {image.width}x{image.height}; "
                    f"the spectral detector needs at least {MIN_SIDE}x{MIN_SIDE}",
                    time_s=time.perf_counter() - t0,
                ),
                None,
            )
        feats = self.features(image)
        score = float(self.model.predict_proba(feats.values))
        evidence: dict[str, Any] = {"tile": feats.tile, "n_tiles": feats.n_tiles, "features": feats.as_dict()}
        peak8 = max(evidence["features"]["xd_p8_max"], evidence["features"]["lap_p8_max"])
        expl = [
            f"Residual spectrum over {feats.n_tiles} full-resolution {feats.tile}px tiles; "
            f"strongest period-8 peak is {10 ** peak8:.1f}x its neighbourhood."
        ]
        result = DetectorResult(
            name=self.name,
            version=self.version,
            status="ok",
            score=min(max(score, 0.0), 1.0),
            threshold=self.threshold,
            evidence=evidence,
            explanations=tuple(expl),
            time_s=time.perf_counter() - t0,
        )
        return SpectralAnalysis(result, feats)


@register_detector("spectral", kind="pixel")
def _spectral(**kwargs: Any) -> SpectralDetector:
    return SpectralDetector(**kwargs)


@register_detector("test_spectral", kind="pixel")
def _test_spectral(**kwargs: Any) -> SpectralDetector:
    """Tiny variant for fast tests: the shipped model with a 2-tile budget."""
    kwargs.setdefault("max_tiles", 2)
    return SpectralDetector(**kwargs)
