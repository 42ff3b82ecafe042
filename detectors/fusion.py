"""Fusion of detector results into one verdict, and the calibration that sets its thresholds.

Rules, in order (false positives on real photos are the costliest error):

1. A verified AI claim from provenance (strength ``proof``: C2PA AI source
   type, IPTC ``trainedAlgorithmicMedia``, generator metadata, a strong
   watermark band) gives ``ai_confirmed``; ``decided_by`` names it.
2. Pixel detectors' scores are averaged into P(AI) and compared with the
   calibrated thresholds: ``likely_ai`` at or above ``likely_ai``,
   ``likely_real`` at or below ``likely_real``, ``inconclusive`` between.
3. A ``strong`` provenance claim floors the label at ``likely_ai``.
4. Quality flags that make pixel evidence unreliable (tiny image) cap the
   pixel verdict at ``inconclusive``; they never raise it.
5. An ``unstable`` quality flag (the pixel label flipped under a mild JPEG
   re-save or resize, see :class:`detectors.pipeline.Pipeline`) caps a
   ``likely_ai``/``likely_real`` set by the pixel evidence at ``inconclusive``,
   ``decided_by: "stability"``.
6. Missing provenance is neutral, and camera metadata never lowers a pixel
   score: it is shown beside it. Pixels alone never confirm a photo is real.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from detectors.base import DetectorResult
from detectors.record import LABEL_RANK
from forensics.io import QualityFlag

__all__ = ["Calibration", "Verdict", "fuse", "load_calibration"]

#: Quality flags under which pixel evidence may not say ``likely_real`` or ``likely_ai``.
_UNRELIABLE_FLAGS = frozenset({"small_image"})


@dataclass(frozen=True)
class Calibration:
    """Thresholds on the fused P(AI).

    Attributes:
        name: Identifier of the calibration, e.g. ``"spectral-calib"``.
        version: Version string named in every report.
        likely_ai: Scores >= this are ``likely_ai``; chosen for ``target_fpr`` on real photos.
        likely_real: Scores <= this are ``likely_real``; chosen for ``target_miss`` on AI images.
        target_fpr: The false-positive rate the ``likely_ai`` threshold was fitted for.
        target_miss: The miss rate the ``likely_real`` threshold was fitted for.
        fitted_on: Description of the calibration data.
        fusion: ``{"detectors": [...], "weights": [...], "bias": b}``: logistic late
            fusion of the pixel detectors' logits, or ``None`` for the plain mean.
        score_map: Calibration map applied to the fused logit (``platt``,
            ``isotonic`` or ``identity``; see :mod:`detectors.calibration`), or ``None``.
        calibration_hashes: sha256 of every file the calibration saw (leakage guard).
    """

    name: str
    version: str
    likely_ai: float
    likely_real: float
    target_fpr: float = 0.01
    target_miss: float = 0.05
    fitted_on: str = ""
    fusion: dict[str, Any] | None = None
    score_map: dict[str, Any] | None = None
    calibration_hashes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.likely_real <= self.likely_ai <= 1.0:
            raise ValueError(
                f"need 0 <= likely_real <= likely_ai <= 1, got likely_real={self.likely_real}, likely_ai={self.likely_ai}"
            )

    def to_dict(self) -> dict[str, object]:
        """The ``calibration`` block of records and summaries (without the hash list)."""
        d = asdict(self)
        d.pop("calibration_hashes")
        d.pop("fusion")
        d.pop("score_map")
        d["map"] = None if self.score_map is None else self.score_map["kind"]
        d["fused_detectors"] = None if self.fusion is None else list(self.fusion["detectors"])
        return d

    def to_json(self) -> str:
        """The complete calibration file."""
        d = asdict(self)
        d["calibration_hashes"] = list(self.calibration_hashes)
        return json.dumps(d, indent=1)

    def fused_score(self, results: Sequence[DetectorResult]) -> float | None:
        """Fused, calibrated P(AI) from the pixel detectors' scores, or ``None`` if none scored.

        Without a fitted fusion, the scores are averaged. With one, the fused
        detectors' logits are combined by its rule (see
        :func:`detectors.calibration.fusion_logits`); a detector that gave no
        score adds nothing.
        """
        scored = _scored(results)
        if not scored:
            return None
        if self.fusion is None or not any(n in scored for n in self.fusion["detectors"]):
            return sum(scored.values()) / len(scored)
        from detectors.calibration import apply_map, fusion_logits

        z = fusion_logits(self._score_row(scored), self.fusion)
        m = self.score_map or {"kind": "identity"}
        return float(apply_map(m, z)[0])

    def pixel_evidence(self, results: Sequence[DetectorResult]) -> list[tuple[str, float]]:
        """Each fused detector's own calibrated P(AI) under a ``max`` fusion, strongest first.

        Empty for other fusion rules, or when no fused detector scored.
        """
        if self.fusion is None or self.fusion.get("rule") != "max":
            return []
        from detectors.calibration import detector_logits

        z = detector_logits(self._score_row(_scored(results)), self.fusion)[0]
        out = [
            (name, float(1.0 / (1.0 + np.exp(-np.clip(zk, -50.0, 50.0)))))
            for name, zk, a in zip(self.fusion["detectors"], z, self.fusion["weights"])
            if np.isfinite(zk) and a > 0
        ]
        return sorted(out, key=lambda t: -t[1])

    def _score_row(self, scored: dict[str, float]) -> np.ndarray:
        """``(1, K)`` scores in the fusion's detector order, NaN where missing."""
        assert self.fusion is not None
        return np.array([[scored.get(n, np.nan) for n in self.fusion["detectors"]]], dtype=np.float64)


def _scored(results: Sequence[DetectorResult]) -> dict[str, float]:
    return {r.name: float(r.score) for r in results if r.status == "ok" and r.score is not None}


def load_calibration(path: str | Path | None = None) -> Calibration:
    """Load a calibration JSON file; the shipped one when ``path`` is ``None``.

    Raises:
        ValueError: If the file lacks a field or has out-of-range thresholds, naming the file.
    """
    if path is None:
        text = resources.files("detectors").joinpath("weights", "calibration.json").read_text(encoding="utf-8")
        where = "shipped calibration"
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    try:
        d = json.loads(text)
        fields = {k: d[k] for k in Calibration.__dataclass_fields__ if k in d}
        if "calibration_hashes" in fields:
            fields["calibration_hashes"] = tuple(fields["calibration_hashes"])
        return Calibration(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: invalid calibration file: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    """The fused outcome for one image.

    Attributes:
        label: One of ``ai_confirmed``, ``likely_ai``, ``inconclusive``, ``likely_real``.
        score: Fused P(AI) in ``[0, 1]``, or ``None`` when no detector scored.
        decided_by: Name of the detector (or ``"fusion"``) that set the label.
        explanations: Plain-language sentences, most important first.
    """

    label: str
    score: float | None
    decided_by: str | None
    explanations: tuple[str, ...]


def _raise_to(label: str, floor: str) -> str:
    return floor if LABEL_RANK[floor] > LABEL_RANK[label] else label


def fuse(results: Sequence[DetectorResult], calibration: Calibration, *, quality_flags: Sequence[QualityFlag] = ()) -> Verdict:
    """Combine detector results into a verdict (see the module docstring for the rules).

    Args:
        results: Results of every detector run on the image.
        calibration: Thresholds on the fused score.
        quality_flags: The image's quality flags (``small_image`` and ``unstable`` cap the pixel verdict).

    Returns:
        A :class:`Verdict`.
    """
    ok = [r for r in results if r.status == "ok"]
    ai_claims = [r for r in ok if r.claim in ("ai_generated", "ai_edited")]
    proofs = [r for r in ai_claims if r.strength == "proof"]
    strong = [r for r in ai_claims if r.strength == "strong"]
    score = calibration.fused_score(results)

    expl: list[str] = []
    if proofs:
        first = proofs[0]
        what = "AI-generated" if first.claim == "ai_generated" else "edited with AI"
        expl.append(
            f"The file itself declares it was {what} ({first.name}): "
            + (first.explanations[0] if first.explanations else "see the provenance evidence.")
        )
        for r in proofs[1:]:
            expl.append(f"Also confirmed by {r.name}.")
        return Verdict("ai_confirmed", 1.0, first.name, tuple(expl))

    if score is None:
        label, decided = "inconclusive", None
        expl.append("No pixel detector could score this image, and the file carries no AI provenance.")
    elif score >= calibration.likely_ai:
        label, decided = "likely_ai", "fusion"
        expl.append(
            f"Pixel evidence gives P(AI) = {score:.2f}, at or above the likely-AI threshold "
            f"{calibration.likely_ai:.2f} (set for {calibration.target_fpr:.0%} false positives on real photos)."
        )
    elif score <= calibration.likely_real:
        label, decided = "likely_real", "fusion"
        expl.append(
            f"Pixel evidence gives P(AI) = {score:.2f}, at or below the likely-real threshold "
            f"{calibration.likely_real:.2f}. This is not proof that the photo is authentic."
        )
    else:
        label, decided = "inconclusive", "fusion"
        expl.append(
            f"Pixel evidence gives P(AI) = {score:.2f}, between the likely-real ({calibration.likely_real:.2f}) "
            f"and likely-AI ({calibration.likely_ai:.2f}) thresholds."
        )

    parts = calibration.pixel_evidence(results)
    if len(parts) > 1:
        expl.append(
            f"The fused score follows the pixel detector with the strongest evidence, here {parts[0][0]} "
            f"(then {', '.join(n for n, _ in parts[1:])})."
        )

    codes = {f.code for f in quality_flags}
    if label in ("likely_ai", "likely_real") and _UNRELIABLE_FLAGS & codes:
        label = "inconclusive"
        expl.append("The image is too small for reliable pixel evidence, so the verdict is capped at inconclusive.")

    if strong:
        new = _raise_to(label, "likely_ai")
        if new != label:
            label, decided = new, strong[0].name
        expl.append(
            f"{strong[0].name} reports a strong but unconfirmed AI signal: "
            + (strong[0].explanations[0] if strong[0].explanations else "see its evidence.")
        )

    cameras = [r for r in ok if r.claim == "camera"]
    if cameras:
        expl.append(
            "The file's metadata names a camera; metadata is easy to edit, so this is shown as a hint and does not "
            "change the score."
        )
    if not ai_claims:
        expl.append("No AI provenance was found; missing provenance is neutral, not evidence of a real photo.")
    unstable = next((f for f in quality_flags if f.code == "unstable"), None)
    if unstable is not None and decided == "fusion" and label in ("likely_ai", "likely_real"):
        return Verdict("inconclusive", score, "stability", (f"The verdict is not stable: {unstable.message}.", *expl))
    return Verdict(label, score, decided, tuple(expl))
