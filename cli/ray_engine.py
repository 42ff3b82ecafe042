"""Scale-out engine on Ray Data: the same per-image work, the same records.

``detect scan --engine ray`` connects to the cluster named by ``RAY_ADDRESS``
or starts a local Ray (``--jobs`` CPUs) when there is none. The listing
becomes a Ray dataset; the per-image CPU stage (decode, provenance,
spectral, the CNN's crop selection) runs as a Ray Data ``map`` over CPU
workers, each building its :class:`detectors.pipeline.Pipeline` once. The
CNN then runs as a pool of batched actors (``map_batches``, one GPU each
when the cluster has GPUs), which also fuse and build the records. Records
come back in input order (``preserve_order``), and the CNN's logits do not
depend on the batch an image lands in, so the reports equal those of the
local engine apart from timings. Paths with a scheme (``s3://``, ``gs://``, ``file://``) are
read through fsspec, so the listing can live in object storage.

Requires the optional extra: ``pip install -e '.[cluster]'``.
Reference: P. Moritz et al., "Ray: A Distributed Framework for Emerging AI
Applications", OSDI 2018.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from typing import Any, Iterable, Iterator

import numpy as np

from detectors.pipeline import Analysis
from detectors.record import Visuals

__all__ = ["RayEngine"]

_PIPELINE: Any = None


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


def _analyze_row(row: dict[str, Any], *, config: Any) -> dict[str, Any]:  # pragma: no cover - runs in Ray workers
    global _PIPELINE
    if _PIPELINE is None:
        _PIPELINE = config.build_pipeline()
    a = _PIPELINE.analyze_path(row["path"], visuals=config.visuals)
    return {"i": row["i"], "record": json.dumps(a.record, allow_nan=False), "visuals": _encode_visuals(a.visuals)}


def _start_row(row: dict[str, Any], *, config: Any) -> dict[str, Any]:  # pragma: no cover - runs in Ray workers
    """CPU stage: everything but the batched detectors' networks."""
    global _PIPELINE
    if _PIPELINE is None:
        _PIPELINE = config.build_pipeline(defer=True)
    # our own objects between our own processes (Ray pickles task data anyway); never used for weights
    return {"i": row["i"], "partial": pickle.dumps(_PIPELINE.start_path(row["path"], visuals=config.visuals))}


class _BatchStage:  # pragma: no cover - runs in Ray actors
    """Batched stage: the CNN over a batch of images, then fusion and the records."""

    def __init__(self, config: Any) -> None:
        from cli.engine import _limit_threads

        self.pipeline = config.build_finisher()
        _limit_threads(config.stage_threads())

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        items = [pickle.loads(bytes(b)) for b in batch["partial"]]
        done = self.pipeline.finish(items)
        return {
            "i": batch["i"],
            "record": [json.dumps(a.record, allow_nan=False) for a in done],
            "visuals": [_encode_visuals(a.visuals) for a in done],
        }


class RayEngine:
    """Runs the per-image pipeline on Ray Data.

    Args:
        config: The engine configuration (:class:`cli.engine.EngineConfig`);
            ``jobs`` sets the CPUs of a local Ray started when ``RAY_ADDRESS`` is unset.
    """

    def __init__(self, config: Any) -> None:
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

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files on the cluster, yielding results in input order."""
        import ray.data

        items = [{"i": i, "path": p} for i, p in enumerate(paths)]
        if not items:
            return
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # the scan draws its own progress on stderr
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 200))
        if self.config.batched():
            n_gpus = int(ray.cluster_resources().get("GPU", 0))
            # One actor per GPU; without GPUs Ray fuses the CPU map into the actors, so use one per job.
            actors = self.config.ray_actors or (n_gpus if n_gpus else max(1, self.config.jobs))
            ds = ds.map(_start_row, fn_kwargs={"config": self.config})
            ds = ds.map_batches(
                _BatchStage, fn_constructor_kwargs={"config": self.config}, batch_size=self.config.batch_images,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=1 if n_gpus else 0,
            )  # fmt: skip
        else:
            ds = ds.map(_analyze_row, fn_kwargs={"config": self.config})
        expected = 0
        for row in ds.iter_rows():
            if row["i"] != expected:  # preserve_order guarantees this; fail loudly if not
                raise RuntimeError(f"Ray returned record {row['i']} where {expected} was expected")
            expected += 1
            yield Analysis(json.loads(row["record"]), _decode_visuals(row["visuals"]))

    def close(self) -> None:
        """Shut down a local Ray this engine started."""
        if self._started:
            import ray

            ray.shutdown()
