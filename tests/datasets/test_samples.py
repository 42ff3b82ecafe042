from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from datasets.samples import Sample, assign_split, discover_folder, load_dataset, read_manifest


def _touch_png(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(p)


def test_assign_split_is_deterministic_and_proportional() -> None:
    fr = {"train": 0.6, "calib": 0.2, "test": 0.2}
    keys = [f"img_{i}.png" for i in range(3000)]
    a = [assign_split(k, fractions=fr) for k in keys]
    assert a == [assign_split(k, fractions=fr) for k in keys]
    c = Counter(a)
    assert 0.55 < c["train"] / 3000 < 0.65 and 0.17 < c["test"] / 3000 < 0.23
    assert a != [assign_split(k, fractions=fr, salt="other") for k in keys]
    with pytest.raises(ValueError, match="sum to 1"):
        assign_split("x", fractions={"a": 0.5})


def test_discover_folder(tmp_path: Path) -> None:
    _touch_png(tmp_path / "real" / "a.png")
    _touch_png(tmp_path / "ai" / "sdx" / "b.png")
    (tmp_path / "ai" / "sdx" / "notes.txt").write_text("x")
    s = discover_folder(tmp_path)
    assert [(x.label, x.generator) for x in s] == [("real", None), ("ai", "sdx")]
    with pytest.raises(ValueError, match="real/ and ai"):
        discover_folder(tmp_path / "real")


def test_csv_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label,generator,split\nx.png,real,,test\ny.png,ai,gen1,\n")
    s = read_manifest(tmp_path / "m.csv")
    assert s[0] == Sample(str(tmp_path / "x.png"), "real", None, "real", "test")
    assert s[1].generator == "gen1" and s[1].split is None
    ds = load_dataset(tmp_path / "m.csv")
    assert ds[0].split == "test" and ds[1].split in ("train", "calib", "test")


def test_bad_manifest_rows_are_named(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps([{"path": "a.png", "label": "fake"}]))
    with pytest.raises(ValueError, match="row 1"):
        read_manifest(tmp_path / "m.json")
    (tmp_path / "n.csv").write_text("file,label\na,real\n")
    with pytest.raises(ValueError, match="lacks a 'path'"):
        read_manifest(tmp_path / "n.csv")


def test_shared_manifest(shared_data: Path) -> None:
    s = load_dataset(shared_data / "manifest.json")
    assert {x.label for x in s} == {"real", "ai"}
    assert all(Path(x.path).exists() for x in s)


def test_rows_without_a_label_are_not_samples(tmp_path: Path) -> None:
    rows = [{"path": "a.png", "label": "real"}, {"path": "w/model.pth", "label": None}, {"path": "b.png", "label": "ai"}]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    assert [Path(s.path).name for s in read_manifest(tmp_path / "m.json")] == ["a.png", "b.png"]


def test_shared_data2_manifest(shared_data: Path) -> None:
    m = shared_data.parent / "data2" / "manifest.json"
    if not m.exists():
        pytest.skip("../shared/data2 is absent")
    s = load_dataset(m)
    assert {x.label for x in s} == {"real", "ai"} and len(s) > 400
    assert all(Path(x.path).exists() for x in s)


def test_family_of_and_load_datasets_leave_one_family_out(tmp_path) -> None:
    import json

    from datasets.samples import FAMILIES, family_of, load_datasets

    assert [family_of(g) for g in ("sd1", "comfy_lora", "sdxl_turbo", "gan_biggan", "pixart_alpha", "kandinsky21", "ldm", "dalle", None)] == [
        "sd", "sd", "sd", "gan", "other_ldm", "other_ldm", "other_ldm", "unknown", None]  # fmt: skip
    assert set(FAMILIES) == {"sd", "gan", "other_ldm"}
    rows = [
        {"path": "real/a.jpg", "label": "real", "split": "train"},
        {"path": "ai/sd1/b.png", "label": "ai", "generator": "sd1", "split": "train"},
        {"path": "ai/gan_x/c.png", "label": "ai", "generator": "gan_x", "split": "train"},
        {"path": "ai/gan_x/d.png", "label": "ai", "generator": "gan_x", "split": "test"},
    ]
    m1 = tmp_path / "one" / "manifest.json"
    m1.parent.mkdir()
    m1.write_text(json.dumps(rows[:2]))
    m2 = tmp_path / "two" / "manifest.json"
    m2.parent.mkdir()
    m2.write_text(json.dumps(rows[2:]))
    both = load_datasets([m1, m2], split="train")
    assert [s.generator for s in both] == [None, "sd1", "gan_x"]
    no_gan = load_datasets([str(m1), str(m2)], exclude_families=("gan",))
    assert [s.label for s in no_gan] == ["real", "ai"]
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_datasets([m1, tmp_path / "missing.json"])
