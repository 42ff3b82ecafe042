"""The C2PA trust policy on fixtures signed at test time (see ``c2pa_fixtures.py`` and docs/provenance.md).

Each case runs the detector and the fusion, so the label a desk would see is
checked, not only the strength.
"""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("c2pa")
pytest.importorskip("cbor2")

from detectors import create_detector  # noqa: E402
from detectors.calibration import Calibration  # noqa: E402
from detectors.fusion import fuse  # noqa: E402
from detectors.provenance.c2pa_chain import ChainCheck  # noqa: E402
from detectors.provenance.c2pa_manifest import assess_validation  # noqa: E402
from forensics.io import load_image  # noqa: E402

CAL = Calibration("test", "t", likely_ai=0.9, likely_real=0.1)


@pytest.fixture(scope="module")
def fx(c2pa_fixtures):
    return c2pa_fixtures


@pytest.fixture(scope="module")
def listed(fx):
    """The detector with the test root as a C2PA trust anchor (as if it were on the list)."""
    return create_detector("c2pa", trust_anchors=[fx.anchors])


def _run(det, path):
    res = det.analyze(load_image(path))
    return res, fuse([res], CAL)


def test_intact_listed_and_trusted_is_ai_confirmed(fx, listed):
    res, verdict = _run(listed, fx.files["trusted_ai"])
    assert res.evidence["state"] == "Trusted" and res.evidence["trust"] == "trusted"
    assert res.strength == "proof" and verdict.label == "ai_confirmed"


def test_openai_style_expired_certificate_is_ai_confirmed_and_says_so(fx, listed):
    res, verdict = _run(listed, fx.files["expired_ai"])
    ev = res.evidence
    assert ev["state"] == "Invalid" and "signingCredential.expired" in ev["credential_findings"]
    assert ev["integrity"] == "intact" and ev["trust"] == "credential_issue" and ev["trust_list"] == "c2pa"
    assert res.strength == "proof" and verdict.label == "ai_confirmed"
    date = ev["certificate"]["not_after"][:10]
    assert "content unchanged since signing" in res.explanations[0]
    assert f"the certificate expired on {date}" in res.explanations[0]
    assert "revocation could not be checked offline" in res.explanations[0]
    assert f"expired on {date}" in verdict.explanations[0]  # the card quotes it


def test_microsoft_style_missing_eku_is_ai_confirmed_and_names_the_policy_check(fx, listed):
    res, verdict = _run(listed, fx.files["eku_ai"])
    assert "signingCredential.invalid" in res.evidence["credential_findings"]
    assert res.evidence["trust"] == "credential_issue"
    assert verdict.label == "ai_confirmed"
    assert "certificate-policy check (certificate missing required EKU)" in res.explanations[0]


def test_tampered_is_at_most_likely_ai(fx, listed):
    res, verdict = _run(listed, fx.files["tampered_ai"])
    assert res.evidence["integrity"] == "failed" and "assertion.dataHash.mismatch" in res.evidence["integrity_failures"]
    assert res.strength == "weak" and verdict.label != "ai_confirmed"
    assert "cannot be relied on" in res.explanations[0]


@pytest.mark.parametrize("name", ["selfsigned_ai", "unknown_ai", "unknown_expired_ai"])
def test_unknown_or_self_signed_signer_is_likely_ai_not_confirmed(fx, listed, name):
    res, verdict = _run(listed, fx.files[name])
    assert res.evidence["integrity"] == "intact" and res.evidence["trust"] == "unknown_signer"
    assert res.claim == "ai_generated" and res.strength == "strong"
    assert verdict.label == "likely_ai"
    assert "Anyone can sign a manifest" in res.explanations[0]
    assert res.evidence["certificate"]["self_signed"] is (name == "selfsigned_ai")


def test_same_files_without_the_anchor_are_unknown_signers(fx):
    det = create_detector("c2pa", trust_anchors=[fx.other_anchors])
    for name in ("trusted_ai", "expired_ai", "eku_ai"):
        res, verdict = _run(det, fx.files[name])
        assert res.evidence["trust"] == "unknown_signer", name
        assert verdict.label == "likely_ai", name


def test_legacy_list_is_reported_separately(fx):
    det = create_detector("c2pa", legacy_anchors=[fx.anchors])
    res, verdict = _run(det, fx.files["trusted_ai"])
    assert res.evidence["state"] == "Valid" and res.evidence["trust"] == "trusted_legacy"
    assert res.evidence["trust_list"] == "legacy" and res.evidence["trusted"] is True
    assert "Trusted (legacy list)" in res.evidence["summary"] and verdict.label == "ai_confirmed"
    res, verdict = _run(det, fx.files["expired_ai"])
    assert res.evidence["trust"] == "credential_issue" and res.evidence["trust_list"] == "legacy"
    assert "legacy" in res.explanations[0] and verdict.label == "ai_confirmed"


def test_legacy_allow_list_of_end_entity_fingerprints(fx, tmp_path):
    from cryptography import x509

    from detectors.provenance.c2pa_chain import cose_x5chain, manifest_store_bytes, signature_box

    data = fx.files["unknown_ai"].read_bytes()
    leaf = cose_x5chain(signature_box(manifest_store_bytes(data), None))[0]
    allowed = tmp_path / "allowed.sha256.txt"
    allowed.write_text("# interim allow-list\n" + hashlib.sha256(leaf).hexdigest() + "\n")
    det = create_detector("c2pa", legacy_allowed=[allowed])
    res, verdict = _run(det, fx.files["unknown_ai"])
    assert res.evidence["trust"] == "trusted_legacy" and res.evidence["certificate"]["anchor"] == "allow-list"
    assert verdict.label == "ai_confirmed"
    assert x509.load_der_x509_certificate(leaf).subject.rfc4514_string() == res.evidence["certificate"]["subject"]


def test_ingredient_only_ai_claims(fx, listed):
    res, verdict = _run(listed, fx.files["ingredient_ai"])
    assert res.claim == "ai_generated" and "ingredient 'source.jpg' (parentOf)" in res.explanations[1]
    assert verdict.label == "ai_confirmed"
    res, _ = _run(listed, fx.files["component_ai"])
    assert res.claim == "ai_edited" and "componentOf" in res.explanations[1]


def test_free_text_ai_in_a_trusted_manifest(fx, listed):
    res, verdict = _run(listed, fx.files["legacy_text_ai"])
    assert res.claim == "ai_generated" and res.strength == "proof" and "free text" in res.explanations[1]


def test_trusted_camera_claim_never_confirms_ai(fx, listed):
    res, verdict = _run(listed, fx.files["trusted_camera"])
    assert res.claim == "camera" and res.strength == "strong" and verdict.label != "ai_confirmed"


def _vr(failure=(), success=("claimSignature.validated", "assertion.dataHash.match"), info=()):
    def block(codes):
        return [{"code": c} for c in codes]

    return {"activeManifest": {"failure": block(failure), "success": block(success), "informational": block(info)}}


ANCHORED = ChainCheck(read=True, anchored_by="c2pa", not_after="2025-01-29T15:35:35+00:00")
UNANCHORED = ChainCheck(read=True)


@pytest.mark.parametrize(
    ("state", "vr", "chain", "tier"),
    [
        ("Trusted", _vr(), ANCHORED, "trusted"),
        ("Invalid", _vr(["signingCredential.untrusted", "signingCredential.expired"]), ANCHORED, "credential_issue"),
        ("Invalid", _vr(["signingCredential.untrusted", "signingCredential.invalid"]), ANCHORED, "credential_issue"),
        ("Valid", _vr(["signingCredential.ocsp.unknown"]), ANCHORED, "credential_issue"),
        ("Invalid", _vr(["signingCredential.expired"]), UNANCHORED, "unknown_signer"),
        ("Invalid", _vr(["signingCredential.revoked"]), ANCHORED, "revoked"),
        ("Invalid", _vr(["signingCredential.ocsp.revoked"]), ANCHORED, "revoked"),
        ("Invalid", _vr(["assertion.dataHash.mismatch"]), ANCHORED, "integrity_failed"),
        ("Invalid", _vr(["claimSignature.mismatch"], success=["assertion.dataHash.match"]), ANCHORED,
         "integrity_failed"),
        ("Invalid", _vr(["timeStamp.mismatch"]), ANCHORED, "integrity_failed"),
        ("Invalid", _vr(["some.future.code"]), ANCHORED, "integrity_failed"),
        ("Valid", _vr(success=["claimSignature.validated"]), ANCHORED, "integrity_failed"),  # no hard binding
        ("Trusted", _vr(["assertion.bmffHash.mismatch"]), ANCHORED, "integrity_failed"),
        ("Invalid", {"activeManifest": {"success": [{"code": "claimSignature.validated"},
                                                    {"code": "assertion.dataHash.match"}]},
                     "ingredientDeltas": [{"validationDeltas": {"failure": [{"code": "assertion.hashedURI.mismatch"}]}}]},
         ANCHORED, "integrity_failed"),
    ],
)
def test_assess_validation_table(state, vr, chain, tier):
    assert assess_validation(state, vr, chain).tier == tier


def test_revoked_is_never_confirmed():
    a = assess_validation("Invalid", _vr(["signingCredential.revoked"]), ANCHORED)
    assert not a.relied_on


def test_chain_from_the_file_must_be_the_certificate_the_sdk_verified(fx, listed):
    import io
    import json

    import c2pa

    data = fx.files["expired_ai"].read_bytes()
    listed._context()
    reader = c2pa.Reader.try_create("image/jpeg", io.BytesIO(data), None, listed._context())
    store = json.loads(reader.json())
    reader.close()
    assert listed._chain(data, store).anchored_by == "c2pa"
    store["manifests"][store["active_manifest"]]["signature_info"]["cert_serial_number"] = "12345"
    assert listed._chain(data, store).read is False  # a decoy chain lends no anchor


@pytest.mark.parametrize(
    "cose",
    [
        b"",
        b"\xd2\x84\x5b" + b"\xff" * 8 + b"abc",  # byte string claiming 2^64-1 bytes
        b"\xd2\x84\x5a\x7f\xff\xff\xff",  # 2 GB byte string, no data
        b"\x81" * 100_000,  # nested arrays far past any recursion limit
        b"\xd2\x84\x43\xa1\x18\x21\x00\xa0\xf6\x40",  # x5chain of the wrong type
    ],
)
def test_hostile_cose_gives_no_chain(cose):
    from detectors.provenance.c2pa_chain import cose_x5chain

    assert cose_x5chain(cose) == []


def test_hostile_jumbf_gives_no_signature():
    from detectors.provenance.c2pa_chain import manifest_store_bytes, signature_box

    assert signature_box(b"\x00\x00\x00\x10jumb\x00\x00\x00\x08jumd" * 1000, None) is None
    assert signature_box(b"\x00\x00\x00\x01jumb" + b"\xff" * 8, None) is None
    assert manifest_store_bytes(b"\xff\xd8\xff\xeb\x00\x10JP\x00\x01\x00\x00\x00\x01\x00\x00\xff\xff") is None


def test_legacy_list_from_the_environment(fx, tmp_path, monkeypatch):
    # a user's own copy of the interim list, named once for every command and worker
    monkeypatch.setenv("AIDETECT_C2PA_LEGACY_ANCHORS", str(fx.anchors))
    res, verdict = _run(create_detector("c2pa"), fx.files["trusted_ai"])
    assert res.evidence["trust"] == "trusted_legacy" and verdict.label == "ai_confirmed"
    res, _ = _run(create_detector("c2pa", legacy_anchors=()), fx.files["trusted_ai"])
    assert res.evidence["trust"] == "unknown_signer", "an explicit () overrides the environment"
    monkeypatch.setenv("AIDETECT_C2PA_LEGACY_ANCHORS", str(tmp_path / "missing.pem"))
    res, _ = _run(create_detector("c2pa"), fx.files["trusted_ai"])
    assert "missing.pem" in (res.message or "") + " ".join(res.explanations) + str(res.evidence), res
