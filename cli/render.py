"""Rendering for people: ``data:`` URIs of small ``uint8`` arrays for self-contained
reports, and terminal-safe text.

:func:`terminal_safe` is the one rule for anything that came from a file (its name,
an error message, metadata such as a prompt) and goes to a terminal: every C0 and
C1 control character, DEL, and the Unicode bidirectional overrides are shown as
escapes (ESC as ``\x1b``), so no ANSI/OSC sequence in a file can move the cursor,
clear the screen, retitle the window or reorder what is shown. JSON, CSV and HTML
reports keep their own escaping and do not use it.

Only Pillow and numpy are used; nothing is written to disk.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np

__all__ = ["crop_center", "fit_long_side", "jpeg_data_uri", "png_data_uri", "safe_text", "terminal_safe"]

#: C0 controls (tab and newline handled apart), DEL, C1 controls, bidirectional
#: formatting characters, and lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_ALL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = m.group(0)
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # os.fsdecode's surrogateescape: the original byte
        return f"\\x{n - 0xDC00:02x}"
    if n <= 0xFF:
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c, f"\\x{n:02x}")
    return f"\\u{n:04x}"


def terminal_safe(text: object, *, multiline: bool = False) -> str:
    """``text`` with every terminal control character shown as an escape.

    Args:
        text: Anything; ``str(text)`` is escaped.
        multiline: Keep newlines and tabs (for multi-line text such as a
            prompt); otherwise they are escaped too, so that one value stays on
            one line (a file name cannot fake a table row).

    Returns:
        Printable text: ESC becomes ``\x1b``, CR ``\r``, a C1 CSI ``\x9b``,
        U+202E ``\u202e``, an undecodable file-name byte ``\xff``.
    """
    s = str(text)
    return (_UNSAFE if multiline else _UNSAFE_ALL).sub(_escape, s)


def safe_text(text: object, style: str = "", *, multiline: bool = False):  # -> rich.text.Text
    """A rich ``Text`` of :func:`terminal_safe` ``text`` (never parsed as rich markup)."""
    from rich.text import Text

    return Text(terminal_safe(text, multiline=multiline), style=style)


def _to_image(arr: np.ndarray):  # -> PIL.Image.Image
    """A Pillow image from a ``uint8`` grey ``(h, w)`` / ``(h, w, 1)`` or RGB(A) array."""
    from PIL import Image

    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        mode = "L"
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        mode = "RGB" if a.shape[2] == 3 else "RGBA"
    else:
        raise ValueError(f"expected an (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"empty image of shape {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a), mode=mode)


def fit_long_side(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so that the long side is at most ``max_side``.

    Args:
        arr: ``uint8`` grey or RGB array.
        max_side: Largest allowed side in pixels.

    Returns:
        The array itself when it already fits, else a resized ``uint8`` copy.
    """
    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return arr
    from PIL import Image

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(_to_image(arr).resize(size, Image.Resampling.BOX))


def crop_center(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Centre crop to at most ``max_side`` pixels per side, keeping pixel-level texture.

    Used for noise residuals, whose look is destroyed by resampling.
    """
    h, w = arr.shape[:2]
    ch, cw = min(h, max_side), min(w, max_side)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return arr[y0 : y0 + ch, x0 : x0 + cw]


def png_data_uri(arr: np.ndarray) -> str:
    """Encode a ``uint8`` grey or RGB(A) array as a ``data:image/png;base64,...`` URI.

    Args:
        arr: ``uint8`` array of shape ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)``.

    Raises:
        TypeError: If the array is not ``uint8``.
        ValueError: If the shape is not an image shape.
    """
    buf = io.BytesIO()
    _to_image(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_data_uri(arr: np.ndarray, quality: int = 82) -> str:
    """Encode a ``uint8`` grey or RGB array as a ``data:image/jpeg;base64,...`` URI.

    Much smaller than PNG for photographic thumbnails. An alpha channel is dropped.

    Args:
        arr: ``uint8`` array of shape ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)``.
        quality: JPEG quality, 1-95.
    """
    img = _to_image(arr)
    if img.mode == "RGBA":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality), optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
