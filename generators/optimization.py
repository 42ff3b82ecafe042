"""Learning-rate schedules shared by every trainer of the project.

As diffusers keeps its schedules in ``optimization.py``: one rule, here a
linear warm-up followed by a cosine decay to a floor (SGDR without restarts:
I. Loshchilov, F. Hutter, "SGDR: Stochastic Gradient Descent with Warm
Restarts", ICLR 2017). The generator and the CNN detector both use it;
only their ``floor`` and step counts differ, and both come from their configs.

This module imports no torch.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DEFAULT_LR_FLOOR", "cosine_lr_factor", "set_lr"]

#: Final learning rate as a fraction of the peak, unless a config says otherwise.
DEFAULT_LR_FLOOR = 0.05


def cosine_lr_factor(step: int, *, total_steps: int, warmup_steps: int = 0, floor: float = DEFAULT_LR_FLOOR) -> float:
    """Multiplier of the peak learning rate for the optimizer step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for ``step < warmup_steps``,
    then ``floor + (1 - floor) * (1 + cos(pi * t)) / 2`` with
    ``t = (step - warmup_steps) / max(1, total_steps - warmup_steps)`` clipped
    to ``[0, 1]``, so the factor reaches ``floor`` at ``total_steps`` and stays there.

    Args:
        step: Optimizer step about to be taken, >= 0.
        total_steps: Planned steps, >= 0.
        warmup_steps: Linear warm-up length, >= 0.
        floor: Final factor, in ``[0, 1]``.

    Returns:
        A float in ``[floor, 1]`` (in ``(0, 1]`` during warm-up).

    Raises:
        ValueError: If an argument is out of range (naming it and its range).
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 0 or warmup_steps < 0:
        raise ValueError(f"total_steps and warmup_steps must be >= 0, got {total_steps} and {warmup_steps}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be in [0, 1], got {floor}")
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer: Any, lr: float) -> None:
    """Set the learning rate of every parameter group of a ``torch.optim.Optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
