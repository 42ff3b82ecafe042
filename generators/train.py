"""Training the reference generator: the autoencoder first, then the latent UNet.

Stage one trains a KL autoencoder (Kingma & Welling, "Auto-Encoding
Variational Bayes", ICLR 2014) with an MSE + L1 pixel loss and a tiny KL term;
stage two trains a ``UNet2DModel`` on its scaled latents with the DDPM noise
prediction objective (Ho et al., "Denoising Diffusion Probabilistic Models",
NeurIPS 2020), as in latent diffusion (Rombach et al., CVPR 2022).

Training data are random crops of real photos at their native resolution:
nothing is ever resized. Checkpoints are resumable and never pickled: model
and optimizer tensors go to ``.safetensors`` (optimizer hyper-parameters in
the safetensors metadata), and the step counters, RNG states and configs to
``state.json``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from generators.config import GeneratorConfig, TrainConfig
from generators.models import (
    GeneratorModels,
    build_ddpm_scheduler,
    load_models,
    resolve_device,
    save_models,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "PhotoCrops",
    "TrainProgress",
    "TrainResult",
    "list_training_photos",
    "load_optimizer",
    "save_grid",
    "save_optimizer",
    "train_generator",
]

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
LOSS_LOG = "loss_log.jsonl"
GRID_FILE = "samples.png"
WEIGHTS_OUT = "weights"
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif")


@dataclass(frozen=True)
class TrainProgress:
    """One progress report.

    Attributes:
        phase: ``"load"``, ``"autoencoder"``, ``"unet"`` or ``"samples"``.
        step: Steps done in this phase.
        total: Steps planned for this phase.
        metrics: Latest loss values (may be empty).
    """

    phase: str
    step: int
    total: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainResult:
    """What a training run left behind.

    Attributes:
        out_dir: The run folder.
        weights_dir: Folder with ``config.json`` and the ``.safetensors`` weights
            (loadable with :func:`generators.models.load_models`).
        ae_step: Autoencoder steps done in total.
        unet_step: UNet steps done in total.
        finished: Both phases reached their configured steps.
        seconds: Wall time of this invocation.
        grid_path: The sample grid, or ``None`` when the run stopped early.
        photos: Number of training photos used.
    """

    out_dir: Path
    weights_dir: Path
    ae_step: int
    unet_step: int
    finished: bool
    seconds: float
    grid_path: Path | None
    photos: int


def list_training_photos(data: str | os.PathLike[str], *, split: str | None = "train") -> list[Path]:
    """Photos to train on.

    Args:
        data: A folder (every photo under it, recursively) or a dataset manifest
            (``.json``/``.csv``, see :func:`datasets.samples.load_dataset`), of
            which the real photos of ``split`` are used.
        split: Split of a manifest to use (``None``: all reals). Ignored for folders.

    Raises:
        ValueError: If no photo is found.
    """
    p = Path(data)
    if p.is_dir():
        photos = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in PHOTO_EXTENSIONS)
    elif p.is_file() and p.suffix.lower() in (".json", ".csv"):
        from datasets.samples import load_dataset

        photos = [Path(s.path) for s in load_dataset(p) if s.label == "real" and (split is None or s.split == split)]
    else:
        raise ValueError(f"{p}: not a folder of photos or a .json/.csv manifest")
    if not photos:
        raise ValueError(f"{p}: no photos found" + (f" in split {split!r}" if p.is_file() else ""))
    return photos


class PhotoCrops:
    """Random native-resolution crops from photos held in memory as ``uint8``.

    Args:
        photos: Photo files (read with :func:`forensics.io.load_image`, EXIF
            orientation applied, never resized).
        min_side: Photos smaller than this on either side are skipped.
        max_images: Keep at most this many photos (the first ones).
        on_load: Called as ``on_load(done, total)``.
    """

    def __init__(
        self,
        photos: list[Path],
        *,
        min_side: int,
        max_images: int | None = None,
        on_load: Callable[[int, int], None] | None = None,
    ) -> None:
        from forensics.io import DEFAULT_MAX_PIXELS, load_image

        chosen = photos[:max_images] if max_images else photos
        self.images: list[np.ndarray] = []
        self.paths: list[Path] = []
        for i, path in enumerate(chosen):
            try:
                px = load_image(path, max_full_pixels=DEFAULT_MAX_PIXELS).regions[0]
            except ValueError:
                px = None
            if px is not None and min(px.shape[:2]) >= min_side:
                self.images.append(np.clip(np.rint(px * 255.0), 0, 255).astype(np.uint8))
                self.paths.append(path)
            del px
            if on_load:
                on_load(i + 1, len(chosen))
        if not self.images:
            raise ValueError(f"no usable photo (all unreadable or smaller than {min_side} px)")

    def batch(self, rng: np.random.Generator, size: int, n: int) -> np.ndarray:
        """``n`` random crops of side ``size``: ``float32`` ``(n, 3, size, size)`` in ``[-1, 1]``."""
        out = np.empty((n, size, size, 3), dtype=np.uint8)
        for k in range(n):
            img = self.images[int(rng.integers(len(self.images)))]
            h, w = img.shape[:2]
            y = int(rng.integers(h - size + 1))
            x = int(rng.integers(w - size + 1))
            out[k] = img[y : y + size, x : x + size]
        return out.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


# -- optimizer state as safetensors -----------------------------------------


def save_optimizer(optimizer: "torch.optim.Optimizer", path: str | os.PathLike[str]) -> None:
    """Write an optimizer's state: tensors as safetensors, hyper-parameters as JSON metadata."""
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
    """Inverse of :func:`save_optimizer` (tensors land on the parameters' device)."""
    from safetensors import safe_open

    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), framework="pt") as fh:
        groups = json.loads(fh.metadata()["param_groups"])
        for name in fh.keys():
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = fh.get_tensor(name)
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# -- helpers ------------------------------------------------------------------


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))


def save_grid(images: np.ndarray, path: str | os.PathLike[str], *, pad: int = 2) -> Path:
    """Tile ``(N, H, W, 3)`` float images in [0, 1] into one PNG (near-square grid)."""
    from PIL import Image

    n, h, w, _ = images.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    Image.fromarray(np.clip(np.rint(grid * 255), 0, 255).astype(np.uint8)).save(path)
    return Path(path)


def _autocast(device: "torch.device", mode: str) -> tuple[Any, Any]:
    """(autocast context factory, GradScaler or None) for the device."""
    import contextlib

    import torch

    if mode == "auto" and device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None
        return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")
    return contextlib.nullcontext, None


class _Run:
    """Mutable state of one training run (models, optimizers, RNGs, counters)."""

    def __init__(self, out: Path, model_cfg: GeneratorConfig, train_cfg: TrainConfig, device: "torch.device") -> None:
        import torch

        self.out = out
        self.model_cfg = model_cfg
        self.cfg = train_cfg
        self.device = device
        self.models = GeneratorModels.from_config(model_cfg, device=str(device), seed=train_cfg.seed)
        self.ae_opt = torch.optim.AdamW(self.models.vae.parameters(), lr=train_cfg.ae_lr, weight_decay=0.0)
        self.unet_opt = torch.optim.AdamW(self.models.unet.parameters(), lr=train_cfg.unet_lr, weight_decay=0.0)
        self.torch_gen = torch.Generator().manual_seed(train_cfg.seed)
        self.np_rng = np.random.default_rng(train_cfg.seed)
        self.ae_step = 0
        self.unet_step = 0
        self.seconds = {"autoencoder": 0.0, "unet": 0.0}
        self.history: list[dict[str, Any]] = []

    # checkpoint layout: checkpoint/{config.json, autoencoder.safetensors, unet.safetensors,
    # optim_autoencoder.safetensors, optim_unet.safetensors, state.json}
    def save(self) -> None:
        tmp = self.out / (CHECKPOINT_DIR + ".tmp")
        final = self.out / CHECKPOINT_DIR
        old = self.out / (CHECKPOINT_DIR + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        self.models.config = self.model_cfg
        save_models(self.models, tmp)
        save_optimizer(self.ae_opt, tmp / "optim_autoencoder.safetensors")
        save_optimizer(self.unet_opt, tmp / "optim_unet.safetensors")
        state = {
            "format": "aidetect-generator-checkpoint/1",
            "ae_step": self.ae_step,
            "unet_step": self.unet_step,
            "seconds": self.seconds,
            "torch_generator_state": self.torch_gen.get_state().tolist(),
            "numpy_rng_state": self.np_rng.bit_generator.state,
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.cfg),
            "invocations": self.history,
        }
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def load(self) -> None:
        import torch

        ck = self.out / CHECKPOINT_DIR
        state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
        saved = GeneratorConfig.from_dict(state["model_config"])
        if replace(saved, autoencoder=replace(saved.autoencoder, scaling_factor=1.0)) != replace(
            self.model_cfg, autoencoder=replace(self.model_cfg.autoencoder, scaling_factor=1.0)
        ):
            raise ValueError(f"{ck}: the checkpoint's model config differs from --config; cannot resume")
        self.model_cfg = saved
        loaded = load_models(ck, device=str(self.device))
        self.models.vae.load_state_dict(loaded.vae.state_dict())
        self.models.unet.load_state_dict(loaded.unet.state_dict())
        self.models.config = saved
        load_optimizer(self.ae_opt, ck / "optim_autoencoder.safetensors")
        load_optimizer(self.unet_opt, ck / "optim_unet.safetensors")
        self.ae_step = int(state["ae_step"])
        self.unet_step = int(state["unet_step"])
        self.seconds = dict(state["seconds"])
        self.torch_gen.set_state(torch.tensor(state["torch_generator_state"], dtype=torch.uint8))
        self.np_rng.bit_generator.state = state["numpy_rng_state"]
        self.history = list(state.get("invocations", []))

    def log(self, row: dict[str, Any]) -> None:
        with open(self.out / LOSS_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def _set_lr(opt: "torch.optim.Optimizer", lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def train_generator(
    data: str | os.PathLike[str],
    *,
    model_config: GeneratorConfig,
    train_config: TrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    device: str = "auto",
    split: str | None = "train",
    max_seconds: float | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train (or continue training) the generator.

    Args:
        data: Folder of photos or a dataset manifest (see :func:`list_training_photos`).
        model_config: Architecture to train.
        train_config: Optimisation settings.
        out_dir: Run folder: ``checkpoint/``, ``loss_log.jsonl``, ``weights/``, ``samples.png``.
        resume: Continue from ``out_dir/checkpoint`` (its model config must match).
        device: See :func:`generators.models.resolve_device`.
        split: Manifest split to train on.
        max_seconds: Stop (with a checkpoint) after this many seconds of this
            invocation; ``None``: run to the configured steps.
        progress: Receives :class:`TrainProgress` reports.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: On bad data, a crop size not a multiple of the downsampling
            factor, or a missing/mismatched checkpoint when resuming.
    """
    import torch
    import torch.nn.functional as F

    t_start = time.perf_counter()
    cfg = train_config
    f = model_config.autoencoder.downsample_factor
    unet_mult = f * 2 ** (len(model_config.unet.block_out_channels) - 1)
    if cfg.crop_size % f:
        raise ValueError(f"crop_size must be a multiple of {f}, got {cfg.crop_size}")
    if cfg.unet_crop_size % unet_mult or cfg.sample_size % unet_mult:
        raise ValueError(f"unet_crop_size and sample_size must be multiples of {unet_mult}, got {cfg.unet_crop_size}, {cfg.sample_size}")
    out = Path(out_dir)
    if resume and not (out / CHECKPOINT_DIR / STATE_FILE).is_file():
        raise ValueError(f"{out / CHECKPOINT_DIR}: no checkpoint to resume from")
    if not resume and (out / CHECKPOINT_DIR).exists():
        raise ValueError(f"{out / CHECKPOINT_DIR} exists: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    if dev.type == "cpu" and cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    report = progress or (lambda p: None)

    photos = list_training_photos(data, split=split)
    bank = PhotoCrops(
        photos,
        min_side=max(cfg.crop_size, cfg.unet_crop_size),
        max_images=cfg.max_images,
        on_load=lambda d, t: report(TrainProgress("load", d, t, {})),
    )
    run = _Run(out, model_config, cfg, dev)
    if resume:
        run.load()
    run.history.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": str(dev), "ae_step": run.ae_step, "unet_step": run.unet_step, "photos": len(bank.images)})
    autocast, scaler = _autocast(dev, cfg.mixed_precision)
    deadline = None if max_seconds is None else t_start + max_seconds
    stopped = False

    def batch(size: int, n: int) -> "torch.Tensor":
        return torch.from_numpy(bank.batch(run.np_rng, size, n)).to(dev)

    def optimise(opt: "torch.optim.Optimizer", loss: "torch.Tensor", params: Any) -> None:
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

    # -- phase 1: autoencoder ------------------------------------------------
    vae, unet = run.models.vae, run.models.unet
    if run.ae_step < cfg.ae_steps:
        vae.train()
        t_phase = time.perf_counter()
        base = run.seconds["autoencoder"]
        while run.ae_step < cfg.ae_steps:
            _set_lr(run.ae_opt, cfg.ae_lr * _lr_factor(run.ae_step, cfg.ae_steps, cfg.warmup_steps))
            x = batch(cfg.crop_size, cfg.batch_size)
            with autocast():
                posterior = vae.encode(x).latent_dist
                z = posterior.sample(generator=run.torch_gen)
                rec = vae.decode(z).sample
            rec = rec.float()
            mse = F.mse_loss(rec, x)
            l1 = F.l1_loss(rec, x)
            kl = posterior.kl().float().mean()
            loss = mse + cfg.l1_weight * l1 + cfg.kl_weight * kl
            optimise(run.ae_opt, loss, vae.parameters())
            run.ae_step += 1
            run.seconds["autoencoder"] = base + time.perf_counter() - t_phase
            m = {"loss": loss.item(), "mse": mse.item(), "l1": l1.item(), "kl": kl.item(), "psnr": 10 * math.log10(4.0 / max(mse.item(), 1e-12))}
            if run.ae_step % cfg.log_every == 0 or run.ae_step == cfg.ae_steps:
                run.log({"phase": "autoencoder", "step": run.ae_step, **m, "lr": run.ae_opt.param_groups[0]["lr"], "seconds": round(run.seconds["autoencoder"], 2)})
            report(TrainProgress("autoencoder", run.ae_step, cfg.ae_steps, m))
            timed_out = deadline is not None and time.perf_counter() > deadline
            if run.ae_step % cfg.checkpoint_every == 0 or run.ae_step == cfg.ae_steps or timed_out:
                if run.ae_step == cfg.ae_steps:
                    run.model_cfg = run.model_cfg.with_scaling_factor(_scaling_factor(vae, batch, cfg))
                run.save()
            if timed_out and run.ae_step < cfg.ae_steps:
                stopped = True
                break
        vae.eval()
    if run.model_cfg.autoencoder.scaling_factor == 1.0 and not stopped and run.ae_step >= cfg.ae_steps and cfg.ae_steps > 0:
        run.model_cfg = run.model_cfg.with_scaling_factor(_scaling_factor(vae, batch, cfg))
    vae.requires_grad_(False)

    # -- phase 2: latent UNet ------------------------------------------------
    if not stopped and run.unet_step < cfg.unet_steps:
        ddpm = build_ddpm_scheduler(run.model_cfg.scheduler)
        alphas = ddpm.alphas_cumprod.to(dev)
        sf = run.model_cfg.autoencoder.scaling_factor
        unet.train()
        t_phase = time.perf_counter()
        base = run.seconds["unet"]
        while run.unet_step < cfg.unet_steps:
            _set_lr(run.unet_opt, cfg.unet_lr * _lr_factor(run.unet_step, cfg.unet_steps, cfg.warmup_steps))
            x = batch(cfg.unet_crop_size, cfg.unet_batch_size)
            with torch.no_grad():
                latents = vae.encode(x).latent_dist.mode() * sf
            noise = torch.randn(latents.shape, generator=run.torch_gen).to(dev)
            t = torch.randint(0, ddpm.config.num_train_timesteps, (latents.shape[0],), generator=run.torch_gen).to(dev)
            noisy = ddpm.add_noise(latents, noise, t)
            with autocast():
                pred = unet(noisy, t).sample
            loss = F.mse_loss(pred.float(), noise)
            optimise(run.unet_opt, loss, unet.parameters())
            run.unet_step += 1
            run.seconds["unet"] = base + time.perf_counter() - t_phase
            m = {"loss": loss.item()}
            if run.unet_step % cfg.log_every == 0 or run.unet_step == cfg.unet_steps:
                run.log({"phase": "unet", "step": run.unet_step, **m, "lr": run.unet_opt.param_groups[0]["lr"], "seconds": round(run.seconds["unet"], 2)})
            report(TrainProgress("unet", run.unet_step, cfg.unet_steps, m))
            timed_out = deadline is not None and time.perf_counter() > deadline
            if run.unet_step % cfg.checkpoint_every == 0 or run.unet_step == cfg.unet_steps or timed_out:
                run.save()
            if timed_out and run.unet_step < cfg.unet_steps:
                stopped = True
                break
        unet.eval()
        del alphas
    unet.requires_grad_(False)

    # -- final weights and sample grid ----------------------------------------
    run.save()
    weights = out / WEIGHTS_OUT
    run.models.config = run.model_cfg
    save_models(run.models, weights, metadata={"ae_step": run.ae_step, "unet_step": run.unet_step, "seconds": run.seconds, "train_config": asdict(cfg), "photos": len(bank.images)})
    grid = None
    if not stopped:
        from generators.pipeline import LatentDiffusionPipeline

        pipe = LatentDiffusionPipeline(run.models)
        gens = [torch.Generator().manual_seed(cfg.seed + i) for i in range(cfg.sample_count)]
        res = pipe.sample(
            cfg.sample_count,
            size=cfg.sample_size,
            steps=cfg.sample_steps,
            generator=gens,
            callback=lambda i, n: report(TrainProgress("samples", i, n, {})),
        )
        grid = save_grid(res.images, out / GRID_FILE)
    return TrainResult(
        out_dir=out,
        weights_dir=weights,
        ae_step=run.ae_step,
        unet_step=run.unet_step,
        finished=not stopped,
        seconds=time.perf_counter() - t_start,
        grid_path=grid,
        photos=len(bank.images),
    )


def _scaling_factor(vae: Any, batch: Callable[[int, int], "torch.Tensor"], cfg: TrainConfig, *, batches: int = 8) -> float:
    """``1 / std`` of the autoencoder's latents over random crops (Rombach et al. 2022, Sec. 4.3.2)."""
    import torch

    was_training = vae.training
    vae.eval()
    with torch.no_grad():
        zs = [vae.encode(batch(cfg.unet_crop_size, cfg.unet_batch_size)).latent_dist.mode().float() for _ in range(batches)]
    vae.train(was_training)
    std = float(torch.cat([z.flatten() for z in zs]).std())
    return 1.0 / max(std, 1e-6)
