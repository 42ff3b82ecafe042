"""Hostile and broken files: each gives one record, never a crash, a hang or unbounded memory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from _helpers import REPO, png_with_ihdr, textured


def hostile_kinds():  # -> list[benchmarks.hostile_memory.Kind]
    """The issue-17 kinds (huge canvases in tiny files, formats outside the allow-list, an
    oversized ICC profile, a TIFF that makes Pillow warn), shared with ``benchmarks/hostile_memory.py``."""
    import importlib.util

    if "hostile_memory" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hostile_memory", REPO / "benchmarks" / "hostile_memory.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["hostile_memory"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["hostile_memory"].build_kinds()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _insert_before_iend(png: bytes, chunk: bytes) -> bytes:
    i = png.rindex(b"IEND") - 4
    return png[:i] + chunk + png[i:]


def _png(img: Image.Image, **kw) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(img: Image.Image, **kw) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def build_hostile_folder(root: Path) -> dict[str, str]:
    """Write every hostile case into ``root``; returns file name -> expected status ("ok" or "error")."""
    root.mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(textured(300, 300))
    expect: dict[str, str] = {}

    def put(name: str, data: bytes, status: str) -> None:
        (root / name).write_bytes(data)
        expect[name] = status

    put("zero.jpg", b"", "error")
    jpg = _jpeg(base)
    put("truncated.jpg", jpg[: len(jpg) // 3], "error")
    png = _png(base)
    put("truncated.png", png[: len(png) // 3], "error")
    put("png_named.jpg", png, "ok")  # extension lies: analysed, and flagged
    put("text_named.png", b"hello, I am a text file\n" * 20, "error")
    put("bomb.png", png_with_ihdr(100_000, 100_000), "error")
    put("one_pixel.png", _png(Image.new("RGB", (1, 1), (1, 2, 3))), "ok")
    buf = io.BytesIO()
    Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257)).save(buf, format="TIFF")
    put("sixteen_bit.tif", buf.getvalue(), "ok")
    frames = [Image.fromarray(textured(64, 64, seed=i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    put("animated.gif", buf.getvalue(), "ok")
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:])
    put("animated.webp", buf.getvalue(), "ok")
    put("cmyk.jpg", _jpeg(base.convert("CMYK")), "ok")
    bad_exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff" + b"\x01" * 40
    put("bad_exif.jpg", jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(bad_exif) + 2) + bad_exif + jpg[2:], "ok")
    xmp = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
           + b"<!-- " + b"A" * (50 * 1024 * 1024) + b' --></x:xmpmeta><?xpacket end="w"?>')  # fmt: skip
    put("xmp_50mb.png", _insert_before_iend(png, _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)), "ok")
    big_text = b"parameters\x00" + b"a photo of a cat, " * (8 * 1024 * 1024 // 18)
    put("text_8mb.png", _insert_before_iend(png, _png_chunk(b"tEXt", big_text)), "ok")
    jumbf = struct.pack(">I", 0x40) + b"jumb" + struct.pack(">I", 0x7FFFFFF0) + b"jumd" + os.urandom(24) + b"c2pa"
    put("corrupt_c2pa.png", _insert_before_iend(png, _png_chunk(b"caBX", jumbf)), "ok")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", '<script>alert("exif")</script>')
    put("<b>bold<\\b><img src=x onerror=alert(1)>.png", _png(base, pnginfo=info), "ok")
    if os.name == "posix":
        (root / "loop").mkdir()
        os.symlink("../loop", root / "loop" / "again")  # folder loop: not followed
        os.symlink("self.png", root / "self.png")  # file loop: an error record
        expect["self.png"] = "error"
        with open(os.fsencode(str(root)) + b"/not_utf8_\xff\xfe.png", "wb") as fh:
            fh.write(png)
        expect["not_utf8_\\xff\\xfe.png"] = "ok"
    for k in hostile_kinds():
        put(k.name, k.data, k.status)
    return expect


def _name(rec: dict) -> str:
    return rec["file"]["path"].rsplit("/", 1)[-1]


def test_hostile_folder_scan_in_subprocess(tmp_path: Path) -> None:
    """The full default pipeline over every hostile case, in a real process, with its peak memory."""
    d = tmp_path / "hostile"
    expect = build_hostile_folder(d)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir() if p.is_file() and not p.is_symlink()}
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import resource, sys\n"
        "from cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        # this process's own peak from VmHWM: ru_maxrss keeps the parent's (pytest's) high-water
        # mark across fork+exec; the workers' RUSAGE_CHILDREN is an upper bound for the same reason
        "    rss = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "    print(f'PEAK_KIB {max(rss, kids)}', file=sys.stderr)\n"
        "    raise\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "scan", str(d), "--jobs", "1", "--timeout", "60", "-q",
         "--jsonl", str(out / "r.jsonl"), "--html", str(out / "r.html"), "--csv", str(out / "r.csv"),
         "--json", str(out / "r.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    lines = [json.loads(x) for x in (out / "r.jsonl").read_text(encoding="utf-8").splitlines()]
    recs = {_name(r): r for r in lines[:-1]}
    assert set(recs) == set(expect), set(recs) ^ set(expect)
    for name, status in expect.items():
        rec = recs[name]
        assert rec["status"] == status, (name, rec.get("error"))
        if status == "error":
            assert rec["error"]["message"] and rec["error"]["code"]
    flags = lambda n: {q["code"] for q in recs[n]["quality_flags"]}  # noqa: E731
    assert "animated" in flags("animated.gif") and "animated" in flags("animated.webp")
    assert "cmyk" in flags("cmyk.jpg")
    assert "extension_mismatch" in flags("png_named.jpg")
    assert "small_image" in flags("one_pixel.png")
    assert recs["bomb.png"]["error"]["code"] == "too_large"
    for k in hostile_kinds():  # each new kind gives its own code or flag, never internal_error
        rec = recs[k.name]
        if k.status == "error":
            assert rec["error"]["code"] == k.code, (k.name, rec["error"])
        elif k.code:
            assert k.code in flags(k.name), (k.name, flags(k.name))
    assert "decoder_warning" not in proc.stderr and "UserWarning" not in proc.stderr  # warnings went to the flags
    assert recs["corrupt_c2pa.png"]["label"] != "ai_confirmed"
    peak_mib = int(proc.stderr.split("PEAK_KIB ")[1].split()[0]) / 1024
    assert peak_mib < 1536, f"peak memory {peak_mib:.0f} MiB"  # issue 17: at most 1.5 GB per file in a worker
    # inputs untouched, outputs only where asked
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert before == after
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.html", "r.json", "r.jsonl"]
    html = (out / "r.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and '<script>alert("exif")' not in html


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_fuzzed_files_never_crash(tmp_path: Path, fmt: str) -> None:
    from detectors.pipeline import Pipeline

    rng = np.random.default_rng({"JPEG": 1, "PNG": 2, "WEBP": 3}[fmt])
    buf = io.BytesIO()
    Image.fromarray(textured(160, 160)).save(buf, format=fmt)
    data = buf.getvalue()
    pipeline = Pipeline()
    for i in range(25):
        mutant = bytearray(data)
        for _ in range(int(rng.integers(1, 12))):
            pos = int(rng.integers(0, len(mutant)))
            mutant[pos] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            mutant = mutant[: int(rng.integers(1, len(mutant)))]
        rec = pipeline.analyze_bytes(bytes(mutant), name=f"fuzz_{i}.{fmt.lower()}").record
        assert rec["status"] in ("ok", "error")
        json.dumps(rec, allow_nan=False)
        if rec["status"] == "error":
            assert f"fuzz_{i}" in rec["error"]["message"]


def test_two_runs_identical(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli.main import main

    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        Image.fromarray(textured(200, 200, seed=i)).save(d / f"{i}.png")
    outs = []
    for k in range(2):
        p = tmp_path / f"r{k}.jsonl"
        CliRunner().invoke(main, ["scan", str(d), "-q", "--jobs", "0", "--jsonl", str(p)])
        recs = [json.loads(x) for x in p.read_text().splitlines()][:-1]
        for r in recs:
            r.pop("timing")
            for det in r["detectors"]:
                det.pop("time_s")
        outs.append(recs)
    assert outs[0] == outs[1]
