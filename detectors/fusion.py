"""Fusion of detector results into one verdict: every labelling rule lives here.

The fitted state it applies (fusion of the pixel scores, calibration map,
thresholds) is a :class:`detectors.calibration.Calibration`.

Rules, in order (false positives on real photos are the costliest error):

1. A verified AI claim from provenance (strength ``proof``: C2PA AI source
   type, IPTC ``trainedAlgorithmicMedia``, generator metadata, a strong
   watermark band) gives ``ai_confirmed``; ``decided_by`` names it.
2. Pixel detectors' scores are fused into one calibrated P(AI)
   (:meth:`Calibration.fused_score`) and compared with its thresholds: ``likely_ai`` at or above ``likely_ai``,
   ``likely_real`` at or below ``likely_real``, ``inconclusive`` between.
3. A ``strong`` provenance claim floors the label at ``likely_ai``.
4. Quality flags that make pixel evidence unreliable (tiny image) cap the
   pixel verdict at ``inconclusive``; they never raise it.
5. An ``unstable`` quality flag (the pixel label flipped under a mild JPEG
   re-save or resize, see :class:`detectors.pipeline.Pipeline`) caps a
   ``likely_ai``/``likely_real`` set by the pixel evidence at ``inconclusive``,
   ``decided_by: "stability"``. It is applied before rule 3, so a strong
   provenance claim still floors the label at ``likely_ai``.
6. Missing provenance is neutral, and camera metadata never lowers a pixel
   score: it is shown beside it. Pixels alone never confirm a photo is real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from detectors.base import DetectorResult
from detectors.calibration import Calibration
from detectors.record import LABEL_RANK, Label
from forensics.io import QualityFlag

__all__ = ["Verdict", "fuse"]

#: Quality flags under which pixel evidence may not say ``likely_real`` or ``likely_ai``.
_UNRELIABLE_FLAGS = frozenset({"small_image"})


@dataclass(frozen=True)
class Verdict:
    """The fused outcome for one image.

    Attributes:
        label: One of ``ai_confirmed``, ``likely_ai``, ``inconclusive``, ``likely_real``
            (never ``error``: that is a record's label for a file that could not be analysed).
        score: Fused P(AI) in ``[0, 1]``, or ``None`` when no detector scored.
        decided_by: Name of the detector (or ``"fusion"``) that set the label.
        explanations: Plain-language sentences, most important first.
    """

    label: Label
    score: float | None
    decided_by: str | None
    explanations: tuple[str, ...]


def _raise_to(label: Label, floor: Label) -> Label:
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

    label: Label
    decided: str | None
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

    unstable = next((f for f in quality_flags if f.code == "unstable"), None)
    if unstable is not None and label in ("likely_ai", "likely_real"):
        # Before the provenance floor: the cap concerns pixel evidence only, so a
        # strong provenance claim still floors the label at likely_ai (rule 3).
        label, decided = "inconclusive", "stability"
        expl.insert(0, f"The verdict is not stable: {unstable.message}.")

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
    return Verdict(label, score, decided, tuple(expl))
