"""``detect train``: train the CNN detector, or the zero-shot coder, from a JSON config.

Imported only when the command runs (see ``LAZY_COMMANDS`` in ``cli/main.py``);
torch and timm are imported inside the command. A config with ``"kind": "zed"``
trains the zero-shot detector (:mod:`detectors.zed_training`); any other config
is a CNN run, as before. Progress goes to stderr; the run folder gets
``log.jsonl``, a resumable ``checkpoint/`` and the weights (CNN: the best in
``best/``; zero-shot: ``final/``). Exit status 0 on success (also when stopped
by ``--max-minutes``), 2 on a usage or fatal error.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

__all__ = ["train"]


class FatalError(click.ClickException):
    """A fatal error: message on stderr, exit status 2."""

    exit_code = 2


@click.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True, help="Training config JSON (e.g. configs/cnn_v1.json, configs/cnn_smoke.json, configs/zed_v1.json).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint with the same config and RNG sequence.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Run folder (default: the config's 'out').")
@click.option("--steps", type=click.IntRange(min=1), help="Total steps (overrides the config; with --resume, extends a run).")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), help="Checkpoint and stop after this long (continue with --resume).")
@click.option("--threads", type=click.IntRange(min=1), help="torch threads (overrides the config's schedule.num_threads; results do not depend on it beyond float rounding).")
@click.option("--no-export", is_flag=True, help="Do not write the config's export (shipped weights).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final line.")
def train(config_path: str, resume: bool, out: str | None, steps: int | None, max_minutes: float | None, threads: int | None, no_export: bool, quiet: bool) -> None:
    """Train the CNN detector (or, with a "kind": "zed" config, the zero-shot coder).

    Seeded and resumable: the same config gives the same batches, and --resume
    continues where the last checkpoint stopped.
    """
    if _config_kind(config_path) == "zed":
        from detectors.zed_training import load_zed_train_config as load_config
        from detectors.zed_training import train as run_train

        def summary(res: Any) -> str:
            val = "n/a" if res.val_bits is None else f"{res.val_bits:.4f} bits/value"
            return f"validation cost {val}; weights {res.final_path or 'n/a'}"
    else:
        from detectors.cnn_training import load_train_config as load_config
        from detectors.cnn_training import train as run_train

        def summary(res: Any) -> str:
            best = "n/a" if res.best_score is None else f"{res.best_score:.4f}"
            return f"best val AUC {best}; best weights {res.best_path}"

    console = Console(stderr=True)
    try:
        cfg = load_config(config_path)
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    changes: dict[str, Any] = {}
    if out:
        changes["out"] = out
    if no_export:
        changes["export"] = None
    if threads is not None:
        changes["schedule"] = dataclasses.replace(cfg.schedule, num_threads=threads)
    if changes:
        cfg = dataclasses.replace(cfg, **changes)

    def log(msg: str) -> None:
        if not quiet:
            console.print(Text(msg), highlight=False)

    try:
        res = run_train(cfg, resume=resume, steps=steps, max_minutes=max_minutes, log=log)
    except (FileNotFoundError, ValueError) as exc:
        raise FatalError(str(exc)) from None
    state = "finished" if res.finished else "stopped (resume with --resume)"
    console.print(Text(f"detect train: {state} at step {res.step}; {summary(res)}; {res.seconds:.1f} s"))
    if res.exported:
        console.print(Text(f"exported {res.exported}"))


def _config_kind(path: str) -> str | None:
    """The config's ``kind`` (``None`` for the CNN configs, which have none)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FatalError(f"{path}: {exc}") from None
    return doc.get("kind") if isinstance(doc, dict) else None
