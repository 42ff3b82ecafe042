"""Provenance detectors on the shared public fixtures (skipped when ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors import create_detector, list_detectors
from forensics.io import load_image

from _helpers import SHARED

DATA = SHARED
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")

PROV = DATA / "provenance"
MS = PROV / "ms_c2pa_validator_media" / "test" / "media"
SDP = PROV / "sd_parsers_fixtures" / "tests" / "resources" / "parsers"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def test_dalle_manifest_is_ai_generated_but_untrusted():
    # Signed under the interim trust list, which is not shipped: an intact claim from an unlisted signer.
    res = create_detector("c2pa").analyze(load_image(_need(MS / "DALL-E_cloud_surfing_puppy.webp")))
    assert res.evidence["state"] == "Valid" and res.evidence["trusted"] is False
    assert res.evidence["integrity"] == "intact" and res.evidence["trust"] == "unknown_signer"
    assert res.evidence["certificate"]["subject"].startswith("CN=Truepic Lens CLI in ChatGPT")
    assert res.claim == "ai_generated" and res.strength == "strong"
    assert any("parentOf" in a["where"] for a in res.evidence["actions"])


def test_bing_manifest_missing_eku_is_intact_with_a_credential_finding():
    res = create_detector("c2pa").analyze(load_image(_need(MS / "bing_creator_cloud_surfing_puppy.jpg")))
    ev = res.evidence
    assert ev["state"] == "Invalid" and ev["integrity"] == "intact"
    assert "signingCredential.invalid" in ev["credential_findings"]
    assert res.claim == "ai_generated" and res.strength == "strong"


def test_tampered_public_testfile_fails_integrity():
    path = _need(PROV / "c2pa_public_testfiles" / "image" / "jpeg" / "adobe-20220124-E-dat-CA.jpg")
    res = create_detector("c2pa").analyze(load_image(path))
    assert res.evidence["trust"] == "integrity_failed"
    assert "assertion.dataHash.mismatch" in res.evidence["integrity_failures"]


def test_tampered_public_testfile_is_invalid():
    path = _need(PROV / "c2pa_public_testfiles" / "image" / "jpeg" / "adobe-20220124-E-dat-CA.jpg")
    res = create_detector("c2pa").analyze(load_image(path))
    assert res.status == "ok" and res.evidence["state"] == "Invalid"


def test_remote_manifest_is_not_fetched():
    path = _need(PROV / "c2pa_rs_fixtures" / "sdk" / "tests" / "fixtures" / "libpng-test_with_url.png")
    res = create_detector("c2pa").analyze(load_image(path))
    assert res.evidence["state"] == "RemoteNotFetched" and res.claim == "none"


@pytest.mark.parametrize(
    ("rel", "tool"),
    [
        ("AUTOMATIC1111/automatic1111_cropped.png", "A1111"),
        ("AUTOMATIC1111/automatic1111_cropped.jpg", "A1111"),
        ("AUTOMATIC1111/automatic1111_stealth.png", "AUTOMATIC1111"),
        ("ComfyUI/img2img_cropped.png", "ComfyUI"),
        ("Fooocus/fooocus1_cropped.png", "Fooocus"),
        ("InvokeAI/invokeai_dream1.png", "InvokeAI"),
        ("InvokeAI/invokeai_imeta1.png", "InvokeAI"),
        ("InvokeAI/invokeai_sdmeta1.png", "InvokeAI"),
        ("NovelAI/novelai1_cropped.png", "NovelAI"),
    ],
)
def test_sd_parsers_fixtures(rel, tool):
    res = create_detector("generator_metadata").analyze(load_image(_need(SDP / rel)))
    assert res.claim == "ai_generated" and res.strength == "proof"
    assert tool in res.evidence["tool"]
    assert res.evidence["seed"] is not None


def test_sd1_watermark_and_comfy_chunks():
    wm = _need(DATA / "ai" / "sd1" / "sd1_forks__03e40533c994.png")
    res = create_detector("watermark").analyze(load_image(wm))
    assert res.strength == "proof" and res.evidence["message"] == "StableDiffusionV1"
    comfy = sorted((DATA / "ai").glob("comfy_*/*.png"))[:3]
    for path in comfy:
        assert create_detector("generator_metadata").analyze(load_image(path)).evidence["tool"] == "ComfyUI"


def test_real_photos_carry_no_ai_claims():
    photos = sorted((DATA / "real").glob("*.jpg"))[::12]  # a spread of 9 sources/cameras
    if not photos:
        pytest.skip("no real photos")
    dets = {n: create_detector(n) for n in list_detectors(kind="provenance")}
    for path in photos:
        img = load_image(path)
        for name, det in dets.items():
            res = det.analyze(img)
            assert res.status != "error", (path.name, name, res.message)
            assert res.claim in ("none", "camera"), (path.name, name, res.evidence.get("summary"))
            if res.claim == "camera":
                assert name == "exif" and res.strength == "weak"
