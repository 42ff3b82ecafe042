"""JPEG facts read from the file bytes: quantization tables and estimated quality.

The tables are parsed directly from the DQT segments (ITU-T T.81, section
B.2.4.1), so no decoder is trusted with the file. Quality is estimated by
matching the luminance table against the IJG (libjpeg) standard table scaled
for each quality 1..100 (ITU-T T.81 Annex K; IJG ``jcparam.c``).
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np

__all__ = ["JpegInfo", "STANDARD_LUMINANCE", "STANDARD_CHROMINANCE", "estimate_quality", "jpeg_info", "quantization_tables", "scaled_table"]

#: ITU-T T.81 Annex K luminance table (natural order).
STANDARD_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int32,
)
#: ITU-T T.81 Annex K chrominance table (natural order).
STANDARD_CHROMINANCE = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=np.int32,
)

# zigzag index -> natural (row-major) index
_ZIGZAG = np.array(
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ]
)  # fmt: skip


@dataclass(frozen=True)
class JpegInfo:
    """Quantization facts of a JPEG file.

    Attributes:
        tables: Mapping from table id (0-3) to an ``int32`` ``(8, 8)`` array in natural order.
        quality: Estimated IJG quality 1-100 of the luminance table, or ``None``.
        standard: Whether the tables are exactly IJG tables at ``quality``.
        mean_error: Mean absolute difference to the closest IJG table.
    """

    tables: dict[int, np.ndarray]
    quality: int | None
    standard: bool
    mean_error: float | None

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable summary (tables as nested lists)."""
        return {
            "quality": self.quality,
            "standard_tables": self.standard,
            "mean_error": None if self.mean_error is None else round(self.mean_error, 3),
            "tables": {str(k): v.tolist() for k, v in sorted(self.tables.items())},
        }


def quantization_tables(data: bytes, *, max_segments: int = 64) -> dict[int, np.ndarray]:
    """Parse the DQT segments of JPEG bytes.

    Parsing stops at the first SOS marker (tables must precede the scan) or at
    the first malformed segment; what was read by then is returned.

    Args:
        data: The JPEG file bytes. Not modified.
        max_segments: Give up after this many marker segments, >= 1.

    Returns:
        Mapping from table id to ``int32`` ``(8, 8)`` table in natural order;
        empty if the data is not a JPEG or has no DQT.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {max_segments}")
    tables: dict[int, np.ndarray] = {}
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return tables
    pos = 2
    for _ in range(max_segments):
        # skip fill bytes
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and data[pos + 1] == 0xFF:
            pos += 1
        if pos + 4 > len(data) or data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xDA or marker == 0xD9:  # SOS / EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            break
        if marker == 0xDB:
            seg = data[pos + 4 : pos + 2 + length]
            i = 0
            while i < len(seg):
                pq, tq = seg[i] >> 4, seg[i] & 0x0F
                n = 128 if pq else 64
                if i + 1 + n > len(seg) or tq > 3:
                    break
                raw = seg[i + 1 : i + 1 + n]
                vals = (
                    np.frombuffer(raw, dtype=">u2").astype(np.int32)
                    if pq
                    else np.frombuffer(raw, dtype=np.uint8).astype(np.int32)
                )
                nat = np.empty(64, dtype=np.int32)
                nat[_ZIGZAG] = vals
                tables[tq] = nat.reshape(8, 8)
                i += 1 + n
        pos += 2 + length
    return tables


def scaled_table(base: np.ndarray, quality: int) -> np.ndarray:
    """IJG table for a quality (libjpeg ``jpeg_quality_scaling`` with baseline clamp).

    Args:
        base: ``(8, 8)`` base table.
        quality: 1..100.

    Returns:
        ``int32`` ``(8, 8)`` table with entries in ``[1, 255]``.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base.astype(np.int64) * scale + 50) // 100, 1, 255).astype(np.int32)


def estimate_quality(tables: dict[int, np.ndarray]) -> tuple[int | None, bool, float | None]:
    """Closest IJG quality for the luminance table (id 0, else the lowest id).

    Returns:
        ``(quality, exact, mean_abs_error)``; ``(None, False, None)`` when there
        is no table.
    """
    if not tables:
        return None, False, None
    lum = tables.get(0, tables[min(tables)])
    chrom = tables.get(1)
    lum_tables, chrom_tables = _all_scaled_tables()
    # mean absolute error for every quality at once (integer sums: exact in float64)
    errs = np.abs(lum_tables - lum).mean(axis=(1, 2))
    if chrom is not None:
        errs = 0.5 * errs + 0.5 * np.abs(chrom_tables - chrom).mean(axis=(1, 2))
    best_q, best_err = 1, float("inf")
    for q in range(1, 101):
        err = float(errs[q - 1])
        if err < best_err - 1e-9:
            best_q, best_err = q, err
    return best_q, best_err == 0.0, best_err


@functools.lru_cache(maxsize=1)
def _all_scaled_tables() -> tuple[np.ndarray, np.ndarray]:
    """The IJG luminance and chrominance tables for qualities 1..100, ``int32`` ``(100, 8, 8)`` each (read-only)."""
    lum = np.stack([scaled_table(STANDARD_LUMINANCE, q) for q in range(1, 101)])
    chrom = np.stack([scaled_table(STANDARD_CHROMINANCE, q) for q in range(1, 101)])
    lum.flags.writeable = False
    chrom.flags.writeable = False
    return lum, chrom


def jpeg_info(data: bytes) -> JpegInfo | None:
    """Quantization tables and estimated quality, or ``None`` if ``data`` has no DQT.

    Args:
        data: File bytes of any format; non-JPEG data gives ``None``.
    """
    tables = quantization_tables(data)
    if not tables:
        return None
    q, exact, err = estimate_quality(tables)
    return JpegInfo(tables=tables, quality=q, standard=exact, mean_error=err)
