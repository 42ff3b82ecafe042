"""Where reports go: the writer protocol, atomic files, standard output.

A report written in one go (JSON, CSV, HTML) goes through a temporary file in
the same folder and :func:`os.replace`, so a reader never sees half a report.
The path ``"-"`` means standard output (it is never closed).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO, Union, runtime_checkable

from detectors.record import ImageRecord, SummaryRecord, Visuals

__all__ = ["AtomicTarget", "PathArg", "ReportWriter", "WriterBase", "check_writable_dir", "is_stdout", "write_stream"]

PathArg = Union[str, "os.PathLike[str]"]


@runtime_checkable
class ReportWriter(Protocol):
    """What the scan command needs from a report writer.

    Records and summaries are the typed records of :mod:`detectors.record` or
    their JSON form (``to_json()``), as engines hand them over.
    """

    def add(self, record: ImageRecord | Mapping[str, Any], visuals: Visuals | None = None) -> None:
        """Add one image record (and optionally its small display images)."""
        ...

    def close(self, summary: SummaryRecord | Mapping[str, Any]) -> None:
        """Finish the report with the run's summary record."""
        ...


def is_stdout(path: Any) -> bool:
    """Whether ``path`` is ``"-"`` (standard output)."""
    return isinstance(path, str) and path == "-"


def check_writable_dir(path: PathArg) -> Path:
    """Fail early (before a long scan) when the report could not be written.

    Raises:
        FileNotFoundError: The folder does not exist.
        PermissionError: The folder is not writable.
        IsADirectoryError: ``path`` is a folder.
    """
    p = Path(os.fspath(path))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write report {os.fsdecode(p)!r}: folder {os.fsdecode(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write report {os.fsdecode(p)!r}: folder {os.fsdecode(parent)!r} is not writable")
    if p.is_dir():
        raise IsADirectoryError(f"cannot write report {os.fsdecode(p)!r}: it is a folder")
    return p


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The temporary file is created with mode 0o666 so the process umask applies,
    as for an ordinary ``open(path, "w")``.
    """
    parent = path.parent if str(path.parent) else Path(".")
    tmp = parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_stream(stream: TextIO, text: str) -> None:
    """Write text to a stream whose encoding may not cover it (e.g. an ASCII console), and flush."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, "backslashreplace").decode(enc))
    stream.flush()


class AtomicTarget:
    """A report written in one go at close: a file (atomically) or standard output.

    Args:
        path: Output path, or ``"-"`` for standard output. The folder is checked now.
    """

    def __init__(self, path: PathArg) -> None:
        self.to_stdout = is_stdout(path)
        self.path = None if self.to_stdout else check_writable_dir(path)

    def write_text(self, text: str) -> None:
        """Write the whole report as UTF-8."""
        if self.to_stdout:
            write_stream(sys.stdout, text)
        else:
            assert self.path is not None
            _atomic_write(self.path, text.encode("utf-8"))


class WriterBase:
    """Shared add/close bookkeeping and context-manager support."""

    def __init__(self) -> None:
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is already closed")

    def abort(self) -> None:
        """Stop without a summary. JSONL keeps the lines already written; other formats write nothing."""
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.abort()
