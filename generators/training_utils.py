"""The project's one training toolkit: devices, seeding, checkpoints and the time-limited loop.

diffusers keeps the parts its training scripts share in ``training_utils.py``;
so does this project. The generator trainer (:mod:`generators.train`) and the
CNN detector trainer (:mod:`detectors.cnn_training`) both build on it, so
each rule exists once:

* **device**: :func:`resolve_device` accepts ``"auto"``, ``"cpu"``,
  ``"cuda"`` and ``"cuda:N"``;
* **seeding**: :func:`torch_generator` gives a seeded ``torch.Generator``;
  nothing here touches a global RNG;
* **checkpoints**: :func:`save_checkpoint`/:func:`load_checkpoint` write a
  folder atomically: module and optimizer tensors as ``.safetensors`` (never
  pickles; optimizer tensors under the keys ``state.<param index>.<name>``,
  the parameter groups as JSON in the safetensors metadata) and a
  ``state.json`` with counters, configs and RNG states;
* **time limit**: :class:`TimeLimit` and :func:`run_training_loop` stop a run
  with a checkpoint after ``--max-minutes``, and ``--resume`` continues it.

Importing this module imports no torch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "STATE_FILE",
    "LoopOutcome",
    "TimeLimit",
    "log_line",
    "load_checkpoint",
    "load_module",
    "load_optimizer",
    "resolve_device",
    "run_training_loop",
    "save_checkpoint",
    "save_module",
    "save_optimizer",
    "torch_generator",
]

STATE_FILE = "state.json"


# -- device and seeding --------------------------------------------------------


def log_line(fh: Any, doc: dict[str, Any]) -> None:
    """Append ``doc`` as one JSON line to an open text file and flush it (the trainers' ``log.jsonl``)."""
    fh.write(json.dumps(doc) + "\n")
    fh.flush()


def resolve_device(device: str = "auto") -> "torch.device":
    """Pick the compute device.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``
            or ``"cuda:N"``.

    Raises:
        ValueError: On another name, on CUDA when none is available, or on a
            ``cuda:N`` index outside ``[0, device_count)``.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        if device != "cuda" and int(device[5:]) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: index must be in [0, {torch.cuda.device_count()})")
        return torch.device(device)
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def torch_generator(seed: int, device: "str | torch.device" = "cpu") -> "torch.Generator":
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (no global RNG is touched)."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


# -- tensors and optimizer state as safetensors --------------------------------


def save_module(module: "torch.nn.Module", path: str | os.PathLike[str]) -> None:
    """Write a module's state dict (float tensors as float32, on the CPU) as ``.safetensors``."""
    from safetensors.torch import save_file

    state = {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def load_module(module: "torch.nn.Module", path: str | os.PathLike[str]) -> None:
    """Load a state dict written by :func:`save_module` into ``module`` (strict)."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)))


def save_optimizer(optimizer: "torch.optim.Optimizer", path: str | os.PathLike[str]) -> None:
    """Write an optimizer's state: tensors as ``state.<param index>.<name>``, groups as JSON metadata."""
    import torch
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"state.{idx}.{key}"] = t.detach().cpu().contiguous()
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(sd["param_groups"])})


def load_optimizer(optimizer: "torch.optim.Optimizer", path: str | os.PathLike[str]) -> None:
    """Inverse of :func:`save_optimizer` (torch moves the tensors to the parameters' device).

    Raises:
        ValueError: If the file's parameter groups do not fit the optimizer.
    """
    from safetensors import safe_open

    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if "param_groups" not in meta:
            raise ValueError(f"{path}: not an optimizer checkpoint (no param_groups metadata)")
        groups = json.loads(meta["param_groups"])
        for name in fh.keys():
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = fh.get_tensor(name)
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise ValueError(f"{path}: the optimizer checkpoint's parameter groups do not match the model")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- checkpoint folders --------------------------------------------------------


def save_checkpoint(
    folder: str | os.PathLike[str],
    *,
    modules: Mapping[str, "torch.nn.Module"],
    optimizers: Mapping[str, "torch.optim.Optimizer"],
    state: Mapping[str, Any],
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a resumable checkpoint folder atomically.

    Layout: ``<name>.safetensors`` per module and per optimizer, and
    ``state.json``. The folder is written as ``<folder>.tmp`` and swapped in,
    so a run killed mid-save keeps its previous checkpoint.

    Args:
        folder: Checkpoint folder (replaced).
        modules: Name -> module (names must differ from the optimizers').
        optimizers: Name -> optimizer.
        state: JSON-able counters, configs and RNG states.
        write_extra: Called with the temporary folder to add files (e.g. a config).

    Returns:
        The folder.
    """
    final = Path(folder)
    clash = set(modules) & set(optimizers)
    if clash:
        raise ValueError(f"module and optimizer names must differ, both have {sorted(clash)}")
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        save_module(module, tmp / f"{name}.safetensors")
    for name, opt in optimizers.items():
        save_optimizer(opt, tmp / f"{name}.safetensors")
    if write_extra is not None:
        write_extra(tmp)
    (tmp / STATE_FILE).write_text(json.dumps(dict(state), indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    folder: str | os.PathLike[str],
    *,
    modules: Mapping[str, "torch.nn.Module"],
    optimizers: Mapping[str, "torch.optim.Optimizer"],
) -> dict[str, Any]:
    """Load a folder written by :func:`save_checkpoint` into the given modules and optimizers.

    Returns:
        The ``state.json`` document.

    Raises:
        FileNotFoundError: If a file is missing (naming it).
    """
    src = Path(folder)
    names = [f"{n}.safetensors" for n in (*modules, *optimizers)] + [STATE_FILE]
    for name in names:
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name}: checkpoint file missing; cannot resume")
    for name, module in modules.items():
        load_module(module, src / f"{name}.safetensors")
    for name, opt in optimizers.items():
        load_optimizer(opt, src / f"{name}.safetensors")
    return json.loads((src / STATE_FILE).read_text(encoding="utf-8"))


# -- the time-limited loop -----------------------------------------------------


class TimeLimit:
    """Wall-clock budget of one invocation (``--max-minutes``), started at construction.

    Args:
        max_minutes: Budget in minutes (> 0), or ``None`` for no limit.
        clock: Monotonic clock in seconds (for tests).
    """

    def __init__(self, max_minutes: float | None, *, clock: Callable[[], float] = time.perf_counter) -> None:
        if max_minutes is not None and not max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {max_minutes}")
        self.max_minutes = max_minutes
        self._clock = clock
        self._start = clock()

    @property
    def elapsed_seconds(self) -> float:
        """Seconds since the start."""
        return self._clock() - self._start

    def expired(self) -> bool:
        """Whether the budget is used up (never, without a limit)."""
        return self.max_minutes is not None and self.elapsed_seconds > 60.0 * self.max_minutes


@dataclass(frozen=True)
class LoopOutcome:
    """How :func:`run_training_loop` ended.

    Attributes:
        step: Steps done in total (earlier invocations included).
        stopped: The time limit stopped it before ``total_steps``.
    """

    step: int
    stopped: bool


def run_training_loop(
    *,
    start_step: int,
    total_steps: int,
    train_step: Callable[[int], None],
    save: Callable[[int], None],
    checkpoint_every: int,
    time_limit: TimeLimit,
) -> LoopOutcome:
    """Run optimizer steps until ``total_steps`` or the time limit, checkpointing on the way.

    After each step, ``save(step)`` runs when ``step`` is a multiple of
    ``checkpoint_every``, at ``total_steps``, and when the time limit stops the
    loop, so that ``--resume`` always finds the last step's state.

    Args:
        start_step: Steps already done (0, or the resumed checkpoint's).
        total_steps: Planned steps in total.
        train_step: Does the step with 0-based index ``i`` (so ``i + 1`` steps are done after it).
        save: Writes a checkpoint for ``step`` steps done.
        checkpoint_every: Steps between checkpoints, >= 1.
        time_limit: The invocation's :class:`TimeLimit`.

    Returns:
        A :class:`LoopOutcome`.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    step = start_step
    while step < total_steps:
        train_step(step)
        step += 1
        stop = step < total_steps and time_limit.expired()
        if stop or step % checkpoint_every == 0 or step == total_steps:
            save(step)
        if stop:
            return LoopOutcome(step, True)
    return LoopOutcome(step, False)
