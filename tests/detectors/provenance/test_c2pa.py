"""Tests for the C2PA detector: sign a manifest with a test CA made here, validate offline, tamper.

The certificate chain follows the C2PA signing-certificate profile that
c2pa-rs checks: a CA root (basicConstraints CA, keyCertSign) and an ES256
end-entity certificate with a critical digitalSignature key usage, the
emailProtection EKU and subject/authority key identifiers.
"""

from __future__ import annotations

import datetime
import io
import json

import numpy as np
import pytest
from PIL import Image

c2pa = pytest.importorskip("c2pa")
x509 = pytest.importorskip("cryptography.x509")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from detectors import create_detector  # noqa: E402
from detectors.provenance.c2pa_manifest import load_trust_anchors, summarize_manifest_store  # noqa: E402
from forensics.io import load_image, load_image_bytes  # noqa: E402

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aidetect tests")])


def _ku(**on: bool) -> x509.KeyUsage:
    fields = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{f: on.get(f, False) for f in fields})


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory):
    """A root CA and an ES256 signing certificate, made fresh for this test run."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("aidetect Test Root CA"))
        .issuer_name(_name("aidetect Test Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee = (
        x509.CertificateBuilder()
        .subject_name(_name("aidetect Test Signer"))
        .issuer_name(ca.subject)
        .public_key(ee_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_ku(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    return {
        "chain": ee.public_bytes(pem) + ca.public_bytes(pem),
        "key": ee_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "ca_path": ca_path,
    }


def _jpeg(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.random((24, 32, 3))
    img = Image.fromarray((base * 255).astype(np.uint8)).resize((320, 240), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _sign(pki, source: bytes, actions: list[dict], mime: str = "image/jpeg") -> bytes:
    manifest = {
        "claim_generator_info": [{"name": "aidetect-test-generator", "version": "1.0"}],
        "title": "generated.jpg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    ctx = c2pa.Context.from_dict({"verify": {"verify_after_sign": False, "verify_trust": False,
                                             "remote_manifest_fetch": False, "ocsp_fetch": False},
                                  "builder": {"thumbnail": {"long_edge": 160}}})
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki["chain"], pki["key"], None))
    builder = c2pa.Builder(manifest, context=ctx)
    out = io.BytesIO()
    builder.sign(signer, mime, io.BytesIO(source), out)
    return out.getvalue()


AI_CREATED = [{"action": "c2pa.created", "digitalSourceType": IPTC + "trainedAlgorithmicMedia",
               "softwareAgent": {"name": "TestDiffusion", "version": "2"}}]


@pytest.fixture(scope="module")
def signed_ai_jpeg(test_pki) -> bytes:
    return _sign(test_pki, _jpeg(), AI_CREATED)


def test_valid_untrusted_manifest_is_strong_not_proof_and_says_why(signed_ai_jpeg):
    res = create_detector("c2pa").analyze(load_image_bytes(signed_ai_jpeg))
    assert res.status == "ok"
    ev = res.evidence
    assert ev["state"] == "Valid" and ev["trusted"] is False and ev["trust"] == "unknown_signer"
    assert res.claim == "ai_generated" and res.strength == "strong"
    assert ev["signer"] == "aidetect Test Signer"
    assert "aidetect-test-generator" in ev["claim_generator"]
    assert any(a["action"] == "c2pa.created" and a["digitalSourceType"].endswith("trainedAlgorithmicMedia")
               and a["softwareAgent"].startswith("TestDiffusion") and a["where"] == "active manifest"
               for a in ev["actions"])
    assert ev["digital_source_types"] == [IPTC + "trainedAlgorithmicMedia"]
    assert "chains to no trust list" in res.explanations[0] and "Anyone can sign" in res.explanations[0]
    assert ev["summary"].startswith("C2PA Valid (untrusted signer)")
    thumb = ev.get("thumbnail_data_uri")
    assert thumb is None or thumb.startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))
    json.dumps(res.to_dict())


def test_thumbnail_is_inlined_when_small(signed_ai_jpeg):
    res = create_detector("c2pa").analyze(load_image_bytes(signed_ai_jpeg))
    thumb = res.evidence.get("thumbnail_data_uri")
    assert thumb and thumb.startswith("data:image/jpeg;base64,")
    assert len(thumb) <= 64 * 1024 * 4 // 3 + 64
    assert "thumbnail_data_uri" not in create_detector("c2pa", include_thumbnail=False).analyze(
        load_image_bytes(signed_ai_jpeg)).evidence


def test_trusted_with_the_test_root_as_anchor(signed_ai_jpeg, test_pki):
    res = create_detector("c2pa", trust_anchors=[test_pki["ca_path"]]).analyze(load_image_bytes(signed_ai_jpeg))
    assert res.evidence["state"] == "Trusted" and res.evidence["trusted"] is True
    assert res.claim == "ai_generated" and res.strength == "proof"
    assert not any("untrusted" in e for e in res.explanations)


def test_tampered_file_is_invalid_not_absent(signed_ai_jpeg):
    data = bytearray(signed_ai_jpeg)
    # flip one byte of entropy-coded image data (well after the manifest, before EOI)
    sos = data.rfind(b"\xff\xda")
    pos = sos + (len(data) - sos) // 2
    while data[pos] in (0xFF, 0x00) or data[pos - 1] == 0xFF:
        pos += 1
    data[pos] ^= 0x01
    res = create_detector("c2pa").analyze(load_image_bytes(bytes(data)))
    assert res.status == "ok"
    assert res.evidence["state"] == "Invalid"
    assert res.claim == "ai_generated" and res.strength == "weak"
    assert any("validation failed" in e for e in res.explanations)
    assert any("dataHash" in (f["code"] or "") for f in res.evidence["failures"])


def test_composite_source_type_is_ai_edited(test_pki):
    data = _sign(test_pki, _jpeg(1), [{"action": "c2pa.created",
                                       "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia"}])
    res = create_detector("c2pa", trust_anchors=[test_pki["ca_path"]]).analyze(load_image_bytes(data))
    assert res.claim == "ai_edited" and res.strength == "proof"
    assert create_detector("c2pa").analyze(load_image_bytes(data)).strength == "strong"  # unknown signer


def test_png_manifest(test_pki):
    buf = io.BytesIO()
    Image.open(io.BytesIO(_jpeg(2))).save(buf, "PNG")
    data = _sign(test_pki, buf.getvalue(), AI_CREATED, mime="image/png")
    res = create_detector("c2pa").analyze(load_image_bytes(data))
    assert res.evidence["state"] == "Valid" and res.claim == "ai_generated"


def test_no_manifest_is_not_applicable(tmp_path):
    p = tmp_path / "plain.jpg"
    p.write_bytes(_jpeg(3))
    res = create_detector("c2pa").analyze(load_image(p))
    assert res.status == "not_applicable" and res.claim == "none"
    assert res.message == "no C2PA manifest"


def test_shipped_trust_anchors_load_and_garbage_is_dropped(tmp_path, test_pki):
    pem, n = load_trust_anchors()
    assert n == 30 and pem.count("BEGIN CERTIFICATE") == 30
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"# comment\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
                     + test_pki["ca_path"].read_bytes())
    pem2, n2 = load_trust_anchors([junk], shipped=False)
    assert n2 == 1 and "AAAA" not in pem2


def _store(active_assertions, ingredients=(), others=None):
    manifests = {"m0": {"label": "m0", "claim_generator": "Gen/1", "assertions": active_assertions,
                        "ingredients": list(ingredients), "signature_info": {"common_name": "S", "issuer": "O"}}}
    manifests.update(others or {})
    return {"active_manifest": "m0", "manifests": manifests}


def test_store_walk_reads_v1_v2_actions_and_ingredients():
    child = {"label": "m1", "title": "parent.png", "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": IPTC + "trainedAlgorithmicMedia",
             "softwareAgent": "DALL·E"}]}}]}
    store = _store(
        [{"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.converted"}]}}],
        [{"title": "parent.png", "relationship": "parentOf", "active_manifest": "m1"}],
        {"m1": child},
    )
    s = summarize_manifest_store(store)
    assert [a["action"] for a in s["actions"]] == ["c2pa.converted", "c2pa.created"]
    assert s["actions"][1]["where"] == "ingredient 'parent.png' (parentOf)"
    assert s["source_claims"] == [("ai_generated", "ingredient 'parent.png' (parentOf)")]

    store["manifests"]["m0"]["ingredients"][0]["relationship"] = "componentOf"
    s = summarize_manifest_store(store)
    assert s["source_claims"] == [("ai_edited", "ingredient 'parent.png' (componentOf)")]


def test_store_walk_survives_cycles_and_junk():
    store = _store([{"label": "c2pa.actions", "data": {"actions": ["junk", None, {"action": 5}]}}],
                   [{"relationship": "parentOf", "active_manifest": "m0"}, "junk"])
    s = summarize_manifest_store(store)
    assert s["actions"][0]["action"] == "5"
    assert summarize_manifest_store({"manifests": "nonsense"})["actions"] == []
