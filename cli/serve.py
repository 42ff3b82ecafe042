"""``detect serve``: the verification desk, a local web page and JSON API.

Starts the FastAPI app of :mod:`cli.web.app` under uvicorn. It binds to
loopback (127.0.0.1) unless told otherwise, prints its address once the
analysis workers are ready, and warns loudly when bound to an address other
machines can reach. uvicorn's access log is off: the server logs only counts
and timings (see :mod:`cli.web.app`).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

import click

__all__ = ["is_loopback", "serve", "uvicorn_log_config"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine.

    Args:
        host: ``127.0.0.1``, ``::1``, ``localhost``, ``0.0.0.0``, a host name...

    Returns:
        ``True`` if every address it resolves to is a loopback address.
    """
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        pass
    if h.lower() == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(h, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """A logging configuration for uvicorn and ``cli.serve`` that keeps client details out.

    The access log (which would hold client addresses and request paths) has
    no handler; uvicorn's own messages are kept at WARNING and above; the
    desk's ``cli.serve`` logger writes counts and timings to stderr.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "cli.serve": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to ``host:port`` (port 0: any free port)."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host.strip("[]") in ("::", ""):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(addr)
            sock.set_inheritable(True)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"cannot bind to {host}:{port}")


def _url(sock: socket.socket) -> str:
    addr = sock.getsockname()
    host, port = addr[0], addr[1]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on. Anything but loopback exposes the desk to the network (no login, no TLS).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port (0: any free port).")
@click.option("--max-mb", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True, help="Largest accepted file, in MB (MiB).")
@click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True), default=100.0, show_default=True, help="Largest accepted image, in megapixels (checked from the header, before decoding).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Analyses running at once, one process each. Default: CPU cores, at most 4.")
@click.option("--queue", "queue_size", type=click.IntRange(min=0), default=8, show_default=True, help="Uploads that may wait for a worker; more get 503 with Retry-After.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True, help="Time limit of one analysis, in seconds.")
@click.option("--body-timeout", "body_timeout_s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True, help="The whole upload must arrive within this many seconds (else 408); only then does it take a place in the queue.")
@click.option("--max-per-client", type=click.IntRange(min=1), default=8, show_default=True, help="Uploads one client address may have in progress at once (else 429).")
@click.option("--calibration", "calibration_path", type=click.Path(exists=True, dir_okay=False), help="Calibration file (default: the shipped one).")
def serve(
    host: str,
    port: int,
    max_mb: float,
    max_megapixels: float,
    workers: int | None,
    queue_size: int,
    timeout_s: float,
    body_timeout_s: float,
    max_per_client: int,
    calibration_path: str | None,
) -> None:
    """Start the verification desk: a local web page and JSON API.

    Open the printed address, then drag and drop images (JPEG, PNG, WebP, HEIC
    from phones, ...) to get an evidence card for each, downloadable as HTML
    and JSON. Scripts can POST a file to /api/v1/analyze (documentation at
    /api and /openapi.json).

    Uploads are analysed in memory and forgotten after the answer; the log
    holds only counts and timings; nothing is sent anywhere. Stop with Ctrl-C.
    """
    import uvicorn

    from cli.web.app import DEFAULT_MAX_CONCURRENT, LOOPBACK_HOSTS, create_app
    from cli.engine import resolve_calibration

    try:
        calibration = resolve_calibration(calibration_path)  # loaded once, here; the workers receive the object
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None

    loopback = is_loopback(host)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    url = _url(sock)
    if not loopback:
        for line in (
            f"WARNING: listening on {host}, which is NOT loopback.",
            "WARNING: anyone who can reach this machine on this port can upload files and read the verdicts.",
            "WARNING: there is no login and no TLS. Use --host 127.0.0.1 unless you really mean to share the desk.",
        ):
            click.secho(line, fg="red", bold=True, err=True)
    allowed = (*LOOPBACK_HOSTS, host) if loopback else None
    app = create_app(
        max_bytes=int(max_mb * 1024 * 1024),
        max_pixels=int(max_megapixels * 1_000_000),
        max_concurrent=workers or DEFAULT_MAX_CONCURRENT,
        queue_size=queue_size,
        timeout_s=timeout_s,
        body_timeout_s=body_timeout_s,
        max_per_client=max_per_client,
        allowed_hosts=allowed,
        calibration=calibration,
    )
    click.echo(f"detect serve: starting {workers or DEFAULT_MAX_CONCURRENT} analysis worker(s)...", err=True)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                where = "loopback only" if loopback else "REACHABLE FROM THE NETWORK"
                click.echo(f"detect serve: verification desk ready at {url} ({where}); Ctrl-C stops it")
                sys.stdout.flush()

    config = uvicorn.Config(
        app,
        log_config=uvicorn_log_config(),
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    try:
        _Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the SIGINT it caught
        click.echo("detect serve: stopped", err=True)
        sys.exit(130)
