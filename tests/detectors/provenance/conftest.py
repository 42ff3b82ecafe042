"""Fixtures of the provenance tests: C2PA files signed at test time (``c2pa_fixtures.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("provenance_c2pa_fixtures", Path(__file__).with_name("c2pa_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def c2pa_fixtures(tmp_path_factory):
    """The signed C2PA fixture files (built once per session, about 3 s)."""
    pytest.importorskip("c2pa")
    return _load_fixture_module().build(tmp_path_factory.mktemp("c2pa_fixtures"))
