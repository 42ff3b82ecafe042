"""``detect scan`` stops cleanly in every phase, and resumes safely from a damaged report.

Interrupts are sent to a real scan's whole process group (``os.killpg``), as a
terminal's Ctrl-C is, so the worker processes receive them too: the scan must
exit 130 (SIGINT) or 143 (SIGTERM), print no traceback (parent or worker) and
no ``Aborted!``, and leave a JSONL whose last line is the summary. Resume
reads a malformed record as a warning naming its line, and ``--resume-hash``
never reads a FIFO in the parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from _helpers import REPO, textured

posix_only = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")


def _folder(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(textured(120, 130, seed=i)).save(root / name)
    return root


def _scan(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "scan", *args, "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
    )  # fmt: skip


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text(encoding="utf-8").splitlines()) >= n:
            return
        time.sleep(0.005)


def _check_stopped(proc: subprocess.Popen, out: Path, code: int) -> list[dict]:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "Aborted" not in err, err
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines and lines[-1]["record_type"] == "summary" and lines[-1]["exit_status"] == code
    assert all(x["record_type"] == "image" for x in lines[:-1])
    assert lines[-1]["n_files"] == len(lines) - 1
    return lines[:-1]


@posix_only
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_stop_during_worker_start_up(tmp_path: Path, sig: int, code: int) -> None:
    d = _folder(tmp_path / "in", [f"{i}.png" for i in range(6)])
    out = tmp_path / "r.jsonl"
    proc = _scan([str(d), "--jobs", "2", "--detector", "test_slow", "--jsonl", str(out)])
    _wait_lines(out, 0, proc)  # the report is open: listing and worker start-up follow at once
    os.killpg(proc.pid, sig)
    recs = _check_stopped(proc, out, code)
    assert len(recs) < 6


@posix_only
def test_ctrl_c_while_the_network_loads_in_process(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    d = _folder(tmp_path / "in", [f"{i}.png" for i in range(3)])
    out = tmp_path / "r.jsonl"
    proc = _scan([str(d), "--jobs", "0", "--detector", "test_spectral", "--detector", "test_cnn", "--jsonl", str(out)])
    _wait_lines(out, 0, proc)  # the report is open; the CNN (torch) is being imported and built
    os.killpg(proc.pid, signal.SIGINT)
    _check_stopped(proc, out, 130)


@posix_only
def test_second_ctrl_c_and_a_sigterm_during_shutdown(tmp_path: Path) -> None:
    # three files analyse at once; the fourth hangs its worker, so stopping it takes the 2 s join
    d = _folder(tmp_path / "in", ["a0.png", "a1.png", "a2.png", "b_hang.png", "c.png"])
    out = tmp_path / "r.jsonl"
    proc = _scan([str(d), "--jobs", "1", "--detector", "test_spectral", "--detector", "test_hang_some", "--jsonl", str(out)])
    _wait_lines(out, 3, proc)
    time.sleep(0.3)  # the worker is now inside b_hang.png
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.4)
    os.killpg(proc.pid, signal.SIGINT)  # a second Ctrl-C while the scan stops its workers
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    recs = _check_stopped(proc, out, 130)
    assert [Path(r["file"]["path"]).name for r in recs] == ["a0.png", "a1.png", "a2.png"]


def test_resume_skips_a_malformed_record_with_a_warning_naming_its_line(tmp_path: Path) -> None:
    d = _folder(tmp_path / "in", ["a.png", "b.png", "c.png"])
    full = tmp_path / "full.jsonl"
    r = subprocess.run([sys.executable, "-m", "cli.main", "scan", str(d), "-q", "--jobs", "0", "--detector", "test_spectral", "--jsonl", str(full)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert r.returncode in (0, 1), r.stderr
    lines = full.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.jsonl"
    # line 2: an "ok" image record without a file block; line 3: one whose label is not a label
    broken = json.loads(lines[2])
    broken["label"] = "maybe"
    bad.write_text("\n".join([lines[0], '{"record_type":"image","status":"ok"}', json.dumps(broken), "[1, 2]", "7"]) + "\n")
    out = tmp_path / "again.jsonl"
    r = subprocess.run([sys.executable, "-m", "cli.main", "scan", str(d), "-q", "--jobs", "0", "--detector", "test_spectral",
                        "--jsonl", str(out), "--resume", str(bad)], capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr and "KeyError" not in r.stderr
    assert f"{bad} line 2: image record not reused (" in r.stderr
    assert f"{bad} line 3: image record not reused (" in r.stderr and "'maybe'" in r.stderr
    new = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    old = [json.loads(x) for x in lines]
    assert [x["file"]["path"] for x in new[:-1]] == [x["file"]["path"] for x in old[:-1]]
    assert new[0] == old[0]  # reused as it was, timings included
    assert new[2]["label"] in ("likely_real", "inconclusive", "likely_ai") and new[2]["file"]["sha256"] == old[2]["file"]["sha256"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_resume_hash_never_reads_a_fifo_in_the_parent(tmp_path: Path) -> None:
    d = _folder(tmp_path / "in", ["a.png", "b.png", "c.png"])
    first = tmp_path / "first.jsonl"
    base = [sys.executable, "-m", "cli.main", "scan", str(d), "-q", "--jobs", "1", "--timeout", "3", "--detector", "test_spectral"]
    r = subprocess.run([*base, "--jsonl", str(first)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    (d / "c.png").unlink()
    os.mkfifo(d / "c.png")  # the same name, now a FIFO that nobody writes: reading it blocks forever
    out = tmp_path / "again.jsonl"
    t0 = time.monotonic()
    r = subprocess.run([*base, "--jsonl", str(out), "--resume", str(first), "--resume-hash"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    assert time.monotonic() - t0 < 90
    old = [json.loads(x) for x in first.read_text(encoding="utf-8").splitlines()]
    new = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert new[0] == old[0] and new[1] == old[1]  # unchanged regular files: reused by hash
    assert new[2]["file"]["path"].endswith("c.png") and new[2]["status"] == "error"
    assert new[-1]["record_type"] == "summary"


@posix_only
@pytest.mark.parametrize("second_s", [0.05, 0.3])
def test_two_ctrl_c_while_workers_start_and_the_network_loads(tmp_path: Path, second_s: float) -> None:
    """The first Ctrl-C lands while the workers spawn, the second while the parent loads the CNN (torch)."""
    pytest.importorskip("timm")
    d = _folder(tmp_path / "in", [f"{i}.png" for i in range(4)])
    out = tmp_path / "r.jsonl"
    proc = _scan([str(d), "--jobs", "2", "--detector", "test_spectral", "--detector", "test_cnn", "--jsonl", str(out)])
    _wait_lines(out, 0, proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(second_s)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    _check_stopped(proc, out, 130)
