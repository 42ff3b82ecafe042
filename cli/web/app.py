"""The verification desk: a FastAPI app serving one page and a JSON API.

Routes:

* ``GET /``: the page (drag and drop or choose images; one evidence card each).
* ``POST /api/v1/analyze``: multipart upload (field ``file``) -> the scan record.
* ``POST /api/v1/card``: the same upload -> record, card display model, images
  and the self-contained HTML card (what the page uses).
* ``GET /api/v1/limits``: the limits below, for clients.
* ``GET /api`` and ``GET /openapi.json``: API documentation. FastAPI's own
  ``/docs`` and ``/redoc`` are off: they load scripts from a CDN.

Confidentiality: uploads are read into memory (never spooled to disk), handed
to a worker process over a pipe, and dropped when the response is sent. The
server logs only counts and timings (logger ``cli.serve``), never file names,
contents, verdicts or client addresses, and contacts nothing.

Limits: the request body (``max_bytes`` plus a little multipart overhead), the
pixel count claimed by the image header (``max_pixels``, checked before
decoding), the number of analyses running at once (``max_concurrent`` worker
processes) and waiting (``queue_size``; beyond that ``503`` with
``Retry-After``), and the time of one analysis (``timeout_s``).

In front of the queue: a request is admitted to it only once its whole body
has arrived, within ``body_timeout_s`` (else ``408``, and the connection is
closed), so slow senders never hold a queue slot; one client address may have
at most ``max_per_client`` requests in progress (reading, waiting or running;
beyond that ``429``), and at most ``max_reading`` bodies are read at once. A
client that disconnects mid-body is logged as one line.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cli.web.pool import AnalysisPool
from detectors.record import utc_now

__all__ = [
    "CSP",
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_PER_CLIENT",
    "DEFAULT_MAX_READING",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_TIMEOUT_S",
    "LOOPBACK_HOSTS",
    "create_app",
    "describe_content",
    "sniff_image_format",
]

#: Largest accepted upload (bytes of the file itself).
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Largest accepted image, in pixels claimed by its header (checked before decoding).
DEFAULT_MAX_PIXELS = 100_000_000
#: Analyses running at once (one worker process each).
DEFAULT_MAX_CONCURRENT = max(1, min(4, os.cpu_count() or 1))
#: Uploads that may wait for a worker before the server answers 503.
DEFAULT_QUEUE_SIZE = 8
#: Time limit of one analysis, in seconds.
DEFAULT_TIMEOUT_S = 120.0
#: The whole request body must arrive within this many seconds (else 408).
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Requests one client address may have in progress at once (else 429).
DEFAULT_MAX_PER_CLIENT = 8
#: Request bodies read at once, all clients together (else 503).
DEFAULT_MAX_READING = 32
#: A refused request's body is drained for at most this long, so the client can read the answer.
_DRAIN_S = 2.0
#: Host names accepted when the server is bound to loopback (DNS-rebinding guard).
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")

#: Room for the multipart envelope (boundaries, part headers, a long file name).
_MULTIPART_OVERHEAD = 64 * 1024
#: A refused body is read and discarded up to this many bytes, so the client sees the answer.
_DRAIN_LIMIT = 1024 * 1024 * 1024
_MAX_PARTS = 16
_MAX_NAME = 255

#: The one Content-Security-Policy of every response (also in the page's meta tag).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ("cache-control", "no-store"),
)

_STATIC = Path(__file__).resolve().parent / "static"
_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: URL name -> (file, media type). Nothing else is served.
_ASSETS: dict[str, tuple[Path, str]] = {
    "desk.js": (_STATIC / "desk.js", "text/javascript; charset=utf-8"),
    "desk.css": (_STATIC / "desk.css", "text/css; charset=utf-8"),
    "api.js": (_STATIC / "api.js", "text/javascript; charset=utf-8"),
    "report.css": (_TEMPLATES / "report.css", "text/css; charset=utf-8"),
}

_log = logging.getLogger("cli.serve")


# --------------------------------------------------------------------------- #
# Content sniffing
# --------------------------------------------------------------------------- #

SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WebP", "GIF", "TIFF", "BMP", "HEIC/HEIF", "AVIF")
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2", b"miaf", b"avif", b"avis"}
)


def _ftyp_brands(data: bytes) -> set[bytes] | None:
    """Major and compatible brands of an ISO-BMFF ``ftyp`` box at the start, or ``None``."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[:4], "big")
    end = min(max(size, 16), 256, len(data))
    return {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}


def sniff_image_format(data: bytes) -> str | None:
    """The image format named by the file's first bytes (its magic number), or ``None``.

    Args:
        data: The file's bytes (only the first few hundred are read).

    Returns:
        ``"JPEG"``, ``"PNG"``, ``"GIF"``, ``"WEBP"``, ``"TIFF"``, ``"BMP"``,
        ``"HEIF"`` or ``"AVIF"``; ``None`` when the bytes are none of these.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM" and len(data) >= 26:
        return "BMP"
    brands = _ftyp_brands(data)
    if brands and brands & _HEIF_BRANDS:
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIF"
    return None


def describe_content(data: bytes) -> str:
    """A short phrase for what non-image bytes look like, for refusal messages."""
    head = data[:512]
    brands = _ftyp_brands(data)
    if brands is not None:
        return "an MP4/QuickTime video or another ISO media file, not a still image"
    checks = (
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"Rar!", "a RAR archive"),
        (b"7z\xbc\xaf", "a 7-Zip archive"),
        (b"\x7fELF", "a program"),
        (b"MZ", "a Windows program"),
        (b"\xff\x0a", "a JPEG XL image (not supported)"),
        (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image (not supported)"),
        (b"8BPS", "a Photoshop document (export it as JPEG or PNG)"),
    )
    for magic, what in checks:
        if head.startswith(magic):
            return what
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith(b"<"):
        if b"<svg" in stripped:
            return "an SVG drawing (vector images are not supported)"
        return "HTML or XML text"
    if head and sum(32 <= b < 127 or b in (9, 10, 13) for b in head) > 0.95 * len(head):
        return "plain text"
    return "unrecognised binary data"


# --------------------------------------------------------------------------- #
# Errors, security headers
# --------------------------------------------------------------------------- #


class _Refusal(Exception):
    """A request we decline, with an HTTP status, a machine code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _host_of(raw: str) -> str:
    raw = raw.strip().lower()
    if raw.startswith("["):
        return raw[1 : raw.find("]")] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


class _SecurityMiddleware:
    """Adds the security headers to every response and refuses requests from elsewhere.

    * ``allowed_hosts``: when given, a ``Host`` header naming anything else gets 400
      (a loopback server is then safe from DNS rebinding).
    * A POST whose ``Origin`` header is not this server's own origin gets 403: another
      web site open in the editor's browser cannot make the desk work for it.
      Clients that send no ``Origin`` (curl, scripts) are not affected.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.strip("[]").lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in _SECURITY_HEADERS:
                    if k not in headers:
                        headers[k] = v
            await send(message)

        headers = {k: v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get(b"host", "")
        if self.allowed is not None and _host_of(host) not in self.allowed:
            resp = JSONResponse(
                {"detail": "unexpected Host header: this server answers only on its loopback address", "code": "bad_host"},
                status_code=400,
            )
            await resp(scope, receive, send_with_headers)
            return
        origin = headers.get(b"origin")
        if scope.get("method") == "POST" and origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
            # Another web site's page (or a sandboxed one, Origin "null") posting to the desk.
            resp = JSONResponse({"detail": "cross-origin request refused", "code": "cross_origin"}, status_code=403)
            await resp(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _refusal_response(exc: _Refusal) -> JSONResponse:
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers)


# --------------------------------------------------------------------------- #
# Upload reading (in memory, bounded)
# --------------------------------------------------------------------------- #


@dataclass
class _Upload:
    data: bytes
    name: str
    content_type: str


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n % (1024 * 1024) else f"{n // (1024 * 1024)} MB"


async def _discard_body(request: Request) -> None:
    """Read and drop what is left of the body (bounded), so the client can read our answer."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > _DRAIN_LIMIT:
                break
    except Exception:  # noqa: BLE001 - a client that went away, a body already read
        pass


def _parse_multipart(body: bytes, boundary: bytes) -> list[dict[str, Any]]:
    """Parts of a multipart/form-data body held in memory: ``{"headers": {...}, "data": bytes}``."""
    from python_multipart.multipart import MultipartParser

    parts: list[dict[str, Any]] = []
    state: dict[str, Any] = {"part": None, "field": bytearray(), "value": bytearray()}

    def on_part_begin() -> None:
        if len(parts) >= _MAX_PARTS:
            raise _Refusal(422, "too_many_parts", f"the form has more than {_MAX_PARTS} parts; send one file per request")
        state["part"] = {"headers": {}, "chunks": []}

    def on_header_field(d: bytes, s: int, e: int) -> None:
        state["field"] += d[s:e]

    def on_header_value(d: bytes, s: int, e: int) -> None:
        state["value"] += d[s:e]

    def on_header_end() -> None:
        state["part"]["headers"][bytes(state["field"]).lower()] = bytes(state["value"])
        state["field"], state["value"] = bytearray(), bytearray()

    def on_part_data(d: bytes, s: int, e: int) -> None:
        state["part"]["chunks"].append(d[s:e])

    def on_part_end() -> None:
        p = state["part"]
        parts.append({"headers": p["headers"], "data": b"".join(p["chunks"])})
        state["part"] = None

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    parser.write(body)
    parser.finalize()
    return parts


async def _read_upload(request: Request, max_bytes: int) -> _Upload:
    """The one file of a multipart request, read into memory with a size limit.

    Raises:
        _Refusal: 413 (too large), 415 (not multipart) or 422 (malformed, no file, several files).
    """
    from python_multipart.multipart import parse_options_header

    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not opts.get(b"boundary"):
        await _discard_body(request)
        raise _Refusal(415, "not_multipart", "send the image as multipart/form-data, in a field named 'file'")
    cap = max_bytes + _MULTIPART_OVERHEAD
    too_large = _Refusal(
        413, "too_large", f"the file is too large: the limit is {_mb(max_bytes)} (detect serve --max-mb changes it)"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        if int(declared) <= _DRAIN_LIMIT:
            await _discard_body(request)
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            del body
            await _discard_body(request)
            raise too_large
    try:
        parts = _parse_multipart(bytes(body), opts[b"boundary"])
    except _Refusal:
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several types on garbage
        raise _Refusal(422, "bad_multipart", f"the multipart body could not be parsed: {type(exc).__name__}") from None
    finally:
        del body
    files = []
    for p in parts:
        _, disp = parse_options_header(p["headers"].get(b"content-disposition", b""))
        if disp.get(b"name") == b"file":
            files.append((p, disp))
    if not files:
        raise _Refusal(422, "no_file", "no file in the request: send it in a multipart field named 'file'")
    if len(files) > 1:
        raise _Refusal(422, "several_files", "send one file per request")
    part, disp = files[0]
    raw_name = disp.get(b"filename", b"") or b""
    name = raw_name.decode("utf-8", "replace")[:_MAX_NAME] or "upload"
    data = part["data"]
    if len(data) > max_bytes:
        raise too_large
    if not data:
        raise _Refusal(422, "empty", "the file is empty (0 bytes)")
    declared_type = part["headers"].get(b"content-type", b"").decode("latin-1")[:100]
    return _Upload(data=data, name=name, content_type=declared_type)


# --------------------------------------------------------------------------- #
# The desk: limits, counters, the pool
# --------------------------------------------------------------------------- #


@dataclass
class _Desk:
    max_bytes: int
    max_pixels: int
    max_concurrent: int
    queue_size: int
    timeout_s: float
    pool: AnalysisPool
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_per_client: int = DEFAULT_MAX_PER_CLIENT
    max_reading: int = DEFAULT_MAX_READING
    pending: int = 0  # requests admitted to the queue and not answered (waiting or running)
    running: int = 0
    reading: int = 0  # bodies being read, not yet admitted
    per_client: dict[str, int] = field(default_factory=dict)  # client address -> requests in progress
    done: int = 0
    refused: int = 0
    avg_s: float = 2.0

    @property
    def capacity(self) -> int:
        return self.max_concurrent + self.queue_size

    def limits(self) -> dict[str, Any]:
        return {
            "max_bytes": self.max_bytes,
            "max_pixels": self.max_pixels,
            "max_concurrent": self.max_concurrent,
            "queue_size": self.queue_size,
            "timeout_s": self.timeout_s,
            "body_timeout_s": self.body_timeout_s,
            "max_per_client": self.max_per_client,
            "formats": list(SUPPORTED_FORMATS),
        }

    def retry_after(self) -> int:
        waiting = max(0, self.pending - self.max_concurrent)
        return int(min(60, max(1, math.ceil(self.avg_s * (waiting + 1) / self.max_concurrent))))


async def _drain(request: Request) -> None:
    """Drain a refused request's body for at most ``_DRAIN_S`` (a slow sender is then cut off)."""
    try:
        await asyncio.wait_for(_discard_body(request), timeout=_DRAIN_S)
    except asyncio.TimeoutError:
        pass


async def _read_complete_body(request: Request, desk: _Desk) -> _Upload:
    """The upload, read whole within ``desk.body_timeout_s``; refusals are counted and logged."""
    desk.reading += 1
    try:
        upload = await asyncio.wait_for(_read_upload(request, desk.max_bytes), timeout=desk.body_timeout_s)
        if sniff_image_format(upload.data) is None:
            declared = f" (declared as {upload.content_type})" if upload.content_type else ""
            raise _Refusal(
                415, "unsupported_type",
                f"not a supported image: the content looks like {describe_content(upload.data)}{declared}. "
                f"Supported: {', '.join(SUPPORTED_FORMATS)}.",
            )  # fmt: skip
        return upload
    except asyncio.TimeoutError:
        desk.refused += 1
        _log.info("upload refused (body_timeout): the body did not arrive within %g s; %d refused so far", desk.body_timeout_s, desk.refused)
        raise _Refusal(
            408, "body_timeout",
            f"the upload did not arrive within {desk.body_timeout_s:g} s; send the whole file at once",
            headers={"Connection": "close"},
        ) from None  # fmt: skip
    except ClientDisconnect:
        desk.refused += 1
        _log.info("client disconnected before its upload was complete; %d refused so far", desk.refused)
        raise _Refusal(400, "client_disconnected", "the client disconnected before the upload was complete") from None
    except _Refusal as exc:
        desk.refused += 1
        _log.info("upload refused (%s); %d refused so far", exc.code, desk.refused)
        raise
    finally:
        desk.reading -= 1


async def _analyze(request: Request) -> tuple[Any, _Upload, str, float]:
    """Read, admit, check and analyse one upload. Returns ``(analysis, upload, started_at, elapsed_s)``.

    The body is read whole (under the read deadline and the per-client and
    reading caps) before the request may take a place in the analysis queue.
    """
    desk: _Desk = request.app.state.desk
    client = request.client.host if request.client else "?"
    mine = desk.per_client.get(client, 0)
    if mine >= desk.max_per_client or desk.reading >= desk.max_reading:
        desk.refused += 1
        retry = desk.retry_after()
        if mine >= desk.max_per_client:
            status, code = 429, "too_many_requests"
            text = f"this client already has {mine} uploads in progress (the limit is {desk.max_per_client}); wait for their answers"
        else:
            status, code = 503, "busy"
            text = f"the server is busy receiving {desk.reading} other uploads; try again in {retry} s"
        _log.info("upload refused (%s): %d being received, %d running, %d waiting; %d refused so far",
                  code, desk.reading, desk.running, desk.pending - desk.running, desk.refused)  # fmt: skip
        await _drain(request)
        raise _Refusal(status, code, text, headers={"Retry-After": str(retry)})
    desk.per_client[client] = mine + 1
    started_at, t0 = utc_now(), time.perf_counter()
    try:
        upload = await _read_complete_body(request, desk)
        if desk.pending >= desk.capacity:
            desk.refused += 1
            retry = desk.retry_after()
            _log.info("upload refused (busy): %d running, %d waiting; %d refused so far", desk.running, desk.pending - desk.running, desk.refused)
            raise _Refusal(
                503, "busy",
                f"the server is busy ({desk.running} analyses running, {desk.pending - desk.running} waiting); "
                f"try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )  # fmt: skip
        desk.pending += 1
        try:
            t_wait = time.perf_counter()
            desk.running += 1
            try:
                analysis = await desk.pool.analyze(upload.data, upload.name)
            finally:
                desk.running -= 1
            t_end = time.perf_counter()
        finally:
            desk.pending -= 1
    finally:
        left = desk.per_client.get(client, 1) - 1
        if left > 0:
            desk.per_client[client] = left
        else:
            desk.per_client.pop(client, None)
    desk.done += 1
    desk.avg_s = 0.8 * desk.avg_s + 0.2 * (t_end - t_wait)
    _log.info(
        "analysis finished in %.2f s (%.2f s reading and waiting); %d running, %d waiting; %d done, %d refused",
        t_end - t_wait, t_wait - t0, desk.running, desk.pending - desk.running, desk.done, desk.refused,
    )  # fmt: skip
    rec = analysis.record
    err = rec.get("error") if isinstance(rec.get("error"), dict) else None
    if rec.get("status") == "error" and err and err.get("code") == "too_large":
        msg = str(err.get("message"))
        hint = "" if "memory budget" in msg else " (detect serve --max-megapixels changes the limit)"
        raise _Refusal(413, "too_many_pixels", f"the image has too many pixels: {msg}{hint}")
    return analysis, upload, started_at, time.perf_counter() - t0


def upload_summary(
    record: dict[str, Any],
    *,
    models: dict[str, str],
    limits: dict[str, Any],
    started_at: str,
    elapsed_s: float,
) -> dict[str, Any]:
    """The summary record of a one-upload "run", as ``detect scan`` writes for a folder.

    Args:
        record: The upload's scan record.
        models: Detector name -> version.
        limits: The server's limits (shown as the run configuration).
        started_at: ISO time the request arrived.
        elapsed_s: Seconds from arrival to the end of the analysis.

    Returns:
        A ``record_type: "summary"`` dict; ``exit_status`` is what ``detect scan``
        would return with the default ``--fail-on likely_ai``.
    """
    from cli.scan import Report
    from detectors.record import SummaryRecord

    report = Report()
    report.add(record, "likely_ai")
    return SummaryRecord.finish(
        n_files=report.n_files,
        n_errors=report.n_errors,
        counts=report.counts,
        calibration=record.get("calibration") or {},
        models=models,
        config={"source": "detect serve upload", "detectors": list(models), "fail_on": "likely_ai", **limits},
        started_at=started_at,
        elapsed_s=elapsed_s,
        exit_status=report.exit_status(),
    ).to_json()


def _download_stem(name: str) -> str:
    stem = os.path.splitext(name)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:80]
    return stem or "upload"


# --------------------------------------------------------------------------- #
# OpenAPI descriptions
# --------------------------------------------------------------------------- #

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "minLength": 1,
                            "description": "One image: JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC/HEIF or AVIF. "
                            "The type is read from the file's first bytes, not from its name or declared type.",
                        }
                    },
                }
            }
        },
    }
}


def _error_doc(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
                },
            }
        },
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: _error_doc("Too large: the file exceeds the size limit (code `too_large`) or the image header claims "
                    "more pixels than the pixel limit (code `too_many_pixels`)."),
    415: _error_doc("Not a supported image (code `unsupported_type`, checked from the file's magic bytes), "
                    "or the body is not multipart/form-data (code `not_multipart`)."),
    400: _error_doc("The client disconnected before the upload was complete (code `client_disconnected`)."),
    408: _error_doc("The whole upload did not arrive within the body-read deadline (code `body_timeout`); "
                    "the connection is closed."),
    422: _error_doc("No field `file`, several files, an empty file, or a malformed multipart body."),
    429: _error_doc("This client already has the most uploads in progress that one client may have "
                    "(code `too_many_requests`). Retry after the `Retry-After` header's seconds."),
    503: _error_doc("Busy: every worker is analysing and the queue is full (code `busy`). "
                    "Retry after the number of seconds in the `Retry-After` header."),
}  # fmt: skip

_RECORD_DOC = (
    "The scan record, schema 1.0 (documented in `detectors/record.py`): `file` (path = the uploaded file name, "
    "sha256, format, width, height, bytes, ...), `status`, `error`, `label` (`ai_confirmed`, `likely_ai`, "
    "`inconclusive`, `likely_real` or `error`), `score` (P(AI)), `decided_by`, `detectors`, `quality_flags`, "
    "`explanations`, `calibration`, `timing`. A file that has an image's magic bytes but cannot be decoded "
    "(truncated, corrupt) gives 200 with `status: \"error\"` and `error.code`/`error.message`, as in `detect scan`."
)


# --------------------------------------------------------------------------- #
# The app
# --------------------------------------------------------------------------- #


def create_app(
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    max_per_client: int = DEFAULT_MAX_PER_CLIENT,
    max_reading: int = DEFAULT_MAX_READING,
    allowed_hosts: Sequence[str] | None = None,
    detectors: Sequence[str] | None = None,
    calibration: Any = None,
) -> FastAPI:
    """Build the verification-desk app. Worker processes start with the app's lifespan.

    Args:
        max_bytes: Largest accepted file, in bytes (413 above).
        max_pixels: Largest accepted image, in pixels claimed by its header (413 above).
        max_concurrent: Analyses running at once, one worker process each.
        queue_size: Uploads that may wait for a worker; beyond that 503 with ``Retry-After``.
        timeout_s: Time limit of one analysis; the record is then an error with code ``timeout``.
        body_timeout_s: The whole request body must arrive within this many seconds (else 408);
            only then may the request take a place in the queue.
        max_per_client: Requests one client address may have in progress (else 429).
        max_reading: Request bodies read at once, all clients together (else 503).
        allowed_hosts: Accepted ``Host`` header names (guards a loopback server against DNS
            rebinding); ``None`` accepts any.
        detectors: Detector registry names; the defaults of ``detect scan`` when ``None``.
        calibration: The loaded :class:`~detectors.calibration.Calibration` (built once by the
            command); the shipped one when ``None``.

    Returns:
        A FastAPI application (run it with uvicorn, or ``fastapi.testclient.TestClient``).

    Raises:
        ValueError: If a limit is out of range.
    """
    if (
        max_bytes < 1 or max_pixels < 1 or max_concurrent < 1 or queue_size < 0 or timeout_s <= 0
        or body_timeout_s <= 0 or max_per_client < 1 or max_reading < 1
    ):  # fmt: skip
        raise ValueError(
            f"invalid limits: max_bytes={max_bytes}, max_pixels={max_pixels}, max_concurrent={max_concurrent}, "
            f"queue_size={queue_size}, timeout_s={timeout_s}, body_timeout_s={body_timeout_s} (> 0), "
            f"max_per_client={max_per_client} (>= 1), max_reading={max_reading} (>= 1)"
        )
    if detectors is None:
        from detectors.pipeline import DEFAULT_DETECTORS

        detectors = DEFAULT_DETECTORS
    pool = AnalysisPool(
        max_concurrent, max_pixels=max_pixels, timeout_s=timeout_s, detectors=detectors, calibration=calibration
    )
    desk = _Desk(
        max_bytes=int(max_bytes),
        max_pixels=int(max_pixels),
        max_concurrent=int(max_concurrent),
        queue_size=int(queue_size),
        timeout_s=float(timeout_s),
        pool=pool,
        body_timeout_s=float(body_timeout_s),
        max_per_client=int(max_per_client),
        max_reading=int(max_reading),
    )
    pages = {name: (_STATIC / name).read_text(encoding="utf-8") for name in ("index.html", "api.html")}
    assets = {k: (p.read_bytes(), media) for k, (p, media) in _ASSETS.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.start()
        _log.info("%d analysis workers ready", pool.size)
        try:
            yield
        finally:
            await pool.close()

    from detectors.record import tool_version

    app = FastAPI(
        title="detect serve: verification desk",
        version=tool_version(),
        description=(
            "Tells whether an image was AI-generated: provenance (C2PA, IPTC, generator metadata, "
            "watermarks) and pixel evidence, fused into a calibrated verdict. Uploads are analysed in "
            "memory and forgotten after the response; the server logs only counts and timings."
        ),
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.desk = desk
    app.add_middleware(_SecurityMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(_Refusal)
    async def _on_refusal(request: Request, exc: _Refusal) -> JSONResponse:
        return _refusal_response(exc)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(pages["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/api", include_in_schema=False)
    async def api_page() -> Response:
        return Response(pages["api.html"], media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in assets:
            return JSONResponse({"detail": "not found", "code": "not_found"}, status_code=404)
        content, media = assets[name]
        return Response(content, media_type=media)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/v1/limits", summary="The server's limits", tags=["analysis"])
    async def limits() -> dict[str, Any]:
        """Upload size (bytes), pixel count, workers, queue length, time limit and accepted formats."""
        return desk.limits()

    @app.post(
        "/api/v1/analyze",
        summary="Analyse one image and return its scan record",
        tags=["analysis"],
        openapi_extra=_UPLOAD_BODY,
        responses={200: {"description": _RECORD_DOC}, **_ERRORS},
    )
    async def analyze(request: Request) -> JSONResponse:
        """Upload one image as multipart/form-data, field `file`; the answer is the same record as
        `detect scan --json` gives for that file, with `file.path` set to the uploaded file name.

        Example: `curl -F file=@photo.heic http://127.0.0.1:8000/api/v1/analyze`
        """
        from cli.reports import sanitize

        analysis, _, _, _ = await _analyze(request)
        return JSONResponse(sanitize(analysis.record))

    @app.post(
        "/api/v1/card",
        summary="Analyse one image and return its record, evidence card and HTML report",
        tags=["analysis"],
        openapi_extra=_UPLOAD_BODY,
        responses={
            200: {
                "description": "`record` (as /api/v1/analyze), `card` (the display model of the HTML report's "
                "evidence card, strings to be shown as text), `images` (data: URIs of the thumbnail, the CNN's "
                "crop map, residual and spectrum), `report_html` (a self-contained HTML report of this one image), "
                "`download_name` (a safe file-name stem)."
            },
            **_ERRORS,
        },
    )
    async def card(request: Request) -> JSONResponse:
        """What the page uses: the analysis plus everything needed to draw and download its card."""
        from cli.reports import card_view, render_report, sanitize

        analysis, upload, started_at, elapsed = await _analyze(request)
        view = card_view(analysis.record, analysis.visuals)
        summary = upload_summary(
            analysis.record, models=pool.info.models, limits=desk.limits(), started_at=started_at, elapsed_s=elapsed
        )
        html = render_report([view], summary, title=f"detect: {upload.name}")
        return JSONResponse(
            {
                "record": sanitize(analysis.record),
                "card": sanitize(view.card),
                "images": dict(view.images),
                "report_html": html,
                "download_name": _download_stem(upload.name),
            }
        )

    return app
