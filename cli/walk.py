"""Listing the files a scan will analyse."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

__all__ = ["DEFAULT_EXTENSIONS", "Entry", "iter_files"]

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """A file to analyse, or a listing problem to report as an error record."""

    path: str
    error: str | None = None


def _norm_exts(extensions: Sequence[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def iter_files(paths: Sequence[str], *, recursive: bool = True, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> Iterator[Entry]:
    """Yield the files under ``paths`` in a stable (sorted) order.

    Files named explicitly are always yielded, whatever their extension.
    Folders are walked (recursively unless ``recursive`` is false) without
    following symlinked folders, so symlink loops cannot trap the walk; only
    files whose extension is in ``extensions`` (case-insensitive) are yielded.
    A folder that cannot be listed yields an :class:`Entry` with an error.

    Args:
        paths: Files and folders.
        recursive: Descend into subfolders.
        extensions: Extensions to include, with or without the dot.
    """
    exts = _norm_exts(extensions)
    seen: set[str] = set()
    for p in paths:
        if "://" in p:
            yield from _iter_url(p, recursive=recursive, exts=exts)
            continue
        if os.path.isdir(p):
            errors: list[OSError] = []
            walker = os.walk(p, onerror=errors.append, followlinks=False)
            for root, dirs, files in walker:
                dirs.sort()
                if not recursive:
                    dirs.clear()
                for f in sorted(files):
                    if os.path.splitext(f)[1].lower() in exts:
                        full = os.path.join(root, f)
                        if full not in seen:
                            seen.add(full)
                            yield Entry(full)
                while errors:
                    e = errors.pop(0)
                    yield Entry(os.fsdecode(e.filename or p), f"cannot list folder: {e.strerror or e}")
        elif os.path.lexists(p):
            if p not in seen:
                seen.add(p)
                yield Entry(p)
        else:
            yield Entry(p, "no such file or folder")


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
