"""Scale-out engine on Ray Data: the same per-image work, the same records.

``detect scan --engine ray`` connects to the cluster named by ``RAY_ADDRESS``
or starts a local Ray (``--jobs`` CPUs) when there is none. The listing
becomes a Ray dataset, analysed by pools of actors, each building its
:class:`detectors.pipeline.Pipeline` once in its constructor (Ray Data's
callable-class stages; no module state):

* without GPUs, one stage: each actor analyses a batch of ``batch_images``
  files completely, its CNN batched over them, with a local
  :class:`cli.engine.local.ProcessEngine` of one worker;
* with GPUs, the per-image CPU stage (decode, provenance, spectral, the CNN's
  crop selection) runs on CPU actors, and the CNN on one actor per GPU, in
  batches, which also fuse and build the records.

Records come back in input order (``preserve_order``), and the CNN's logits
do not depend on the batch an image lands in, so the reports equal those of
the local engine apart from timings. Paths with a scheme (``s3://``,
``gs://``, ``file://``) are read through fsspec, so the listing can live in
object storage. Each actor runs the files in a local worker process of its
own (:mod:`cli.engine.worker`), so the per-file time limit holds on the
cluster too: a file that exceeds ``--timeout`` kills that worker, which the
actor replaces, and gets an error record.

Requires the optional extra: ``pip install -e '.[cluster]'``; the cluster
recipe (head, workers, token authentication, GPUs) is in the README.
Reference: P. Moritz et al., "Ray: A Distributed Framework for Emerging AI
Applications", OSDI 2018.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from dataclasses import replace
from typing import Any, Iterable, Iterator

import numpy as np

from cli.engine.config import EngineConfig
from cli.engine.jobs import PathJob
from cli.engine.local import ProcessEngine
from cli.engine.worker import WorkerPool, WorkerSpec, limit_threads
from detectors.pipeline import Analysis
from detectors.record import Visuals

__all__ = ["RayEngine"]


def _encode_visuals(v: Visuals | None) -> bytes:
    if v is None:
        return b""
    arrays = {k: getattr(v, k) for k in ("thumbnail", "residual", "spectrum") if getattr(v, k) is not None}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _decode_visuals(data: bytes) -> Visuals | None:
    if not data:
        return None
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return Visuals(**{k: z[k] for k in z.files})


def _rows(indices: Any, done: list[Analysis]) -> dict[str, Any]:
    return {
        "i": indices,
        "record": [json.dumps(a.record, allow_nan=False) for a in done],
        "visuals": [_encode_visuals(a.visuals) for a in done],
    }


class _WholeStage:  # pragma: no cover - runs in Ray actors
    """One stage: a batch of files analysed completely, the CNN (if any) batched over them.

    Each actor runs a local :class:`~cli.engine.local.ProcessEngine` with one
    worker process, so every file has the per-file time limit (a worker that
    exceeds it is killed and replaced) exactly as on one machine.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.engine = ProcessEngine(replace(config, engine="local", jobs=1))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _rows(batch["i"], list(self.engine.map([str(p) for p in batch["path"]])))


class _StartStage:  # pragma: no cover - runs in Ray actors
    """CPU stage (GPU clusters): everything but the batched detectors' networks, in a worker under the time limit."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.pool = WorkerPool(WorkerSpec(config, defer=True), size=1, timeout_s=config.timeout_s)
        self.pool.start()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out = self.pool.run(PathJob(row["path"], visuals=self.config.visuals))
        # our own objects between our own processes (Ray pickles task data anyway); never used for weights
        return {"i": row["i"], "partial": pickle.dumps(out)}


class _BatchStage:  # pragma: no cover - runs in Ray actors
    """Batched stage (GPU clusters): the CNN over a batch of images, then fusion and the records."""

    def __init__(self, config: EngineConfig) -> None:
        self.pipeline = config.build_finisher()
        limit_threads(config.stage_threads())

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _rows(batch["i"], self.pipeline.finish([pickle.loads(bytes(b)) for b in batch["partial"]]))


class _JobStage:  # pragma: no cover - runs in Ray actors
    """Complete jobs (see :class:`cli.engine.worker.Job`), in a worker under the time limit."""

    def __init__(self, config: EngineConfig) -> None:
        self.pool = WorkerPool(WorkerSpec(config, defer=False), size=1, timeout_s=config.timeout_s)
        self.pool.start()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"i": row["i"], "out": pickle.dumps(self.pool.run(pickle.loads(row["job"])))}


class RayEngine:
    """Runs the per-image pipeline on Ray Data.

    Args:
        config: The engine configuration; ``jobs`` sets the CPUs of a local Ray
            started when ``RAY_ADDRESS`` is unset, and the actors of a cluster without GPUs.

    Raises:
        ValueError: If Ray is not installed.
    """

    def __init__(self, config: EngineConfig, *, defer: bool = True) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--engine ray needs the optional extra: pip install -e '.[cluster]'") from None
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
        self.config = config
        self._started = False
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            kw: dict[str, Any] = {
                "include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True, "logging_level": logging.WARNING,
            }  # fmt: skip
            if address is None:
                kw["num_cpus"] = max(1, config.jobs)
            ray.init(address=address, **kw)
            self._started = True

    def _dataset(self, items: list[dict[str, Any]]) -> Any:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # the scan draws its own progress on stderr
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray.data.from_items(items, override_num_blocks=min(len(items), 200))

    def _cpus(self) -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files on the cluster, yielding results in input order."""
        import ray

        items = [{"i": i, "path": p} for i, p in enumerate(paths)]
        if not items:
            return
        ds = self._dataset(items)
        cfg = self.config
        n_gpus = int(ray.cluster_resources().get("GPU", 0))
        if cfg.batched() and n_gpus:
            actors = cfg.ray_actors or n_gpus  # one CNN actor per GPU
            ds = ds.map(_StartStage, fn_constructor_kwargs={"config": cfg}, concurrency=(1, max(1, self._cpus() - actors)))
            ds = ds.map_batches(
                _BatchStage, fn_constructor_kwargs={"config": cfg}, batch_size=cfg.batch_images,
                batch_format="numpy", concurrency=actors, num_gpus=1,
            )  # fmt: skip
        else:
            # one actor per job when the CNN runs in every actor; else as many as the cluster has CPUs
            actors = cfg.ray_actors or (max(1, cfg.jobs) if cfg.batched() else self._cpus())
            ds = ds.map_batches(
                _WholeStage, fn_constructor_kwargs={"config": cfg}, batch_size=cfg.batch_images,
                batch_format="numpy", concurrency=actors,
            )  # fmt: skip
        expected = 0
        for row in ds.iter_rows():
            if row["i"] != expected:  # preserve_order guarantees this; fail loudly if not
                raise RuntimeError(f"Ray returned record {row['i']} where {expected} was expected")
            expected += 1
            yield Analysis(json.loads(row["record"]), _decode_visuals(row["visuals"]))

    def run(self, jobs: Iterable[Any]) -> Iterator[Any]:
        """Run complete jobs on the cluster's CPUs, yielding results in input order."""
        items = [{"i": i, "job": pickle.dumps(job)} for i, job in enumerate(jobs)]
        if not items:
            return
        ds = self._dataset(items).map(_JobStage, fn_constructor_kwargs={"config": self.config}, concurrency=(1, self._cpus()))
        expected = 0
        for row in ds.iter_rows():
            if row["i"] != expected:
                raise RuntimeError(f"Ray returned result {row['i']} where {expected} was expected")
            expected += 1
            yield pickle.loads(row["out"])

    def close(self) -> None:
        """Shut down a local Ray this engine started."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
