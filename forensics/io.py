"""Robust, bounded image loading for forensic analysis.

Every loader returns explicit RGB ``float32`` pixels in ``[0, 1]`` together with
the original file bytes and format, so that later checks (provenance, JPEG
tables) see the file exactly as it was submitted.

Huge images are never resized: resampling destroys the high-frequency traces
that the detectors look for. Images above ``max_full_pixels`` are analysed on a
bounded number of full-resolution regions instead, and images above
``max_pixels`` are refused as decompression bombs before any pixel is decoded.

Two more bounds hold whatever a header claims. Only the formats the README
lists are opened (``SUPPORTED_FORMATS``); Pillow's other plugins (EPS, which
hands PostScript to Ghostscript, JPEG 2000, ICO, PSD, ...) are never run, and
such a file is an ``unsupported_format`` error. And each file has a memory
budget (``max_decode_bytes``): the decoded raster that the header implies,
counted the way Pillow stores it, must fit, or the file is refused as
``too_large`` before any pixel is decoded. The report thumbnail is made by an
integer reduction of the decoded raster in its own mode (:func:`make_thumbnail`),
never by a full-size conversion.
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
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_FULL_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "ImageLoadError",
    "LoadedImage",
    "QualityFlag",
    "load_image",
    "load_image_bytes",
    "make_thumbnail",
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
#: Per-file memory budget: the decoded raster a header implies must fit in this many bytes.
#: 512 MiB is 134 MP of RGB (Pillow keeps 4 bytes per RGB pixel; 67 MP for HEIF/AVIF, whose
#: decoder keeps a second copy) and more than ``DEFAULT_MAX_PIXELS`` of grey or palette pixels.
#: A worker with every detector loaded holds about 0.8 GB before the file, so one file then peaks
#: near 1.3 GB (``benchmarks/hostile_memory.py`` measures it; docs/RESULTS.md has the figures).
DEFAULT_MAX_DECODE_BYTES = 512 * 1024 * 1024
#: Pillow plugins that may open a file: the formats the README lists (MPO is opened by
#: the JPEG plugin; HEIF/HEIC by pillow-heif). Nothing else is ever parsed or decoded.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF")

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
            It shows the whole (EXIF-oriented) image, resized, never cropped.
        region_origins: ``(top, left)`` of each region in the whole
            (EXIF-oriented) image, in pixels: ``((0, 0),)`` for an ordinary
            image. Empty when not known (a ``LoadedImage`` built by hand); see
            :meth:`region_origin`.
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
    region_origins: tuple[tuple[int, int], ...] = ()

    @property
    def is_whole(self) -> bool:
        """Whether ``regions[0]`` is the entire image (not a crop of a huge one)."""
        return len(self.regions) == 1 and self.regions[0].shape[:2] == (self.height, self.width)

    @property
    def pixels(self) -> np.ndarray:
        """The first region: the whole image unless the image was huge."""
        return self.regions[0]

    def region_origin(self, index: int) -> tuple[int, int] | None:
        """``(top, left)`` of ``regions[index]`` in the whole image, or ``None`` when not known.

        A position ``(y, x)`` inside that region is ``(top + y, left + x)`` in the image.
        """
        if not 0 <= index < len(self.regions):
            raise ValueError(f"region index must be in [0, {len(self.regions)}), got {index}")
        if len(self.region_origins) == len(self.regions):
            return self.region_origins[index]
        return (0, 0) if self.is_whole else None


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
#: Pillow's in-memory bytes per pixel for each mode (RGB is stored as 4 bytes).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Formats whose decoder holds its own full-size buffer besides Pillow's raster.
_DOUBLE_BUFFERED = frozenset({"HEIF", "AVIF"})
#: Modes that ``Image.reduce`` handles; others are thinned by nearest-neighbour sampling.
_REDUCIBLE = frozenset({"L", "LA", "La", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"})
#: At most this many distinct decoder warnings become quality flags.
_MAX_WARNING_FLAGS = 5


def _open(data: bytes) -> Image.Image:
    """``Image.open`` limited to ``SUPPORTED_FORMATS``, with Pillow's own bomb check off
    (ours is explicit, applied to the header and the memory budget)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        Image.init()
        allowed = [f for f in SUPPORTED_FORMATS if f in Image.OPEN]  # MPO is opened by the JPEG plugin
        try:
            return Image.open(io.BytesIO(data), formats=allowed)
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _identify_other_format(data: bytes) -> str | None:
    """The Pillow format that claims ``data`` by its magic bytes alone (no plugin is run), if any."""
    Image.init()
    prefix = data[:16]
    for fmt, (_, accept) in Image.OPEN.items():
        if fmt in SUPPORTED_FORMATS or accept is None:
            continue
        try:
            if accept(prefix):
                return fmt
        except Exception:  # noqa: BLE001 - an accept function that dislikes a short prefix
            continue
    return None


def _strip_png_chunks(data: bytes, kinds: tuple[bytes, ...]) -> bytes:
    """A copy of PNG bytes without the chunks of ``kinds``; other chunks are kept verbatim."""
    out = [data[:8]]
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            out.append(data[pos:])
            break
        if kind not in kinds:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def _strip_png_text(data: bytes) -> bytes:
    """A copy of PNG bytes without text chunks (tEXt, zTXt, iTXt); other chunks are kept verbatim."""
    return _strip_png_chunks(data, _PNG_TEXT_CHUNKS)


class _TextTooLarge(Exception):
    """Pillow refused an oversized PNG text chunk or ICC profile (both are capped at 1 MB inflated)."""


def _is_text_limit(data: bytes, exc: Exception) -> bool:
    msg = str(exc).lower()
    return data.startswith(_PNG_SIGNATURE) and ("max_text_chunk" in msg or "text chunks" in msg)


def _decoded_bytes(im: Image.Image) -> int:
    """Bytes of the raster Pillow will allocate for ``im`` (plus a decoder's own copy, where it keeps one)."""
    w, h = im.size
    per = _BYTES_PER_PIXEL.get(im.mode, 4)
    copies = 2 if (im.format or "").upper() in _DOUBLE_BUFFERED else 1
    if _header_orientation(im) not in (1, None):
        copies += 1  # exif_transpose makes a rotated copy
    return w * h * per * copies


def _header_orientation(im: Image.Image) -> int | None:
    """The EXIF orientation known from the header alone (``getexif`` would decode a PNG first)."""
    try:
        raw = im.info.get("exif")
        if isinstance(raw, (bytes, bytearray)):
            exif = Image.Exif()
            exif.load(bytes(raw))
            return exif.get(0x0112, 1)
        tags = getattr(im, "tag_v2", None)
        return tags.get(0x0112, 1) if tags is not None else 1
    except Exception:  # noqa: BLE001 - malformed EXIF is handled (and flagged) later
        return 1


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MiB"


def _decode(data: bytes, path: str | None, max_pixels: int, max_decode_bytes: int) -> Image.Image:
    """Open, check the header against ``max_pixels`` and the memory budget, then decode the first frame.

    Raises:
        ImageLoadError: For every failure, with a code and a message.
        _TextTooLarge: When only an oversized PNG text chunk or ICC profile stands in the way.
    """
    try:
        im = _open(data)
    except UnidentifiedImageError:
        other = _identify_other_format(data)
        if other is not None:
            raise ImageLoadError(
                path,
                "unsupported_format",
                f"the file is {other}, which is not analysed (supported: JPEG/MPO, PNG, WebP, GIF, TIFF, "
                "BMP, HEIF/HEIC, AVIF); it was not decoded",
            ) from None
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
    need = _decoded_bytes(im)
    if need > max_decode_bytes:
        raise ImageLoadError(
            path,
            "too_large",
            f"image claims {raw_w}x{raw_h} {im.mode} pixels, which would take {_mib(need)} to decode, above "
            f"the per-file memory budget of {_mib(max_decode_bytes)} (the file itself is {len(data):,} bytes)",
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


def _warning_flags(caught: list[warnings.WarningMessage]) -> list[QualityFlag]:
    """Pillow's warnings during decoding, as quality flags (deduplicated, at most ``_MAX_WARNING_FLAGS``)."""
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"[:300]
        if text not in seen:
            seen.append(text)
    flags = [QualityFlag("decoder_warning", f"the decoder warned: {t}") for t in seen[:_MAX_WARNING_FLAGS]]
    if len(seen) > _MAX_WARNING_FLAGS:
        flags.append(QualityFlag("decoder_warning", f"{len(seen) - _MAX_WARNING_FLAGS} more distinct decoder warnings"))
    return flags


def _thumb_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Pillow's ``thumbnail`` size rule: fit in ``size x size``, keep the aspect ratio, never upscale."""
    if width <= size and height <= size:
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(image: Image.Image, *, size: int) -> np.ndarray:
    """A small RGB thumbnail of a decoded image without any full-size conversion.

    The image is first shrunk in its own mode by an integer factor
    (``Image.reduce``, or nearest-neighbour sampling for modes ``reduce``
    does not handle: 1, P, I;16), to at most twice ``size``; only that small
    image is converted to RGB (as :func:`to_float_rgb` does) and resampled
    bilinearly. Memory beyond the decoded image is a few times ``size**2``.

    Args:
        image: A decoded Pillow image of any mode :func:`to_float_rgb` accepts.
            It is not modified.
        size: Longest side of the result in pixels, > 0.

    Returns:
        ``uint8`` array of shape ``(h, w, 3)`` with ``max(h, w) <= size``.

    Raises:
        ValueError: If ``size`` is not positive or the mode is not supported.
    """
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    w, h = image.size
    factor = max(1, max(w, h) // (2 * size))
    small = image
    if factor > 1:
        if image.mode in _REDUCIBLE:
            small = image.reduce(factor)
        else:
            small = image.resize((max(1, -(-w // factor)), max(1, -(-h // factor))), Image.Resampling.NEAREST)
    rgb = Image.fromarray((to_float_rgb(small) * 255 + 0.5).astype(np.uint8))
    out = rgb.resize(_thumb_size(rgb.width, rgb.height, size), Image.Resampling.BILINEAR) if max(rgb.size) > size else rgb
    return np.asarray(out, dtype=np.uint8).copy()


def load_image_bytes(
    data: bytes,
    *,
    path: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    region_size: int = REGION_SIZE,
    thumbnail_size: int | None = None,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
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
            most this many pixels on its long side (see :func:`make_thumbnail`).
            Must be > 0.
        max_decode_bytes: Per-file memory budget: refuse an image whose decoded
            raster (Pillow's bytes per pixel for its mode, times the decoder's
            copies and an EXIF rotation's copy) would exceed this, checked from
            the header before decoding. Must be > 0.

    Returns:
        A :class:`LoadedImage`. Pillow warnings raised while decoding become
        ``decoder_warning`` quality flags instead of reaching stderr.

    Raises:
        ImageLoadError: With a ``code`` of ``empty``, ``not_image``,
            ``unsupported_format``, ``too_large``, ``oversized_metadata``,
            ``truncated`` or ``decode_error`` and a message naming the problem.
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
    if max_decode_bytes <= 0:
        raise ValueError(f"max_decode_bytes must be > 0, got {max_decode_bytes}")
    if len(data) == 0:
        raise ImageLoadError(path, "empty", "file is empty (0 bytes)")
    _register_heif()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = _load_bytes(data, path, max_pixels, max_full_pixels, region_size, thumbnail_size, max_decode_bytes)
    if caught:
        from dataclasses import replace

        loaded = replace(loaded, quality_flags=loaded.quality_flags + tuple(_warning_flags(caught)))
    return loaded


def _load_bytes(
    data: bytes,
    path: str | None,
    max_pixels: int,
    max_full_pixels: int,
    region_size: int,
    thumbnail_size: int | None,
    max_decode_bytes: int,
) -> LoadedImage:
    flags: list[QualityFlag] = []
    try:
        im = _decode(data, path, max_pixels, max_decode_bytes)
    except _TextTooLarge:
        # Pillow refuses PNG text chunks and ICC profiles that inflate past 1 MB; provenance reads
        # text from the raw bytes, so the pixels are decoded from a copy without them.
        try:
            im = _decode(_strip_png_text(data), path, max_pixels, max_decode_bytes)
            flags.append(QualityFlag("oversized_metadata", "PNG text chunks above 1 MB were skipped for pixel decoding"))
        except _TextTooLarge:
            try:
                im = _decode(_strip_png_chunks(data, (*_PNG_TEXT_CHUNKS, b"iCCP")), path, max_pixels, max_decode_bytes)
            except _TextTooLarge:
                raise ImageLoadError(
                    path, "oversized_metadata", "PNG metadata inflates past Pillow's 1 MB limit even without text and ICC chunks"
                ) from None
            flags.append(
                QualityFlag(
                    "oversized_icc_profile",
                    "the embedded ICC profile inflates past 1 MB; it was ignored and the pixels decoded without it",
                )
            )
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
        # exif_transpose copies the whole raster even when there is nothing to rotate: call it only
        # when the orientation asks for a rotation or a flip
        rotate = im.getexif().get(0x0112, 1) not in (1, None)
        oriented = ImageOps.exif_transpose(im) if rotate else im
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
            origins: tuple[tuple[int, int], ...] = ((0, 0),)
        else:
            boxes = _region_boxes(width, height, region_size, MAX_REGIONS)
            regions = tuple(to_float_rgb(oriented.crop(box)) for box in boxes)
            origins = tuple((top, left) for left, top, _, _ in boxes)
            flags.append(
                QualityFlag(
                    "huge_image_tiled",
                    f"{width}x{height} image analysed on {len(boxes)} full-resolution "
                    f"{region_size}px regions (never resized)",
                )
            )
        thumb = make_thumbnail(oriented, size=thumbnail_size) if thumbnail_size is not None else None
    except ValueError as exc:
        raise ImageLoadError(path, "decode_error", str(exc)) from None

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
        region_origins=origins,
    )


def load_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    thumbnail_size: int | None = None,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
) -> LoadedImage:
    """Read and decode an image file for analysis.

    Args:
        path: File to read. It is opened read-only and never modified.
        max_bytes: Refuse files larger than this many bytes. Must be > 0.
        max_pixels: See :func:`load_image_bytes`.
        max_full_pixels: See :func:`load_image_bytes`.
        thumbnail_size: See :func:`load_image_bytes`.
        max_decode_bytes: See :func:`load_image_bytes`.

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
        max_decode_bytes=max_decode_bytes,
    )
