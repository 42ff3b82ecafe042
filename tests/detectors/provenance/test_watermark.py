"""Tests for the Stable Diffusion invisible-watermark bit counter.

Each known message is embedded with invisible-watermark's own dwtDct encoder
into a synthetic, photo-like textured image, saved losslessly (PNG) and as
JPEG at quality 95 and 90, and read back through the detector.

What survives (documented by these tests, consistent with the measurement on
the shared SD 1.x images in docs/provenance.md): every message reads back
complete (in the "strong" band) from PNG, in the channel order it was
embedded with; JPEG at quality 95 and 90 brings the counts back to chance
level on this texture, so the band is "none".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectors import create_detector
from detectors.provenance.watermark import (
    BANDS,
    WATERMARK_MESSAGES,
    WatermarkDetector,
    block_scores,
    count_watermark_bits,
    decode_bits,
    load_imwatermark_maxdct,
)
from forensics.io import load_image

MAXDCT = load_imwatermark_maxdct()
needs_imwatermark = pytest.mark.skipif(MAXDCT is None, reason="invisible-watermark (imwatermark) not installed")


def textured(size: int = 512, seed: int = 0) -> np.ndarray:
    """Photo-like RGB uint8 image: 1/f texture, a gradient, an edge and sensor-like noise."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    out = np.empty((size, size, 3))
    base = None
    for c in range(3):
        spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / f
        n = np.real(np.fft.ifft2(spec))
        n = (n - n.mean()) / n.std()
        base = n if base is None else 0.7 * base + 0.3 * n
        out[:, :, c] = base
    _, xx = np.mgrid[0:size, 0:size] / size
    img = 0.5 + 0.12 * out + 0.2 * (xx - 0.5)[..., None] * np.array([1.0, 0.6, 0.2])
    img[int(size * 0.6) :] *= 0.7
    img += rng.normal(scale=0.01, size=img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def embed(rgb: np.ndarray, message: str, order: str) -> np.ndarray:
    """Embed with invisible-watermark's dwtDct encoder, as SD does (BGR) or as diffusers does (RGB)."""
    bits = WATERMARK_MESSAGES[message]
    enc = MAXDCT.EmbedMaxDct(list(bits.astype(int)), wmLen=int(bits.size))
    inp = np.ascontiguousarray(rgb[:, :, ::-1]) if order == "BGR" else rgb.copy()
    out = np.clip(enc.encode(inp), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out[:, :, ::-1]) if order == "BGR" else out


def save(rgb: np.ndarray, path: Path, fmt: str, quality: int | None = None) -> Path:
    kw = {"quality": quality} if quality else {}
    Image.fromarray(rgb).save(path, fmt, **kw)
    return path


def test_messages_have_the_published_lengths():
    assert WATERMARK_MESSAGES["StableDiffusionV1"].size == 136
    assert WATERMARK_MESSAGES["SDV2"].size == 32
    assert WATERMARK_MESSAGES["SDXL"].size == 48
    assert "".join("1" if b else "0" for b in WATERMARK_MESSAGES["SDXL"]) == (
        "101100111110110010010000011110111011000110011110"
    )
    assert np.packbits(WATERMARK_MESSAGES["StableDiffusionV1"]).tobytes() == b"StableDiffusionV1"


@needs_imwatermark
def test_vectorised_decoder_is_bit_exact_with_the_library():
    rgb = textured(512, seed=3)
    marked = embed(rgb, "StableDiffusionV1", "BGR")
    for img in (rgb, marked):
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        for length in (136, 32, 48):
            ref = MAXDCT.EmbedMaxDct(watermarks=[], wmLen=length).decode(bgr)
            assert np.array_equal(np.asarray(ref, dtype=bool), decode_bits(block_scores(bgr), length))


@needs_imwatermark
@pytest.mark.parametrize(
    ("message", "order"),
    [("StableDiffusionV1", "BGR"), ("SDV2", "BGR"), ("SDXL", "RGB"), ("SDXL", "BGR")],
)
def test_embedded_watermark_survives_png_not_jpeg(tmp_path, message, order):
    rgb = textured(512, seed=1)
    marked = embed(rgb, message, order)
    det = create_detector("watermark")

    png = det.analyze(load_image(save(marked, tmp_path / "wm.png", "PNG")))
    assert png.status == "ok"
    assert png.claim == "ai_generated" and png.strength == "proof"
    assert png.evidence["band"] == "strong"
    assert png.evidence["message"] == message
    bits = png.evidence["bits"][message]
    assert bits["total"] == WATERMARK_MESSAGES[message].size
    assert bits["matched"] >= BANDS[message]["strong"]
    assert bits["order"] == order
    assert png.score is None and png.explanations

    # JPEG re-encoding destroys the dwtDct watermark on this texture (chance-level counts).
    for q in (95, 90):
        jpg = det.analyze(load_image(save(marked, tmp_path / f"wm{q}.jpg", "JPEG", q)))
        assert jpg.status == "not_applicable", (q, jpg.evidence["bits"])
        assert jpg.claim == "none"
        assert jpg.evidence["band"] == "none"
        assert jpg.evidence["bits"][message]["matched"] < BANDS[message]["moderate"]
        assert jpg.evidence["bits"][message]["matched"] < bits["matched"]


def test_unmarked_image_reports_counts_but_no_claim(tmp_path):
    res = create_detector("watermark").analyze(load_image(save(textured(512, 2), tmp_path / "p.png", "PNG")))
    assert res.status == "not_applicable"
    assert res.claim == "none" and res.strength == "none"
    assert set(res.evidence["bits"]) == set(WATERMARK_MESSAGES)
    for name, b in res.evidence["bits"].items():
        assert b["matched"] < BANDS[name]["moderate"]
        assert b["order"] in ("RGB", "BGR")
    assert "summary" in res.evidence


def test_small_image_is_not_testable(tmp_path):
    small = textured(512, 0)[:200, :300]
    res = create_detector("watermark").analyze(load_image(save(small, tmp_path / "s.png", "PNG")))
    assert res.status == "not_applicable"
    assert "not testable" in res.message


def test_moderate_band_gives_strong_strength(tmp_path):
    rgb = textured(512, 4)
    counts = count_watermark_bits(rgb)
    sd1 = counts["StableDiffusionV1"].matched
    bands = {k: dict(v) for k, v in BANDS.items()}
    bands["StableDiffusionV1"] = {"strong": 136, "moderate": max(1, sd1)}
    res = WatermarkDetector(bands=bands).analyze(load_image(save(rgb, tmp_path / "m.png", "PNG")))
    assert res.status == "ok"
    assert res.evidence["band"] == "moderate"
    assert res.claim == "ai_generated" and res.strength == "strong"


def test_invalid_bands_are_rejected():
    bad = {k: dict(v) for k, v in BANDS.items()}
    bad["SDV2"] = {"strong": 20, "moderate": 25}
    with pytest.raises(ValueError):
        WatermarkDetector(bands=bad)


@needs_imwatermark
def test_large_image_read_on_a_band_matches_the_whole_image(tmp_path):
    from detectors.provenance.watermark import BAND_PIXELS, band_rows

    big = np.concatenate([textured(1024, seed=s) for s in (5, 6)], axis=0)[:, :]  # 2048 x 1024
    big = np.concatenate([big, big[:, ::-1]], axis=1)  # 2048 x 2048: 4 MP, above BAND_PIXELS
    marked = embed(big, "StableDiffusionV1", "BGR")
    whole = count_watermark_bits(marked)["StableDiffusionV1"]
    top, bottom = band_rows(2048, 2048, pixels=BAND_PIXELS)
    assert 0 < top and bottom < 2048 and (bottom - top) * 2048 >= BAND_PIXELS
    res = WatermarkDetector().analyze(load_image(save(marked, tmp_path / "big.png", "PNG")))
    band = res.evidence["bits"]["StableDiffusionV1"]
    assert whole.matched >= BANDS["StableDiffusionV1"]["strong"]
    assert band["matched"] >= BANDS["StableDiffusionV1"]["strong"] and band["band"] == "strong"
    assert res.claim == "ai_generated"
