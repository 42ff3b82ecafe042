from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from _helpers import encode, textured
from detectors.base import DetectorResult, register_detector
from detectors.calibration import (
    Calibration,
    HingeFusion,
    IsotonicMap,
    LogisticFusion,
    MaxFusion,
    PlattMap,
    fit_calibration,
    fit_isotonic,
    fit_platt,
    fusion_from_dict,
    load_calibration,
    log_loss,
    score_map_from_dict,
    thresholds_for,
)
from detectors.evaluation import compute_metrics, format_bias, perturb_bytes, ScoreRow
from detectors.metrics import roc_curve
from detectors.pipeline import Pipeline


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n), np.ones(n)]
    z = np.r_[rng.normal(-1, 1, n), rng.normal(1.5, 1, n)]
    return 1 / (1 + np.exp(-z)), y


def test_calibration_reaches_target_fpr_on_fresh_synthetic_scores() -> None:
    p, y = _synthetic(2000, 0)
    val = np.random.default_rng(1).random(len(y)) < 0.5
    fit = fit_calibration(p[:, None], y, detectors=["d"], validation_mask=val, file_hashes=["h"], target_fpr=0.01, target_miss=0.05)
    cal = fit.calibration
    p2, y2 = _synthetic(20000, 2)
    fused = np.array([cal.fused_score([DetectorResult(name="d", version="1", score=float(s))]) for s in p2])
    fpr = (fused[y2 == 0] >= cal.likely_ai).mean()
    miss = (fused[y2 == 1] <= cal.likely_real).mean()
    assert fpr <= 0.02 and miss <= 0.08
    assert set(fit.validation) == {"hinge+platt", "hinge+isotonic", "max+platt", "max+isotonic"}
    assert fit.chosen in fit.validation


def test_logistic_fusion_weights_are_never_negative() -> None:
    rng = np.random.default_rng(5)
    n = 400
    y = np.r_[np.zeros(n), np.ones(n)]
    good = 1 / (1 + np.exp(-(rng.normal(0, 1, 2 * n) + 2 * y)))
    inverted = 1 / (1 + np.exp(-(rng.normal(0, 1, 2 * n) - 1.5 * y)))  # higher on reals
    x = np.stack([good, inverted], axis=1)
    val = np.arange(2 * n) % 2 == 0
    fit = fit_calibration(x, y, detectors=["good", "inverted"], validation_mask=val, file_hashes=["h"], fusion_rule="logistic")
    w = fit.calibration.fusion.weights
    assert isinstance(fit.calibration.fusion, LogisticFusion)
    assert w[0] > 0 and w[1] == 0.0


def test_max_fusion_lets_either_specialist_fire() -> None:
    rng = np.random.default_rng(6)
    n = 300
    # AI images of family A show only in detector a, family B only in detector b
    y = np.r_[np.zeros(2 * n), np.ones(2 * n)]
    fam_a = np.r_[np.zeros(2 * n), np.ones(n), np.zeros(n)].astype(bool)
    fam_b = np.r_[np.zeros(2 * n), np.zeros(n), np.ones(n)].astype(bool)
    za = rng.normal(-2, 1, 4 * n) + 5 * fam_a
    zb = rng.normal(-2, 1, 4 * n) + 5 * fam_b
    x = 1 / (1 + np.exp(-np.stack([za, zb], axis=1)))
    val = rng.random(4 * n) < 0.5
    fit = fit_calibration(x, y, detectors=["a", "b"], validation_mask=val, file_hashes=["h"])
    assert fit.chosen.startswith("max+") and isinstance(fit.calibration.fusion, MaxFusion)
    cal = fit.calibration
    hit_a = cal.fused_score([DetectorResult(name="a", version="1", score=0.99), DetectorResult(name="b", version="1", score=0.1)])
    hit_b = cal.fused_score([DetectorResult(name="a", version="1", score=0.1), DetectorResult(name="b", version="1", score=0.99)])
    quiet = cal.fused_score([DetectorResult(name="a", version="1", score=0.1), DetectorResult(name="b", version="1", score=0.1)])
    assert hit_a > cal.likely_ai and hit_b > cal.likely_ai and quiet < cal.likely_real
    # a missing detector adds nothing
    only_b = cal.fused_score([DetectorResult(name="b", version="1", score=0.99)])
    assert only_b == pytest.approx(hit_b)
    with pytest.raises(ValueError, match="fusion_rule"):
        fit_calibration(x, y, detectors=["a", "b"], validation_mask=val, file_hashes=["h"], fusion_rule="mean")


def test_thresholds_exact_on_small_lists() -> None:
    y = np.array([0] * 10 + [1] * 10)
    p = np.r_[np.linspace(0.0, 0.45, 10), np.linspace(0.5, 0.95, 10)]
    t_ai, t_real = thresholds_for(y, p, target_fpr=0.0, target_miss=0.0)
    assert t_ai > 0.45 and (p[y == 0] >= t_ai).sum() == 0
    assert t_real < 0.5 and (p[y == 1] <= t_real).sum() == 0
    t_ai, _ = thresholds_for(y, p, target_fpr=0.1, target_miss=0.0)
    assert (p[y == 0] >= t_ai).sum() == 1
    with pytest.raises(ValueError, match="both real and AI"):
        thresholds_for(np.zeros(3), np.zeros(3), target_fpr=0.01, target_miss=0.05)


def test_maps_are_monotone_and_fit() -> None:
    p, y = _synthetic(500, 3)
    z = np.log(p / (1 - p))
    for m in (fit_platt(z, y), fit_isotonic(z, y)):
        out = m(np.sort(z))
        assert np.all(np.diff(out) >= -1e-12)
        assert log_loss(y, m(z)) < log_loss(y, np.full_like(p, 0.5))
    with pytest.raises(ValueError, match="unknown calibration map"):
        score_map_from_dict({"kind": "spline"})


def test_calibration_file_roundtrip(tmp_path) -> None:
    p, y = _synthetic(200, 4)
    fit = fit_calibration(p[:, None], y, detectors=["d"], validation_mask=np.arange(len(y)) % 2 == 0, file_hashes=["a", "b"])
    (tmp_path / "c.json").write_text(fit.calibration.to_json())
    back = load_calibration(tmp_path / "c.json")
    assert back == fit.calibration and back.calibration_hashes == ("a", "b")
    assert "calibration_hashes" not in back.to_dict()


def test_shipped_calibration_was_fitted_with_hashes() -> None:
    cal = load_calibration()
    assert cal.calibration_hashes and cal.score_map is not None and cal.fusion is not None


def test_perturb_bytes_deterministic_and_validated() -> None:
    data = encode(Image.fromarray(textured(96, 96)), "PNG")
    for name in ("png", "jpeg75", "resize0.5", "blur1", "screenshot"):
        assert perturb_bytes(data, name) == perturb_bytes(data, name)
    assert perturb_bytes(data, "none") is data
    assert Image.open(__import__("io").BytesIO(perturb_bytes(data, "resize0.5"))).size == (48, 48)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb_bytes(data, "sepia")


def test_roc_curve_endpoints() -> None:
    fpr, tpr = roc_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1


def test_metrics_per_generator_and_format_bias() -> None:
    rows = []
    for i in range(6):
        for pert in ("png", "jpeg95"):
            rows.append(ScoreRow(f"r{i}", "h", "real", "real", pert, "fused", 0.1 * i, 0.5, "ok"))
            rows.append(ScoreRow(f"a{i}", "h", "ai", "g1" if i < 3 else "g2", pert, "fused", 0.5 + 0.05 * i, 0.5, "ok"))
    ms = compute_metrics(rows)
    subsets = {(m.perturbation, m.subset) for m in ms}
    assert ("png", "all") in subsets and ("png", "g1") in subsets and ("png", "g2") in subsets
    fb = format_bias(ms)["fused"]
    assert fb["delta_png_vs_jpeg95"] == 0.0


class _SizeDetector:
    """Scores 0.95 on images at least 120 px wide, 0.02 below: a resize flips it."""

    name, version = "test_size_flip", "1"

    def analyze(self, image):  # noqa: ANN001, ANN201
        return DetectorResult(name="test_size_flip", version="1", score=0.95 if image.width >= 120 else 0.02, threshold=0.5)


register_detector("test_size_flip", kind="pixel")(_SizeDetector)


def test_stability_turns_a_flip_into_inconclusive(tmp_path) -> None:
    Image.fromarray(textured(140, 140)).save(tmp_path / "a.png")
    cal = Calibration(name="t", version="t", likely_ai=0.8, likely_real=0.2)
    plain = Pipeline([_SizeDetector()], calibration=cal).analyze_path(tmp_path / "a.png").record
    stable = Pipeline([_SizeDetector()], calibration=cal, stability=True).analyze_path(tmp_path / "a.png").record
    assert plain["label"] == "likely_ai"
    assert stable["label"] == "inconclusive" and stable["decided_by"] == "stability"
    flag = [q for q in stable["quality_flags"] if q["code"] == "unstable"][0]
    assert "0.75x resize" in flag["message"]


def test_fusion_mask_keeps_other_rows_out_of_the_weights_but_not_the_thresholds() -> None:
    rng = np.random.default_rng(7)
    n = 300
    y = np.r_[np.zeros(n), np.ones(n)]
    x = 1 / (1 + np.exp(-np.stack([rng.normal(0, 1, 2 * n) + 2 * y, rng.normal(0, 1, 2 * n)], axis=1)))
    # extra AI rows that detector 0 misses and detector 1 catches (as if trained on them)
    extra = 1 / (1 + np.exp(-np.stack([rng.normal(-2, 1, n), rng.normal(3, 1, n)], axis=1)))
    xs, ys = np.vstack([x, extra]), np.r_[y, np.ones(n)]
    mask = np.r_[np.ones(2 * n, bool), np.zeros(n, bool)]
    val = np.arange(3 * n) % 2 == 0
    kw = dict(detectors=["d0", "d1"], validation_mask=val, file_hashes=["h"], fusion_rule="logistic")
    only = fit_calibration(x, y, validation_mask=val[: 2 * n], **{k: v for k, v in kw.items() if k != "validation_mask"})
    masked = fit_calibration(xs, ys, fusion_mask=mask, **kw)
    unmasked = fit_calibration(xs, ys, **kw)
    assert masked.calibration.fusion.weights == pytest.approx(only.calibration.fusion.weights)
    assert unmasked.calibration.fusion.weights[1] > masked.calibration.fusion.weights[1]
    # the missed extra rows still count for the likely_real threshold: fewer confident "real" verdicts
    def share_called_real(c: Calibration) -> float:
        p = c.score_map(c.fusion(x))
        return float((p <= c.likely_real).mean())

    assert share_called_real(masked.calibration) < share_called_real(only.calibration)


def test_shipped_calibration_file_reads_into_dataclasses_and_writes_the_same_schema() -> None:
    import json
    from importlib import resources

    text = resources.files("detectors").joinpath("weights", "calibration.json").read_text(encoding="utf-8")
    cal = load_calibration()
    raw = json.loads(text)
    rules = {"max": MaxFusion, "logistic": LogisticFusion, "hinge": HingeFusion}
    assert isinstance(cal.fusion, rules[raw["fusion"].get("rule", "logistic")])
    assert isinstance(cal.score_map, {"isotonic": IsotonicMap, "platt": PlattMap}[raw["score_map"]["kind"]])
    assert json.loads(cal.to_json()) == raw
    assert Calibration.from_dict(json.loads(cal.to_json())) == cal
    assert cal.to_dict()["map"] == raw["score_map"]["kind"] and cal.to_dict()["fused_detectors"] == raw["fusion"]["detectors"]


def test_fitted_state_blocks_read_and_validate() -> None:
    old = fusion_from_dict({"detectors": ["a"], "weights": [0.5], "bias": 0.1})  # files before "rule" existed
    assert old == LogisticFusion(("a",), (0.5,), 0.1) and old.to_dict()["rule"] == "logistic"
    assert fusion_from_dict(old.to_dict()) == old
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fusion_from_dict({"rule": "mean", "detectors": ["a"], "weights": [1.0]})
    with pytest.raises(ValueError, match="2 entries for 1 detectors"):
        MaxFusion(("a",), (1.0, 1.0), (0.0,))
    with pytest.raises(ValueError, match="one non-zero length"):
        IsotonicMap(x=(0.0, 1.0), y=(0.5,))
    assert score_map_from_dict(PlattMap(2.0, -1.0).to_dict()) == PlattMap(2.0, -1.0)
    m = MaxFusion(("a", "b"), (1.0, 0.0), (0.0, 0.0))
    z = m(np.array([[0.5, 0.9], [np.nan, np.nan]]))
    assert z[0] == pytest.approx(0.0) and z[1] == 0.0  # b has weight 0: its logit is only b_k = 0; none scored -> 0
    assert LogisticFusion(("a", "b"), (1.0, 2.0), 0.5)(np.array([[np.nan, 0.5]]))[0] == pytest.approx(0.5)


def test_calibration_file_errors_name_the_file(tmp_path) -> None:
    import json

    good = json.loads(load_calibration().to_json())
    good["score_map"]["kind"] = "spline"
    (tmp_path / "bad.json").write_text(json.dumps(good))
    with pytest.raises(ValueError, match=r"bad\.json: invalid calibration file: .*spline"):
        load_calibration(tmp_path / "bad.json")


def test_thresholds_follow_the_one_rule_with_ties() -> None:
    # 10 reals, target 20%: two may be flagged but the 2nd and 3rd highest tie at 0.6
    reals = [0.1] * 7 + [0.6, 0.6, 0.9]
    ais = [0.3, 0.3, 0.8] + [0.95] * 7  # target miss 10%: one may fall at or below, but two tie at 0.3
    y = np.r_[np.zeros(10), np.ones(10)]
    t_ai, t_real = thresholds_for(y, np.r_[reals, ais], target_fpr=0.2, target_miss=0.1)
    assert t_ai == np.nextafter(0.6, 1.0) and (np.array(reals) >= t_ai).mean() == 0.1
    assert t_real == np.nextafter(0.3, 0.0) and (np.array(ais) <= t_real).mean() == 0.0


def test_score_rows_tell_pixel_from_provenance_by_registered_kind() -> None:
    from datasets.samples import Sample
    from detectors.evaluation import score_rows

    det = lambda name, **kw: {"name": name, "status": "ok", "score": None, "threshold": None, "claim": "none", "strength": "none", **kw}  # noqa: E731
    record = {
        "status": "ok",
        "score": 0.7,
        "calibration": {"likely_ai": 0.75},
        "detectors": [
            det("spectral", score=0.8, threshold=None),  # a pixel detector without its own threshold is still pixel
            det("c2pa", claim="ai_generated", strength="proof"),
            det("exif"),
        ],
    }
    rows = {r.detector: r for r in score_rows(record, Sample("a.png", "ai"), "none", original_sha256="h")}
    assert (rows["spectral"].score, rows["spectral"].threshold) == (0.8, None)
    assert rows["c2pa"].score == 1.0 and rows["c2pa"].threshold == 0.5
    assert rows["exif"].score == 0.0 and rows["fused"].threshold == 0.75


def test_hinge_fusion_never_lets_a_low_score_pull_towards_real() -> None:
    """A detector that ranks AI images as more real than reals adds nothing under the auto fusion rules."""
    from detectors.calibration import HingeFusion, fit_calibration, fusion_from_dict

    rng = np.random.default_rng(0)
    n = 400
    y = np.r_[np.zeros(n), np.ones(n)]
    good = np.clip(np.r_[rng.beta(2, 5, n), rng.beta(5, 2, n)], 1e-4, 1 - 1e-4)
    inverted = np.clip(np.r_[rng.beta(5, 5, n), rng.beta(2, 8, n)], 1e-4, 1 - 1e-4)  # AI looks *more* real
    scores = np.c_[good, inverted]
    val = np.arange(2 * n) % 2 == 1
    fit = fit_calibration(scores, y, detectors=("a", "b"), validation_mask=val, file_hashes=["x"], fusion_rule="hinge")
    fusion = fit.calibration.fusion
    assert isinstance(fusion, HingeFusion) and min(fusion.weights) >= 0
    row = np.array([[0.9, 0.5]])
    lowered = np.array([[0.9, 1e-4]])  # the second detector now says "very real"
    assert fusion(lowered)[0] == pytest.approx(fusion(row)[0]) or fusion(lowered)[0] >= fusion(row)[0]
    assert fusion(np.array([[0.9, np.nan]]))[0] <= fusion(row)[0] + 1e-12
    assert fusion_from_dict(fusion.to_dict()) == fusion
    auto = fit_calibration(scores, y, detectors=("a", "b"), validation_mask=val, file_hashes=["x"])
    assert auto.chosen.split("+")[0] in ("hinge", "max") and "logistic+platt" not in auto.validation
    with pytest.raises(ValueError, match="non-negative"):
        HingeFusion(("a",), (-1.0,), (0.0,), 0.0)
