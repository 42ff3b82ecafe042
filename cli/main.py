"""``detect``: the command-line entry point (click + rich).

Conventions (after black and httpie): each command builds one frozen config
dataclass and passes it down; a :class:`Report` counts outcomes and failures;
the process exits with an :class:`ExitStatus`. Progress and human messages go
to stderr; stdout carries the verdict table, or only machine output when a
report is written to ``-``.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

from cli.render import safe_text
from cli.scan import FAIL_ON_CHOICES, ExitStatus, Report, ScanConfig, run_scan
from cli.walk import DEFAULT_EXTENSIONS
from detectors.record import tool_version

__all__ = ["ExitStatus", "Report", "ScanConfig", "main", "run_scan"]


class LazyGroup(click.Group):
    """A click group whose heavy subcommands (torch, diffusers) are imported only when used.

    ``lazy`` maps a command name to ``("module:attribute", "short help")``.
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            target, _ = self.lazy[cmd_name]
            mod, attr = target.split(":")
            return getattr(importlib.import_module(mod), attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an unexpected exception (a bug) exits with ``ExitStatus.CRASHED``,
        never with 1 (which means "flagged"), after printing its traceback, escaped, to stderr."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            import traceback

            from cli.render import terminal_safe

            click.echo(terminal_safe(traceback.format_exc(), multiline=True), err=True)
            click.echo(terminal_safe(f"detect: internal error (a bug, not a verdict): {type(exc).__name__}: {exc}"), err=True)
            ctx.exit(int(ExitStatus.CRASHED))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, self.commands[n].get_short_help_str(60)) for n in sorted(self.commands)]
        rows += [(n, h) for n, (_, h) in self.lazy.items()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


#: Subcommands living in their own modules, imported on first use.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("cli.evaluate:evaluate", "Measure detectors on labelled data, per generator and perturbation."),
    "calibrate": ("cli.evaluate:calibrate", "Fit the fusion, calibration map and thresholds on a calibration split."),
    "serve": ("cli.serve:serve", "Start the local verification web page (loopback only by default)."),
    "generate": ("cli.generate:generate", "Make synthetic images or AI reconstructions with the bundled generator."),
    "train-generator": ("cli.generate:train_generator", "Train the bundled reference generator."),
    "train": ("cli.train:train", "Train the CNN detector."),
}


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(tool_version(), prog_name="detect")
def main() -> None:
    """Tell whether images were made by an AI generator.

    Every verdict is evidence, not proof: see `detect scan --help`.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Descend into subfolders.")
@click.option("--ext", "extensions", multiple=True, help="Extension to include when walking folders (repeatable). Default: common image types.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), help="Write one JSON document ('-' for stdout).")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False, allow_dash=True), help="Stream records as JSON lines ('-' for stdout), then a summary line.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write a flattened CSV.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report.")
@click.option("--fail-on", type=click.Choice(FAIL_ON_CHOICES), default="likely_ai", show_default=True, help="Exit 1 if any image gets this label or a more-AI one.")
@click.option("--detector", "detectors", multiple=True, help="Run only these detectors (repeatable). See `detect detectors`.")
@click.option("--calibration", "calibration_path", type=click.Path(exists=True, dir_okay=False), help="Calibration file (default: the shipped one).")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True, help="Worker processes (0: analyse in this process, without the per-file time limit).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True, help="Per-file time limit in seconds.")
@click.option("--resume", "resume_path", type=click.Path(exists=True, dir_okay=False), help="Skip files already in this JSONL report and unchanged (size and mtime).")
@click.option("--resume-hash", is_flag=True, help="With --resume, compare files by sha256 instead of size and mtime.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Run here, or on Ray Data (RAY_ADDRESS, else a local Ray; needs the [cluster] extra).")
@click.option("--stability", is_flag=True, help="Re-score after a JPEG q90 re-save and a 0.75x resize; a label that flips becomes inconclusive.")
@click.option("--batch-size", "batch_images", type=click.IntRange(min=1), default=16, show_default=True, help="Images per batch of the CNN (it runs batched beside the workers).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no verdict table.")
def scan(
    paths: tuple[str, ...],
    recursive: bool,
    extensions: tuple[str, ...],
    json_path: str | None,
    jsonl_path: str | None,
    csv_path: str | None,
    html_path: str | None,
    fail_on: str,
    detectors: tuple[str, ...],
    calibration_path: str | None,
    jobs: int,
    timeout_s: float,
    resume_path: str | None,
    resume_hash: bool,
    engine: str,
    stability: bool,
    batch_images: int,
    quiet: bool,
) -> None:
    """Scan image files and folders and report a verdict for each image.

    Exit status: 0 nothing at or above --fail-on, 1 something flagged,
    2 usage or fatal error, 130 interrupted (SIGINT), 143 terminated (SIGTERM),
    70 internal error (a bug; the traceback is on stderr).
    Records stream to --jsonl as they finish, so an interrupted scan keeps
    everything done; --resume continues it.
    """
    if json_path == "-" and jsonl_path == "-":
        raise click.UsageError("only one of --json and --jsonl can write to stdout ('-')")
    from detectors import is_registered

    unknown = [d for d in detectors if not is_registered(d)]
    if unknown:
        from detectors import list_detectors

        raise click.UsageError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(list_detectors())}")
    err_console = Console(stderr=True)
    try:
        from cli.engine import EngineConfig, resolve_calibration

        analysis = EngineConfig(
            detectors=tuple(detectors),
            calibration=resolve_calibration(calibration_path),  # loaded once, here; passed down as an object
            visuals=html_path is not None,
            jobs=jobs,
            timeout_s=timeout_s,
            engine=engine,
            stability=stability,
            batch_images=batch_images,
        )
        config = ScanConfig(
            paths=tuple(paths),
            analysis=analysis,
            recursive=recursive,
            extensions=tuple(extensions) or DEFAULT_EXTENSIONS,
            json_path=json_path,
            jsonl_path=jsonl_path,
            csv_path=csv_path,
            html_path=html_path,
            fail_on=fail_on,
            quiet=quiet,
            calibration_path=calibration_path,
            resume_path=resume_path,
            resume_hash=resume_hash,
        )
        console = err_console if config.stdout_is_machine else Console()
        status = run_scan(config, console=console, err_console=err_console)
    except (OSError, ValueError) as exc:
        err_console.print(safe_text(f"detect: error: {exc}"))
        sys.exit(ExitStatus.ERROR)
    if status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        from cli.engine.signals import ignore_stop_signals

        ignore_stop_signals()  # the reports are complete: a further Ctrl-C must not change the exit status
    sys.exit(int(status))


@main.command()
@click.argument("file", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the full record as JSON on stdout.")
@click.option("--figure", type=click.Path(dir_okay=False), help="Write a PNG panel: image, residual, spectrum, radial profile.")
def inspect(file: str, as_json: bool, figure: str | None) -> None:
    """Everything the tool knows about one image."""
    from cli.inspect import inspect_file

    err_console = Console(stderr=True)
    try:
        status = inspect_file(file, as_json=as_json, figure=figure, console=Console(), err_console=err_console)
    except (OSError, ValueError) as exc:
        err_console.print(safe_text(f"detect: error: {exc}"))
        sys.exit(ExitStatus.ERROR)
    sys.exit(int(status))


@main.command("detectors")
def detectors_cmd() -> None:
    """List the registered detectors."""
    from detectors import list_detectors

    for name in list_detectors():
        click.echo(name)


if __name__ == "__main__":  # pragma: no cover
    main()
