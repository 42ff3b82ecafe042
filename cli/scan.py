"""The scan run: list files, analyse them with an engine, stream records to the reports.

Conventions (after black and httpie): the command builds one frozen
:class:`ScanConfig` and passes it down; a :class:`Report` counts outcomes and
failures; the process exits with an :class:`ExitStatus`.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.engine import EngineConfig, Interrupts, Terminated, make_engine
from cli.render import safe_text
from cli.walk import DEFAULT_EXTENSIONS, Entry, iter_files
from detectors.record import LABEL_RANK, LABELS, ImageRecord, SummaryRecord, error_record, utc_now

__all__ = ["ExitStatus", "FAIL_ON_CHOICES", "Report", "Resume", "ScanConfig", "Terminated", "load_resume", "run_scan"]


class ExitStatus(IntEnum):
    """Process exit codes."""

    OK = 0  #: nothing at or above ``--fail-on``
    FLAGGED = 1  #: at least one image at or above ``--fail-on``
    ERROR = 2  #: usage or fatal error
    INTERRUPTED = 130  #: stopped by SIGINT (Ctrl-C); the JSONL report holds everything finished
    TERMINATED = 143  #: stopped by SIGTERM; same guarantee
    CRASHED = 70  #: an unexpected internal error (a bug, never a verdict); its traceback is on stderr


FAIL_ON_CHOICES = ("ai_confirmed", "likely_ai", "inconclusive", "likely_real", "never")


@dataclass(frozen=True)
class ScanConfig:
    """Everything one scan needs, built once from the command line.

    The analysis settings (detectors, the loaded calibration, jobs, time limit,
    engine, stability, batch size) are one :class:`cli.engine.EngineConfig`,
    passed to the engine as it is.

    Attributes:
        paths: Files and folders to scan.
        analysis: How to analyse them (its ``visuals`` must be set for an HTML report).
        recursive: Descend into subfolders.
        extensions: File extensions included when walking folders.
        json_path, jsonl_path, csv_path, html_path: Report destinations
            (``"-"`` = stdout for JSON/JSONL), or ``None``.
        fail_on: Lowest label that makes the exit status 1, or ``"never"``.
        quiet: No progress bar and no verdict table.
        calibration_path: Where ``analysis.calibration`` was read from (``None``:
            the shipped one); shown in the report header, never read again.
        resume_path: A JSONL report of an earlier run: files in it that are
            unchanged are not analysed again.
        resume_hash: Compare files by sha256 instead of size and mtime when resuming.

    Raises:
        ValueError: If a value is out of range, naming it.
    """

    paths: tuple[str, ...]
    analysis: EngineConfig = field(default_factory=EngineConfig)
    recursive: bool = True
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    json_path: str | None = None
    jsonl_path: str | None = None
    csv_path: str | None = None
    html_path: str | None = None
    fail_on: str = "likely_ai"
    quiet: bool = False
    calibration_path: str | None = None
    resume_path: str | None = None
    resume_hash: bool = False

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON_CHOICES:
            raise ValueError(f"fail_on must be one of {FAIL_ON_CHOICES}, got {self.fail_on!r}")
        if self.html_path is not None and not self.analysis.visuals:
            raise ValueError("an HTML report needs analysis.visuals=True (the report-card images)")

    @property
    def stdout_is_machine(self) -> bool:
        """Whether a report goes to stdout (then nothing else may)."""
        return "-" in (self.json_path, self.jsonl_path)

    def public(self) -> dict[str, Any]:
        """The configuration as shown in report headers (no timing-dependent fields)."""
        a = self.analysis
        return {
            "paths": [os.fsdecode(p) for p in self.paths],
            "recursive": self.recursive,
            "extensions": list(self.extensions),
            "json_path": self.json_path,
            "jsonl_path": self.jsonl_path,
            "csv_path": self.csv_path,
            "html_path": self.html_path,
            "fail_on": self.fail_on,
            "quiet": self.quiet,
            "detectors": list(a.detectors),
            "calibration_path": self.calibration_path,
            "jobs": a.jobs,
            "timeout_s": a.timeout_s,
            "resume_path": self.resume_path,
            "resume_hash": self.resume_hash,
            "engine": a.engine,
            "stability": a.stability,
            "batch_images": a.batch_images,
        }


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


@dataclass
class Resume:
    """What an earlier JSONL report offers for reuse.

    Attributes:
        records: Reusable image records, by file path.
        skipped: One message per line that looked like an image record but
            could not be used (naming the report and the line); those files
            are analysed again.
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _resume_problem(rec: dict[str, Any]) -> str | None:
    """Why an ``ok`` image record cannot be reused as it is (not a schema-1.0 record every report reads), or ``None``."""
    try:
        ImageRecord.from_json(rec)
    except ValueError as exc:
        return str(exc)
    return None


def load_resume(path: str) -> Resume:
    """Image records of an earlier JSONL report, by file path.

    Summary lines are skipped, and so is a final line cut short by a kill.
    Error records are not reused: those files are tried again. An ``ok``
    image record that every report cannot read (not a schema-1.0 record by
    :meth:`ImageRecord.from_json`) is skipped with a message naming its line
    and the problem, and its file is analysed again.

    Raises:
        ValueError: If the file cannot be read, naming it.
    """
    out = Resume()
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            for n, line in enumerate(fh, start=1):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by an interruption
                if isinstance(rec, dict) and rec.get("record_type") == "image" and rec.get("status") == "ok":
                    problem = _resume_problem(rec)
                    if problem is None:
                        out.records[rec["file"]["path"]] = rec
                    else:
                        out.skipped.append(f"{path} line {n}: image record not reused ({problem})")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read resume report: {exc.strerror or exc}") from None
    return out


def _unchanged(path: str, rec: dict[str, Any], *, use_hash: bool) -> bool:
    """Whether ``path`` is still the file ``rec`` describes (size and mtime, or sha256).

    Only regular files are compared: anything else (a FIFO, a device) is
    analysed again by a worker, under the per-file time limit, so hashing it
    here can never hang the scan.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    f = rec["file"]
    if use_hash:
        import hashlib

        h = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return False
        return h.hexdigest() == f.get("sha256")
    return f.get("bytes") == st.st_size and f.get("mtime_ns") == st.st_mtime_ns


def _open_writers(config: ScanConfig, writers: list[Any]) -> None:
    """Open the configured reports into ``writers`` one by one (a stop meanwhile still closes those already open)."""
    from cli import reports

    if config.jsonl_path:
        writers.append(reports.JsonlWriter(config.jsonl_path))
    if config.json_path:
        writers.append(reports.JsonWriter(config.json_path))
    if config.csv_path:
        writers.append(reports.CsvWriter(config.csv_path))
    if config.html_path:
        writers.append(reports.HtmlWriter(config.html_path))


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


def _records(config: ScanConfig, entries: Sequence[Entry], previous: Resume, engine: Any) -> Iterator[tuple[dict[str, Any], Any]]:
    """Records in input order: listing errors, reused resume records, and fresh analyses."""
    calibration = config.analysis.calibration.to_dict()
    reuse: dict[int, dict[str, Any]] = {}
    todo: list[str] = []
    for i, e in enumerate(entries):
        if e.error:
            continue
        old = previous.records.get(e.path)
        if old is not None and _unchanged(e.path, old, use_hash=config.resume_hash):
            reuse[i] = old
        else:
            todo.append(e.path)
    fresh = engine.map(todo)
    for i, e in enumerate(entries):
        if e.error:
            yield error_record(e.path, e.code, f"{e.path}: {e.error}", calibration=calibration), None
        elif i in reuse:
            yield reuse[i], None
        else:
            a = next(fresh)
            yield a.record, a.visuals


def run_scan(config: ScanConfig, *, console: Console, err_console: Console) -> ExitStatus:
    """Scan the configured paths and write the reports.

    Records stream to the JSONL report as they finish, in input order, so an
    interrupted scan keeps everything done so far. SIGINT and SIGTERM stop the
    scan cleanly in every phase (listing, worker start-up, analysis): the
    workers are stopped, every report is closed with its summary line, and
    the status is 130 or 143. A second signal during that shutdown is
    ignored, so it always completes.

    Args:
        config: The run's configuration.
        console: Where the verdict table goes (stdout unless a report does).
        err_console: Progress and messages (stderr).

    Returns:
        The exit status.

    Raises:
        ValueError: If the resume report cannot be read.
        OSError: If a report cannot be written.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t0 = time.perf_counter()
    started = utc_now()
    calibration = config.analysis.calibration
    entries: list[Entry] = []
    models: dict[str, str] = {}  # detector -> version, as reported by the records themselves
    writers: list[Any] = []
    report = Report()
    rows: list[dict[str, Any]] = []
    engine: Any = None
    status = ExitStatus.OK
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
    with Interrupts() as stop:
        try:
            if config.resume_path and config.jsonl_path and os.path.abspath(config.resume_path) == os.path.abspath(config.jsonl_path):
                # keep the earlier report beside the new one until the new one is complete
                prev = config.jsonl_path + ".prev"
                os.replace(config.jsonl_path, prev)
                config = _replace(config, resume_path=prev)
            previous = load_resume(config.resume_path) if config.resume_path else Resume()
            for msg in previous.skipped[:5]:
                err_console.print(safe_text(f"detect: warning: {msg}"), soft_wrap=True)
            if len(previous.skipped) > 5:
                err_console.print(safe_text(f"detect: warning: {len(previous.skipped) - 5} more image records of {config.resume_path} not reused"), soft_wrap=True)
            with stop.deferred():  # first, and whole: a stop in any later phase still ends each report with its summary
                _open_writers(config, writers)
            entries = list(iter_files(config.paths, recursive=config.recursive, extensions=config.extensions))
            with stop.deferred():  # a stop while the engine is built is taken once it is assigned (and so closed)
                engine = make_engine(config.analysis)
            with progress:
                task = progress.add_task("scanning", total=len(entries), rate="-")
                for i, (rec, vis) in enumerate(_records(config, entries, previous, engine), start=1):
                    report.add(rec, config.fail_on)
                    models.update({d["name"]: d["version"] for d in rec["detectors"]})
                    for w in writers:
                        w.add(rec, vis)
                    rows.append({"path": rec["file"]["path"], "label": rec["label"], "score": rec["score"], "error": (rec.get("error") or {}).get("message")})
                    elapsed = time.perf_counter() - t0
                    progress.update(task, advance=1, rate=f"{i / elapsed:.1f}" if elapsed > 0 else "-")
            status = report.exit_status()
        except (KeyboardInterrupt, Terminated) as exc:
            stop.stop(exc)
        except BaseException:
            if engine is not None:
                engine.close()
            raise
        # from here on a signal is only remembered: the shutdown runs to its end
        if stop.received is not None:
            status = ExitStatus.TERMINATED if stop.received == signal.SIGTERM else ExitStatus.INTERRUPTED
        if engine is not None:
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
