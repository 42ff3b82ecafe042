"""The evaluation grid: every image under every perturbation, scored by every detector.

Each perturbation is applied identically to both classes, in memory: the file
is decoded, transformed and re-encoded (JPEG for ``jpegQ``, lossless PNG
otherwise), then analysed from those bytes, as a re-shared file would be. A
re-encode drops the file's metadata, as social networks do, so provenance
evidence is measured under perturbation too. ``png`` and ``jpeg95`` alone
form the format-bias check: a detector that reads the container or the
compression history instead of generator traces moves between them.

Metrics follow the field's advice that AUC hides miscalibration: AUC, AP,
balanced accuracy and FPR at the shipped threshold, TPR at 1% FPR and ECE
(Guo et al., ICML 2017), per detector, per generator and per perturbation.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from datasets.perturbations import gaussian_blur, resize, to_uint8
from datasets.samples import Sample
from detectors.base import detector_kind, is_registered
from detectors.metrics import binary_metrics
from forensics.io import load_image_bytes

__all__ = [
    "DEFAULT_PERTURBATIONS",
    "FORMAT_CHECK",
    "MetricRow",
    "ScoreRow",
    "compute_metrics",
    "format_bias",
    "perturb_bytes",
    "read_score_rows",
    "score_rows",
]

DEFAULT_PERTURBATIONS: tuple[str, ...] = (
    "none", "jpeg95", "jpeg85", "jpeg75", "jpeg60", "resize0.5", "resize0.75", "blur1", "screenshot",
)  # fmt: skip
#: The pair compared by the format-bias check.
FORMAT_CHECK: tuple[str, str] = ("png", "jpeg95")
#: Score given to a provenance detector's claim, so that it can be measured like a score.
_CLAIM_SCORE = {"proof": 1.0, "strong": 0.75}


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(arr)).save(buf, format="PNG")
    return buf.getvalue()


def perturb_bytes(data: bytes, perturbation: str) -> bytes:
    """Bytes of the file after a named perturbation.

    Args:
        data: Original file bytes.
        perturbation: ``none`` (the file itself), ``png`` (lossless re-encode),
            ``jpegQ``, ``resizeS`` (bicubic), ``blurS`` (Gaussian sigma in
            pixels) or ``screenshot`` (a 0.9x bilinear display rescale saved
            losslessly, as a screen capture of a scaled view would be).

    Returns:
        The perturbed file's bytes.

    Raises:
        ValueError: For an unknown perturbation, listing the allowed forms.
        forensics.io.ImageLoadError: If ``data`` cannot be decoded.
    """
    if perturbation == "none":
        return data
    img = load_image_bytes(data).regions[0]
    try:
        if perturbation == "png":
            return _png(img)
        if perturbation.startswith("jpeg"):
            q = int(perturbation[4:])
            buf = io.BytesIO()
            Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=q)
            return buf.getvalue()
        if perturbation.startswith("resize"):
            return _png(resize(img, float(perturbation[6:]), interpolation="bicubic"))
        if perturbation.startswith("blur"):
            return _png(gaussian_blur(img, float(perturbation[4:])))
        if perturbation == "screenshot":
            return _png(resize(img, 0.9, interpolation="bilinear"))
    except ValueError as exc:
        raise ValueError(f"bad perturbation {perturbation!r}: {exc}") from None
    raise ValueError(
        f"unknown perturbation {perturbation!r}; allowed: none, png, jpegQ, resizeS, blurS, screenshot"
    )


def check_perturbations(names: Sequence[str]) -> tuple[str, ...]:
    """Validate perturbation names on a tiny image, so a typo fails before a long run."""
    probe = _png(np.full((16, 16, 3), 0.5, dtype=np.float32))
    for n in names:
        perturb_bytes(probe, n)
    return tuple(names)


@dataclass(frozen=True)
class ScoreRow:
    """One image x perturbation x detector. ``score`` is P(AI), or a claim's weight for provenance."""

    path: str
    sha256: str
    label: str
    generator: str
    perturbation: str
    detector: str
    score: float | None
    threshold: float | None
    status: str


def score_rows(record: dict[str, Any], sample: Sample, perturbation: str, *, original_sha256: str) -> list[ScoreRow]:
    """Rows for one analysed record: each detector, plus ``fused`` (the verdict's score)."""
    gen = sample.generator or ("real" if sample.label == "real" else "unknown")
    base = dict(path=sample.path, sha256=original_sha256, label=sample.label, generator=gen, perturbation=perturbation)
    rows = []
    if record["status"] != "ok":
        return [ScoreRow(**base, detector="fused", score=None, threshold=None, status="error")]
    for d in record["detectors"]:
        pixel = is_registered(d["name"]) and detector_kind(d["name"]) == "pixel"  # others read provenance
        if d["status"] == "error":
            score = None
        elif pixel:
            score = d["score"]  # None when not applicable (e.g. too small)
        elif d["claim"] in ("ai_generated", "ai_edited"):
            score = _CLAIM_SCORE.get(d["strength"], 0.0)
        else:
            score = 0.0  # no AI claim: a provenance reader says "nothing found"
        thr = d["threshold"] if pixel else 0.5
        rows.append(ScoreRow(**base, detector=d["name"], score=score, threshold=thr, status=d["status"]))
    cal = record.get("calibration") or {}
    rows.append(ScoreRow(**base, detector="fused", score=record["score"], threshold=cal.get("likely_ai"), status="ok"))
    return rows


CSV_FIELDS = [f for f in ScoreRow.__dataclass_fields__]


def read_score_rows(path: str | os.PathLike[str]) -> list[ScoreRow]:
    """Rows from a raw-scores CSV (torn last line tolerated)."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                out.append(
                    ScoreRow(
                        **{k: row[k] for k in ("path", "sha256", "label", "generator", "perturbation", "detector", "status")},
                        score=None if row["score"] in ("", None) else float(row["score"]),
                        threshold=None if row["threshold"] in ("", None) else float(row["threshold"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
    return out


@dataclass(frozen=True)
class MetricRow:
    """Metrics of one detector on one perturbation and one subset (``all`` or a generator)."""

    detector: str
    perturbation: str
    subset: str
    n_real: int
    n_ai: int
    auc: float | None
    ap: float | None
    balanced_accuracy: float | None
    tpr_at_1pct_fpr: float | None
    fpr_at_threshold: float | None
    tpr_at_threshold: float | None
    ece: float | None
    threshold: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


def compute_metrics(rows: Iterable[ScoreRow]) -> list[MetricRow]:
    """Metrics per detector x perturbation x (all, each generator).

    Rows with no score are left out (and counted nowhere). The threshold is
    the detector's shipped one (for ``fused``: the calibration's ``likely_ai``).
    """
    groups: dict[tuple[str, str], list[ScoreRow]] = {}
    for r in rows:
        if r.score is not None:
            groups.setdefault((r.detector, r.perturbation), []).append(r)
    out: list[MetricRow] = []
    for (det, pert), rs in sorted(groups.items()):
        thr_values = [r.threshold for r in rs if r.threshold is not None]
        thr = float(np.median(thr_values)) if thr_values else 0.5
        gens = sorted({r.generator for r in rs if r.label == "ai"})
        for subset in ["all", *gens]:
            sel = [r for r in rs if r.label == "real" or subset == "all" or r.generator == subset]
            y = np.array([r.label == "ai" for r in sel], dtype=int)
            p = np.array([r.score for r in sel], dtype=float)
            n_ai, n_real = int(y.sum()), int((1 - y).sum())
            if n_ai == 0 or n_real == 0:
                continue
            m = binary_metrics(y, p, threshold=thr).to_dict()
            out.append(
                MetricRow(
                    detector=det, perturbation=pert, subset=subset, n_real=n_real, n_ai=n_ai, auc=m["auc"], ap=m["ap"],
                    balanced_accuracy=m["balanced_accuracy"], tpr_at_1pct_fpr=m["tpr_at_1pct_fpr"], fpr_at_threshold=m["fpr"],
                    tpr_at_threshold=m["tpr"], ece=m["ece"], threshold=thr,
                )  # fmt: skip
            )
    return out


def format_bias(metrics: Sequence[MetricRow]) -> dict[str, dict[str, float | None]]:
    """AUC on ``none``, ``png`` and ``jpeg95`` per detector, and how far it moves between the two re-encodes."""
    out: dict[str, dict[str, float | None]] = {}
    for m in metrics:
        if m.subset == "all" and m.perturbation in ("none", *FORMAT_CHECK):
            out.setdefault(m.detector, {})[m.perturbation] = m.auc
    for d in out.values():
        for key in ("none", *FORMAT_CHECK):  # every key present (None when not run), for readers of the summary
            d.setdefault(key, None)
        a, b = d.get(FORMAT_CHECK[0]), d.get(FORMAT_CHECK[1])
        d["delta_png_vs_jpeg95"] = None if a is None or b is None else round(abs(a - b), 6)
    return out
