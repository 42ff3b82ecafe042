"""``detect scan`` gives the stored records on examples/ and the shared test split.

See ``tests/scan_fixture.py`` for what is normalised away and how to
regenerate the fixture after a deliberate change of behaviour.
"""

from __future__ import annotations

import json
import math

import pytest

import scan_fixture


def _diff(a, b, where: str = "") -> list[str]:
    """Differences between two JSON values; floats compared to 1e-6."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: {'missing' if k not in a else 'extra'}")
            else:
                out += _diff(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6):
            return []
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads(scan_fixture.FIXTURE.read_text(encoding="utf-8"))


def test_examples_records_match_fixture(stored):
    got = scan_fixture.scan_records(["examples/"])
    diffs = _diff(got, stored["examples"])
    assert not diffs, "\n".join(diffs[:40])


@pytest.mark.skipif(not scan_fixture.MANIFEST.exists(), reason="../shared/data is absent")
def test_shared_test_split_records_match_fixture(stored):
    got = scan_fixture.scan_records(scan_fixture.test_split_paths())
    diffs = _diff(got, stored["shared_test"])
    assert not diffs, "\n".join(diffs[:40])


def test_diff_sees_a_changed_label():
    rec = {"label": "likely_real", "score": 0.25, "detectors": [{"score": 0.5}]}
    assert _diff(rec, rec) == []
    assert _diff(rec, {**rec, "label": "likely_ai"}) == [".label: 'likely_real' != 'likely_ai'"]
    assert _diff(rec, {**rec, "detectors": [{"score": 0.5 + 1e-9}]}) == []
    assert _diff(rec, {**rec, "detectors": [{"score": 0.51}]})
