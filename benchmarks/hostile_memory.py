#!/usr/bin/env python
"""Peak memory and time per hostile kind of file, for ``detect scan --html`` and for the desk.

Each kind is a small crafted file whose header or metadata claims far more than
it carries (a 35-byte GIF with a 15000x15000 canvas, a JPEG or AVIF header at
15800x15800 / 15000x15000, a PNG whose ICC profile inflates past 1 MB) or a
format outside the allow-list (EPS named ``.png``, JPEG 2000, ICO, PCX, DDS,
PSD); and, for scale, real RGB JPEGs at the bounds (134 MP, just under the
scan's decode budget, and 100 MP, the desk's pixel limit). For every kind the benchmark

* runs ``detect scan FILE --jobs 1 --html ...`` in a fresh process and reads the
  peak RSS of the scan's worker process (``RUSAGE_CHILDREN`` of the CLI) and of
  the CLI itself, and the wall time;
* posts the file to a desk (``cli.web.app.create_app`` under uvicorn on
  127.0.0.1, one worker, the pixel limit raised to the scan's 256 MP so that the
  canvases are decoded there too) through ``/api/v1/card`` and reads the worker's peak
  RSS from ``/proc/PID/status`` (``VmHWM``) after each upload; every kind gets a
  fresh worker (the desk is restarted), so the figure is that file's own peak.

It prints a Markdown table (kind, file bytes, record status and code, scan
worker/CLI peak MiB, scan seconds, desk worker peak MiB, desk HTTP status).

Usage::

    python benchmarks/hostile_memory.py [--kinds gif_canvas_15000.gif,iccp_3mb.png] [--no-desk] [--no-largest]

The builders (:func:`build_kinds`) are shared with ``tests/cli/test_hostile_inputs_v2.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Kind:
    """One hostile file: its name, bytes, and the record status and error code it must give."""

    name: str
    data: bytes
    status: str  # "ok" or "error"
    code: str | None = None  # error code, or a quality-flag code that must be present when ok


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _textured(h: int, w: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def gif_canvas(side: int) -> bytes:
    """A 35-byte GIF whose logical screen is ``side x side`` with one 1x1 frame (a valid file)."""
    return (
        b"GIF89a" + struct.pack("<HH", side, side) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
        + b",\x00\x00\x00\x00" + struct.pack("<HH", 1, 1) + b"\x00\x02\x02\x44\x01\x00;"
    )  # fmt: skip


def jpeg_header(side: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``side x side`` RGB pixels."""
    j = _encode(Image.new("RGB", (16, 16), (200, 100, 50)), "JPEG", quality=90)
    k = j.find(b"\xff\xc0")
    return j[: k + 5] + struct.pack(">HH", side, side) + j[k + 9 :]


def avif_header(side: int) -> bytes | None:
    """A small AVIF whose image-spatial-extents box claims ``side x side`` (``None`` without an AVIF encoder)."""
    try:
        d = _encode(Image.new("RGB", (64, 64), (10, 20, 30)), "AVIF")
    except Exception:  # noqa: BLE001 - Pillow built without libavif
        return None
    i = d.find(b"ispe")
    return d[: i + 8] + struct.pack(">II", side, side) + d[i + 16 :] if i > 0 else None


def png_iccp(inflated: int) -> bytes:
    """A 64x64 PNG whose iCCP chunk inflates to ``inflated`` bytes."""
    png = _encode(_textured(64, 64), "PNG")
    icc = _png_chunk(b"iCCP", b"profile\x00\x00" + zlib.compress(b"\x00" * inflated, 9))
    return png[:33] + icc + png[33:]


def eps_named_png() -> bytes:
    """Encapsulated PostScript (which Pillow would hand to Ghostscript) meant to be saved as ``.png``."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
        b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"
    )


def psd_header() -> bytes:
    """A Photoshop header (8BPS, 3 channels, 16x16, 8 bits, RGB) with raw image data."""
    head = b"8BPS" + struct.pack(">H", 1) + b"\x00" * 6 + struct.pack(">HIIHH", 3, 16, 16, 8, 3)
    return head + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">H", 0) + b"\x80" * (3 * 16 * 16)


def tiff_bad_tag() -> bytes:
    """A valid 16x16 grey TIFF with an ImageDescription tag whose data lies past the end (Pillow warns)."""
    w = h = 16
    pixels = bytes(range(256))
    entries = [
        (256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (270, 2, 100_000, 1_000_000),  # ImageDescription: 100 kB "at" offset 1 MB, past the end
        (273, 4, 1, 8), (278, 3, 1, h), (279, 4, 1, len(pixels)),
    ]  # fmt: skip
    ifd_at = 8 + len(pixels)
    out = b"II*\x00" + struct.pack("<I", ifd_at) + pixels + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        val = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + val
    return out + struct.pack("<I", 0)


def build_kinds() -> list[Kind]:
    """Every hostile kind of this benchmark (and of ``test_hostile_inputs_v2``)."""
    kinds = [
        Kind("gif_canvas_15000.gif", gif_canvas(15000), "ok"),
        Kind("jpeg_header_15800.jpg", jpeg_header(15800), "error", "too_large"),
        Kind("iccp_3mb.png", png_iccp(3 * 1024 * 1024), "ok", "oversized_icc_profile"),
        Kind("eps_named.png", eps_named_png(), "error", "unsupported_format"),
        Kind("psd_named.png", psd_header(), "error", "unsupported_format"),
        Kind("tiff_bad_tag.tif", tiff_bad_tag(), "ok", "decoder_warning"),
    ]
    avif = avif_header(15000)
    if avif is not None:
        kinds.insert(2, Kind("avif_header_15000.avif", avif, "error", "too_large"))
    base = _textured(32, 32)
    for fmt, name in (("JPEG2000", "jpeg2000_named.jpg"), ("ICO", "ico_named.png"), ("PCX", "pcx_named.png"), ("DDS", "dds_named.png")):
        try:
            kinds.append(Kind(name, _encode(base, fmt), "error", "unsupported_format"))
        except Exception:  # noqa: BLE001 - a Pillow built without that encoder (e.g. no OpenJPEG)
            continue
    return kinds


def largest_kinds() -> list[Kind]:
    """Real RGB JPEGs at the bounds (not hostile, but the most a worker then holds): 134 MP, just under
    the 512 MiB decode budget of ``detect scan``, and 100 MP, the desk's default pixel limit."""
    from PIL import ImageDraw

    out = []
    for side in (11580, 10000):
        im = Image.new("RGB", (side, side), (120, 130, 140))
        draw = ImageDraw.Draw(im)
        for i in range(0, side, 300):
            draw.line([(i, 0), (side - i, side)], fill=(i % 255, 50, 200), width=7)
        out.append(Kind(f"real_rgb_{side}.jpg", _encode(im, "JPEG", quality=90), "ok"))
        del im, draw
    return out


# --------------------------------------------------------------------------- #
# Measuring
# --------------------------------------------------------------------------- #

_SCAN = (
    "import resource, sys\n"
    "from cli.main import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    me = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])  # ru_maxrss keeps the parent's peak across exec\n"
    "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    print(f'PEAK_KIB {me} {kids}', file=sys.stderr)\n"
    "    raise\n"
)


@dataclass(frozen=True)
class ScanResult:
    status: str
    code: str | None
    flags: tuple[str, ...]
    worker_mib: float
    cli_mib: float
    seconds: float
    exit_status: int


def run_scan(path: Path, out: Path, *, timeout_s: float = 300.0) -> ScanResult:
    """``detect scan PATH --jobs 1 --html`` in a fresh process; its record and peak memory."""
    jsonl = out / (path.name + ".jsonl")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _SCAN, "scan", str(path), "--jobs", "1", "--timeout", "120", "-q",
         "--jsonl", str(jsonl), "--html", str(out / (path.name + ".html"))],
        capture_output=True, text=True, timeout=timeout_s, cwd=REPO,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    me, kids = (int(x) for x in proc.stderr.split("PEAK_KIB ")[1].split()[:2])
    rec = json.loads(jsonl.read_text(encoding="utf-8").splitlines()[0])
    err = rec.get("error") or {}
    return ScanResult(
        status=rec["status"],
        code=err.get("code"),
        flags=tuple(q["code"] for q in rec.get("quality_flags", [])),
        worker_mib=kids / 1024,
        cli_mib=me / 1024,
        seconds=seconds,
        exit_status=proc.returncode,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_DESK = (
    "import sys, uvicorn\n"
    "from cli.web.app import create_app\n"
    "app = create_app(max_concurrent=1, queue_size=1, timeout_s=120, max_pixels=256_000_000)\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')\n"
)


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from the parent ids in ``/proc/*/stat``)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parent.items() if p in frontier]
        out += kids
        frontier = kids
    return out


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_desk(kind: Kind, *, timeout_s: float = 300.0) -> tuple[int, float]:
    """Post ``kind`` to a fresh desk on 127.0.0.1; returns (HTTP status, peak RSS MiB of its worker(s))."""
    import httpx

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _DESK, str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/api/v1/limits", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("desk did not start in 120 s")
        r = httpx.post(url + "/api/v1/card", files={"file": (kind.name, kind.data, "application/octet-stream")}, timeout=timeout_s)
        peak = max((_vm_hwm_kib(p) for p in _children(server.pid)), default=0)
        return r.status_code, peak / 1024
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="", help="Comma-separated kind names (default: all).")
    ap.add_argument("--no-desk", action="store_true", help="Measure detect scan only.")
    ap.add_argument("--no-largest", action="store_true", help="Skip the real 134 MP and 100 MP JPEGs.")
    args = ap.parse_args(argv)
    wanted = set(args.kinds.split(",")) if args.kinds else None
    largest = not args.no_largest and (wanted is None or any(w.startswith("real_rgb_") for w in wanted))
    kinds = build_kinds() + (largest_kinds() if largest else [])
    if wanted is not None:
        kinds = [k for k in kinds if k.name in wanted]
    print(f"# hostile_memory: {len(kinds)} kinds, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print()
    print("| kind | file bytes | record | scan worker peak MiB | scan CLI peak MiB | scan s | desk HTTP | desk worker peak MiB |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- | ---: |")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k in kinds:
            path = root / k.name
            path.write_bytes(k.data)
            s = run_scan(path, root)
            what = s.status if s.status == "ok" else f"error `{s.code}`"
            if args.no_desk:
                desk_status, desk_mib = "-", float("nan")
            else:
                desk_status, desk_mib = run_desk(k)
            worst = max(worst, s.worker_mib, desk_mib if desk_mib == desk_mib else 0.0)
            print(
                f"| {k.name} | {len(k.data):,} | {what} | {s.worker_mib:,.0f} | {s.cli_mib:,.0f} | {s.seconds:.1f} "
                f"| {desk_status} | {desk_mib:,.0f} |",
                flush=True,
            )
    print()
    print(f"worst worker peak: {worst:,.0f} MiB; this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
