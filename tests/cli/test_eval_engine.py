"""``detect eval`` and ``detect calibrate`` run on the engine: the per-file time limit and clean Ctrl-C.

A file that hangs (the ``test_hang_some`` detector sleeps an hour on paths
containing ``hang``, as a decoder stuck on a hostile file would; a FIFO hangs
the read itself) costs one error row instead of hanging the run, as in
``detect scan``. A Ctrl-C (SIGINT to a real process group, as a terminal sends
it) leaves scores.csv whole, and running the command again resumes to the same
scores as an uninterrupted run.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from _helpers import REPO, textured, write_manifest
from cli.main import main


def _dataset(root: Path, *, hang: bool = False, fifo: bool = False, n: int = 3) -> Path:
    """calib/test real and AI files (AI ones with a period-8 grid); optionally a hanging file and a FIFO.

    ``test_hang_some`` hangs on any path containing ``hang``: test names must not contain it.
    """
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    seed = 100
    for split in ("calib", "test"):
        for i in range(n):
            for label in ("real", "ai"):
                seed += 1
                arr = textured(140, 140, seed=seed)
                if label == "ai":
                    arr[::8, :, :] //= 2
                    arr[:, ::8, :] //= 2
                name = f"{split}_{label}_{i}.png"
                if hang and i == 1 and label == "real":
                    name = f"{split}_{label}_{i}_hang.png"
                Image.fromarray(arr).save(root / name)
                rows.append({"path": name, "label": label, "generator": "grid" if label == "ai" else "", "split": split})
        if fifo and hasattr(os, "mkfifo"):
            os.mkfifo(root / f"{split}_fifo.png")
            rows.append({"path": f"{split}_fifo.png", "label": "ai", "generator": "grid", "split": split})
    return write_manifest(root / "m.csv", rows)


def _scores(out: Path) -> list[dict]:
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_eval_timeout_rows_for_stuck_files(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path / "d", hang=True, fifo=True)
    out = tmp_path / "e"
    t0 = time.monotonic()
    r = CliRunner().invoke(main, [
        "eval", str(manifest), "--split", "test", "--out", str(out), "-j", "1", "--timeout", "3",
        "--detector", "test_spectral", "--detector", "test_hang_some", "--perturb", "none", "--no-format-check",
    ])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 120
    fused = {Path(x["path"]).name: x for x in _scores(out) if x["detector"] == "fused"}
    assert len(fused) == 6 + (1 if hasattr(os, "mkfifo") else 0)
    hang = fused["test_real_1_hang.png"]
    assert hang["score"] == "" and hang["status"].startswith("error: timeout:") and "time limit" in hang["status"]
    if hasattr(os, "mkfifo"):
        assert fused["test_fifo.png"]["status"].startswith("error: timeout:")
    assert all(x["status"] == "ok" and x["score"] != "" for n, x in fused.items() if "hang" not in n and "fifo" not in n)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == (2 if hasattr(os, "mkfifo") else 1)


def test_calibrate_drops_stuck_files_from_the_fit(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path / "d", hang=True, fifo=True, n=4)
    cal = tmp_path / "cal.json"
    r = CliRunner().invoke(main, [
        "calibrate", str(manifest), "--split", "calib", "--perturb", "none", "--detector", "test_spectral",
        "--detector", "test_hang_some", "-j", "1", "--timeout", "3", "--generated", "0", "--reconstructions", "0", "--out", str(cal),
    ])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "calib_real_1_hang.png (none): error: timeout:" in r.output and "left out of the fit" in r.output
    if hasattr(os, "mkfifo"):
        assert "calib_fifo.png (none): error: timeout:" in r.output
    doc = json.loads(cal.read_text())
    assert len(doc["calibration_hashes"]) == 7  # the 8 regular files of the split but the one that hung


def _eval_cmd(manifest: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", "eval", str(manifest), "--split", "test", "--out", str(out), "-j", "1",
            "--detector", "test_slow", "--perturb", "none,jpeg90,jpeg75", "--no-format-check"]  # fmt: skip


def test_ctrl_c_in_eval_leaves_resumable_scores(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path / "d", n=4)  # 8 test files x 3 perturbations, 0.3 s each
    full = tmp_path / "full"
    done = subprocess.run(_eval_cmd(manifest, full), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "part"
    proc = subprocess.Popen(_eval_cmd(manifest, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "scores.csv").exists() and sum(1 for x in _scores(out) if x["detector"] == "fused") >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the whole process group, as a terminal's Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err
    part = _scores(out)
    n_part = sum(1 for x in part if x["detector"] == "fused")
    assert 3 <= n_part < 24
    # every job's rows are whole: each (path, perturbation) has its detector row and its fused row
    per_key = Counter((x["path"], x["perturbation"]) for x in part)
    assert set(per_key.values()) == {2}
    again = subprocess.run(_eval_cmd(manifest, out), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    key = lambda x: tuple(sorted(x.items()))  # noqa: E731
    assert sorted(map(key, _scores(out))) == sorted(map(key, _scores(full)))


def test_eval_and_the_desk_start_no_processes_of_their_own() -> None:
    """Only cli/engine/ starts processes: no multiprocessing or ProcessPoolExecutor in eval or the desk."""
    for rel in ("cli/evaluate.py", "cli/web/pool.py", "cli/web/app.py", "cli/scan.py"):
        tree = ast.parse((REPO / rel).read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {"multiprocessing", "subprocess"} & mods, rel
        assert "ProcessPoolExecutor" not in names and "Process" not in names, rel
        assert not any(isinstance(n, ast.Global) for n in ast.walk(tree)), rel


def test_engine_modules_import_no_circle_and_keep_no_module_state() -> None:
    """cli/engine/ imports run one way (config/signals -> worker/jobs -> engines -> base), with no module globals."""
    pkg = REPO / "cli" / "engine"
    deps: dict[str, set[str]] = {}
    for f in pkg.glob("*.py"):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        deps[f.stem] = {m.split(".")[2] for m in mods if m.startswith("cli.engine.")}
        assert not any(isinstance(n, ast.Global) for n in ast.walk(tree)), f
    deps.pop("__init__")

    def reach(start: str, seen: set[str]) -> set[str]:
        for d in deps.get(start, ()):
            if d not in seen:
                seen.add(d)
                reach(d, seen)
        return seen

    for m in deps:
        assert m not in reach(m, set()), f"import circle through cli.engine.{m}"
    assert not any(m.startswith("cli.") and not m.startswith("cli.engine") for f in pkg.glob("*.py")
                   for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))) if isinstance(n, ast.ImportFrom) and n.module
                   for m in [n.module])  # fmt: skip


def test_ctrl_c_in_calibrate_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path / "d", n=4)
    cal = tmp_path / "cal.json"
    cmd = [sys.executable, "-m", "cli.main", "calibrate", str(manifest), "--split", "calib", "--perturb", "none,jpeg90,jpeg75,jpeg60",
           "--detector", "test_slow", "-j", "1", "--generated", "0", "--reconstructions", "0", "--out", str(cal)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
    time.sleep(5.0)  # the workers are running the 32 jobs of 0.3 s
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped; nothing was written" in err and "Traceback" not in err and "Aborted" not in err
    assert not cal.exists()
