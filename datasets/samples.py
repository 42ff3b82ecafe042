"""Labelled samples: folders, manifests and deterministic splits.

A dataset is either a folder with ``real/`` and ``ai/<generator>/``
subfolders, a CSV manifest with columns ``path,label,generator,split``, or the
shared ``manifest.json`` (a list of rows with ``path``, ``label``,
``generator`` and ``source``). Splits are assigned from a hash of the file
name and a salt, so they are reproducible and independent of listing order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

__all__ = ["FAMILIES", "IMAGE_EXTENSIONS", "Sample", "assign_split", "discover_folder", "family_of", "load_dataset", "load_datasets", "read_manifest"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif")


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        path: File path.
        label: ``"real"`` or ``"ai"``.
        generator: Generator name for AI images (e.g. ``"sd1"``), ``None`` for reals.
        source: Where the file came from (a collection name), for stratification.
        split: ``"train"``, ``"calib"``, ``"test"`` or ``None`` when unassigned.
    """

    path: str
    label: str
    generator: str | None = None
    source: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if self.label not in ("real", "ai"):
            raise ValueError(f"label must be 'real' or 'ai', got {self.label!r} for {self.path}")


def assign_split(key: str, *, fractions: dict[str, float], salt: str = "aidetect-v1") -> str:
    """Deterministic split from a hash of ``key``.

    Args:
        key: Stable identifier, e.g. the file name.
        fractions: Split name -> fraction; fractions must be > 0 and sum to 1.
        salt: Changes the assignment when changed.

    Returns:
        The split name.
    """
    total = sum(fractions.values())
    if any(f <= 0 for f in fractions.values()) or abs(total - 1.0) > 1e-6:
        raise ValueError(f"fractions must be > 0 and sum to 1, got {fractions}")
    h = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") / 2**64
    acc = 0.0
    for name, f in fractions.items():
        acc += f
        if h < acc:
            return name
    return list(fractions)[-1]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def discover_folder(root: str | os.PathLike[str]) -> list[Sample]:
    """Samples from a folder laid out as ``real/`` and ``ai/<generator>/``.

    Raises:
        ValueError: If neither ``real/`` nor ``ai/`` exists under ``root``.
    """
    root = Path(root)
    real, ai = root / "real", root / "ai"
    if not real.is_dir() and not ai.is_dir():
        raise ValueError(f"{root}: expected subfolders real/ and ai/<generator>/")
    out = [Sample(str(p), "real", None, "real") for p in (_images_in(real) if real.is_dir() else [])]
    if ai.is_dir():
        for gen in sorted(d for d in ai.iterdir() if d.is_dir()):
            out += [Sample(str(p), "ai", gen.name, gen.name) for p in _images_in(gen)]
        out += [Sample(str(p), "ai", "unknown", "unknown") for p in sorted(ai.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return out


def read_manifest(path: str | os.PathLike[str]) -> list[Sample]:
    """Samples from a CSV manifest (path,label,generator[,split][,source]) or a JSON list.

    Relative paths are resolved against the manifest's folder. Rows whose
    ``label`` is empty or JSON ``null`` describe files that are not samples (the
    shared ``data2`` manifest lists its TAEF2 weights that way) and are skipped.

    Raises:
        ValueError: On a missing column or bad label, naming the row.
    """
    path = Path(path)
    base = path.parent
    rows: Iterable[dict[str, str | None]]
    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    out = []
    for i, row in enumerate(rows, start=1):
        if "path" not in row or "label" not in row:
            raise ValueError(f"{path}: row {i} lacks a 'path' or 'label' column")
        if row["label"] in (None, ""):
            continue
        p = Path(str(row["path"]))
        gen = row.get("generator") or None
        src = row.get("source") or gen or ("real" if row["label"] == "real" else None)
        try:
            out.append(
                Sample(
                    path=str(p if p.is_absolute() else base / p),
                    label=str(row["label"]),
                    generator=gen,
                    source=src,
                    split=row.get("split") or None,
                )
            )
        except ValueError as exc:
            raise ValueError(f"{path}: row {i}: {exc}") from None
    return out


def load_dataset(
    spec: str | os.PathLike[str],
    *,
    fractions: dict[str, float] | None = None,
    salt: str = "aidetect-v1",
) -> list[Sample]:
    """Load a folder or manifest, assigning hash splits where none are given.

    Args:
        spec: A folder (``real/``, ``ai/<gen>/``), a ``.csv`` or a ``.json`` manifest.
        fractions: Split fractions for samples with no split; default
            train 0.6, calib 0.2, test 0.2.
        salt: Hash salt for :func:`assign_split`.
    """
    p = Path(spec)
    samples = discover_folder(p) if p.is_dir() else read_manifest(p)
    fr = fractions or {"train": 0.6, "calib": 0.2, "test": 0.2}
    return [s if s.split else replace(s, split=assign_split(Path(s.path).name, fractions=fr, salt=salt)) for s in samples]


#: Generator families of the development data, for leave-one-family-out runs.
#: ``sd``: Stable Diffusion 1.x/2.x/XL/Turbo and the ComfyUI workflows built on them;
#: ``gan``: the CNNDetection GAN/CNN-generator thumbnails (``gan_*``);
#: ``other_ldm``: Kandinsky 2.x, PixArt-alpha and CompVis LDM.
FAMILIES = ("sd", "gan", "other_ldm")


def family_of(generator: str | None) -> str | None:
    """The family of a generator name (see :data:`FAMILIES`).

    Args:
        generator: A manifest ``generator`` value, e.g. ``"sd1"``, ``"gan_biggan"``, ``"pixart_alpha"``.

    Returns:
        ``"sd"``, ``"gan"``, ``"other_ldm"``, ``"unknown"`` for a name outside them,
        or ``None`` for ``None`` (a real photo).
    """
    if generator is None:
        return None
    g = generator.lower()
    if g.startswith("gan_"):
        return "gan"
    if g.startswith(("kandinsky", "pixart", "ldm")):
        return "other_ldm"
    if g.startswith(("sd", "comfy_")):
        return "sd"
    return "unknown"


def load_datasets(
    specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    split: str | None = None,
    exclude_families: Sequence[str] = (),
) -> list[Sample]:
    """Load one or several datasets (:func:`load_dataset` each, in order).

    Args:
        specs: One spec or a sequence of them.
        split: Keep only this split (``None``: all).
        exclude_families: Drop the AI samples of these families (:func:`family_of`); reals stay.

    Raises:
        FileNotFoundError: If a spec does not exist (naming it).
    """
    many = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    out: list[Sample] = []
    for spec in many:
        if not Path(spec).exists():
            raise FileNotFoundError(f"{spec}: dataset not found")
        out += [s for s in load_dataset(spec) if split is None or s.split == split]
    if exclude_families:
        out = [s for s in out if s.label != "ai" or family_of(s.generator) not in exclude_families]
    return out
