"""Listing the files a scan will analyse."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

__all__ = ["DEFAULT_EXTENSIONS", "MAX_DEPTH", "Entry", "iter_files"]

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif",
)  # fmt: skip
#: Deepest folder level a walk lists below each folder it is given.
MAX_DEPTH = 128


@dataclass(frozen=True)
class Entry:
    """A file to analyse, or a listing problem to report as an error record.

    Attributes:
        path: The file, or the folder or path that could not be listed.
        error: What went wrong, or ``None`` for a file to analyse.
        code: The error record's code: ``unreadable``, or ``too_deep`` for a folder below the depth bound.
    """

    path: str
    error: str | None = None
    code: str = "unreadable"


def _norm_exts(extensions: Sequence[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def iter_files(
    paths: Sequence[str],
    *,
    recursive: bool = True,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    max_depth: int = MAX_DEPTH,
) -> Iterator[Entry]:
    """Yield the files under ``paths`` in a stable (sorted) order.

    Files named explicitly are always yielded, whatever their extension.
    Folders are walked (recursively unless ``recursive`` is false) without
    following symlinked folders, so symlink loops cannot trap the walk; only
    files whose extension is in ``extensions`` (case-insensitive) are yielded.
    The walk is iterative (an explicit stack, so no depth can exhaust Python's
    recursion limit) and goes at most ``max_depth`` folders below each given
    folder. A folder that cannot be listed, or that lies deeper than that,
    yields one :class:`Entry` with an error; the rest of the walk goes on.

    Args:
        paths: Files and folders.
        recursive: Descend into subfolders.
        extensions: Extensions to include, with or without the dot.
        max_depth: Deepest folder level listed below a given folder, >= 0.

    Raises:
        ValueError: If ``max_depth`` is negative.
    """
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    exts = _norm_exts(extensions)
    seen: set[str] = set()
    for p in paths:
        if "://" in p:
            yield from _iter_url(p, recursive=recursive, exts=exts)
            continue
        if os.path.isdir(p):
            for e in _walk(p, recursive=recursive, exts=exts, max_depth=max_depth):
                if e.error is not None or e.path not in seen:
                    seen.add(e.path)
                    yield e
        elif os.path.lexists(p):
            if p not in seen:
                seen.add(p)
                yield Entry(p)
        else:
            yield Entry(p, "no such file or folder")


def _walk(top: str, *, recursive: bool, exts: tuple[str, ...], max_depth: int) -> Iterator[Entry]:
    """Depth-first, top-down listing of ``top`` in sorted order, like ``os.walk`` but without recursion."""
    stack: list[tuple[str, int]] = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            yield Entry(os.fsdecode(exc.filename or folder), f"cannot list folder: {exc.strerror or exc}")
            continue
        files: list[str] = []
        subdirs: list[str] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():  # symlinked folders are never followed
                    subdirs.append(entry.name)
            else:
                files.append(entry.name)
        for f in sorted(files):
            if os.path.splitext(f)[1].lower() in exts:
                yield Entry(os.path.join(folder, f))
        if not recursive:
            continue
        for d in sorted(subdirs, reverse=True):
            sub = os.path.join(folder, d)
            if depth + 1 > max_depth:
                yield Entry(sub, f"folder too deep: more than {max_depth} levels below {top}; not listed", "too_deep")
            else:
                stack.append((sub, depth + 1))


def _iter_url(url: str, *, recursive: bool, exts: tuple[str, ...]) -> Iterator[Entry]:
    """List an fsspec URL (``s3://bucket/prefix``): a single object, or the images under a prefix."""
    try:
        import fsspec
    except ImportError:
        yield Entry(url, "listing URLs needs fsspec (pip install -e '.[cluster]')")
        return
    try:
        fs, root = fsspec.core.url_to_fs(url)
        protocol = url.split("://", 1)[0]
        if not fs.isdir(root):
            yield Entry(url) if fs.exists(root) else Entry(url, "no such object")
            return
        found = fs.find(root, maxdepth=None if recursive else 1)
    except Exception as exc:  # noqa: BLE001 - storage errors become records
        yield Entry(url, f"cannot list: {exc}")
        return
    for key in sorted(found):
        if os.path.splitext(key)[1].lower() in exts:
            yield Entry(f"{protocol}://{key.lstrip('/')}" if protocol != "file" else f"file:///{key.lstrip('/')}")
