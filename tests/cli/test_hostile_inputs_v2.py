"""Hostile input v2 (issue 17): deep folder trees, terminal escape injection, crash exit status.

Each case is built here and run through ``detect`` in a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from _helpers import REPO, textured

#: What a terminal must never receive from a file: ESC (CSI, OSC), BEL, CR, a C1 CSI.
_RAW = ("\x1b", "\x07", "\x9b", "\r")


def _detect(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="250", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)  # fmt: skip


def _nest(root: Path, depth: int) -> Path:
    """``depth`` nested folders below ``root``, made one by one (``os.makedirs`` itself recurses)."""
    here = root
    for _ in range(depth):
        here = here / "d"
        here.mkdir()
    return here


def _unnest(root: Path) -> None:
    """Remove what :func:`_nest` made, deepest first (``shutil.rmtree`` recurses too)."""
    chain = [root / "d"]
    while (chain[-1] / "d").is_dir():
        chain.append(chain[-1] / "d")
    for folder in reversed(chain):
        for f in folder.iterdir():
            if not f.is_dir():
                f.unlink()
        folder.rmdir()


@pytest.fixture
def deep_tmp(tmp_path: Path):
    yield tmp_path
    if (tmp_path / "d").is_dir():
        _unnest(tmp_path)


def test_walk_of_a_thousand_nested_folders_is_iterative_and_bounded(deep_tmp: Path) -> None:
    from cli.walk import MAX_DEPTH, iter_files

    tmp_path = deep_tmp
    deep = _nest(tmp_path, 1000)
    Image.new("RGB", (8, 8)).save(tmp_path / "top.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "one.png")
    Image.new("RGB", (8, 8)).save(deep / "bottom.png")  # beyond the bound: never listed
    t0 = time.perf_counter()
    entries = list(iter_files([str(tmp_path)]))
    assert time.perf_counter() - t0 < 10
    ok = [e.path for e in entries if e.error is None]
    errors = [e for e in entries if e.error is not None]
    assert ok == [str(tmp_path / "top.png"), str(tmp_path / "d" / "one.png")]
    assert len(errors) == 1 and errors[0].code == "too_deep" and "folder too deep" in errors[0].error and f"more than {MAX_DEPTH} levels" in errors[0].error
    assert errors[0].path.count(os.sep + "d") == MAX_DEPTH + 1
    assert [e.path for e in iter_files([str(tmp_path)], max_depth=1)][:2] == ok
    assert not [e for e in iter_files([str(tmp_path)], recursive=False) if e.error]
    with pytest.raises(ValueError, match="max_depth"):
        list(iter_files([str(tmp_path)], max_depth=-1))


def test_scan_of_a_deep_tree_reports_every_file_and_never_exits_flagged(deep_tmp: Path) -> None:
    """Was: RecursionError, a traceback, exit 1 ("flagged") and no report at all."""
    tmp_path = deep_tmp
    _nest(tmp_path, 1000)
    Image.fromarray(textured(96, 96)).save(tmp_path / "top.png")
    out = tmp_path.parent / (tmp_path.name + "_r.jsonl")
    proc = _detect("scan", str(tmp_path), "--jobs", "0", "--jsonl", str(out), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    images = [r for r in lines if r.get("record_type") == "image"]
    assert lines[-1]["record_type"] == "summary"
    assert [r["status"] for r in images] == ["ok", "error"]
    assert images[0]["file"]["path"].endswith("top.png")
    assert images[1]["error"]["code"] == "too_deep" and "folder too deep" in images[1]["error"]["message"]


def test_a_crash_exits_70_not_1(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import cli.scan\n"
        "def boom(*a, **k):\n"
        "    raise RuntimeError('simulated bug \\x1b[2J')\n"
        "cli.scan.iter_files = boom\n"
        "from cli.main import main\n"
        "main(['scan', sys.argv[1], '-q'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 70, (proc.returncode, proc.stderr[-2000:])
    assert "internal error" in proc.stderr and "simulated bug \\x1b[2J" in proc.stderr
    assert "\x1b" not in proc.stderr


_EVIL = "\x1b[2J\x1b[H\x1b]0;pwned\x07\u202eevil\r"


def _evil_folder(root: Path) -> dict[str, str]:
    """Files whose names, metadata and error messages carry terminal control sequences."""
    root.mkdir()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"a cat{_EVIL}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: sd")
    named = f"photo{_EVIL}.png"
    Image.fromarray(textured(128, 128)).save(root / named, pnginfo=info)
    (root / f"cut{_EVIL}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x1b[31m" * 10)
    return {"named": named}


def test_scan_table_escapes_file_names_and_error_messages(tmp_path: Path) -> None:
    """A file named with ``\\x1b[2J`` once cleared the screen and wiped an ``ai_confirmed`` row."""
    d = tmp_path / "evil"
    _evil_folder(d)
    proc = _detect("scan", str(d), "--jobs", "0", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for raw in _RAW:
        assert raw not in proc.stdout and raw not in proc.stderr, repr(raw)
    assert "\u202e" not in proc.stdout
    flat = proc.stdout.replace("\n", "").replace("│", "").replace(" ", "")
    assert "photo\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\u202eevil\\r.png" in flat
    assert "cut\\x1b[2J" in flat  # the error row names the file, escaped


def test_inspect_escapes_prompt_text_and_names(tmp_path: Path) -> None:
    d = tmp_path / "evil"
    names = _evil_folder(d)
    proc = _detect("inspect", str(d / names["named"]))
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    for raw in _RAW:
        assert raw not in proc.stdout and raw not in proc.stderr, repr(raw)
    assert "\\x1b[2J" in proc.stdout
    # JSON stays JSON: the same text is there, JSON-escaped, and parses back to the raw characters
    proc = _detect("inspect", str(d / names["named"]), "--json")
    assert "\x1b" not in proc.stdout
    assert json.loads(proc.stdout)["record"]["file"]["path"].endswith(names["named"])


def test_terminal_safe_rule() -> None:
    from cli.render import safe_text, terminal_safe

    assert terminal_safe("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert terminal_safe("\x9b31m\x7f\x00") == "\\x9b31m\\x7f\\x00"
    assert terminal_safe("x\ny\tz") == "x\\ny\\tz"
    assert terminal_safe("x\ny\tz", multiline=True) == "x\ny\tz"
    assert terminal_safe("\u202egnp.exe") == "\\u202egnp.exe"
    assert terminal_safe(os.fsdecode(b"not_utf8_\xff.png")) == "not_utf8_\\xff.png"
    assert terminal_safe("café 写真 🙂") == "café 写真 🙂"
    assert safe_text("[bold]x[/bold]\x1b").plain == "[bold]x[/bold]\\x1b"  # no markup either


def test_fuzzed_files_do_not_flood_stderr_with_pillow_warnings(tmp_path: Path) -> None:
    """A fuzz run once printed ~1,000 Pillow warning lines; they belong in the records' flags."""
    import io

    import numpy as np

    import struct

    rng = np.random.default_rng(17)
    buf = io.BytesIO()
    Image.fromarray(textured(64, 64)).save(buf, format="JPEG", quality=90)
    jpg = buf.getvalue()
    d = tmp_path / "fuzz"
    d.mkdir()
    for i in range(40):  # EXIF whose IFD entries point past its end, with random bytes
        exif = bytearray(b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x04" + bytes(rng.integers(0, 256, 48, dtype=np.uint8)))
        app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + bytes(exif)
        (d / f"f{i:02d}.jpg").write_bytes(jpg[:2] + app1 + jpg[2:])
    out = tmp_path / "r.jsonl"
    proc = _detect("scan", str(d), "--jobs", "1", "-q", "--jsonl", str(out), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()][:-1]
    assert len(recs) == 40
    assert any(q["code"] == "decoder_warning" for r in recs for q in r["quality_flags"])
