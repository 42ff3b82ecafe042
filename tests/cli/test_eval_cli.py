from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from _helpers import textured, write_manifest
from cli.main import main


def _dataset(root: Path) -> Path:
    rows = []
    seed = 0  # distinct, deterministic seeds: no two files share content (str hashes vary per process)
    for split in ("calib", "test"):
        for i in range(4):
            for label in ("real", "ai"):
                p = root / f"{split}_{label}_{i}.png"
                seed += 1
                arr = textured(140, 140, seed=seed)
                if label == "ai":  # a period-8 grid: what the spectral detector looks for
                    arr[::8, :, :] = arr[::8, :, :] // 2
                    arr[:, ::8, :] = arr[:, ::8, :] // 2
                Image.fromarray(arr).save(p)
                rows.append({"path": p.name, "label": label, "generator": "grid" if label == "ai" else "", "split": split})
    return write_manifest(root / "m.csv", rows)


def test_calibrate_then_eval_with_leakage_guard(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path)
    runner = CliRunner()
    cal = tmp_path / "cal.json"
    r = runner.invoke(main, ["calibrate", str(manifest), "--split", "calib", "--perturb", "none,jpeg90", "--detector", "test_spectral", "-j", "0", "--out", str(cal),
                                "--generated", "0", "--reconstructions", "0"])  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(cal.read_text())
    assert len(doc["calibration_hashes"]) == 8 and doc["score_map"]["kind"] in ("platt", "isotonic")
    # evaluating on the calibration split is refused
    r = runner.invoke(main, ["eval", str(manifest), "--split", "calib", "--calibration", str(cal), "--out", str(tmp_path / "e0"), "-j", "0", "--detector", "test_spectral"])
    assert r.exit_code == 2 and "refusing to evaluate" in r.output
    # the test split is fine
    out = tmp_path / "e1"
    args = ["eval", str(manifest), "--split", "test", "--calibration", str(cal), "--out", str(out), "-j", "0",
            "--detector", "test_spectral", "--perturb", "none,jpeg75"]  # fmt: skip
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_real"] == 4 and summary["n_ai"] == 4
    assert set(summary["perturbations"]) == {"none", "jpeg75", "png", "jpeg95"}
    assert "fused" in summary["format_bias"]
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len({(r["path"], r["perturbation"]) for r in rows}) == 8 * 4
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>", 1)[1]
    # running again resumes: nothing new is computed, the CSV does not grow
    n = len(rows)
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "resuming" in r.output
    assert len(list(csv.DictReader(open(out / "scores.csv")))) == n


def test_eval_rejects_bad_perturbation(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path)
    r = CliRunner().invoke(main, ["eval", str(manifest), "--perturb", "sepia", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "sepia" in r.output


def test_calibrate_adds_fresh_generator_images(tmp_path: Path, tiny_generator_weights: Path) -> None:
    weights = tiny_generator_weights
    manifest = _dataset(tmp_path)
    cal, keep = tmp_path / "cal.json", tmp_path / "generated"
    args = ["calibrate", str(manifest), "--split", "calib", "--perturb", "none", "--detector", "test_spectral", "-j", "0",
            "--out", str(cal), "--generated", "2", "--reconstructions", "2", "--generated-size", "16", "--generated-steps", "2",
            "--generator-weights", str(weights), "--device", "cpu", "--generated-dir", str(keep)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(cal.read_text())
    # 8 split files + 2 samples + 2 real tiles + 2 reconstructions
    assert len(doc["calibration_hashes"]) == 14
    assert "2 samples from noise" in doc["fitted_on"] and "2 native-resolution tiles" in doc["fitted_on"]
    assert len(list(keep.glob("*.jpg"))) == 6


def test_resume_refuses_scores_from_another_calibration(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path)
    runner = CliRunner()
    cals = []
    for i, version in enumerate(("v-a", "v-b")):
        cal = tmp_path / f"cal{i}.json"
        r = runner.invoke(main, ["calibrate", str(manifest), "--split", "calib", "--perturb", "none", "--detector", "test_spectral", "-j", "0",
                                 "--out", str(cal), "--generated", "0", "--reconstructions", "0", "--version", version])  # fmt: skip
        assert r.exit_code == 0, r.output
        cals.append(cal)
    out = tmp_path / "e"
    base = ["eval", str(manifest), "--split", "test", "--out", str(out), "-j", "0", "--detector", "test_spectral", "--perturb", "none", "--no-format-check"]
    assert runner.invoke(main, base + ["--calibration", str(cals[0])]).exit_code == 0
    assert runner.invoke(main, base + ["--calibration", str(cals[0])]).exit_code == 0  # same run: resumes
    r = runner.invoke(main, base + ["--calibration", str(cals[1])])
    assert r.exit_code == 2 and "another run" in r.output and "v-a" in r.output
