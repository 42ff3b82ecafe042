"""``detect serve`` in a real headless Chromium: uploads, verdicts, downloads, hostile names stay text."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from _helpers import REPO, encode, textured

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if p and os.path.exists(p)), None)
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")]

REAL = REPO / "examples" / "real" / "canon_powershot_g2_IMG_0315.jpg"  # likely_real with the shipped calibration
AI = REPO / "examples" / "ai" / "invokeai_sd1_preflight_000009.png"
HOSTILE = "<script>alert(1)</script>.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def server_url():
    """``detect serve --port 0`` in a subprocess; yields the address it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", "0", "--workers", "2", "--queue", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"ready at (http://127\.0\.0\.1:\d+/) \(loopback only\)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            proc.kill()
            pytest.fail(f"detect serve did not start: {proc.stderr.read()[-3000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    # the server's log has counts and timings, never the uploaded names
    err = proc.stderr.read()
    assert "alert(1)" not in err and "canon_powershot" not in err and "invokeai" not in err, err
    assert "analysis finished in" in err


def _cards(page) -> list[dict]:  # noqa: ANN001
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#results article.card:not(.pending)')).map(c => ({
            path: c.querySelector('h3.path').textContent,
            label: c.dataset.label,
            badge: c.querySelector('.badge').textContent,
            provenance: c.querySelectorAll('.provenance').length,
            detectors: c.querySelectorAll('table.detectors tbody tr:not(.det-notes)').length,
            images: Array.from(c.querySelectorAll('.visuals img')).map(i => [i.alt, i.src.slice(0, 15), i.naturalWidth]),
            flags: c.querySelectorAll('.flags li').length,
        }))"""
    )


def test_verification_desk_in_headless_chromium(server_url: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    dialogs: list[str] = []
    foreign: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on(
                "request",
                lambda r: None if r.url.startswith((server_url, "data:", "blob:")) else foreign.append(r.url),
            )
            page.goto(server_url)
            assert page.title().startswith("Verification desk")
            assert page.evaluate("document.documentElement.classList.contains('js')")  # our script ran under the CSP

            # a real photo and an AI image, chosen together
            done_cards = page.locator("#results article.card:not(.pending)")
            page.set_input_files("#files", [str(REAL), str(AI)])
            done_cards.nth(1).wait_for(timeout=60_000)
            cards = {c["path"]: c for c in _cards(page)}
            real, ai = cards[REAL.name], cards[AI.name]
            assert (real["label"], real["badge"]) == ("likely_real", "Likely real")
            assert (ai["label"], ai["badge"]) == ("ai_confirmed", "AI confirmed")
            assert ai["provenance"] >= 1  # InvokeAI metadata panel
            for c in (real, ai):
                assert c["detectors"] >= 5
                kinds = {alt: (src, w) for alt, src, w in c["images"]}
                assert any("residual" in a for a in kinds) and any("spectrum" in a for a in kinds)
                assert "CNN crop scores (red = leans AI)" in kinds
                assert all(src.startswith("data:image/") and w > 0 for src, w in kinds.values())

            # downloads: the card as self-contained HTML, the record as JSON
            ai_card = page.locator("article.card", has=page.locator("h3.path", has_text=AI.name))
            with page.expect_download() as dl:
                ai_card.locator("button.dl-html").click()
            html_path = tmp_path / dl.value.suggested_filename
            dl.value.save_as(html_path)
            html = html_path.read_text(encoding="utf-8")
            assert html_path.name.endswith(".card.html")
            assert 'http-equiv="Content-Security-Policy"' in html and "AI confirmed" in html and AI.name in html
            with page.expect_download() as dl:
                ai_card.locator("button.dl-json").click()
            rec = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
            assert rec["label"] == "ai_confirmed" and rec["file"]["path"] == AI.name

            # a file name with a script tag is shown as text and runs nothing
            png = encode(Image.fromarray(textured(200, 200, seed=9)), "PNG")
            page.set_input_files("#files", [{"name": HOSTILE, "mimeType": "image/png", "buffer": png}])
            done_cards.nth(2).wait_for(timeout=60_000)
            paths = [c["path"] for c in _cards(page)]
            assert HOSTILE in paths
            assert page.evaluate("document.querySelectorAll('#results script, #results img:not([src^=\"data:\"])').length") == 0
            page.wait_for_timeout(300)
            assert dialogs == [], f"a dialog fired: {dialogs}"
            assert foreign == [], f"the page requested other origins: {foreign}"

            page.evaluate("window.scrollTo(0, 0)")
            shot = tmp_path / "serve.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            try:
                shutil.copyfile(shot, "/tmp/serve.png")
            except OSError:
                pass
        finally:
            browser.close()
