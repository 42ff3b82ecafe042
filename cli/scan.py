"""The scan run: list files, analyse them with an engine, stream records to the reports.

Conventions (after black and httpie): the command builds one frozen
:class:`ScanConfig` and passes it down; a :class:`Report` counts outcomes and
failures; the process exits with an :class:`ExitStatus`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.engine import EngineConfig, make_engine
from cli.render import safe_text
from cli.walk import DEFAULT_EXTENSIONS, Entry, iter_files
from detectors.record import LABEL_RANK, LABELS, SummaryRecord, error_record, utc_now

__all__ = ["ExitStatus", "FAIL_ON_CHOICES", "Report", "ScanConfig", "load_resume", "run_scan"]


class ExitStatus(IntEnum):
    """Process exit codes."""

    OK = 0  #: nothing at or above ``--fail-on``
    FLAGGED = 1  #: at least one image at or above ``--fail-on``
    ERROR = 2  #: usage or fatal error
    INTERRUPTED = 130  #: stopped by SIGINT (Ctrl-C); the JSONL report holds everything finished
    TERMINATED = 143  #: stopped by SIGTERM; same guarantee
    CRASHED = 70  #: an unexpected internal error (a bug, never a verdict); its traceback is on stderr


FAIL_ON_CHOICES = ("ai_confirmed", "likely_ai", "inconclusive", "likely_real", "never")


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a BaseException, like KeyboardInterrupt,
    so that no `except Exception` on the way swallows it)."""


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
        detectors: Detector registry names to run (empty: the defaults).
        calibration_path: Calibration file, or ``None`` for the shipped one.
        jobs: Worker processes (0 = analyse in this process, no time limit).
        timeout_s: Per-file time limit in seconds.
        resume_path: A JSONL report of an earlier run: files in it that are
            unchanged are not analysed again.
        resume_hash: Compare files by sha256 instead of size and mtime when resuming.
        engine: ``"local"`` or ``"ray"``.
        stability: Re-score pixel verdicts after JPEG q90 and a 0.75x resize;
            a flipping label becomes ``inconclusive``.
        batch_images: Images per batch of the batchable detectors (the CNN).
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
    jobs: int = 1
    timeout_s: float = 120.0
    resume_path: str | None = None
    resume_hash: bool = False
    engine: str = "local"
    stability: bool = False
    batch_images: int = 16

    def __post_init__(self) -> None:
        if self.batch_images < 1:
            raise ValueError(f"batch_images must be >= 1, got {self.batch_images}")
        if self.fail_on not in FAIL_ON_CHOICES:
            raise ValueError(f"fail_on must be one of {FAIL_ON_CHOICES}, got {self.fail_on!r}")
        if self.jobs < 0:
            raise ValueError(f"jobs must be >= 0, got {self.jobs}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")

    @property
    def stdout_is_machine(self) -> bool:
        """Whether a report goes to stdout (then nothing else may)."""
        return "-" in (self.json_path, self.jsonl_path)

    def public(self) -> dict[str, Any]:
        """The configuration as shown in report headers (no timing-dependent fields)."""
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


def load_resume(path: str) -> dict[str, dict[str, Any]]:
    """Image records of an earlier JSONL report, by file path.

    Summary lines are skipped, and so is a final line cut short by a kill.
    Error records are not reused: those files are tried again.

    Raises:
        ValueError: If the file cannot be read, naming it.
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by an interruption
                if isinstance(rec, dict) and rec.get("record_type") == "image" and rec.get("status") == "ok":
                    out[rec["file"]["path"]] = rec
    except OSError as exc:
        raise ValueError(f"{path}: cannot read resume report: {exc.strerror or exc}") from None
    return out


def _unchanged(path: str, rec: dict[str, Any], *, use_hash: bool) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    f = rec.get("file", {})
    if use_hash:
        import hashlib

        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest() == f.get("sha256")
    return f.get("bytes") == st.st_size and f.get("mtime_ns") == st.st_mtime_ns


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


def _summary(config: ScanConfig, report: Report, calibration: Any, models: dict[str, str], started: str, t0: float, status: int) -> dict[str, Any]:
    return SummaryRecord.finish(
        n_files=report.n_files,
        n_errors=report.n_errors,
        counts=report.counts,
        calibration=calibration.to_dict(),
        models=models,
        config=config.public(),
        started_at=started,
        elapsed_s=time.perf_counter() - t0,
        exit_status=status,
    ).to_json()


def _detector_names(config: ScanConfig) -> tuple[str, ...]:
    from detectors.pipeline import DEFAULT_DETECTORS

    return config.detectors or DEFAULT_DETECTORS


def _records(config: ScanConfig, entries: Sequence[Entry], calibration: dict[str, Any], engine: Any) -> Iterator[tuple[dict[str, Any], Any]]:
    """Records in input order: listing errors, reused resume records, and fresh analyses."""
    previous = load_resume(config.resume_path) if config.resume_path else {}
    reuse: dict[int, dict[str, Any]] = {}
    todo: list[str] = []
    for i, e in enumerate(entries):
        if e.error:
            continue
        old = previous.get(e.path)
        if old is not None and _unchanged(e.path, old, use_hash=config.resume_hash):
            reuse[i] = old
        else:
            todo.append(e.path)
    fresh = engine.map(todo)
    for i, e in enumerate(entries):
        if e.error:
            yield error_record(e.path, "unreadable", f"{e.path}: {e.error}", calibration=calibration), None
        elif i in reuse:
            yield reuse[i], None
        else:
            a = next(fresh)
            yield a.record, a.visuals


def run_scan(config: ScanConfig, *, console: Console, err_console: Console) -> ExitStatus:
    """Scan the configured paths and write the reports.

    Records stream to the JSONL report as they finish, in input order, so an
    interrupted scan keeps everything done so far; SIGINT and SIGTERM stop
    the scan cleanly, close every report and return a distinct status.

    Args:
        config: The run's configuration.
        console: Where the verdict table goes (stdout unless a report does).
        err_console: Progress and messages (stderr).

    Returns:
        The exit status.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from detectors.fusion import load_calibration

    t0 = time.perf_counter()
    started = utc_now()
    calibration = load_calibration(config.calibration_path) if config.calibration_path else load_calibration()
    names = _detector_names(config)
    entries = list(iter_files(config.paths, recursive=config.recursive, extensions=config.extensions))
    if config.resume_path and config.jsonl_path and os.path.abspath(config.resume_path) == os.path.abspath(config.jsonl_path):
        # keep the earlier report beside the new one until the new one is complete
        prev = config.jsonl_path + ".prev"
        os.replace(config.jsonl_path, prev)
        config = _replace(config, resume_path=prev)
    engine = make_engine(
        EngineConfig(
            detectors=names,
            calibration_path=config.calibration_path,
            visuals=config.html_path is not None,
            jobs=config.jobs,
            timeout_s=config.timeout_s,
            engine=config.engine,
            stability=config.stability,
            batch_images=config.batch_images,
        )
    )
    models: dict[str, str] = {}  # detector -> version, as reported by the records themselves
    writers = _open_writers(config)
    report = Report()
    rows: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"),
        TimeRemainingColumn(),
        console=err_console,
        disable=config.quiet or not err_console.is_terminal,
        transient=True,
    )

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    old_term = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    status = ExitStatus.OK
    try:
        with progress:
            task = progress.add_task("scanning", total=len(entries), rate="-")
            for i, (rec, vis) in enumerate(_records(config, entries, calibration.to_dict(), engine), start=1):
                report.add(rec, config.fail_on)
                models.update({d["name"]: d["version"] for d in rec["detectors"]})
                for w in writers:
                    w.add(rec, vis)
                rows.append({"path": rec["file"]["path"], "label": rec["label"], "score": rec["score"], "error": (rec.get("error") or {}).get("message")})
                elapsed = time.perf_counter() - t0
                progress.update(task, advance=1, rate=f"{i / elapsed:.1f}" if elapsed > 0 else "-")
        status = report.exit_status()
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except Terminated:
        status = ExitStatus.TERMINATED
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        engine.close()
    if status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        err_console.print(Text(f"stopped after {report.n_files} of {len(entries)} files; the reports hold what finished"))
    summary = _summary(config, report, calibration, models, started, t0, status)
    for w in writers:
        w.close(summary)
    if config.resume_path and config.resume_path.endswith(".prev") and status not in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        os.unlink(config.resume_path)  # our own temporary copy, now fully merged into the new report
    if not config.quiet:
        _print_table(rows, report, console=console)
    return status


def _replace(config: ScanConfig, **kw: Any) -> ScanConfig:
    from dataclasses import replace

    return replace(config, **kw)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


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
        # file names and messages come from files: never rich markup, never raw control characters
        table.add_row(safe_text(r["path"]), safe_text(label, _STYLE.get(r["label"], "")), score)
    console.print(table)
    counts = ", ".join(f"{k}: {report.counts.get(k, 0)}" for k in LABELS if report.counts.get(k, 0))
    console.print(Text(f"{report.n_files} files. {counts}"))
