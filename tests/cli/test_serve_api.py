"""``detect serve``'s JSON API, through FastAPI's TestClient with real worker processes."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from _helpers import encode, png_with_ihdr, textured  # noqa: E402
from cli.main import main  # noqa: E402
from cli.serve import is_loopback  # noqa: E402
from cli.web.app import CSP, LOOPBACK_HOSTS, _SecurityMiddleware, create_app, describe_content, sniff_image_format  # noqa: E402
from detectors.record import LABELS  # noqa: E402

MAX_BYTES = 1_000_000
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def client():
    app = create_app(max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_concurrent=1, queue_size=1, timeout_s=60)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def png() -> bytes:
    return encode(Image.fromarray(textured(256, 256, seed=5)), "PNG")


def _post(client: TestClient, data: bytes, name: str = "photo.png", ctype: str = "image/png", url: str = "/api/v1/analyze"):
    return client.post(url, files={"file": (name, data, ctype)})


def test_success_returns_the_scan_record(client: TestClient, png: bytes) -> None:
    r = _post(client, png, name="source photo.png")
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["record_type"] == "image" and rec["schema_version"] == "1.0"
    assert rec["status"] == "ok" and rec["error"] is None
    assert rec["label"] in LABELS and rec["label"] != "error"
    assert rec["file"]["path"] == "source photo.png"
    assert rec["file"]["format"] == "PNG" and (rec["file"]["width"], rec["file"]["height"]) == (256, 256)
    assert rec["file"]["sha256"] == hashlib.sha256(png).hexdigest()
    assert rec["file"]["mtime_ns"] is None
    assert {d["name"] for d in rec["detectors"]} >= {"spectral", "c2pa", "generator_metadata"}
    # the same analysis as detect scan's pipeline
    from detectors.pipeline import Pipeline

    ref = Pipeline().analyze_bytes(png, name="source photo.png").record
    assert rec["label"] == ref["label"] and rec["score"] == ref["score"]
    assert [d["score"] for d in rec["detectors"]] == [d["score"] for d in ref["detectors"]]
    assert r.headers["cache-control"] == "no-store"


def test_heic_from_a_phone_is_decoded(client: TestClient) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    try:
        pillow_heif.from_pillow(Image.fromarray(textured(200, 300, seed=2))).save(buf, format="HEIF", quality=90)
    except Exception as exc:  # noqa: BLE001 - a libheif built without an encoder
        pytest.skip(f"cannot encode HEIC here: {exc}")
    r = _post(client, buf.getvalue(), name="IMG_0001.HEIC", ctype="application/octet-stream")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok" and r.json()["file"]["format"] in ("HEIF", "HEIC")


def test_card_endpoint_gives_card_images_and_self_contained_html(client: TestClient, png: bytes) -> None:
    name = "<b>x</b> & 'q'.png"
    r = _post(client, png, name=name, url="/api/v1/card")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["record"]["file"]["path"] == name
    card = body["card"]
    assert card["path"] == name and card["label"] in LABELS and card["detectors"]
    assert {f["kind"] for f in card["figures"]} == {"thumbnail", "crops", "surprise", "residual", "spectrum"}
    assert all(body["images"][f["key"]].startswith("data:image/") for f in card["figures"])
    html = body["report_html"]
    assert 'http-equiv="Content-Security-Policy"' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", body["download_name"])


def test_too_large_is_413_with_a_reason(client: TestClient) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES + 10)
    r = _post(client, data)
    assert r.status_code == 413
    assert r.json()["code"] == "too_large" and "limit" in r.json()["detail"]


def test_too_many_pixels_is_413_with_a_reason(client: TestClient) -> None:
    r = _post(client, png_with_ihdr(2000, 2000), name="bomb.png")
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_many_pixels"
    assert "4,000,000" in r.json()["detail"] and "1,000,000" in r.json()["detail"]


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
        (b"<html><script>alert(1)</script></html>", "HTML"),
        (b"PK\x03\x04" + bytes(100), "ZIP"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video"),
    ],
)
def test_wrong_type_is_415_from_magic_bytes(client: TestClient, data: bytes, what: str) -> None:
    r = _post(client, data, name="photo.jpg", ctype="image/jpeg")  # the name and declared type lie
    assert r.status_code == 415, r.text
    assert r.json()["code"] == "unsupported_type" and what in r.json()["detail"]


def test_malformed_requests_are_4xx(client: TestClient, png: bytes) -> None:
    r = client.post("/api/v1/analyze", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 415 and r.json()["code"] == "not_multipart"
    r = client.post("/api/v1/analyze", files={"other": ("a.png", png, "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "no_file"
    r = client.post("/api/v1/analyze", files=[("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))])
    assert r.status_code == 422 and r.json()["code"] == "several_files"
    r = _post(client, b"")
    assert r.status_code == 422 and r.json()["code"] == "empty"


def test_corrupt_image_is_200_with_an_error_record(client: TestClient, png: bytes) -> None:
    """Decided: an image's magic bytes but broken content is analysed and fails, as in detect scan."""
    r = _post(client, png[: len(png) // 3], name="cut.png")
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["status"] == "error" and rec["label"] == "error"
    assert rec["error"]["code"] in ("truncated", "decode_error") and rec["error"]["message"]


def test_concurrent_uploads_get_200_or_503_never_500(client: TestClient, png: bytes) -> None:
    n = 8
    barrier = threading.Barrier(n)
    out: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def hit(i: int) -> None:
        barrier.wait()
        r = _post(client, png, name=f"c{i}.png")
        with lock:
            out.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = [c for c, _ in out]
    assert len(codes) == n
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 2  # one running plus one queued are always admitted
    assert all(ra is not None and int(ra) >= 1 for c, ra in out if c == 503)
    assert _post(client, png).status_code == 200  # and the server is still fine


def test_full_queue_gives_503_with_retry_after(client: TestClient, png: bytes) -> None:
    desk = client.app.state.desk
    saved = desk.pending
    desk.pending = desk.capacity  # as if every slot were taken
    try:
        r = _post(client, png)
    finally:
        desk.pending = saved
    assert r.status_code == 503 and r.json()["code"] == "busy"
    assert int(r.headers["retry-after"]) >= 1


def test_timeout_kills_the_worker_and_gives_an_error_record(client: TestClient, png: bytes) -> None:
    pool = client.app.state.desk.pool
    saved = pool.timeout_s
    pool.timeout_s = 0.001
    try:
        r = _post(client, png, name="slow.png")
    finally:
        pool.timeout_s = saved
    assert r.status_code == 200 and r.json()["error"]["code"] == "timeout"
    assert _post(client, png).json()["status"] == "ok"  # a fresh worker took over


def test_security_headers_and_no_external_resources(client: TestClient, png: bytes) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe" not in CSP and "default-src 'none'" in CSP
    assert f'content="{CSP}"' in page.text  # the same policy as a meta tag
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "onclick" not in page.text.lower() and "<script>" not in page.text  # no inline script or handlers
    for path in ("/static/desk.js", "/static/desk.css", "/static/report.css", "/static/api.js", "/api"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
        # nothing that would load from elsewhere: no absolute src/href, no CSS url()/@import, no URL in scripts
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.text), path
        assert not re.search(r"url\(|@import", r.text), path
        if path.endswith(".js"):
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", r.text), path
        assert "innerHTML" not in r.text and "insertAdjacentHTML" not in r.text and "eval(" not in r.text
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/nope.js").status_code == 404
    assert "content-security-policy" in _post(client, png).headers
    assert "content-security-policy" in _post(client, b"nope").headers


def test_openapi_documents_the_api_and_docs_that_load_a_cdn_are_off(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/analyze"]["post"]
    assert "multipart/form-data" in op["requestBody"]["content"]
    assert {"200", "413", "415", "422", "503"} <= set(op["responses"])
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    limits = client.get("/api/v1/limits").json()
    assert limits["max_bytes"] == MAX_BYTES and limits["max_pixels"] == MAX_PIXELS and limits["queue_size"] == 1


def test_logs_hold_counts_and_timings_but_no_file_name(client: TestClient, png: bytes, caplog: pytest.LogCaptureFixture) -> None:
    secret = "confidential-source-4711"
    with caplog.at_level(logging.DEBUG):
        assert _post(client, png, name=f"{secret}.png").status_code == 200
        assert _post(client, b"%PDF-1.4", name=f"{secret}.pdf").status_code == 415
    assert secret not in caplog.text
    assert "testclient" not in caplog.text  # no client address either
    msgs = [r.getMessage() for r in caplog.records if r.name == "cli.serve"]
    assert any("analysis finished in" in m for m in msgs) and any("refused (unsupported_type)" in m for m in msgs)


def test_host_guard_refuses_foreign_host_headers() -> None:
    async def ok(scope, receive, send):  # noqa: ANN001
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = _SecurityMiddleware(ok, allowed_hosts=LOOPBACK_HOSTS)
    assert TestClient(guarded, base_url="http://127.0.0.1:8000").get("/").status_code == 200
    assert TestClient(guarded, base_url="http://localhost:8000").get("/").status_code == 200
    assert TestClient(guarded, base_url="http://[::1]:8000").get("/").status_code == 200
    r = TestClient(guarded, base_url="http://attacker.example:8000").get("/")
    assert r.status_code == 400 and r.headers["content-security-policy"] == CSP


def test_cross_origin_posts_are_refused(client: TestClient, png: bytes) -> None:
    r = client.post("/api/v1/analyze", files={"file": ("a.png", png, "image/png")}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["code"] == "cross_origin"
    r = client.post("/api/v1/analyze", files={"file": ("a.png", png, "image/png")}, headers={"origin": "null"})
    assert r.status_code == 403
    r = client.post("/api/v1/analyze", files={"file": ("a.png", png, "image/png")}, headers={"origin": "http://testserver"})
    assert r.status_code == 200


def test_a_crashed_worker_gives_an_error_record_and_is_replaced(client: TestClient, png: bytes) -> None:
    pool = client.app.state.desk.pool
    victim = pool._workers[0].proc
    victim.kill()  # as a decoder crash on a hostile file would
    victim.join(timeout=10)
    r = _post(client, png, name="crash.png")
    assert r.status_code == 200 and r.json()["error"]["code"] == "worker_crashed"
    assert _post(client, png).json()["status"] == "ok"


def test_sniffing() -> None:
    assert sniff_image_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_image_format(encode(Image.fromarray(textured(8, 8)), "WEBP")) == "WEBP"
    assert sniff_image_format(b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heicmiaf") == "HEIF"
    assert sniff_image_format(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") == "AVIF"
    assert sniff_image_format(b"GIF89a") == "GIF" and sniff_image_format(b"hello") is None
    assert "SVG" in describe_content(b'<?xml version="1.0"?><svg xmlns="x"/>')
    assert describe_content(np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()) == "unrecognised binary data"


def test_cli_lists_serve_and_loopback_detection(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["--help"])
    assert "serve" in r.output
    r = CliRunner().invoke(main, ["serve", "--help"])
    assert r.exit_code == 0 and "--host" in r.output and "--port" in r.output and "127.0.0.1" in r.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


# --------------------------------------------------------------------------- #
# Read deadlines and per-client caps, with real slow connections on 127.0.0.1
# (issue 17, point 7). Every loop below is bounded in count and time.
# --------------------------------------------------------------------------- #

_SERVER = (
    "import sys, uvicorn\n"
    "from cli.serve import uvicorn_log_config\n"
    "from cli.web.app import create_app\n"
    "app = create_app(max_concurrent=1, queue_size=1, timeout_s=60, body_timeout_s=float(sys.argv[2]), max_per_client=13)\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_config=uvicorn_log_config(), access_log=False)\n"
)


def _multipart(data: bytes, name: str = "slow.png") -> tuple[bytes, str]:
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name.encode() + b"\"\r\n"
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--XyZ--\r\n"
    )
    return body, "multipart/form-data; boundary=XyZ"


class _SlowClient:
    """A raw loopback connection that sends an upload's headers, then its body one byte per tick."""

    def __init__(self, port: int, data: bytes) -> None:
        import socket

        self.body, ctype = _multipart(data)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = (f"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(self.body)}\r\n\r\n").encode()  # fmt: skip
        self.sock.sendall(head + self.body[:20])
        self.sent = 20
        self.answer = b""
        self.closed = False
        self.t0 = time.monotonic()
        self.t_answer: float | None = None

    def tick(self) -> None:
        """Send one more byte (unless answered); read whatever the server sent."""
        import select

        if self.closed:
            return
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                self.answer += chunk
                self.t_answer = self.t_answer or time.monotonic()
            else:
                self.closed = True
                return
        if not self.answer and self.sent < len(self.body) - 1:
            try:
                self.sock.send(self.body[self.sent : self.sent + 1])
                self.sent += 1
            except OSError:
                self.closed = True

    @property
    def status(self) -> int | None:
        m = re.match(rb"HTTP/1\.1 (\d{3})", self.answer)
        return int(m.group(1)) if m else None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def slow_server():
    import socket
    import subprocess
    import sys

    import httpx

    from _helpers import REPO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deadline_s = 6.0
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(deadline_s)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # at most 120 s for the workers to start
            try:
                if httpx.get(url + "/api/v1/limits", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stderr.read()}")
            time.sleep(0.5)
        else:
            pytest.fail("server did not start in 120 s")
        yield {"port": port, "url": url, "proc": proc, "deadline_s": deadline_s}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_slow_bodies_hold_no_queue_slot_get_408_and_a_client_cap_gives_429(slow_server: dict, png: bytes) -> None:
    """12 connections sending 1 byte per 0.25 s once kept every other upload at 503 (queue of 2 here)."""
    import httpx

    port, url, deadline_s = slow_server["port"], slow_server["url"], slow_server["deadline_s"]
    slow = [_SlowClient(port, png) for _ in range(12)]
    try:
        for _ in range(4):  # 1 s of trickling: the slow bodies are all being read
            for c in slow:
                c.tick()
            time.sleep(0.25)
        t0 = time.monotonic()
        r = httpx.post(url + "/api/v1/analyze", files={"file": ("ok.png", png, "image/png")}, timeout=60)
        for c in slow:
            c.tick()
        assert r.status_code == 200, r.text  # old code: 503 busy, every slot held by a slow reader
        assert r.json()["status"] == "ok"
        assert time.monotonic() - t0 < 30
        # 14 more at once from the same address: whatever is still in progress, the cap (13) is passed
        extra = [_SlowClient(port, png) for _ in range(14)]
        for _ in range(24):  # at most 6 s
            for c in slow + extra:
                c.tick()
            time.sleep(0.25)
        refused = [c for c in extra if c.status == 429]
        assert refused and all(b"too_many_requests" in c.answer for c in refused)
        assert all(c.t_answer - c.t0 < 4.5 for c in refused)  # at once (a 2 s drain), not at the 6 s deadline
        slow.extend(c for c in extra if c not in refused)
        assert len(slow) - sum(c.status == 408 for c in slow) <= 13  # never more in progress than the cap
        for _ in range(int((deadline_s + 8) / 0.25)):  # every slow body hits the read deadline
            for c in slow:
                c.tick()
            if all(c.answer or c.closed for c in slow):
                break
            time.sleep(0.25)
        assert [c.status for c in slow] == [408] * len(slow), [c.answer[:40] for c in slow]
        assert all(b"body_timeout" in c.answer for c in slow)
        assert all(c.t_answer - c.t0 >= deadline_s - 0.5 for c in slow)  # held until the deadline, then cut
        for _ in range(20):  # and the server closes those connections
            for c in slow:
                c.tick()
            if all(c.closed for c in slow):
                break
            time.sleep(0.1)
        assert all(c.closed for c in slow)
    finally:
        for c in slow:
            c.close()
    assert httpx.get(url + "/api/v1/limits", timeout=5).json()["body_timeout_s"] == deadline_s


def test_a_client_leaving_mid_body_is_one_log_line(slow_server: dict, png: bytes) -> None:
    import httpx

    port, url, proc = slow_server["port"], slow_server["url"], slow_server["proc"]
    c = _SlowClient(port, png)
    for _ in range(4):
        c.tick()
        time.sleep(0.1)
    c.close()  # gone with most of its body unsent
    time.sleep(1.0)
    assert httpx.post(url + "/api/v1/analyze", files={"file": ("ok.png", png, "image/png")}, timeout=60).status_code == 200
    proc.terminate()
    proc.wait(timeout=30)
    log = proc.stderr.read()
    assert log.count("client disconnected before its upload was complete") == 1, log[-2000:]
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


def test_openapi_upload_needs_a_non_empty_file(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for route in ("/api/v1/analyze", "/api/v1/card"):
        body = schema["paths"][route]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert body["properties"]["file"]["minLength"] == 1
        assert {"408", "429"} <= set(schema["paths"][route]["post"]["responses"])
    assert _post(client, b"").json()["code"] == "empty"
