"""Shipped weights on disk: a ``.safetensors`` file beside a JSON config that records its sha256.

One implementation for every learned detector (:mod:`detectors.cnn_model`,
:mod:`detectors.zed_model`). Importing this module imports no torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["file_sha256", "write_weights"]

C = TypeVar("C")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_weights(model: "torch.nn.Module", config: C, json_path: str | Path, *, fmt: str) -> C:
    """Write ``model``'s state as ``.safetensors`` beside ``json_path``, then the config with its sha256 as JSON.

    Both files are written to a temporary name and renamed, so a reader never
    sees half a file. Floating-point tensors are stored as ``float32``; others as they are.

    Args:
        model: The network.
        config: A frozen config with ``weights_file``, ``version``, ``with_(**changes)`` and
            ``to_dict()``; ``weights_file`` defaults to the JSON's stem + ``.safetensors``.
        json_path: Where to write the config JSON.
        fmt: The ``format`` tag stored in the safetensors metadata.

    Returns:
        The config as written (weights file name and sha256 filled in).
    """
    from safetensors.torch import save_file

    cfg: Any = config
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    weights_file = cfg.weights_file or (json_path.stem + ".safetensors")
    state = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    tmp = json_path.parent / (weights_file + ".tmp")
    save_file(state, str(tmp), metadata={"format": fmt, "version": cfg.version})
    tmp.replace(json_path.parent / weights_file)
    (json_path.parent / weights_file).chmod(0o644)  # package data: readable by all (save_file creates 0600)
    written = cfg.with_(weights_file=weights_file, weights_sha256=file_sha256(json_path.parent / weights_file))
    tmp_json = json_path.with_suffix(json_path.suffix + ".tmp")
    tmp_json.write_text(json.dumps(written.to_dict(), indent=1) + "\n", encoding="utf-8")
    tmp_json.replace(json_path)
    return written
