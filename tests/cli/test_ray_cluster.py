"""``detect scan --engine ray`` on a real two-node Ray cluster on loopback, as the README's recipe starts it.

A head node (``ray start --head``) and a worker node (``ray start --address``),
both on 127.0.0.1 with Ray's token authentication (``RAY_AUTH_MODE=token``, one
shared ``RAY_AUTH_TOKEN``), then a scan in a separate process that finds the
cluster through ``RAY_ADDRESS``. Its records must equal the local engine's
(apart from timings). Both nodes run under ``ray start --block`` in their own
process groups, and the test stops exactly those groups, never other Ray
processes on the machine. Slow (about a minute): ``pytest -m slow``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from _helpers import REPO, textured

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _strip(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    rec.pop("timing", None)
    for d in rec.get("detectors", []):
        d.pop("time_s", None)
    return rec


def _records(path: Path) -> list[dict]:
    return [_strip(json.loads(x)) for x in path.read_text(encoding="utf-8").splitlines() if '"record_type": "image"' in x]


def _stop(proc: subprocess.Popen) -> None:
    """Stop one node: its whole process group (the ``ray start --block`` and every daemon it started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
            time.sleep(1.0)  # let the daemons of the group exit too
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.skipif(shutil.which("ray") is None and not (Path(sys.executable).parent / "ray").exists(), reason="no ray CLI")
def test_two_node_loopback_cluster_gives_the_local_records(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    ray_cli = str(Path(sys.executable).parent / "ray") if (Path(sys.executable).parent / "ray").exists() else "ray"
    d = tmp_path / "in"
    d.mkdir()
    for i in range(5):
        Image.fromarray(textured(150, 170, seed=i)).save(d / f"{i}.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths have a length limit
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats", "--block"]
    nodes: list[subprocess.Popen] = []
    logs = tmp_path / "ray-logs"
    logs.mkdir()
    try:
        head_cmd = [ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={ray_tmp}", *common]
        nodes.append(subprocess.Popen(head_cmd, env=env, stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        probe = f"import ray; ray.init(address='{address}', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        alive = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and alive < 1:
            r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
            alive = int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0
            time.sleep(1)
        assert alive >= 1, (logs / "head.log").read_text()[-3000:]
        worker_cmd = [ray_cli, "start", f"--address={address}", *common]
        nodes.append(subprocess.Popen(worker_cmd, env=env, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT, start_new_session=True))
        while time.monotonic() < deadline and alive < 2:
            r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
            alive = int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0
            time.sleep(1)
        assert alive == 2, (logs / "worker.log").read_text()[-3000:]

        dets = ["--detector", "test_spectral", "--detector", "test_cnn"]  # the CNN runs batched in actors
        on_ray = tmp_path / "ray.jsonl"
        r = subprocess.run([sys.executable, "-m", "cli.main", "scan", str(d), "-q", *dets, "--engine", "ray", "--jobs", "2",
                            "--batch-size", "2", "--jsonl", str(on_ray)],
                           env=dict(env, RAY_ADDRESS=address), cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert r.returncode in (0, 1), r.stderr[-3000:]
        local = tmp_path / "local.jsonl"
        r = subprocess.run([sys.executable, "-m", "cli.main", "scan", str(d), "-q", *dets, "--jobs", "0", "--jsonl", str(local)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert r.returncode in (0, 1), r.stderr[-3000:]
        a, b = _records(on_ray), _records(local)
        assert len(a) == 6 and a == b
        assert any(x["name"] == "cnn" and x["status"] == "ok" for x in a[0]["detectors"])
        # a client without the token is refused
        bad = dict(env, RAY_AUTH_TOKEN="not-the-token")
        r = subprocess.run([sys.executable, "-c", probe], env=bad, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0
    finally:
        for p in reversed(nodes):
            _stop(p)
        shutil.rmtree(ray_tmp, ignore_errors=True)
