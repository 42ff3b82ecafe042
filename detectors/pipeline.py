"""Per-image analysis: load, run every detector, fuse, and build the record.

:class:`Pipeline` is the one place that turns a file into a scan record, so
the CLI, the HTML report and any other engine produce identical records.
A failing detector becomes a result with ``status: "error"``; a file that
cannot be loaded becomes an error record. Neither stops the caller.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

from detectors.base import Detector, DetectorKind, DetectorResult, create_detector, detector_kind, is_batchable, is_registered
from detectors.calibration import Calibration, load_calibration
from detectors.fusion import fuse
from detectors.record import FileInfo, ImageRecord, Timing, Visuals, error_record
from forensics.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageLoadError, LoadedImage, QualityFlag, load_image, load_image_bytes
from forensics.jpeg import jpeg_info

__all__ = ["Analysis", "DEFAULT_DETECTORS", "PartialAnalysis", "Pipeline", "default_pixel_detectors", "image_quality_flags"]

#: Detectors run by ``detect scan`` unless told otherwise.
DEFAULT_DETECTORS: tuple[str, ...] = ("c2pa", "xmp", "generator_metadata", "watermark", "exif", "spectral", "cnn", "zed")
#: Images smaller than this on either side get the ``small_image`` flag.
SMALL_SIDE = 128
_THUMB = 256
_EXT_FORMATS: dict[str, tuple[str, ...]] = {
    ".jpg": ("JPEG", "MPO"), ".jpeg": ("JPEG", "MPO"), ".jpe": ("JPEG", "MPO"), ".png": ("PNG",),
    ".webp": ("WEBP",), ".gif": ("GIF",), ".tif": ("TIFF",), ".tiff": ("TIFF",), ".bmp": ("BMP",),
    ".heic": ("HEIF", "HEIC"), ".heif": ("HEIF", "HEIC"), ".avif": ("AVIF", "HEIF"),
}  # fmt: skip


@dataclass(frozen=True)
class Analysis:
    """A record and, when asked for, the small images for its report card."""

    record: dict[str, Any]
    visuals: Visuals | None = None


@dataclass
class PartialAnalysis:
    """An image analysed by every detector except the deferred ones.

    A worker makes it (:meth:`Pipeline.start_path`); whoever holds the deferred
    detectors' networks finishes it in a batch (:meth:`Pipeline.finish`).
    Everything in it is small: the decoded image is not kept.

    Attributes:
        file: The record's ``file`` block.
        results: Results of the detectors that ran.
        flags: Quality flags.
        pending: Deferred detector name -> its prepared input (e.g. a
            :class:`detectors.cnn.CNNInput`) or already-final result.
        load_s: Seconds spent loading.
        detect_s: Seconds spent in the detectors so far.
        elapsed_s: Seconds spent on this image so far.
        visuals: Report-card images, when asked for.
        order: Result names in the pipeline's detector order.
    """

    file: dict[str, Any]
    results: list[DetectorResult]
    flags: list[QualityFlag]
    pending: dict[str, Any]
    load_s: float
    detect_s: float
    elapsed_s: float
    visuals: Visuals | None = None
    order: tuple[str, ...] = ()


def default_pixel_detectors() -> tuple[str, ...]:
    """The registered ``pixel`` detectors among :data:`DEFAULT_DETECTORS`, in order (what ``detect calibrate`` fuses)."""
    return tuple(n for n in DEFAULT_DETECTORS if detector_kind(n) == "pixel")


def image_quality_flags(image: LoadedImage) -> list[QualityFlag]:
    """Quality flags derived from the image (beyond those the loader set).

    Args:
        image: A loaded image.

    Returns:
        Flags such as ``small_image``, ``heavy_jpeg`` or ``no_exif``.
    """
    flags = list(image.quality_flags)
    if min(image.width, image.height) < SMALL_SIDE:
        flags.append(QualityFlag("small_image", f"{image.width}x{image.height} is small: pixel evidence is weak"))
    info = jpeg_info(image.data) if image.format in ("JPEG", "MPO") else None
    if info is not None and info.quality is not None and info.quality < 75:
        flags.append(
            QualityFlag("heavy_jpeg", f"re-compressed at low JPEG quality (about {info.quality}): pixel evidence is weak")
        )
    if image.path:
        ext = os.path.splitext(image.path)[1].lower()
        expected = _EXT_FORMATS.get(ext)
        if expected is not None and image.format not in expected:
            flags.append(
                QualityFlag("extension_mismatch", f"the file name says {ext} but the content is {image.format}")
            )
    if image.exif is None:
        flags.append(QualityFlag("no_exif", "no EXIF metadata (common after editing or upload; not evidence either way)"))
    return flags


class Pipeline:
    """Runs a fixed set of detectors and a calibration over images.

    Args:
        detectors: Detector instances, or registry names to build with default options.
        calibration: Thresholds for fusion; the shipped calibration by default.
        max_pixels: Decompression-bomb limit passed to the loader.
        stability: Re-score pixel verdicts after a JPEG q90 re-save and a 0.75x
            resize; a label that flips becomes ``inconclusive`` with an
            ``unstable`` quality flag.
        defer: Registry names of batchable detectors (those with ``prepare``
            and ``score_batch``, e.g. ``cnn``) that this pipeline only prepares:
            :meth:`start_path` leaves them pending, built without their
            networks, for a batched :meth:`finish` elsewhere. Not allowed with
            ``stability`` (re-scoring needs the image).
    """

    def __init__(
        self,
        detectors: Sequence[Detector | str] = DEFAULT_DETECTORS,
        *,
        calibration: Calibration | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        stability: bool = False,
        defer: Sequence[str] = (),
    ) -> None:
        if defer and stability:
            raise ValueError("defer cannot be combined with stability")
        unknown = sorted(set(defer) - {d for d in detectors if isinstance(d, str)})
        if unknown:
            raise ValueError(f"defer names detectors not in the pipeline: {unknown}")
        self.detectors: list[Detector] = []
        #: Detector (result) name -> registered kind; an unregistered instance counts as provenance.
        self.kinds: dict[str, DetectorKind] = {}
        deferred: set[str] = set()
        for spec in detectors:
            if isinstance(spec, str) and spec in defer:
                if not is_batchable(spec):
                    raise ValueError(f"detector {spec!r} cannot be deferred: it is not registered as batchable")
                det = create_detector(spec, prepare_only=True)  # crops only: no network in this process
                deferred.add(det.name)
            else:
                det = create_detector(spec) if isinstance(spec, str) else spec
            self.detectors.append(det)
            reg = spec if isinstance(spec, str) else det.name
            self.kinds[det.name] = detector_kind(reg) if is_registered(reg) else "provenance"
        self.deferred: frozenset[str] = frozenset(deferred)
        self.calibration = calibration if calibration is not None else load_calibration()
        self.max_pixels = max_pixels
        self.stability = stability

    @property
    def models(self) -> dict[str, str]:
        """Detector name -> version, for report headers."""
        return {d.name: d.version for d in self.detectors}

    def analyze_path(self, path: str | os.PathLike[str], *, visuals: bool = False) -> Analysis:
        """Analyse one file; never raises for a bad file (returns an error record)."""
        return self.finish([self.start_path(path, visuals=visuals)])[0]

    def start_path(self, path: str | os.PathLike[str], *, visuals: bool = False) -> Analysis | PartialAnalysis:
        """Analyse one file up to the deferred detectors (see ``defer``); never raises for a bad file."""
        t0 = time.perf_counter()
        name = os.fsdecode(path)
        if "://" in name:
            return self._analyze_url(name, visuals=visuals, t0=t0)
        try:
            image = load_image(path, max_pixels=self.max_pixels, thumbnail_size=_THUMB if visuals else None)
        except ImageLoadError as exc:
            return Analysis(self._error(name, exc.code, str(exc), t0))
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a scan
            return Analysis(self._error(name, "internal_error", f"{name}: {type(exc).__name__}: {exc}", t0))
        partial = self.start_image(image, visuals=visuals, t0=t0, load_s=time.perf_counter() - t0)
        try:
            partial.file["mtime_ns"] = os.stat(path).st_mtime_ns
        except OSError:
            pass
        return partial

    def _analyze_url(self, url: str, *, visuals: bool, t0: float) -> Analysis | PartialAnalysis:
        """Read an fsspec URL (``s3://``, ``gs://``, ``file://``) and analyse its bytes."""
        try:
            import fsspec

            with fsspec.open(url, "rb") as fh:
                data = fh.read(DEFAULT_MAX_BYTES + 1)
        except ImportError:
            return Analysis(self._error(url, "unreadable", f"{url}: reading URLs needs fsspec (pip install -e '.[cluster]')", t0))
        except Exception as exc:  # noqa: BLE001 - any storage failure is this file's error
            return Analysis(self._error(url, "unreadable", f"{url}: cannot read: {exc}", t0))
        if len(data) > DEFAULT_MAX_BYTES:
            return Analysis(self._error(url, "too_large", f"{url}: object is larger than {DEFAULT_MAX_BYTES:,} bytes", t0))
        return self._start_bytes(data, name=url, visuals=visuals)

    def analyze_bytes(self, data: bytes, *, name: str, visuals: bool = False) -> Analysis:
        """Analyse in-memory file bytes (e.g. an upload) under a display ``name``."""
        return self.finish([self._start_bytes(data, name=name, visuals=visuals)])[0]

    def _start_bytes(self, data: bytes, *, name: str, visuals: bool) -> Analysis | PartialAnalysis:
        t0 = time.perf_counter()
        try:
            image = load_image_bytes(data, path=name, max_pixels=self.max_pixels, thumbnail_size=_THUMB if visuals else None)
        except ImageLoadError as exc:
            return Analysis(self._error(name, exc.code, str(exc), t0, size=len(data)))
        return self.start_image(image, visuals=visuals, t0=t0, load_s=time.perf_counter() - t0)

    def _stability_flip(self, image: LoadedImage, results: list[DetectorResult], label: str, flags: list[QualityFlag]) -> str | None:
        """Re-score after a JPEG q90 re-save and a 0.75x resize; describe the first label flip, if any."""
        from dataclasses import replace

        from datasets.perturbations import jpeg_compress, resize

        pixel = [d for d in self.detectors if self.kinds[d.name] == "pixel"]
        others = [r for r in results if r.name not in {d.name for d in pixel}]
        for name, op in (("a JPEG q90 re-save", lambda a: jpeg_compress(a, 90)), ("a 0.75x resize", lambda a: resize(a, 0.75))):
            regions = tuple(op(r) for r in image.regions)
            h, w = regions[0].shape[:2]
            variant = replace(image, regions=regions, width=w if image.is_whole else image.width, height=h if image.is_whole else image.height)
            new = []
            for d in pixel:
                try:
                    new.append(d.analyze(variant))
                except Exception:  # noqa: BLE001 - a failing re-score is not a flip
                    continue
            v = fuse(others + new, self.calibration, quality_flags=flags)
            if v.label != label:
                return f"{label} becomes {v.label} after {name}"
        return None

    def _error(self, name: str, code: str, message: str, t0: float, size: int | None = None) -> dict[str, Any]:
        if size is None and "://" not in name:
            try:
                size = os.stat(name).st_size
            except OSError:
                size = None
        return error_record(
            name, code, message, size=size, calibration=self.calibration.to_dict(), total_s=time.perf_counter() - t0
        )

    def analyze_image(
        self, image: LoadedImage, *, visuals: bool = False, t0: float | None = None, load_s: float = 0.0
    ) -> Analysis:
        """Run every detector on a loaded image, fuse, and build the record."""
        return self.finish([self.start_image(image, visuals=visuals, t0=t0, load_s=load_s)])[0]

    def start_image(
        self, image: LoadedImage, *, visuals: bool = False, t0: float | None = None, load_s: float = 0.0
    ) -> PartialAnalysis:
        """Run the detectors on a loaded image; deferred ones are only prepared.

        With nothing deferred but ``stability`` on, the stability re-scoring
        needs the image, so it is done here and the verdict is stored.
        """
        t0 = time.perf_counter() if t0 is None else t0
        t_det = time.perf_counter()
        results: list[DetectorResult] = []
        pending: dict[str, Any] = {}
        spectral_feats = None
        for det in self.detectors:
            ts = time.perf_counter()
            try:
                if det.name in self.deferred:
                    pending[det.name] = det.prepare(image)  # type: ignore[attr-defined]
                elif hasattr(det, "analyze_with_features"):
                    out = det.analyze_with_features(image)  # type: ignore[attr-defined]
                    results.append(out.result)
                    spectral_feats = out.features if out.features is not None else spectral_feats
                else:
                    results.append(det.analyze(image))
            except Exception as exc:  # noqa: BLE001 - a detector bug must not lose the record
                results.append(_failed(det, exc, ts))
        detect_s = time.perf_counter() - t_det
        flags = image_quality_flags(image)
        if self.stability:
            verdict = fuse(results, self.calibration, quality_flags=flags)
            if verdict.decided_by == "fusion" and verdict.label in ("likely_ai", "likely_real"):
                flip = self._stability_flip(image, results, verdict.label, flags)
                if flip is not None:
                    flags.append(QualityFlag("unstable", flip))
        file = FileInfo.of_image(image).to_json()
        vis = _make_visuals(image, spectral_feats) if visuals else None
        order = tuple(d.name for d in self.detectors)
        return PartialAnalysis(file, results, flags, pending, load_s, detect_s, time.perf_counter() - t0, vis, order)

    def finish(self, items: Sequence[Analysis | PartialAnalysis]) -> list[Analysis]:
        """Run the pending (deferred) detectors batched across ``items``, fuse, and build the records.

        ``Analysis`` items (error records) pass through. Only this pipeline's
        own detectors can finish a pending input, so the finishing pipeline
        must hold the deferred detectors with their networks.
        """
        by_name = {d.name: d for d in self.detectors}
        names = sorted({n for it in items if isinstance(it, PartialAnalysis) for n in it.pending})
        done: dict[tuple[int, str], DetectorResult] = {}
        extra_s: dict[int, float] = {}
        for name in names:
            det = by_name.get(name)
            idx = [i for i, it in enumerate(items) if isinstance(it, PartialAnalysis) and name in it.pending]
            t = time.perf_counter()
            try:
                if det is None or name in self.deferred:
                    raise RuntimeError(f"this pipeline cannot run the deferred detector {name!r}")
                outs = det.score_batch([items[i].pending[name] for i in idx])  # type: ignore[attr-defined,union-attr]
            except Exception as exc:  # noqa: BLE001 - a detector bug must not lose the records
                outs = [_failed(det, exc, t, name=name) for _ in idx]
            share = (time.perf_counter() - t) / max(1, len(idx))
            for i, r in zip(idx, outs):
                done[(i, name)] = r
                extra_s[i] = extra_s.get(i, 0.0) + share
        out: list[Analysis] = []
        for i, it in enumerate(items):
            if isinstance(it, Analysis):
                out.append(it)
                continue
            results = list(it.results) + [done[(i, n)] for n in it.pending]
            order = {n: k for k, n in enumerate(it.order)}
            results.sort(key=lambda r: order.get(r.name, len(order)))
            out.append(self._record(it, results, extra_s.get(i, 0.0)))
        return out

    def _record(self, it: PartialAnalysis, results: list[DetectorResult], extra_s: float) -> Analysis:
        flags = list(it.flags)
        verdict = fuse(results, self.calibration, quality_flags=flags)
        expl = list(verdict.explanations)
        for r in results:
            if r.status == "error":
                expl.append(f"Detector {r.name} failed: {r.message}")
        record = ImageRecord(
            file=FileInfo.from_json(it.file),
            label=verdict.label,
            score=verdict.score,
            decided_by=verdict.decided_by,
            detectors=tuple(results),
            quality_flags=tuple(flags),
            explanations=tuple(expl),
            calibration=self.calibration.to_dict(),
            timing=Timing(load_s=it.load_s, detect_s=it.detect_s + extra_s, total_s=it.elapsed_s + extra_s),
        )
        return Analysis(record.to_json(), it.visuals)


def _failed(det: Any, exc: BaseException, t0: float, *, name: str | None = None) -> DetectorResult:
    return DetectorResult(
        name=name or det.name,
        version=getattr(det, "version", "?") if det is not None else "?",
        status="error",
        message=f"{type(exc).__name__}: {exc}",
        time_s=time.perf_counter() - t0,
    )


def _make_visuals(image: LoadedImage, feats: Any) -> Visuals:
    from detectors.spectral import MIN_SIDE, extract_spectral_features, spectral_visuals

    residual = spectrum = None
    region = image.regions[0]
    if min(region.shape[:2]) >= MIN_SIDE:
        if feats is None:
            feats = extract_spectral_features((region,), max_tiles=4)
        residual, spectrum = spectral_visuals(region, feats.xd_spectrum)
    return Visuals(thumbnail=image.thumbnail, residual=residual, spectrum=spectrum)
