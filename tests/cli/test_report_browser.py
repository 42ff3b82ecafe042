"""The HTML report in a real headless browser: hostile strings stay text, nothing reaches out."""

from __future__ import annotations

import http.server
import shutil
import socketserver
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from _helpers import textured
from cli.main import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")]


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x")

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def test_hostile_report_in_headless_chromium(tmp_path: Path) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), _Counter)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        d = tmp_path / "in"
        d.mkdir()
        payload = (
            f"<script>document.title='pwned'</script><img src=http://127.0.0.1:{port}/img>"
            f"<link rel=stylesheet href=http://127.0.0.1:{port}/css>"
        )
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", payload + "\nSteps: 20, Sampler: Euler a, Seed: 1")
        Image.fromarray(textured(200, 200)).save(d / "meta.png", pnginfo=info)
        name = f"<script>document.title='pwned2'<\\script><img src=http:\\\\127.0.0.1:{port}\\f>.png"
        Image.fromarray(textured(200, 200, seed=3)).save(d / name)
        html = tmp_path / "r.html"
        r = CliRunner().invoke(main, ["scan", str(d), "-q", "--jobs", "0", "--html", str(html)])
        assert r.exit_code in (0, 1), r.output
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                 "--virtual-time-budget=3000", "--dump-dom", html.as_uri()],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        dom = proc.stdout
        assert "<html" in dom.lower(), proc.stderr[-2000:]
        title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "pwned" not in title
        assert _Counter.hits == [], f"the report made requests: {_Counter.hits}"
        # our own script ran under the CSP: it filled in the card images for page 1
        assert 'src="data:image/' in dom
        # the hostile strings are present, as text
        assert "document.title=&#39;pwned&#39;" in dom or "document.title='pwned'" in dom.replace("&#39;", "'")
        assert "<script>document.title" not in dom
    finally:
        server.shutdown()
        server.server_close()
