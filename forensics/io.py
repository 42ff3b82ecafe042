"""Robust, bounded image loading for forensic analysis.

Every loader returns explicit RGB ``float32`` pixels in ``[0, 1]`` together with
the original file bytes and format, so that later checks (provenance, JPEG
tables) see the file exactly as it was submitted.

Huge images are never resized: resampling destroys the high-frequency traces
that the detectors look for. Images above ``max_full_pixels`` are analysed on a
bounded number of full-resolution regions instead, and images above
``max_pixels`` are refused as decompression bombs before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_FULL_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "ImageLoadError",
    "LoadedImage",
    "QualityFlag",
    "load_image",
    "load_image_bytes",
    "to_float_rgb",
]

#: Images with more pixels than this are refused before decoding (bomb guard).
DEFAULT_MAX_PIXELS = 256_000_000
#: Images up to this many pixels are kept whole; larger ones become regions.
DEFAULT_MAX_FULL_PIXELS = 16_000_000
#: Side of the full-resolution regions cut from huge images.
REGION_SIZE = 1024
#: At most this many regions are kept from a huge image.
MAX_REGIONS = 9
#: Files larger than this are refused without being read whole.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

_HEIF_REGISTERED = False


def _register_heif() -> None:
    """Register pillow-heif's HEIC/AVIF openers once, lazily (no import side effect)."""
    global _HEIF_REGISTERED
    if _HEIF_REGISTERED:
        return
    try:  # pragma: no cover - exercised only where pillow-heif is installed
        import pillow_heif

        pillow_heif.register_heif_opener()
        if hasattr(pillow_heif, "register_avif_opener"):
            try:
                pillow_heif.register_avif_opener()
            except Exception:  # noqa: BLE001 - newer Pillow reads AVIF itself
                pass
    except ImportError:  # pragma: no cover
        pass
    _HEIF_REGISTERED = True


class ImageLoadError(ValueError):
    """Raised when a file cannot be analysed as an image.

    Attributes:
        path: The offending file, or ``None`` for in-memory data.
        code: A short machine-readable reason, e.g. ``"truncated"``.
    """

    def __init__(self, path: str | None, code: str, message: str) -> None:
        self.path = path
        self.code = code
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class QualityFlag:
    """A condition that weakens or qualifies the evidence for one image.

    Attributes:
        code: Machine-readable identifier, e.g. ``"small_image"``.
        message: Plain-language explanation for a human reader.
    """

    code: str
    message: str


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for forensic analysis.

    Attributes:
        path: Source path, or ``None`` when loaded from bytes.
        data: The original file bytes, untouched.
        sha256: Hex SHA-256 of ``data``.
        format: Pillow format name of the container, e.g. ``"JPEG"``, ``"PNG"``.
        mode: Pillow mode of the stored pixels before conversion, e.g. ``"CMYK"``.
        width: Width in pixels after EXIF orientation.
        height: Height in pixels after EXIF orientation.
        n_frames: Number of frames in the file (only the first is analysed).
        regions: Full-resolution RGB regions, each ``float32`` of shape
            ``(h, w, 3)`` in ``[0, 1]``. For ordinary images this is one region,
            the whole image; huge images give up to ``MAX_REGIONS`` crops.
        info: Pillow's ``info`` mapping of the first frame (text chunks, ICC, ...),
            with bytes values kept as bytes.
        exif: Raw EXIF bytes, or ``None``.
        quality_flags: Conditions that qualify the evidence.
        thumbnail: ``uint8`` RGB array of shape ``(h, w, 3)`` at most
            ``thumbnail_size`` on its long side, or ``None`` when not requested.
    """

    path: str | None
    data: bytes = field(repr=False)
    sha256: str
    format: str
    mode: str
    width: int
    height: int
    n_frames: int
    regions: tuple[np.ndarray, ...] = field(repr=False)
    info: dict[str, Any] = field(repr=False, default_factory=dict)
    exif: bytes | None = field(repr=False, default=None)
    quality_flags: tuple[QualityFlag, ...] = ()
    thumbnail: np.ndarray | None = field(repr=False, default=None)

    @property
    def is_whole(self) -> bool:
        """Whether ``regions[0]`` is the entire image (not a crop of a huge one)."""
        return len(self.regions) == 1 and self.regions[0].shape[:2] == (self.height, self.width)

    @property
    def pixels(self) -> np.ndarray:
        """The first region: the whole image unless the image was huge."""
        return self.regions[0]


def to_float_rgb(image: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any common mode to RGB float32 in ``[0, 1]``.

    Alpha is dropped, not composited: compositing would blend a synthetic
    background into the pixel traces. 16-bit and 32-bit integer modes are
    scaled by their nominal range; float mode ``F`` is clipped to ``[0, 1]``.

    Args:
        image: A decoded Pillow image in mode 1, L, LA, La, P, PA, RGB, RGBA,
            RGBa, RGBX, CMYK, YCbCr, LAB, HSV, I, I;16*, or F.

    Returns:
        ``float32`` array of shape ``(H, W, 3)`` with values in ``[0, 1]``.

    Raises:
        ValueError: If the mode is not supported.
    """
    mode = image.mode
    if mode.startswith("I;16"):
        arr = np.asarray(image, dtype=np.uint16).astype(np.float32) / 65535.0
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "I":
        arr = np.asarray(image, dtype=np.int32).astype(np.float64)
        scale = 65535.0 if arr.max(initial=0) <= 65535 else float(2**31 - 1)
        arr = np.clip(arr / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode in ("1", "L"):
        arr = np.asarray(image.convert("L"), dtype=np.uint8)
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif mode in ("LA", "La"):
        arr = np.asarray(image, dtype=np.uint8)[..., :1]
        arr = np.repeat(arr, 3, axis=2)
    elif mode in ("P", "PA"):
        arr = np.asarray(image.convert("RGBA"), dtype=np.uint8)[..., :3]
    elif mode in ("RGBA", "RGBa", "RGBX"):
        arr = np.asarray(image, dtype=np.uint8)[..., :3]
    elif mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(image.convert("RGB") if mode != "RGB" else image, dtype=np.uint8)
    else:
        raise ValueError(f"unsupported image mode {mode!r}")
    return arr.astype(np.float32) / np.float32(255.0)


def _region_boxes(width: int, height: int, size: int, count: int) -> list[tuple[int, int, int, int]]:
    """Evenly spread, non-overlapping-where-possible crop boxes (left, top, right, bottom)."""
    side = int(np.ceil(np.sqrt(count)))
    xs = np.linspace(0, max(width - size, 0), side).round().astype(int)
    ys = np.linspace(0, max(height - size, 0), side).round().astype(int)
    boxes = []
    for y in sorted(set(ys.tolist())):
        for x in sorted(set(xs.tolist())):
            boxes.append((x, y, min(x + size, width), min(y + size, height)))
    return boxes[:count]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def _open(data: bytes) -> Image.Image:
    """``Image.open`` with Pillow's own bomb check off: ours is explicit and applied to the header."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _strip_png_text(data: bytes) -> bytes:
    """A copy of PNG bytes without text chunks (tEXt, zTXt, iTXt); other chunks are kept verbatim."""
    out = [data[:8]]
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            out.append(data[pos:])
            break
        if kind not in _PNG_TEXT_CHUNKS:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


class _TextTooLarge(Exception):
    """Pillow refused an oversized PNG text chunk."""


def _is_text_limit(data: bytes, exc: Exception) -> bool:
    msg = str(exc).lower()
    return data.startswith(_PNG_SIGNATURE) and ("max_text_chunk" in msg or "text chunks" in msg)


def _decode(data: bytes, path: str | None, max_pixels: int) -> Image.Image:
    """Open, check the header against ``max_pixels``, then decode the first frame.

    Raises:
        ImageLoadError: For every failure, with a code and a message.
        _TextTooLarge: When only an oversized PNG text chunk stands in the way.
    """
    try:
        im = _open(data)
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not_image", "not a recognised image format") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on hostile headers
        if _is_text_limit(data, exc):
            raise _TextTooLarge() from None
        raise ImageLoadError(path, "decode_error", f"cannot read image header: {exc}") from None
    raw_w, raw_h = im.size
    if raw_w <= 0 or raw_h <= 0:
        raise ImageLoadError(path, "decode_error", f"invalid dimensions {raw_w}x{raw_h}")
    if raw_w * raw_h > max_pixels:
        raise ImageLoadError(
            path,
            "too_large",
            f"image claims {raw_w}x{raw_h} = {raw_w * raw_h:,} pixels, above the limit of "
            f"{max_pixels:,} (possible decompression bomb)",
        )
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        im.seek(0)
        im.load()
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower() or "broken data stream" in msg.lower() or "image file is" in msg.lower():
            raise ImageLoadError(path, "truncated", f"file is truncated or corrupt: {msg}") from None
        raise ImageLoadError(path, "decode_error", f"cannot decode pixels: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - hostile files reach odd code paths
        if _is_text_limit(data, exc):
            raise _TextTooLarge() from None
        raise ImageLoadError(path, "decode_error", f"cannot decode pixels: {type(exc).__name__}: {exc}") from None
    return im


def load_image_bytes(
    data: bytes,
    *,
    path: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    region_size: int = REGION_SIZE,
    thumbnail_size: int | None = None,
) -> LoadedImage:
    """Decode image bytes for analysis.

    Args:
        data: The complete file contents.
        path: Name used in error messages and kept in the result.
        max_pixels: Refuse images with more pixels than this (decompression
            bomb guard), checked from the header before decoding. Must be > 0.
        max_full_pixels: Images above this are analysed as up to
            ``MAX_REGIONS`` full-resolution regions. Must be > 0.
        region_size: Side of those regions in pixels, >= 64.
        thumbnail_size: When given, also return an RGB ``uint8`` thumbnail at
            most this many pixels on its long side. Must be > 0.

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageLoadError: With a ``code`` of ``empty``, ``not_image``,
            ``too_large``, ``truncated`` or ``decode_error`` and a message
            naming the problem.
        ValueError: If an option is out of range.
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be > 0, got {max_pixels}")
    if max_full_pixels <= 0:
        raise ValueError(f"max_full_pixels must be > 0, got {max_full_pixels}")
    if thumbnail_size is not None and thumbnail_size <= 0:
        raise ValueError(f"thumbnail_size must be > 0, got {thumbnail_size}")
    if region_size < 64:
        raise ValueError(f"region_size must be >= 64, got {region_size}")
    if len(data) == 0:
        raise ImageLoadError(path, "empty", "file is empty (0 bytes)")
    _register_heif()
    flags: list[QualityFlag] = []
    try:
        im = _decode(data, path, max_pixels)
    except _TextTooLarge:
        # Pillow refuses PNG text chunks above 1 MB; provenance reads them from the raw bytes,
        # so the pixels are decoded from a copy without text chunks.
        im = _decode(_strip_png_text(data), path, max_pixels)
        flags.append(QualityFlag("oversized_metadata", "PNG text chunks above 1 MB were skipped for pixel decoding"))
    fmt = (im.format or "UNKNOWN").upper()
    n_frames = int(getattr(im, "n_frames", 1) or 1)
    if n_frames > 1:
        flags.append(
            QualityFlag("animated", f"file has {n_frames} frames; only the first frame was analysed")
        )
    mode = im.mode
    info = dict(im.info)
    exif_bytes = info.get("exif") if isinstance(info.get("exif"), (bytes, bytearray)) else None

    try:
        oriented = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - malformed EXIF must not stop analysis
        oriented = im
        flags.append(QualityFlag("bad_exif", "EXIF orientation could not be read; image used as stored"))
    if oriented is None:  # pragma: no cover - Pillow < 9.4 returns None in-place variant
        oriented = im
    width, height = oriented.size

    if mode == "CMYK":
        flags.append(QualityFlag("cmyk", "CMYK image converted to RGB; colour traces are altered"))
    if mode.startswith("I;16") or mode in ("I", "F"):
        flags.append(QualityFlag("high_bit_depth", f"{mode} image scaled to [0, 1] and shown as grey"))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in info:
        flags.append(QualityFlag("alpha_dropped", "alpha channel ignored for analysis"))

    try:
        if width * height <= max_full_pixels:
            regions = (to_float_rgb(oriented),)
        else:
            boxes = _region_boxes(width, height, region_size, MAX_REGIONS)
            regions = tuple(to_float_rgb(oriented.crop(box)) for box in boxes)
            flags.append(
                QualityFlag(
                    "huge_image_tiled",
                    f"{width}x{height} image analysed on {len(boxes)} full-resolution "
                    f"{region_size}px regions (never resized)",
                )
            )
    except ValueError as exc:
        raise ImageLoadError(path, "decode_error", str(exc)) from None

    thumb = None
    if thumbnail_size is not None:
        t = oriented.copy()
        if t.mode not in ("RGB", "L"):
            t = Image.fromarray((to_float_rgb(t) * 255 + 0.5).astype(np.uint8))
        t.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.BILINEAR)
        thumb = np.asarray(t.convert("RGB"), dtype=np.uint8).copy()

    return LoadedImage(
        path=path,
        data=bytes(data),
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        mode=mode,
        width=width,
        height=height,
        n_frames=n_frames,
        regions=regions,
        info=info,
        exif=bytes(exif_bytes) if exif_bytes else None,
        quality_flags=tuple(flags),
        thumbnail=thumb,
    )


def load_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    thumbnail_size: int | None = None,
) -> LoadedImage:
    """Read and decode an image file for analysis.

    Args:
        path: File to read. It is opened read-only and never modified.
        max_bytes: Refuse files larger than this many bytes. Must be > 0.
        max_pixels: See :func:`load_image_bytes`.
        max_full_pixels: See :func:`load_image_bytes`.
        thumbnail_size: See :func:`load_image_bytes`.

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageLoadError: If the file cannot be read or decoded; the message names
            the file and the problem.
    """
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    name = os.fsdecode(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise ImageLoadError(name, "not_file", "is a directory")
        if size > max_bytes:
            raise ImageLoadError(name, "too_large", f"file is {size:,} bytes, above the limit of {max_bytes:,}")
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except ImageLoadError:
        raise
    except PermissionError:
        raise ImageLoadError(name, "unreadable", "permission denied") from None
    except FileNotFoundError:
        raise ImageLoadError(name, "missing", "file not found") from None
    except OSError as exc:
        raise ImageLoadError(name, "unreadable", f"cannot read file: {exc.strerror or exc}") from None
    return load_image_bytes(
        data,
        path=name,
        max_pixels=max_pixels,
        max_full_pixels=max_full_pixels,
        thumbnail_size=thumbnail_size,
    )
