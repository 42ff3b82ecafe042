"""Full-reference quality of a reconstruction: PSNR, SSIM and a sharpness ratio.

PSNR and SSIM (Wang et al., "Image Quality Assessment: From Error Visibility
to Structural Similarity", IEEE TIP 2004) come from :mod:`skimage.metrics`:
SSIM with an 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, population
covariances and a data range of 1, per channel and averaged (Wang et al.'s
settings). The sharpness ratio compares the high-frequency energy of the
reconstruction with the original's: about 1 for a faithful one, below 1 for a
blurry one (the failure the LDM first stage's perceptual and adversarial
losses prevent; Rombach et al., CVPR 2022), above 1 for added noise or
ringing.

Inputs are ``float32``/``float64`` ``(H, W, 3)`` arrays in ``[0, 1]`` of the same shape.
"""

from __future__ import annotations

import numpy as np

__all__ = ["high_frequency_energy", "psnr", "sharpness_ratio", "ssim"]

#: Luma weights (ITU-R BT.601) for the sharpness measure.
_LUMA = np.array([0.299, 0.587, 0.114])


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images must be (H, W, 3), got {a.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for a data range of 1 (``inf`` when equal)."""
    from skimage.metrics import peak_signal_noise_ratio

    _check(a, b)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=1.0))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity in ``[-1, 1]`` (1: identical)."""
    from skimage.metrics import structural_similarity

    _check(a, b)
    return float(
        structural_similarity(
            a.astype(np.float64),
            b.astype(np.float64),
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def high_frequency_energy(image: np.ndarray, *, cutoff: float = 0.25) -> float:
    """Mean spectral power of the luma above ``cutoff`` cycles per pixel (radially).

    Args:
        image: ``(H, W, 3)`` in ``[0, 1]``, at least 8 px on a side.
        cutoff: Radial frequency in ``(0, 0.5)`` (0.5 is Nyquist); 0.25 keeps
            the upper half of the band, where blur removes energy first.

    Returns:
        A non-negative float (power per pixel of the band).

    Raises:
        ValueError: On a bad shape or a cutoff outside ``(0, 0.5)``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 8:
        raise ValueError(f"image must be (H, W, 3) with sides >= 8, got {image.shape}")
    if not 0.0 < cutoff < 0.5:
        raise ValueError(f"cutoff must be in (0, 0.5), got {cutoff}")
    from scipy import fft

    y = image.astype(np.float64) @ _LUMA
    spec = np.abs(fft.rfft2(y - y.mean())) ** 2
    fy = fft.fftfreq(y.shape[0])[:, None]
    fx = fft.rfftfreq(y.shape[1])[None, :]
    band = np.hypot(fy, fx) > cutoff
    return float(spec[band].sum() / y.size)


def sharpness_ratio(reconstruction: np.ndarray, original: np.ndarray, *, cutoff: float = 0.25) -> float:
    """:func:`high_frequency_energy` of ``reconstruction`` over that of ``original``.

    Returns:
        A float >= 0 (``nan`` when the original has no high-frequency energy).
    """
    _check(reconstruction, original)
    ref = high_frequency_energy(original, cutoff=cutoff)
    return float("nan") if ref == 0 else high_frequency_energy(reconstruction, cutoff=cutoff) / ref
