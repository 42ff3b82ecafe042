"""``detect``: the command-line entry point (click + rich).

Conventions (after black and httpie): each command builds one frozen config
dataclass and passes it down; a :class:`Report` counts outcomes and failures;
the process exits with an :class:`ExitStatus`. Progress and human messages go
to stderr; stdout carries the verdict table, or only machine output when a
report is written to ``-``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.walk import DEFAULT_EXTENSIONS, iter_files
from detectors.record import LABEL_RANK, LABELS, SCHEMA_VERSION, error_record, tool_info, tool_version

__all__ = ["ExitStatus", "Report", "ScanConfig", "main", "run_scan"]


class ExitStatus(IntEnum):
    """Process exit codes."""

    OK = 0  #: nothing at or above ``--fail-on``
    FLAGGED = 1  #: at least one image at or above ``--fail-on``
    ERROR = 2  #: usage or fatal error
    INTERRUPTED = 130  #: stopped by Ctrl-C; the JSONL report holds everything finished


FAIL_ON_CHOICES = ("ai_confirmed", "likely_ai", "inconclusive", "likely_real", "never")


@dataclass(frozen=True)
class ScanConfig:
    """Everything one scan needs, built once from the command line.

    Attributes:
        paths: Files and folders to scan.
        recursive: Descend into subfolders.
        extensions: File extensions included when walking folders.
        json_path, jsonl_path, csv_path, html_path: Report destinations
            (``"-"`` = stdout for JSON/JSONL), or ``None``.
        fail_on: Lowest label that makes the exit status 1, or ``"never"``.
        quiet: No progress bar and no verdict table.
        detectors: Detector registry names to run.
        calibration_path: Calibration file, or ``None`` for the shipped one.
    """

    paths: tuple[str, ...]
    recursive: bool = True
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    json_path: str | None = None
    jsonl_path: str | None = None
    csv_path: str | None = None
    html_path: str | None = None
    fail_on: str = "likely_ai"
    quiet: bool = False
    detectors: tuple[str, ...] = ()
    calibration_path: str | None = None

    @property
    def stdout_is_machine(self) -> bool:
        """Whether a report goes to stdout (then nothing else may)."""
        return "-" in (self.json_path, self.jsonl_path)

    def public(self) -> dict[str, Any]:
        """The configuration as shown in report headers."""
        d = asdict(self)
        d["paths"] = [os.fsdecode(p) for p in self.paths]
        return d


@dataclass
class Report:
    """Counts of a run, by label, with failures counted separately."""

    counts: Counter = field(default_factory=Counter)
    n_files: int = 0
    n_errors: int = 0
    flagged: int = 0

    def add(self, record: dict[str, Any], fail_on: str) -> None:
        """Count one record."""
        self.n_files += 1
        label = record["label"]
        self.counts[label] += 1
        if record["status"] == "error":
            self.n_errors += 1
        elif fail_on != "never" and LABEL_RANK.get(label, -1) >= LABEL_RANK[fail_on]:
            self.flagged += 1

    def exit_status(self) -> ExitStatus:
        """``FLAGGED`` if anything reached ``--fail-on``, else ``OK``."""
        return ExitStatus.FLAGGED if self.flagged else ExitStatus.OK


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _open_writers(config: ScanConfig) -> list[Any]:
    from cli import reports

    writers: list[Any] = []
    if config.jsonl_path:
        writers.append(reports.JsonlWriter(config.jsonl_path))
    if config.json_path:
        writers.append(reports.JsonWriter(config.json_path))
    if config.csv_path:
        writers.append(reports.CsvWriter(config.csv_path))
    if config.html_path:
        writers.append(reports.HtmlWriter(config.html_path))
    return writers


def _summary(config: ScanConfig, report: Report, pipeline: Any, started: str, t0: float, status: int) -> dict[str, Any]:
    cal = pipeline.calibration
    return {
        "record_type": "summary",
        "schema_version": SCHEMA_VERSION,
        "tool": tool_info(),
        "n_files": report.n_files,
        "n_errors": report.n_errors,
        "counts": {label: report.counts.get(label, 0) for label in LABELS},
        "thresholds": {"likely_ai": cal.likely_ai, "likely_real": cal.likely_real},
        "calibration": cal.to_dict(),
        "models": pipeline.models,
        "config": config.public(),
        "started_at": started,
        "finished_at": _now(),
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "exit_status": int(status),
    }


def _make_pipeline(config: ScanConfig) -> Any:
    from detectors.fusion import load_calibration
    from detectors.pipeline import DEFAULT_DETECTORS, Pipeline

    names = config.detectors or DEFAULT_DETECTORS
    from detectors import is_registered

    names = tuple(n for n in names if is_registered(n) or n in config.detectors)
    cal = load_calibration(config.calibration_path) if config.calibration_path else None
    return Pipeline(names, calibration=cal)


def run_scan(config: ScanConfig, *, console: Console, err_console: Console) -> ExitStatus:
    """Scan the configured paths and write the reports.

    Args:
        config: The run's configuration.
        console: Where the verdict table goes (stdout unless a report does).
        err_console: Progress and messages (stderr).

    Returns:
        The exit status.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t0 = time.perf_counter()
    started = _now()
    pipeline = _make_pipeline(config)
    entries = list(iter_files(config.paths, recursive=config.recursive, extensions=config.extensions))
    writers = _open_writers(config)
    want_visuals = config.html_path is not None
    report = Report()
    rows: list[dict[str, Any]] = []
    show_progress = not config.quiet and err_console.is_terminal
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"),
        TimeRemainingColumn(),
        console=err_console,
        disable=not show_progress,
        transient=True,
    )
    status = ExitStatus.OK
    try:
        with progress:
            task = progress.add_task("scanning", total=len(entries), rate="-")
            for i, entry in enumerate(entries, start=1):
                if entry.error:
                    rec, vis = error_record(entry.path, "unreadable", f"{entry.path}: {entry.error}", calibration=pipeline.calibration.to_dict()), None
                else:
                    analysis = pipeline.analyze_path(entry.path, visuals=want_visuals)
                    rec, vis = analysis.record, analysis.visuals
                report.add(rec, config.fail_on)
                for w in writers:
                    w.add(rec, vis)
                rows.append({"path": rec["file"]["path"], "label": rec["label"], "score": rec["score"], "error": (rec.get("error") or {}).get("message")})
                elapsed = time.perf_counter() - t0
                progress.update(task, advance=1, rate=f"{i / elapsed:.1f}" if elapsed > 0 else "-")
        status = report.exit_status()
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
        err_console.print(f"interrupted after {report.n_files} of {len(entries)} files; reports hold what finished")
    summary = _summary(config, report, pipeline, started, t0, status)
    for w in writers:
        w.close(summary)
    if not config.quiet:
        _print_table(rows, report, console=console)
    return status


_STYLE = {"ai_confirmed": "bold red", "likely_ai": "red", "inconclusive": "yellow", "likely_real": "green", "error": "magenta"}


def _print_table(rows: Sequence[dict[str, Any]], report: Report, *, console: Console, max_rows: int = 200) -> None:
    shown = list(rows)
    note = ""
    if len(shown) > max_rows:
        shown = [r for r in rows if r["label"] in ("ai_confirmed", "likely_ai", "error")][:max_rows]
        note = f"showing {len(shown)} flagged or failed of {len(rows)} files; see the reports for all"
    table = Table(title="detect scan", caption=note or None)
    table.add_column("file", overflow="fold")
    table.add_column("verdict")
    table.add_column("P(AI)", justify="right")
    for r in shown:
        score = "-" if r["score"] is None else f"{r['score']:.2f}"
        label = r["label"] if not r["error"] else f"error: {r['error']}"
        # Text objects: file names are never parsed as rich markup
        table.add_row(Text(r["path"]), Text(label, style=_STYLE.get(r["label"], "")), score)
    console.print(table)
    counts = ", ".join(f"{k}: {report.counts.get(k, 0)}" for k in LABELS if report.counts.get(k, 0))
    console.print(Text(f"{report.n_files} files. {counts}"))


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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, self.commands[n].get_short_help_str(60)) for n in sorted(self.commands)]
        rows += [(n, h) for n, (_, h) in self.lazy.items()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))


#: Subcommands living in their own modules, imported on first use.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {}


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
    quiet: bool,
) -> None:
    """Scan image files and folders and report a verdict for each image.

    Exit status: 0 nothing at or above --fail-on, 1 something flagged,
    2 usage or fatal error, 130 interrupted.
    """
    if json_path == "-" and jsonl_path == "-":
        raise click.UsageError("only one of --json and --jsonl can write to stdout ('-')")
    from detectors import is_registered

    unknown = [d for d in detectors if not is_registered(d)]
    if unknown:
        from detectors import list_detectors

        raise click.UsageError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(list_detectors())}")
    config = ScanConfig(
        paths=tuple(paths),
        recursive=recursive,
        extensions=tuple(extensions) or DEFAULT_EXTENSIONS,
        json_path=json_path,
        jsonl_path=jsonl_path,
        csv_path=csv_path,
        html_path=html_path,
        fail_on=fail_on,
        quiet=quiet,
        detectors=tuple(detectors),
        calibration_path=calibration_path,
    )
    err_console = Console(stderr=True)
    console = err_console if config.stdout_is_machine else Console()
    try:
        status = run_scan(config, console=console, err_console=err_console)
    except (OSError, ValueError) as exc:
        err_console.print(Text(f"detect: error: {exc}"))
        sys.exit(ExitStatus.ERROR)
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
        err_console.print(Text(f"detect: error: {exc}"))
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
