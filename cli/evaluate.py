"""``detect eval`` and ``detect calibrate``: measure on labelled data, and fit the shipped thresholds.

The maths lives in :mod:`detectors.evaluation`, :mod:`detectors.metrics` and
:mod:`detectors.calibration`; this module runs the grid, shows progress and
writes the outputs.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import signal
import stat
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import click
import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.engine import EngineConfig, Interrupts, Terminated, make_engine, resolve_calibration
from datasets.samples import Sample, load_dataset
from detectors.evaluation import (
    CSV_FIELDS,
    DEFAULT_PERTURBATIONS,
    FORMAT_CHECK,
    ScoreRow,
    check_perturbations,
    compute_metrics,
    format_bias,
    perturb_bytes,
    read_score_rows,
    score_rows,
)

if TYPE_CHECKING:  # pragma: no cover
    from detectors.pipeline import Pipeline

__all__ = ["EvalConfig", "GridJob", "calibrate", "evaluate", "run_grid"]


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation or calibration grid, built once in the command.

    Attributes:
        dataset: Folder (``real/``, ``ai/<gen>/``) or CSV/JSON manifest.
        perturbations: Perturbation names (see :func:`detectors.evaluation.perturb_bytes`).
        analysis: Detectors, the loaded calibration, worker processes
            (0: in this process, without the time limit) and the per-file time limit.
        split: Only samples of this split (``None``: all).
        out_dir: Where scores.csv, summary.json and report.html go (``detect eval``).
    """

    dataset: str
    perturbations: tuple[str, ...]
    analysis: EngineConfig = field(default_factory=EngineConfig)
    split: str | None = None
    out_dir: str | None = None


@dataclass(frozen=True)
class GridJob:
    """One sample under one perturbation, scored by every detector in a worker (see :class:`cli.engine.Job`).

    The file is read, hashed and perturbed in the worker, under the per-file
    time limit, so a file that hangs its read or its decoder costs one error row.

    Attributes:
        sample: The labelled file.
        perturbation: The perturbation to apply before analysis.
    """

    sample: Sample
    perturbation: str

    def _row(self, sha: str, status: str) -> list[ScoreRow]:
        s = self.sample
        return [ScoreRow(s.path, sha, s.label, s.generator or "real", self.perturbation, "fused", None, None, status)]

    def run(self, pipeline: Pipeline) -> list[ScoreRow]:
        """The score rows of this sample under this perturbation (an error row for an unreadable file)."""
        sample, pert = self.sample, self.perturbation
        try:
            data = Path(sample.path).read_bytes()
        except OSError as exc:
            return self._row("", f"error: {exc.strerror}")
        sha = hashlib.sha256(data).hexdigest()
        try:
            pdata = perturb_bytes(data, pert)
        except Exception as exc:  # noqa: BLE001 - an undecodable file is an error row, not a crash
            return self._row(sha, f"error: {exc}")
        rec = pipeline.analyze_bytes(pdata, name=sample.path).record
        return score_rows(rec, sample, pert, original_sha256=sha)

    def failed(self, code: str, message: str, calibration: dict[str, Any]) -> list[ScoreRow]:
        """One error row: ``error: <code>: <message>`` (e.g. a timeout)."""
        return self._row("", f"error: {code}: {message}")


def file_sha256(path: str) -> str:
    """sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def run_grid(
    config: EvalConfig,
    samples: Sequence[Sample],
    *,
    done: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
    err_console: Console,
) -> Iterator[list[ScoreRow]]:
    """Score every (sample, perturbation) not in ``done`` on the engine, yielding rows as each finishes (in order).

    The engine runs complete jobs (every detector in the worker, no network in
    this process); with ``config.analysis.jobs >= 1`` each job has the per-file time limit.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks = [GridJob(s, p) for s in samples for p in config.perturbations if (s.path, p) not in done]
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, disable=not err_console.is_terminal, transient=True,
    )  # fmt: skip
    engine = make_engine(config.analysis, defer=False)
    try:
        with progress:
            bar = progress.add_task("eval grid", total=len(tasks) + len(done), completed=len(done))
            for rows in engine.run(tasks):
                yield rows
                progress.advance(bar)
    finally:
        engine.close()


def _rows_csv(rows: Sequence[ScoreRow]) -> str:
    """The CSV lines of one job's rows, written with one ``write`` so a stop never tears a job's rows apart."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    for r in rows:
        w.writerow(asdict(r))
    return buf.getvalue()


def _select(config: EvalConfig) -> list[Sample]:
    samples = load_dataset(config.dataset)
    if config.split:
        samples = [s for s in samples if s.split == config.split]
    if not samples:
        raise click.UsageError(f"{config.dataset}: no samples" + (f" in split {config.split!r}" if config.split else ""))
    if not any(s.label == "real" for s in samples) or not any(s.label == "ai" for s in samples):
        raise click.UsageError(f"{config.dataset}: need both real and AI images")
    return samples


def _img_tag(png: bytes, alt: str) -> dict[str, str]:
    return {"src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"), "alt": alt}


def _write_html(path: Path, summary: dict[str, Any], rows: Sequence[ScoreRow], metrics: Sequence[Any]) -> None:
    import jinja2

    from cli.plots import histogram_png, roc_png
    from detectors.metrics import roc_curve

    perts = list(dict.fromkeys(r.perturbation for r in rows))
    dets = sorted({r.detector for r in rows}, key=lambda d: (d != "fused", d))
    figures = []
    for pert in perts:
        curves = {}
        for det in dets:
            sel = [r for r in rows if r.perturbation == pert and r.detector == det and r.score is not None]
            y = np.array([r.label == "ai" for r in sel], dtype=int)
            if 0 < y.sum() < len(y):
                curves[det] = roc_curve(y, np.array([r.score for r in sel]))
        fused = [r for r in rows if r.perturbation == pert and r.detector == "fused" and r.score is not None]
        thr = next((r.threshold for r in fused if r.threshold is not None), None)
        figures.append(
            {
                "perturbation": pert,
                "roc": _img_tag(roc_png(curves, title=f"ROC, {pert}"), f"ROC curves under {pert}"),
                "hist": _img_tag(
                    histogram_png([r.score for r in fused if r.label == "real"], [r.score for r in fused if r.label == "ai"], threshold=thr, title=f"fused P(AI), {pert}"),
                    f"fused score histogram under {pert}",
                ),
            }
        )
    env = jinja2.Environment(loader=jinja2.PackageLoader("cli", "templates"), autoescape=True)
    html = env.get_template("eval.html").render(summary=summary, metrics=[m.to_dict() for m in metrics], figures=figures)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)


def _print_table(metrics: Sequence[Any], console: Console) -> None:
    t = Table(title="detect eval (subset: all)")
    for c in ("detector", "perturbation", "n real", "n AI", "AUC", "bal. acc", "TPR@1%FPR", "FPR@thr", "ECE"):
        t.add_column(c, justify="right" if c not in ("detector", "perturbation") else "left")
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for m in metrics:
        if m.subset == "all":
            t.add_row(Text(m.detector), Text(m.perturbation), str(m.n_real), str(m.n_ai), f(m.auc), f(m.balanced_accuracy), f(m.tpr_at_1pct_fpr), f(m.fpr_at_threshold), f(m.ece))
    console.print(t)


def _check_run_identity(out: Path, detectors: tuple[str, ...], cal: Any) -> None:
    """Refuse to resume into scores made with other detectors or another calibration."""
    from detectors.pipeline import DEFAULT_DETECTORS

    ident = {"detectors": list(detectors or DEFAULT_DETECTORS), "calibration": f"{cal.name} {cal.version}",
             "calibration_sha256": hashlib.sha256(cal.to_json().encode()).hexdigest()}  # fmt: skip
    path = out / "run.json"
    if (out / "scores.csv").exists():
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"detectors": "unknown", "calibration": "unknown"}
        if old != ident:
            raise click.UsageError(
                f"{out / 'scores.csv'} holds scores from another run (detectors {old.get('detectors')}, calibration "
                f"{old.get('calibration')}); resuming would mix them: choose a new --out folder"
            )
    path.write_text(json.dumps(ident, indent=1), encoding="utf-8")


def _leakage_guard(samples: Sequence[Sample], cal: Any) -> dict[str, str]:
    """Refuse samples whose sha256 is in the calibration set ``cal``; their hashes otherwise."""
    # regular files only: a FIFO or a device is left to the workers (under the time limit), never read here
    hashes = {s.path: file_sha256(s.path) for s in samples if _is_regular(s.path)}
    seen = set(cal.calibration_hashes)
    leaked = [p for p, h in hashes.items() if h in seen]
    if leaked:
        raise click.UsageError(
            f"refusing to evaluate: {len(leaked)} file(s) were in the calibration set of {cal.name} {cal.version} "
            f"(e.g. {leaked[0]}); evaluate on a split the calibration never saw"
        )
    return hashes


@click.command("eval")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--split", default=None, help="Only samples of this split (manifest column, or the hash split for folders).")
@click.option("--perturb", default=",".join(DEFAULT_PERTURBATIONS), show_default=True, help="Comma-separated perturbations, applied identically to both classes.")
@click.option("--no-format-check", is_flag=True, help="Skip the PNG vs JPEG q95 re-encode check.")
@click.option("--detector", "detectors", multiple=True, help="Detectors to evaluate (default: the scan defaults).")
@click.option("--calibration", "calibration_path", type=click.Path(exists=True, dir_okay=False))
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True, help="Worker processes (0: in this process, without the time limit).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True, help="Per-file time limit in seconds (with --jobs >= 1).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder: scores.csv, summary.json, report.html.")
def evaluate(dataset: str, split: str | None, perturb: str, no_format_check: bool, detectors: tuple[str, ...], calibration_path: str | None, jobs: int, timeout_s: float, out_dir: str) -> None:
    """Measure every detector and the fused verdict on labelled data.

    DATASET is a folder with real/ and ai/<generator>/ or a CSV manifest
    (path,label,generator,split). Raw scores stream to OUT/scores.csv, so a
    stopped run resumes where it left off when started again.
    """
    perts = [p.strip() for p in perturb.split(",") if p.strip()]
    if not no_format_check:
        perts += [p for p in FORMAT_CHECK if p not in perts]
    try:
        check_perturbations(perts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--perturb") from None
    try:
        cal = resolve_calibration(calibration_path)  # loaded once, here; the workers receive the object
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--calibration") from None
    config = EvalConfig(
        dataset, tuple(perts), EngineConfig(tuple(detectors), calibration=cal, jobs=jobs, timeout_s=timeout_s), split=split, out_dir=out_dir
    )  # fmt: skip
    err = Console(stderr=True)
    samples = _select(config)
    _leakage_guard(samples, cal)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores_path = out / "scores.csv"
    _check_run_identity(out, config.analysis.detectors, cal)
    previous = read_score_rows(scores_path) if scores_path.exists() else []
    done = {(r.path, r.perturbation) for r in previous if r.detector == "fused"}
    if previous:
        err.print(Text(f"resuming: {len(done)} image x perturbation results already in {scores_path}"))
    t0 = time.perf_counter()
    new_file = not scores_path.exists()
    with Interrupts() as stop, open(scores_path, "a", newline="", encoding="utf-8") as fh:
        if new_file:
            csv.DictWriter(fh, fieldnames=CSV_FIELDS).writeheader()
            fh.flush()
        try:
            for rows in run_grid(config, samples, done=done, err_console=err):
                fh.write(_rows_csv(rows))
                fh.flush()
        except (KeyboardInterrupt, Terminated) as exc:
            stop.stop(exc)  # run_grid has stopped its workers; later signals are only remembered
        if stop.received is not None:
            fh.flush()
            err.print(Text(f"stopped; run the same command again to resume from {scores_path}"))
            sys.exit(143 if stop.received == signal.SIGTERM else 130)
    keep = {(s.path, p) for s in samples for p in perts}
    rows = [r for r in read_score_rows(scores_path) if (r.path, r.perturbation) in keep]
    metrics = compute_metrics(rows)
    from detectors.record import tool_info

    summary = {
        "tool": tool_info(),
        "command": "detect eval " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "detect eval",
        "dataset": dataset,
        "split": split,
        "perturbations": perts,
        "n_real": sum(s.label == "real" for s in samples),
        "n_ai": sum(s.label == "ai" for s in samples),
        "generators": sorted({s.generator or "unknown" for s in samples if s.label == "ai"}),
        "calibration": cal.to_dict(),
        "errors": sum(1 for r in rows if r.detector == "fused" and r.score is None),
        "format_bias": format_bias(metrics),
        "metrics": [m.to_dict() for m in metrics],
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    os.replace(tmp, out / "summary.json")
    _write_html(out / "report.html", summary, rows, metrics)
    _print_table(metrics, Console())
    fb = summary["format_bias"].get("fused", {})
    if fb.get("delta_png_vs_jpeg95") is not None:
        Console().print(Text(f"format-bias check (fused): AUC png {fb.get('png'):.3f}, jpeg95 {fb.get('jpeg95'):.3f}, moved {fb['delta_png_vs_jpeg95']:.3f}"))
    err.print(Text(f"wrote {out / 'scores.csv'}, {out / 'summary.json'}, {out / 'report.html'}"))


def _stops_cleanly(note: str) -> Any:
    """Run a command under :class:`cli.engine.Interrupts`: SIGINT/SIGTERM in any phase exit 130/143 with ``note``."""
    import functools

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Interrupts() as stop:
                try:
                    return fn(*args, **kwargs)
                except (KeyboardInterrupt, Terminated) as exc:
                    stop.stop(exc)
                    click.echo(f"stopped; {note}", err=True)
                    sys.exit(143 if stop.received == signal.SIGTERM else 130)

        return run

    return wrap


@click.command("calibrate")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--split", default="calib", show_default=True, help="The calibration split; evaluation must use another.")
@click.option("--perturb", default="none,jpeg95,jpeg85,jpeg75,resize0.75,blur1", show_default=True, help="Perturbations, applied identically to both classes.")
@click.option("--detector", "detectors", multiple=True, help="Pixel detectors to fuse (default: those of the scan that give scores).")
@click.option("--target-fpr", type=click.FloatRange(0, 1, max_open=True), default=0.01, show_default=True)
@click.option("--target-miss", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True)
@click.option("--method", type=click.Choice(["auto", "platt", "isotonic"]), default="auto", show_default=True)
@click.option("--fusion", "fusion_rule", type=click.Choice(["auto", "hinge", "max", "logistic"]), default="auto", show_default=True,
              help="How pixel detectors combine: one-sided logistic (each detector only adds evidence of AI above its "
                   "real-photo median), the max of their calibrated logits, or (on request only) two-sided logistic. "
                   "auto chooses between hinge and max by validation log-loss.")
@click.option("--fuse-on", type=click.Choice(["split", "all"]), default="split", show_default=True,
              help="Images that fit the weights between detectors: the split's own, or also the generated ones "
                   "(the CNN was trained on the bundled generator's reconstructions, which would favour it). "
                   "The map and the thresholds always use all images.")
@click.option("--version", "version", default="calib-v5", show_default=True)
@click.option("--generated", "n_generated", type=click.IntRange(min=0), default=16, show_default=True,
              help="Fresh AI images to make from noise with the bundled generator and add to the calibration set.")
@click.option("--reconstructions", "n_reconstruct", type=click.IntRange(min=0), default=16, show_default=True,
              help="Calibration real photos whose most textured native-resolution tile is added as a real image, "
                   "with its VAE reconstruction by the bundled generator as an AI image.")
@click.option("--generated-size", type=click.IntRange(min=16), default=256, show_default=True, help="Side of the samples from noise.")
@click.option("--generated-steps", type=click.IntRange(min=1), default=50, show_default=True, help="DDIM steps of the samples from noise.")
@click.option("--generator-weights", type=click.Path(exists=True, file_okay=False), default=None, help="Generator weights folder (default: the shipped one).")
@click.option("--generated-dir", type=click.Path(file_okay=False), default=None,
              help="Keep the generated images here (default: a temporary folder, removed at the end).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Device for the generator.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated images.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True, help="Worker processes (0: in this process, without the time limit).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True, help="Per-file time limit in seconds (with --jobs >= 1).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Calibration file to write.")
@_stops_cleanly("nothing was written")
def calibrate(
    dataset: str, split: str, perturb: str, detectors: tuple[str, ...], target_fpr: float, target_miss: float, method: str, fusion_rule: str, fuse_on: str, version: str,
    n_generated: int, n_reconstruct: int, generated_size: int, generated_steps: int, generator_weights: str | None, generated_dir: str | None, device: str, seed: int, jobs: int, timeout_s: float, out_path: str,
) -> None:  # fmt: skip
    """Fit the fusion, the calibration map and the thresholds on a calibration split.

    The calibration set is the split's real photos and AI images plus fresh
    images made on the fly by the bundled generator (--generated samples from
    noise; --reconstructions aligned real/reconstructed tile pairs), all saved
    as JPEG at the calibration photos' own qualities and scored under the same
    perturbations. Use --generated 0 --reconstructions 0 to fit on the split alone.
    """
    import tempfile

    from detectors.calibration import fit_calibration
    from datasets.samples import assign_split

    perts = [p.strip() for p in perturb.split(",") if p.strip()]
    try:
        check_perturbations(perts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--perturb") from None
    if not detectors:
        from detectors.pipeline import default_pixel_detectors

        detectors = default_pixel_detectors()
    # the grid is scored with the shipped calibration: only the detectors' raw scores are used
    config = EvalConfig(dataset, tuple(perts), EngineConfig(tuple(detectors), jobs=jobs, timeout_s=timeout_s), split=split)
    samples = _select(config)
    err = Console(stderr=True)
    n_real = sum(1 for s in samples if s.label == "real")
    n_ai = len(samples) - n_real
    made = None
    with tempfile.TemporaryDirectory(prefix="aidetect-calib-") as tmp:
        if n_generated or n_reconstruct:
            from generators.fakes import make_calibration_fakes

            gen_dir = generated_dir or tmp
            err.print(Text(f"making {n_generated} samples and {n_reconstruct} reconstructions with the bundled generator in {gen_dir}"))
            try:
                made = make_calibration_fakes(
                    [s for s in samples if s.label == "real"], gen_dir, n_samples=n_generated, n_reconstruct=n_reconstruct,
                    size=generated_size, steps=generated_steps,
                    seed=seed, weights=generator_weights, device=device, log=lambda m: err.print(Text(m)),
                )  # fmt: skip
            except (FileNotFoundError, ValueError, RuntimeError) as exc:
                raise click.UsageError(f"generator: {exc}") from None
            samples = samples + [Sample(s.path, s.label, s.generator, s.source, split) for s in made.samples]
        x, y, keys, hashes, result_names = _calibration_scores(config, samples, err)
    val = np.array([assign_split(os.path.basename(k[0]), fractions={"fit": 0.5, "val": 0.5}, salt="calib-half") == "val" for k in keys])
    generated = {s.path for s in made.samples} if made is not None else set()
    fusion_mask = np.array([fuse_on == "all" or k[0] not in generated for k in keys])
    extra = ""
    if made is not None:
        n_s = sum(1 for s in made.samples if s.generator == "bundled_sample")
        n_r = sum(1 for s in made.samples if s.generator == "bundled_reconstruct")
        extra = (f" plus images made on the fly by the bundled generator (weights sha256 {made.weights_sha256[:12]}...): "
                 f"{n_s} samples from noise, and {n_r} native-resolution tiles of the split's reals with their VAE reconstructions, "
                 "all JPEG at the reals' own qualities"
                 )  # fmt: skip
    fit = fit_calibration(
        x, y, detectors=result_names, validation_mask=val, file_hashes=list(hashes.values()),
        target_fpr=target_fpr, target_miss=target_miss, method=method, fusion_rule=fusion_rule, fusion_mask=fusion_mask,
        name="fused", version=version,
        fitted_on=(f"split {split!r} of {dataset} ({n_real} real, {n_ai} AI){extra}; every image under {', '.join(perts)}; "
                   + ("weights between detectors fitted on the split's own images only, map and thresholds on all; " if made and fuse_on == "split" else "")
                   + "fusion rule and map chosen on a held-out half"),
    )  # fmt: skip
    Path(out_path).write_text(fit.calibration.to_json() + "\n", encoding="utf-8")
    card = Path(out_path).with_suffix(".md")
    card.write_text(_calibration_card(fit, command="detect calibrate " + " ".join(sys.argv[2:]), n_files=len(hashes)), encoding="utf-8")
    c = Console()
    cands = "; ".join(f"{k} {v['log_loss']:.4f}" for k, v in fit.validation.items())
    c.print(Text(f"fusion+map: {fit.chosen} (validation log-loss: {cands})"))
    c.print(Text(f"likely_ai >= {fit.calibration.likely_ai:.4f} (target FPR {target_fpr:.1%}), likely_real <= {fit.calibration.likely_real:.4f} (target miss {target_miss:.1%})"))
    c.print(Text(f"wrote {out_path} ({len(hashes)} calibration file hashes for the leakage guard) and {card}"))


def _calibration_scores(
    config: EvalConfig, samples: Sequence[Sample], err: Console
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]], dict[str, str], tuple[str, ...]]:
    """Score the calibration grid: (features, labels, (path, perturbation) keys, file hashes, detector result names).

    A job that fails (an unreadable file, a timeout) adds no score; each is named on ``err``.
    """
    from detectors import create_detector

    # registry names (e.g. test_spectral) -> the names their results carry (e.g. spectral)
    result_names = tuple(create_detector(d).name for d in config.analysis.detectors)
    by_key: dict[tuple[str, str], dict[str, float]] = {}
    labels: dict[str, int] = {}
    hashes: dict[str, str] = {}
    failed: list[ScoreRow] = []
    for rows in run_grid(config, samples, err_console=err):  # a stop ends calibrate (see _stops_cleanly)
        for r in rows:
            labels[r.path] = int(r.label == "ai")
            if r.sha256:
                hashes[r.path] = r.sha256
            if r.detector == "fused" and r.status.startswith("error"):
                failed.append(r)
            if r.detector in result_names and r.score is not None:
                by_key.setdefault((r.path, r.perturbation), {})[r.detector] = r.score
    for r in failed[:10]:
        err.print(Text(f"detect calibrate: {r.path} ({r.perturbation}): {r.status}; left out of the fit"), soft_wrap=True)
    if len(failed) > 10:
        err.print(Text(f"detect calibrate: {len(failed) - 10} more failed results left out of the fit"))
    keys = sorted(by_key)
    if not keys:
        raise click.UsageError("no detector produced a score on the calibration split")
    x = np.array([[by_key[k].get(d, np.nan) for d in result_names] for k in keys])
    y = np.array([labels[k[0]] for k in keys])
    return x, y, keys, hashes, result_names


def _calibration_card(fit: Any, *, command: str, n_files: int) -> str:
    """A short markdown card for a calibration file: data, command, choice of map, thresholds."""
    cal = fit.calibration
    v = fit.validation
    return "\n".join(
        [
            f"# Calibration card: `{cal.name}` `{cal.version}`",
            "",
            f"- Data: {cal.fitted_on}.",
            f"- Files seen: {n_files} (their sha256 are in the JSON; `detect eval` refuses to report on them).",
            f"- Command: `{command}`",
            f"- Fusion: {cal.fusion.describe()}.",
            f"- Fusion rule and map: **{fit.chosen}**, chosen by log-loss on a held-out half of the calibration set "
            "(grouped by file), then refitted on all of it:",
            "",
            "| fusion + map | log-loss | ECE |",
            "|---|---|---|",
            *(f"| {k} | {m['log_loss']:.4f} | {m['ece']:.4f} |" for k, m in v.items()),
            "",
            f"- `likely_ai`: fused P(AI) >= {cal.likely_ai:.4f}, for a target false-positive rate of {cal.target_fpr:.1%} "
            "on the calibration reals.",
            f"- `likely_real`: fused P(AI) <= {cal.likely_real:.4f}, for a target miss rate of {cal.target_miss:.1%} on the "
            "calibration AI images.",
            "- With few calibration reals, the FPR target is met on them but is only an extrapolation beyond them.",
            "",
        ]
    )
