"""PNG text chunks: one inflate budget per file, shared by the readers, and every limit stated (issue 17, point 1)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from detectors import create_detector
from detectors.provenance._common import MAX_TEXT_BUDGET, PngTextStore, png_text_store
from forensics.io import load_image_bytes

REPO = Path(__file__).resolve().parents[3]


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _png(extra: bytes, *, before_idat: bytes = b"") -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    idat = png.find(b"IDAT") - 4
    iend = png.rfind(b"IEND") - 4
    return png[:idat] + before_idat + png[idat:iend] + extra + png[iend:]


def hostile_png(n_chunks: int = 160, inflated_mb: int = 17) -> bytes:
    """About 2.8 MB: ``n_chunks`` zTXt chunks after IDAT, each inflating to ``inflated_mb`` MB of zeros."""
    bomb = zlib.compress(b"\x00" * (inflated_mb * 1024 * 1024), 9)
    return _png(b"".join(_chunk(b"zTXt", b"parameters%d\x00\x00" % i + bomb) for i in range(n_chunks)))


A1111 = "a lighthouse at dusk\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42"


def test_budget_stops_inflation_and_says_so():
    data = hostile_png(n_chunks=12, inflated_mb=17)
    store = PngTextStore(data)
    got = store.read()
    assert store.used <= MAX_TEXT_BUDGET
    assert len(got.fields) == 4  # 4 x 16 MB (per-chunk cap) fill the 64 MB budget
    assert any("8 PNG text chunks were not decompressed" in n and "64 MB" in n for n in got.notes)
    assert any("cut at 16 MB (the per-chunk cap)" in n for n in got.notes)


def test_metadata_within_budget_is_still_read_and_limits_are_reported():
    bomb = zlib.compress(b"\x00" * (17 * 1024 * 1024), 9)
    extra = b"".join(_chunk(b"zTXt", b"junk%d\x00\x00" % i + bomb) for i in range(6))
    data = _png(extra + _chunk(b"tEXt", b"parameters\x00" + A1111.encode()))
    res = create_detector("generator_metadata").analyze(load_image_bytes(data))
    # the budget is spent before the parameters chunk: nothing found, and the record says why
    assert res.status == "not_applicable"
    assert "budget" in res.message and res.evidence["limits"]
    # the same metadata before the junk is read, and the limit is still stated
    data = _png(extra, before_idat=_chunk(b"tEXt", b"parameters\x00" + A1111.encode()))
    res = create_detector("generator_metadata").analyze(load_image_bytes(data))
    assert res.claim == "ai_generated" and res.strength == "proof" and res.evidence["seed"] == 42
    assert any("budget" in n for n in res.evidence["limits"])
    assert res.explanations[-1].startswith("Not all metadata was read")


def test_text_chunk_cap_is_stated():
    many = b"".join(_chunk(b"tEXt", b"k\x00v") for _ in range(20_000))
    data = _png(many + _chunk(b"tEXt", b"parameters\x00" + A1111.encode()))
    res = create_detector("generator_metadata").analyze(load_image_bytes(data))
    assert res.status == "not_applicable"
    assert any("1 PNG text chunks after the first 20,000 were not read" in n for n in res.evidence["limits"])


def test_readers_share_one_parse_per_image():
    inner = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    itxt = _chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(inner))
    image = load_image_bytes(_png(itxt + _chunk(b"tEXt", b"parameters\x00" + A1111.encode())))
    store = png_text_store(image)
    assert png_text_store(image) is store
    create_detector("xmp").analyze(image)
    used = store.used
    assert used == len(inner)  # xmp inflated only the XMP chunk
    create_detector("generator_metadata").analyze(image)
    assert store.used == used + len(A1111)  # the XMP chunk was not inflated again
    other = load_image_bytes(image.data)
    assert png_text_store(other) is not store


_CHILD = r"""
import json, resource, sys
from detectors import create_detector
from forensics.io import load_image

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

dets = [create_detector(n) for n in ("c2pa", "xmp", "generator_metadata", "exif")]
image = load_image(sys.argv[1])
before = hwm_mb()
out = {r.name: {"status": r.status, "limits": r.evidence.get("limits", [])} for r in (d.analyze(image) for d in dets)}
out["before_mb"], out["peak_mb"] = before, hwm_mb()
print(json.dumps(out))
"""


def test_hostile_png_peak_rss_is_bounded_in_a_real_process(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(hostile_png())  # 160 x 17 MB of zeros: +2.6 GB (xmp) and +5.2 GB (generator_metadata) before
    assert path.stat().st_size < 3_000_000
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    growth = out["peak_mb"] - out["before_mb"]
    assert growth < 400, out  # one 64 MB budget (bytes plus its decoded text), not 160 x 16 MB
    assert any("budget" in n for n in out["generator_metadata"]["limits"])
