"""``detect generate`` and ``detect train-generator``: the bundled reference generator.

Imported only when one of these commands runs (see ``LAZY_COMMANDS`` in
``cli/main.py``); torch and diffusers are imported inside the commands.
Progress and messages go to stderr; exit status 0 on success, 2 on a usage or
fatal error.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from cli.render import safe_text
from generators.zoo import DECODER_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from generators.models import GeneratorModels

__all__ = ["GenerateConfig", "generate", "train_generator"]

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif")


class FatalError(click.ClickException):
    """A fatal error: message on stderr, exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class GenerateConfig:
    """Everything ``detect generate`` was asked to do."""

    out: str
    n: int = 16
    size: int = 256
    steps: int = 50
    seed: int = 0
    device: str = "auto"
    batch_size: int = 4
    from_real: str | None = None
    mode: str = "reconstruct"
    strength: float = 0.3
    eta: float = 0.0
    weights: str | None = None
    tile_size: int | None = None
    tile_overlap: int | None = None
    threads: int = 0
    quiet: bool = False
    decoder: str | None = None


def _console() -> Console:
    return Console(stderr=True)


def _progress(console: Console, quiet: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


def _pick_device(device: str, console: Console) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device auto or cpu", param_hint="--device")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        console.print("[dim]no CUDA device: running on CPU (float32)[/dim]")
        return "cpu"
    return device


def _load(cfg: GenerateConfig, console: Console) -> "GeneratorModels":
    from generators.models import load_models

    device = _pick_device(cfg.device, console)
    try:
        return load_models(cfg.weights, device=device)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise FatalError(f"cannot load generator weights: {exc}") from None


def _scheduler_doc(models: "GeneratorModels") -> dict[str, Any]:
    return {"class": "DDIMScheduler", **asdict(models.config.scheduler), "set_alpha_to_one": False}


def _save_png(image: Any, path: Path) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8), "RGB").save(path)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _common(models: "GeneratorModels", cfg: GenerateConfig) -> dict[str, Any]:
    from detectors.record import tool_version

    return {
        "generator": "aidetect-reference-ldm",
        "tool_version": tool_version(),
        "weights_sha256": models.weights_sha256,
        "weights_source": models.source,
        "device": str(models.device),
        "dtype": str(models.dtype).replace("torch.", ""),
        "scheduler": _scheduler_doc(models),
    }


def _run_samples(cfg: GenerateConfig, console: Console) -> dict[str, Any]:
    import torch

    from generators.pipeline import LatentDiffusionPipeline

    models = _load(cfg, console)
    pipe = LatentDiffusionPipeline(models, tile_size=cfg.tile_size, tile_overlap=cfg.tile_overlap, decode_tile_size=max(512, cfg.tile_size or 0))
    mult = pipe.f * pipe.unet_factor
    if cfg.size % mult:
        raise click.BadParameter(f"must be a multiple of {mult} for these weights, got {cfg.size}", param_hint="--size")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    common = _common(models, cfg)
    files = []
    t_all = time.perf_counter()
    with _progress(console, cfg.quiet) as progress:
        t_samples = progress.add_task("samples", total=cfg.n)
        t_steps = progress.add_task("DDIM steps", total=cfg.steps)
        for start in range(0, cfg.n, cfg.batch_size):
            idx = list(range(start, min(cfg.n, start + cfg.batch_size)))
            gens = [torch.Generator().manual_seed(cfg.seed + i) for i in idx]
            progress.reset(t_steps, total=cfg.steps)
            res = pipe.sample(
                len(idx),
                size=cfg.size,
                steps=cfg.steps,
                eta=cfg.eta,
                generator=gens,
                callback=lambda i, n: progress.update(t_steps, completed=i),
            )
            for k, i in enumerate(idx):
                name = f"sample_{i:05d}.png"
                _save_png(res.images[k], out / name)
                side = {
                    "file": name,
                    "mode": "sample",
                    "seed": cfg.seed + i,
                    "steps": cfg.steps,
                    "eta": cfg.eta,
                    "height": cfg.size,
                    "width": cfg.size,
                    "batch_size": len(idx),
                    "seconds": round(res.seconds / len(idx), 4),
                    **common,
                }
                _write_json(out / f"sample_{i:05d}.json", side)
                files.append(name)
            progress.advance(t_samples, len(idx))
    total = time.perf_counter() - t_all
    summary = {"mode": "sample", "n": cfg.n, "size": cfg.size, "steps": cfg.steps, "seed": cfg.seed, "files": files, "seconds": round(total, 3), "samples_per_second": round(cfg.n / total, 4), **common}
    _write_json(out / "generation.json", summary)
    return summary


def _photo_list(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_EXTENSIONS and not p.name.startswith("."))


def _targets(photos: list[Path], src: Path) -> list[Path]:
    """Output path (relative, ``.png``) of each photo: its name under ``src``, kept unique."""
    out, taken = [], set()
    for path in photos:
        rel = path.relative_to(src)
        target = rel.with_suffix(".png")
        if target in taken:  # a.jpg and a.png in one folder: keep both
            target = rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.').lower()}.png")
        taken.add(target)
        out.append(target)
    return out


def _read_photo(path: Path, failures: list[dict[str, Any]], console: Console) -> "np.ndarray | None":
    """The photo's first region, ``float32`` ``(H, W, 3)`` in ``[0, 1]``; ``None`` (recorded in
    ``failures`` and printed escaped) when it cannot be read."""
    from forensics.io import DEFAULT_MAX_PIXELS, load_image

    try:
        return load_image(path, max_full_pixels=DEFAULT_MAX_PIXELS).regions[0]
    except (OSError, ValueError) as exc:
        failures.append({"file": str(path), "error": str(exc)})
        console.print(safe_text(f"skipped {path}: {exc}", "yellow"))
        return None


def _run_from_real(cfg: GenerateConfig, console: Console) -> dict[str, Any]:
    import torch

    from generators.pipeline import LatentDiffusionPipeline

    src = Path(cfg.from_real or "")
    photos = _photo_list(src)
    if not photos:
        raise click.UsageError(f"{src}: no photos found (extensions: {', '.join(PHOTO_EXTENSIONS)})")
    models = _load(cfg, console)
    pipe = LatentDiffusionPipeline(models, tile_size=cfg.tile_size, tile_overlap=cfg.tile_overlap, decode_tile_size=max(512, cfg.tile_size or 0))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    common = _common(models, cfg)
    files, failures = [], []
    targets = _targets(photos, src)
    t_all = time.perf_counter()
    with _progress(console, cfg.quiet) as progress:
        t_photos = progress.add_task("photos", total=len(photos))
        t_inner = progress.add_task("tiles" if cfg.mode == "reconstruct" else "DDIM steps", total=None)
        for i, path in enumerate(photos):
            target = targets[i]
            progress.reset(t_inner, total=None)
            px = _read_photo(path, failures, console)
            if px is None:
                progress.advance(t_photos)
                continue
            if cfg.mode == "reconstruct":
                res = pipe.reconstruct(px, on_tile=lambda d, n: progress.update(t_inner, completed=d, total=n))
                seed = None
            else:
                seed = cfg.seed + i
                res = pipe.regenerate(
                    px,
                    strength=cfg.strength,
                    steps=cfg.steps,
                    eta=cfg.eta,
                    generator=torch.Generator().manual_seed(seed),
                    callback=lambda d, n: progress.update(t_inner, completed=d, total=n),
                )
            _save_png(res.image, out / target)
            side = {
                "file": target.as_posix(),
                "source": str(path),
                "mode": cfg.mode,
                "strength": res.strength,
                "steps": res.steps,
                "seed": seed,
                "height": int(px.shape[0]),
                "width": int(px.shape[1]),
                "tiles": res.tiles,
                "tile_size": pipe.tile_size,
                "tile_overlap": pipe.tile_overlap,
                "seconds": round(res.seconds, 4),
                **common,
            }
            _write_json((out / target).with_suffix(".json"), side)
            files.append(target.as_posix())
            progress.advance(t_photos)
    if not files:
        raise FatalError(f"{src}: no photo could be read ({len(failures)} failed)")
    total = time.perf_counter() - t_all
    summary = {"mode": cfg.mode, "source": str(src), "strength": cfg.strength if cfg.mode == "regenerate" else None, "files": files, "failures": failures, "seconds": round(total, 3), **common}
    _write_json(out / "generation.json", summary)
    return summary


def _decoder_names(decoder: str) -> tuple[str, ...]:
    return DECODER_NAMES if decoder == "all" else (decoder,)


def _load_decoders(cfg: GenerateConfig, console: Console) -> tuple[list[Any], list[dict[str, str]]]:
    """The zoo decoders of ``--decoder``: loaded ones, and ``{"decoder", "error"}`` for those that could not load.

    A single named decoder that cannot load is fatal; with ``all`` the others still run.
    """
    from generators.zoo import load_decoder

    device = _pick_device(cfg.device, console)
    tiles = {"tile_size": cfg.tile_size, "tile_overlap": cfg.tile_overlap}
    loaded, missing = [], []
    for name in _decoder_names(cfg.decoder or ""):
        try:
            loaded.append(load_decoder(name, device=device, weights_dir=cfg.weights, **tiles))
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            if cfg.decoder != "all":
                raise FatalError(f"cannot load decoder {name!r}: {exc}") from None
            missing.append({"decoder": name, "error": str(exc)})
            console.print(safe_text(f"decoder {name} skipped: {exc}", "yellow"))
    if not loaded:
        raise FatalError("no decoder could be loaded: " + "; ".join(f"{m['decoder']}: {m['error']}" for m in missing))
    return loaded, missing


def _run_zoo(cfg: GenerateConfig, console: Console) -> dict[str, Any]:
    """``--from-real DIR --mode reconstruct --decoder NAME|all``: one round trip per photo and decoder."""
    import torch

    from detectors.record import tool_version

    src = Path(cfg.from_real or "")
    photos = _photo_list(src)
    if not photos:
        raise click.UsageError(f"{src}: no photos found (extensions: {', '.join(PHOTO_EXTENSIONS)})")
    decoders, missing = _load_decoders(cfg, console)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    sub = cfg.decoder == "all"
    targets = _targets(photos, src)
    files: dict[str, list[str]] = {d.spec.name: [] for d in decoders}
    failures = []
    t_all = time.perf_counter()
    with _progress(console, cfg.quiet) as progress:
        t_photos = progress.add_task("photos", total=len(photos))
        t_inner = progress.add_task("tiles", total=None)
        for i, path in enumerate(photos):
            px = _read_photo(path, failures, console)
            if px is None:
                progress.advance(t_photos)
                continue
            for dec in decoders:
                name = dec.spec.name
                progress.update(t_inner, description=f"tiles ({name})")
                progress.reset(t_inner, total=None)
                try:
                    res = dec.reconstruct(px, on_tile=lambda d, n: progress.update(t_inner, completed=d, total=n))
                except (RuntimeError, ValueError) as exc:  # e.g. out of memory on one huge photo
                    failures.append({"file": str(path), "decoder": name, "error": str(exc)})
                    console.print(safe_text(f"{name} failed on {path}: {exc}", "yellow"))
                    continue
                rel = Path(name) / targets[i] if sub else targets[i]
                _save_png(res.image, out / rel)
                side = {
                    "file": rel.as_posix(),
                    "source": str(path),
                    "mode": "reconstruct",
                    "decoder": name,
                    "decoder_description": dec.spec.description,
                    "downsample_factor": dec.spec.downsample_factor,
                    "latent_channels": dec.spec.latent_channels,
                    "strength": None,
                    "steps": 0,
                    "seed": None,
                    "height": int(px.shape[0]),
                    "width": int(px.shape[1]),
                    "tiles": res.tiles,
                    "tile_size": dec.spec.tile_size,
                    "tile_overlap": dec.spec.tile_overlap,
                    "seconds": round(res.seconds, 4),
                    "generator": "aidetect-decoder-zoo",
                    "tool_version": tool_version(),
                    "weights_sha256": dec.weights_sha256,
                    "weights_source": dec.source,
                    "device": str(dec.device),
                    "dtype": str(dec.dtype).replace("torch.", ""),
                }
                _write_json((out / rel).with_suffix(".json"), side)
                files[name].append(rel.as_posix())
            progress.advance(t_photos)
    if not any(files.values()):
        raise FatalError(f"{src}: no reconstruction could be made ({len(failures)} failed)")
    total = time.perf_counter() - t_all
    summary = {
        "mode": "reconstruct",
        "source": str(src),
        "decoders": [d.spec.name for d in decoders],
        "skipped_decoders": missing,
        "files": [f for fs in files.values() for f in fs],
        "files_by_decoder": files,
        "failures": failures,
        "seconds": round(total, 3),
        "generator": "aidetect-decoder-zoo",
        "tool_version": tool_version(),
        "torch_threads": torch.get_num_threads(),
    }
    _write_json(out / "generation.json", summary)
    return summary


@click.command("generate")
@click.option("--n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Samples to draw from noise.")
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True, help="Sample side in pixels.")
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True, help="DDIM steps (of a full schedule for --mode regenerate).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i (photo i) uses seed + i.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output folder (PNG + one JSON sidecar per image).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: CUDA when present, else CPU.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Samples per batch.")
@click.option("--from-real", "from_real", type=click.Path(exists=True, file_okay=False), help="Make aligned fakes of the photos in this folder instead.")
@click.option("--mode", type=click.Choice(["reconstruct", "regenerate"]), default="reconstruct", show_default=True, help="With --from-real: VAE round trip, or SDEdit noise-and-denoise.")
@click.option(
    "--decoder",
    type=click.Choice([*DECODER_NAMES, "all"]),
    help="--mode reconstruct: round trip through this decoder of the zoo (generators.zoo); "
    "all: every decoder, one sub-folder each. Default: the generator's own autoencoder (--weights).",
)
@click.option("--strength", type=float, default=0.3, show_default=True, help="--mode regenerate: fraction of the schedule re-run, in (0, 1].")
@click.option("--eta", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="DDIM eta (0: deterministic).")
@click.option("--weights", type=click.Path(exists=True, file_okay=False), help="Weights folder (default: the shipped ones); with --decoder, the zoo's weight files.")
@click.option("--tile-size", type=click.IntRange(min=16), help="Autoencoder tile side for large photos. Default: per model, its training crop size (64 px for f=2, 128 for f=8; 512 for taef2).")
@click.option("--tile-overlap", type=click.IntRange(min=0), help="Overlap between tiles, blended with windows. Default: per model (a quarter of the tile, 64 px for taef2).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True, help="torch CPU threads (0: torch's default). Use 1 on a machine shared with other jobs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def generate(ctx: click.Context, **kwargs: Any) -> None:
    """Make synthetic images, or AI reconstructions of real photos (aligned fakes).

    From noise: `--n 64 --size 256 --steps 50 --seed 0 --out DIR`. From photos:
    `--from-real DIR --mode reconstruct|regenerate [--strength 0.3] --out DIR`;
    outputs keep each photo's size and name, as PNG. `--decoder f8c4|f8c16|taef2|f2`
    reconstructs through that decoder of the zoo, `--decoder all` through each
    (one sub-folder per decoder; one whose weights are missing is skipped with a
    warning and listed in generation.json). Every PNG gets a JSON
    sidecar (seed, steps, scheduler, weights sha256, timing); the PNGs carry no
    metadata, so that both classes can be re-encoded alike later.
    """
    from click.core import ParameterSource

    cfg = GenerateConfig(**kwargs)
    if not 0.0 < cfg.strength <= 1.0:
        raise click.BadParameter(f"must be in (0, 1], got {cfg.strength}", param_hint="--strength")
    if cfg.tile_overlap is not None and cfg.tile_size is not None and cfg.tile_overlap >= cfg.tile_size:
        raise click.BadParameter(f"must be smaller than --tile-size ({cfg.tile_size}), got {cfg.tile_overlap}", param_hint="--tile-overlap")
    if cfg.from_real is None:
        for name in ("mode", "strength", "decoder"):
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                raise click.UsageError(f"--{name} applies only with --from-real")
    if cfg.decoder is not None and cfg.mode != "reconstruct":
        raise click.UsageError("--decoder applies only with --mode reconstruct")
    console = _console()
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    if cfg.from_real and cfg.decoder:
        summary = _run_zoo(cfg, console)
    else:
        summary = _run_from_real(cfg, console) if cfg.from_real else _run_samples(cfg, console)
    if not cfg.quiet:
        console.print(f"wrote {len(summary['files'])} image(s) to {cfg.out} in {summary['seconds']:.1f} s")


@click.command("train-generator")
@click.argument("data_dir", type=click.Path(exists=True))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True, help='JSON: {"model": {...}, "train": {...}}.')
@click.option("--out", "out", type=click.Path(file_okay=False), default="runs/generator", show_default=True, help="Run folder (checkpoint/, loss_log.jsonl, weights/, samples.png).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--split", default="train", show_default=True, help="When DATA_DIR is a manifest: the split whose real photos are used.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), help="Checkpoint and stop after this long (continue with --resume).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train_generator(data_dir: str, config_path: str, out: str, resume: bool, device: str, split: str, max_minutes: float | None, quiet: bool) -> None:
    """Train the bundled reference generator on real photos: autoencoder, then latent UNet.

    DATA_DIR is a folder of photos, or a dataset manifest (.json/.csv) of which
    the real photos of --split are used. Crops are taken at native resolution
    (never resized). Checkpoints are .safetensors plus a JSON state, saved
    every `checkpoint_every` steps; --resume continues them.
    """
    from generators.config import load_json_config
    from generators.train import TrainProgress, train_generator as run_training

    console = _console()
    try:
        model_cfg, train_cfg = load_json_config(config_path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    dev = _pick_device(device, console)
    with _progress(console, quiet) as progress:
        tasks: dict[str, Any] = {}
        last = {"t": 0.0}

        def on_progress(p: TrainProgress) -> None:
            if p.phase not in tasks:
                tasks[p.phase] = progress.add_task(p.phase, total=p.total)
            desc = p.phase
            if p.metrics:
                desc += " " + " ".join(f"{k}={v:.4g}" for k, v in p.metrics.items() if k in ("loss", "psnr"))
            now = time.perf_counter()
            if now - last["t"] > 0.2 or p.step >= p.total:
                progress.update(tasks[p.phase], completed=p.step, total=p.total, description=desc)
                last["t"] = now

        try:
            result = run_training(
                data_dir,
                model_config=model_cfg,
                train_config=train_cfg,
                out_dir=out,
                resume=resume,
                device=dev,
                split=split,
                max_seconds=max_minutes * 60 if max_minutes else None,
                progress=on_progress,
            )
        except ValueError as exc:
            raise FatalError(str(exc)) from None
    state = "finished" if result.finished else "stopped early (continue with --resume)"
    console.print(
        f"{state}: autoencoder {result.ae_step} steps, UNet {result.unet_step} steps on {result.photos} photos "
        f"in {result.seconds:.1f} s; weights in {result.weights_dir}" + (f", samples in {result.grid_path}" if result.grid_path else "")
    )
