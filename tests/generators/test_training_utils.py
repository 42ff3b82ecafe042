"""The shared training toolkit: schedule, device, checkpoints, time-limited loop."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from generators.optimization import cosine_lr_factor  # noqa: E402
from generators.training_utils import (  # noqa: E402
    TimeLimit,
    load_checkpoint,
    resolve_device,
    run_training_loop,
    save_checkpoint,
    torch_generator,
)


def test_cosine_schedule_warmup_and_floor() -> None:
    assert cosine_lr_factor(0, total_steps=100, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_lr_factor(9, total_steps=100, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr_factor(10, total_steps=100, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_lr_factor(100, total_steps=100, warmup_steps=10, floor=0.1) == pytest.approx(0.1)
    assert cosine_lr_factor(500, total_steps=100, warmup_steps=10) == pytest.approx(0.05)
    mid = cosine_lr_factor(55, total_steps=100, warmup_steps=10, floor=0.0)
    assert mid == pytest.approx(0.5)
    with pytest.raises(ValueError, match="floor"):
        cosine_lr_factor(0, total_steps=10, floor=1.5)


@pytest.mark.parametrize("name", ["cpu", "auto"])
def test_device_names(name: str) -> None:
    assert resolve_device(name).type in ("cpu", "cuda")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CPU", ""])
def test_bad_device_names(name: str) -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device(name)


def test_cuda_n_is_accepted_or_clearly_refused() -> None:
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_torch_generator_is_seeded() -> None:
    a = torch.rand(3, generator=torch_generator(5))
    b = torch.rand(3, generator=torch_generator(5))
    assert torch.equal(a, b)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", modules={"model": lin}, optimizers={"optimizer": opt}, state={"step": 7})
    save_checkpoint(tmp_path / "ck", modules={"model": lin}, optimizers={"optimizer": opt}, state={"step": 8})  # replaces
    assert not (tmp_path / "ck.tmp").exists() and not (tmp_path / "ck.old").exists()
    lin2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(lin2.parameters(), lr=9.0)
    doc = load_checkpoint(tmp_path / "ck", modules={"model": lin2}, optimizers={"optimizer": opt2})
    assert doc == {"step": 8} and opt2.param_groups[0]["lr"] == 1e-3
    assert torch.equal(lin.weight, lin2.weight)
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(FileNotFoundError, match="ema.safetensors"):
        load_checkpoint(tmp_path / "ck", modules={"ema": lin2}, optimizers={})
    with pytest.raises(ValueError, match="differ"):
        save_checkpoint(tmp_path / "x", modules={"a": lin}, optimizers={"a": opt}, state={})


def test_loop_checkpoints_and_stops_on_time() -> None:
    now = [0.0]
    limit = TimeLimit(1.0, clock=lambda: now[0])
    done, saved = [], []

    def step(i: int) -> None:
        done.append(i)
        now[0] += 25.0  # 25 s per step: the 1-minute budget is over after the third

    out = run_training_loop(start_step=0, total_steps=10, train_step=step, save=saved.append, checkpoint_every=2, time_limit=limit)
    assert (out.step, out.stopped) == (3, True) and done == [0, 1, 2] and saved == [2, 3]
    resumed = run_training_loop(start_step=3, total_steps=5, train_step=lambda i: None, save=saved.append, checkpoint_every=2, time_limit=TimeLimit(None))
    assert (resumed.step, resumed.stopped) == (5, False) and saved[-2:] == [4, 5]
    with pytest.raises(ValueError, match="max_minutes"):
        TimeLimit(0)
