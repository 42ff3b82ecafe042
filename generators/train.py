"""Training the reference generator: the autoencoder first, then the latent UNet.

Stage one trains a KL autoencoder (Kingma & Welling, "Auto-Encoding
Variational Bayes", ICLR 2014) as the LDM first stage (Rombach et al.,
"High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022,
App. G): L1 + MSE pixel terms, a perceptual term on pretrained ImageNet
features, a tiny KL term and, after a warm-up, a patch-GAN hinge term whose
weight is balanced adaptively (Esser et al., "Taming Transformers", CVPR
2021); see :mod:`generators.losses`. Stage two trains a ``UNet2DModel`` on
its scaled latents with the DDPM noise-prediction objective (Ho et al.,
"Denoising Diffusion Probabilistic Models", NeurIPS 2020).

Training data are random crops of real photos at their native resolution:
nothing is ever resized. The machinery (device, seeding, safetensors
checkpoints with optimizer state, the cosine schedule and the time-limited
loop) is the project's one training toolkit, :mod:`generators.training_utils`
and :mod:`generators.optimization`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generators.config import GeneratorConfig, GeneratorTrainConfig
from generators.models import (
    CONFIG_FILE,
    GeneratorModels,
    build_ddpm_scheduler,
    save_models,
)
from generators.optimization import cosine_lr_factor, set_lr
from generators.training_utils import (
    STATE_FILE,
    TimeLimit,
    load_checkpoint,
    resolve_device,
    run_training_loop,
    save_checkpoint,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "GeneratorTrainResult",
    "PhotoCrops",
    "TrainProgress",
    "list_training_photos",
    "save_grid",
    "train_generator",
]

CHECKPOINT_DIR = "checkpoint"
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
class GeneratorTrainResult:
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


def list_training_photos(data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, split: str | None = "train") -> list[Path]:
    """Photos to train on, from one or several sources.

    Args:
        data: A source or a list of sources, each one of: a dataset folder
            with a ``real/`` subfolder or a dataset manifest (``.json``/``.csv``),
            of which the real photos of ``split`` are used
            (:func:`datasets.samples.load_dataset`: the same hash splits
            everywhere); or any other folder, of which every photo under it
            (recursively) is used.
        split: Split to use (``None``: all reals). Ignored for plain folders.

    Returns:
        The photos, sorted within each source, sources in the given order,
        without duplicates.

    Raises:
        ValueError: If a source is neither, or no photo is found.
    """
    from datasets.samples import load_dataset

    sources = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    photos: list[Path] = []
    for src in sources:
        p = Path(src)
        if (p.is_dir() and (p / "real").is_dir()) or (p.is_file() and p.suffix.lower() in (".json", ".csv")):
            found = sorted(Path(s.path) for s in load_dataset(p) if s.label == "real" and (split is None or s.split == split))
        elif p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in PHOTO_EXTENSIONS)
        else:
            raise ValueError(f"{p}: not a folder of photos or a .json/.csv manifest")
        photos.extend(q for q in found if q not in photos)
    if not photos:
        raise ValueError(f"{', '.join(map(str, sources))}: no photos found" + (f" in split {split!r}" if split else ""))
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
        """``n`` random crops of side ``size`` (each flipped left-right with probability 1/2).

        Returns:
            ``float32`` ``(n, 3, size, size)`` in ``[-1, 1]``.
        """
        out = np.empty((n, size, size, 3), dtype=np.uint8)
        for k in range(n):
            img = self.images[int(rng.integers(len(self.images)))]
            h, w = img.shape[:2]
            y = int(rng.integers(h - size + 1))
            x = int(rng.integers(w - size + 1))
            crop = img[y : y + size, x : x + size]
            out[k] = crop[:, ::-1] if rng.random() < 0.5 else crop
        return out.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


# -- helpers ------------------------------------------------------------------


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
    """Mutable state of one training run (models, optimizers, RNGs, counters).

    Checkpoint layout (:func:`generators.training_utils.save_checkpoint`):
    ``checkpoint/{config.json, autoencoder, unet[, discriminator],
    optim_autoencoder, optim_unet[, optim_discriminator]}.safetensors`` and ``state.json``.
    """

    def __init__(self, out: Path, model_cfg: GeneratorConfig, train_cfg: GeneratorTrainConfig, device: "torch.device") -> None:
        import torch

        from generators.training_utils import torch_generator

        self.out = out
        self.model_cfg = model_cfg
        self.cfg = train_cfg
        self.device = device
        self.models = GeneratorModels.from_config(model_cfg, device=str(device), seed=train_cfg.seed)
        self.ae_opt = torch.optim.AdamW(self.models.vae.parameters(), lr=train_cfg.ae_lr, weight_decay=0.0)
        self.unet_opt = torch.optim.AdamW(self.models.unet.parameters(), lr=train_cfg.unet_lr, weight_decay=0.0)
        self.disc: torch.nn.Module | None = None
        self.disc_opt: torch.optim.Optimizer | None = None
        if train_cfg.adversarial_weight > 0:
            from generators.losses import build_patch_discriminator
            from generators.models import reset_parameters

            self.disc = build_patch_discriminator(in_channels=model_cfg.autoencoder.in_channels).to(device)
            reset_parameters(self.disc, torch_generator(train_cfg.seed + 1))
            self.disc_opt = torch.optim.AdamW(self.disc.parameters(), lr=train_cfg.disc_lr, betas=(0.5, 0.9), weight_decay=0.0)
        self.torch_gen = torch_generator(train_cfg.seed)
        self.np_rng = np.random.default_rng(train_cfg.seed)
        self.ae_step = 0
        self.unet_step = 0
        self.seconds = {"autoencoder": 0.0, "unet": 0.0}
        self.history: list[dict[str, Any]] = []

    def _parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        modules: dict[str, Any] = {"autoencoder": self.models.vae, "unet": self.models.unet}
        optims: dict[str, Any] = {"optim_autoencoder": self.ae_opt, "optim_unet": self.unet_opt}
        if self.disc is not None:
            modules["discriminator"] = self.disc
            optims["optim_discriminator"] = self.disc_opt
        return modules, optims

    def save(self) -> None:
        modules, optims = self._parts()
        state = {
            "format": "aidetect-generator-checkpoint/2",
            "ae_step": self.ae_step,
            "unet_step": self.unet_step,
            "seconds": self.seconds,
            "torch_generator_state": self.torch_gen.get_state().tolist(),
            "numpy_rng_state": self.np_rng.bit_generator.state,
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.cfg),
            "invocations": self.history,
        }
        doc = json.dumps({"model": self.model_cfg.to_dict()}, indent=2) + "\n"
        save_checkpoint(self.out / CHECKPOINT_DIR, modules=modules, optimizers=optims, state=state,
                        write_extra=lambda d: (d / CONFIG_FILE).write_text(doc, encoding="utf-8"))  # fmt: skip

    def load(self) -> None:
        import torch

        ck = self.out / CHECKPOINT_DIR
        state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
        saved = GeneratorConfig.from_dict(state["model_config"])
        if replace(saved, autoencoder=replace(saved.autoencoder, scaling_factor=1.0)) != replace(
            self.model_cfg, autoencoder=replace(self.model_cfg.autoencoder, scaling_factor=1.0)
        ):
            raise ValueError(f"{ck}: the checkpoint's model config differs from --config; cannot resume")
        modules, optims = self._parts()
        load_checkpoint(ck, modules=modules, optimizers=optims)
        self.model_cfg = saved
        self.models.config = saved
        self.ae_step = int(state["ae_step"])
        self.unet_step = int(state["unet_step"])
        self.seconds = dict(state["seconds"])
        self.torch_gen.set_state(torch.tensor(state["torch_generator_state"], dtype=torch.uint8))
        self.np_rng.bit_generator.state = state["numpy_rng_state"]
        self.history = list(state.get("invocations", []))

    def log(self, row: dict[str, Any]) -> None:
        with open(self.out / LOSS_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def train_generator(
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    model_config: GeneratorConfig,
    train_config: GeneratorTrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    device: str = "auto",
    split: str | None = "train",
    max_seconds: float | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> GeneratorTrainResult:
    """Train (or continue training) the generator.

    Args:
        data: Photo sources (see :func:`list_training_photos`).
        model_config: Architecture to train.
        train_config: Optimisation settings.
        out_dir: Run folder: ``checkpoint/``, ``loss_log.jsonl``, ``weights/``, ``samples.png``.
        resume: Continue from ``out_dir/checkpoint`` (its model config must match).
        device: See :func:`generators.training_utils.resolve_device`.
        split: Manifest split to train on.
        max_seconds: Stop (with a checkpoint) after this many seconds of this
            invocation (``--max-minutes``); ``None``: run to the configured steps.
        progress: Receives :class:`TrainProgress` reports.

    Returns:
        A :class:`GeneratorTrainResult`.

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
    if cfg.unet_steps and (cfg.unet_crop_size % unet_mult or cfg.sample_size % unet_mult):
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
    limit = TimeLimit(None if max_seconds is None else max_seconds / 60.0)

    photos = list_training_photos(data, split=split)
    bank = PhotoCrops(
        photos,
        min_side=max(cfg.crop_size, cfg.unet_crop_size if cfg.unet_steps else 0),
        max_images=cfg.max_images,
        on_load=lambda d, t: report(TrainProgress("load", d, t, {})),
    )
    run = _Run(out, model_config, cfg, dev)
    if resume:
        run.load()
    run.history.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": str(dev), "threads": torch.get_num_threads(),
                        "ae_step": run.ae_step, "unet_step": run.unet_step, "photos": len(bank.images)})  # fmt: skip
    autocast, scaler = _autocast(dev, cfg.mixed_precision)
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
    perceptual = None
    if cfg.perceptual_weight > 0 and run.ae_step < cfg.ae_steps:
        from generators.losses import build_perceptual_loss

        perceptual = build_perceptual_loss().to(dev)
    if run.ae_step < cfg.ae_steps:
        from generators.losses import (
            adaptive_adversarial_weight,
            hinge_discriminator_loss,
        )

        vae.train()
        if run.disc is not None:
            run.disc.train()
        t_phase, base = time.perf_counter(), run.seconds["autoencoder"]
        last_layer = vae.decoder.conv_out.weight

        def ae_step(i: int) -> None:
            lr_f = cosine_lr_factor(i, total_steps=cfg.ae_steps, warmup_steps=cfg.warmup_steps, floor=cfg.lr_floor)
            set_lr(run.ae_opt, cfg.ae_lr * lr_f)
            x = batch(cfg.crop_size, cfg.batch_size)
            with autocast():
                posterior = vae.encode(x).latent_dist
                z = posterior.sample(generator=run.torch_gen)
                rec = vae.decode(z).sample
            rec = rec.float()
            mse, l1 = F.mse_loss(rec, x), F.l1_loss(rec, x)
            kl = posterior.kl().float().mean()
            rec_loss = cfg.mse_weight * mse + cfg.l1_weight * l1
            m = {"mse": mse.item(), "l1": l1.item(), "kl": kl.item(), "psnr": 10 * math.log10(4.0 / max(mse.item(), 1e-12))}
            if perceptual is not None:
                p_loss = perceptual(rec, x)
                rec_loss = rec_loss + cfg.perceptual_weight * p_loss
                m["perceptual"] = p_loss.item()
            loss = rec_loss + cfg.kl_weight * kl
            adversarial = run.disc is not None and i >= cfg.adversarial_start
            if adversarial:
                g_loss = -run.disc(rec).mean()
                w = adaptive_adversarial_weight(rec_loss, g_loss, last_layer) * cfg.adversarial_weight
                loss = loss + w * g_loss
                m.update({"g_loss": g_loss.item(), "adv_weight": float(w)})
            m["loss"] = loss.item()
            optimise(run.ae_opt, loss, vae.parameters())
            if adversarial:
                set_lr(run.disc_opt, cfg.disc_lr * lr_f)
                d_loss = hinge_discriminator_loss(run.disc(x), run.disc(rec.detach()))
                optimise(run.disc_opt, d_loss, run.disc.parameters())
                m["d_loss"] = d_loss.item()
            run.ae_step = i + 1
            run.seconds["autoencoder"] = base + time.perf_counter() - t_phase
            if run.ae_step % cfg.log_every == 0 or run.ae_step == cfg.ae_steps:
                run.log({"phase": "autoencoder", "step": run.ae_step, **m, "lr": run.ae_opt.param_groups[0]["lr"], "seconds": round(run.seconds["autoencoder"], 2)})
            report(TrainProgress("autoencoder", run.ae_step, cfg.ae_steps, m))

        def ae_save(step: int) -> None:
            if step == cfg.ae_steps:
                run.model_cfg = run.model_cfg.with_scaling_factor(_scaling_factor(vae, batch, cfg))
            run.save()

        outcome = run_training_loop(start_step=run.ae_step, total_steps=cfg.ae_steps, train_step=ae_step, save=ae_save,
                                    checkpoint_every=cfg.checkpoint_every, time_limit=limit)  # fmt: skip
        stopped = outcome.stopped
        vae.eval()
    perceptual = None  # frees the feature network before the UNet phase
    if run.model_cfg.autoencoder.scaling_factor == 1.0 and run.ae_step > 0:  # also when stopped: the weights are usable
        run.model_cfg = run.model_cfg.with_scaling_factor(_scaling_factor(vae, batch, cfg))
    vae.requires_grad_(False)

    # -- phase 2: latent UNet ------------------------------------------------
    if not stopped and run.unet_step < cfg.unet_steps:
        ddpm = build_ddpm_scheduler(run.model_cfg.scheduler)
        sf = run.model_cfg.autoencoder.scaling_factor
        unet.train()
        t_phase, base = time.perf_counter(), run.seconds["unet"]

        def unet_step(i: int) -> None:
            set_lr(run.unet_opt, cfg.unet_lr * cosine_lr_factor(i, total_steps=cfg.unet_steps, warmup_steps=cfg.warmup_steps, floor=cfg.lr_floor))
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
            run.unet_step = i + 1
            run.seconds["unet"] = base + time.perf_counter() - t_phase
            m = {"loss": loss.item()}
            if run.unet_step % cfg.log_every == 0 or run.unet_step == cfg.unet_steps:
                run.log({"phase": "unet", "step": run.unet_step, **m, "lr": run.unet_opt.param_groups[0]["lr"], "seconds": round(run.seconds["unet"], 2)})
            report(TrainProgress("unet", run.unet_step, cfg.unet_steps, m))

        outcome = run_training_loop(start_step=run.unet_step, total_steps=cfg.unet_steps, train_step=unet_step, save=lambda s: run.save(),
                                    checkpoint_every=cfg.checkpoint_every, time_limit=limit)  # fmt: skip
        stopped = outcome.stopped
        unet.eval()
    unet.requires_grad_(False)

    # -- final weights and sample grid ----------------------------------------
    run.save()
    weights = out / WEIGHTS_OUT
    run.models.config = run.model_cfg
    save_models(run.models, weights, metadata={"ae_step": run.ae_step, "unet_step": run.unet_step, "seconds": run.seconds,
                                               "train_config": asdict(cfg), "photos": len(bank.images), "invocations": run.history})  # fmt: skip
    grid = None
    if not stopped and cfg.unet_steps > 0:
        from generators.pipeline import LatentDiffusionPipeline
        from generators.training_utils import torch_generator

        pipe = LatentDiffusionPipeline(run.models)
        gens = [torch_generator(cfg.seed + i) for i in range(cfg.sample_count)]
        res = pipe.sample(
            cfg.sample_count,
            size=cfg.sample_size,
            steps=cfg.sample_steps,
            generator=gens,
            callback=lambda i, n: report(TrainProgress("samples", i, n, {})),
        )
        grid = save_grid(res.images, out / GRID_FILE)
    return GeneratorTrainResult(
        out_dir=out,
        weights_dir=weights,
        ae_step=run.ae_step,
        unet_step=run.unet_step,
        finished=not stopped,
        seconds=time.perf_counter() - t_start,
        grid_path=grid,
        photos=len(bank.images),
    )


def _scaling_factor(vae: Any, batch: Callable[[int, int], "torch.Tensor"], cfg: GeneratorTrainConfig, *, batches: int = 8) -> float:
    """``1 / std`` of the autoencoder's latents over random crops (Rombach et al. 2022, Sec. 4.3.2)."""
    import torch

    was_training = vae.training
    vae.eval()
    with torch.no_grad():
        zs = [vae.encode(batch(cfg.crop_size, cfg.batch_size)).latent_dist.mode().float() for _ in range(batches)]
    vae.train(was_training)
    std = float(torch.cat([z.flatten() for z in zs]).std())
    return 1.0 / max(std, 1e-6)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m generators.train SOURCE... --config C --out D [--resume] [--max-minutes M]``.

    The same training as ``detect train-generator``, over several photo
    sources at once (e.g. two dataset folders); progress lines go to stderr.
    """
    import argparse
    import sys

    from generators.config import load_json_config

    ap = argparse.ArgumentParser(prog="python -m generators.train", description=main.__doc__)
    ap.add_argument("sources", nargs="+", help="dataset folders (real/ of --split), manifests, or plain photo folders")
    ap.add_argument("--config", required=True, help='JSON: {"model": {...}, "train": {...}}')
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--split", default="train")
    ap.add_argument("--max-minutes", type=float, help="checkpoint and stop after this long (continue with --resume)")
    args = ap.parse_args(argv)
    try:
        model_cfg, train_cfg = load_json_config(args.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = {"t": 0.0}

    def progress(p: TrainProgress) -> None:
        now = time.perf_counter()
        if now - last["t"] > 30 or p.step >= p.total:
            last["t"] = now
            ms = " ".join(f"{k}={v:.4g}" for k, v in p.metrics.items())
            print(f"{time.strftime('%H:%M:%S')} {p.phase} {p.step}/{p.total} {ms}", file=sys.stderr, flush=True)

    try:
        res = train_generator(args.sources, model_config=model_cfg, train_config=train_cfg, out_dir=args.out, resume=args.resume,
                              device=args.device, split=args.split, max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                              progress=progress)  # fmt: skip
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = "finished" if res.finished else "stopped (continue with --resume)"
    print(f"{state}: autoencoder {res.ae_step}, UNet {res.unet_step} steps on {res.photos} photos in {res.seconds:.0f} s; weights {res.weights_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
