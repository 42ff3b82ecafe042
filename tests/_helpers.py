"""Test helpers: tiny synthetic images and crafted files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def textured(h: int = 256, w: int = 256, *, seed: int = 0) -> np.ndarray:
    """A smooth-plus-noise RGB uint8 image that looks vaguely natural."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = 0.5 + 0.25 * np.sin(6 * xx + 3 * yy)[..., None] * np.array([1.0, 0.8, 0.6])
    img = base + rng.normal(0, 0.05, (h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def png_with_ihdr(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but carries almost no data (a bomb header)."""

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write_manifest(path: Path, rows: list[dict]) -> Path:
    """Write a dataset CSV manifest (path,label,generator,split) and return its path."""
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "generator", "split"])
        w.writeheader()
        w.writerows(rows)
    return path
