"""Throwaway C2PA fixtures signed at test time with c2pa-python and test certificates.

Nothing here is committed as a binary: each test session makes a test root
CA, signer certificates (ordinary, short-lived so that it expires during the
session, with an EKU outside the C2PA list, self-signed, and one from an
unknown CA), and signs small JPEGs with them. The detector is pointed at the
test root CA with ``trust_anchors=[...]`` (or ``legacy_anchors=[...]``), as a
deployment would point it at a trust list.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
DIGITAL_CREATION = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"
#: An EKU that c2pa-rs accepts when the signer's context lists it, but that the default C2PA EKU list lacks.
PRIVATE_EKU = "1.3.6.1.4.1.55555.1.1"


@dataclass
class Fixtures:
    """Paths of the signed files and the PEM files of the test trust anchors."""

    root: Path
    anchors: Path
    other_anchors: Path
    files: dict[str, Path] = field(default_factory=dict)


def _name(cn: str, org: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _usage(*, ca: bool):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def make_ca(cn: str, org: str = "Test Trust List"):
    """A self-signed root CA valid for ten years around now: ``(key, cert)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = dt.datetime.now(dt.timezone.utc)
    k = _key()
    c = (x509.CertificateBuilder().subject_name(_name(cn, org)).issuer_name(_name(cn, org))
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=3650)).not_valid_after(now + dt.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(_usage(ca=True), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
         .sign(k, hashes.SHA256()))
    return k, c


def make_signer(ca, cn: str, org: str, *, not_after: dt.datetime | None = None, eku: str | None = None):
    """An end-entity signing certificate issued by ``ca`` (``None``: self-signed): ``(key, cert)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

    now = dt.datetime.now(dt.timezone.utc)
    k = _key()
    subject = _name(cn, org)
    issuer_key, issuer_name = (k, subject) if ca is None else (ca[0], ca[1].subject)
    usage = ObjectIdentifier(eku) if eku else ExtendedKeyUsageOID.EMAIL_PROTECTION
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(not_after or now + dt.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(_usage(ca=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .sign(issuer_key, hashes.SHA256()))
    return k, c


def _pem(cert) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def photo_jpeg(seed: int = 0, size: int = 96) -> bytes:
    """A small textured JPEG to sign."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def manifest(source_type: str | None = AI, *, title: str = "image.jpg", generator: str = "test-generator",
             actions: list[dict] | None = None) -> dict:
    """A manifest definition: one ``c2pa.created`` action with ``source_type``, unless ``actions`` are given."""
    if actions is None:
        actions = [{"action": "c2pa.created", "digitalSourceType": source_type}]
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }


def sign(key, chain, definition: dict, source: bytes, *, ingredient: bytes | None = None,
         relationship: str = "parentOf", extra_eku: str | None = None) -> bytes:
    """Sign ``source`` with ``definition``; optionally add a signed ``ingredient`` JPEG."""
    import c2pa

    settings: dict = {"verify": {"verify_after_sign": False, "verify_trust": False}}
    if extra_eku:  # let the signer accept an EKU outside the default C2PA list
        settings["trust"] = {"trust_config": f"1.3.6.1.5.5.7.3.4\n{extra_eku}\n"}
    ctx = c2pa.Context.from_dict(settings)
    info = c2pa.C2paSignerInfo(b"es256", "".join(_pem(c) for c in chain).encode(), _key_pem(key).encode(), None)
    signer = c2pa.Signer.from_info(info)
    builder = c2pa.Builder.from_json(json.dumps(definition), ctx)
    if ingredient is not None:
        builder.add_ingredient({"title": "source.jpg", "relationship": relationship, "label": "src"}, "image/jpeg",
                               io.BytesIO(ingredient))
    out = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(source), out)
    return out.getvalue()


def tamper(signed: bytes) -> bytes:
    """Change pixel data after the manifest (the data hash no longer matches)."""
    b = bytearray(signed)
    sos = b.rfind(b"\xff\xda")
    pos = sos + 200
    b[pos] = (b[pos] + 1) % 256 if b[pos] not in (0xFE, 0xFF) else 0x10
    return bytes(b)


def build(root: Path) -> Fixtures:
    """Make every fixture under ``root`` (about 2.5 s: one certificate must expire first)."""
    root.mkdir(parents=True, exist_ok=True)
    ca = make_ca("Test C2PA Root")
    rogue = make_ca("Unknown Root", org="Nobody")
    fx = Fixtures(root, root / "anchors.pem", root / "other_anchors.pem")
    fx.anchors.write_text(_pem(ca[1]))
    fx.other_anchors.write_text(_pem(make_ca("Unrelated Root")[1]))
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    t_expire = time.time() + 2.0
    files: dict[str, bytes] = {}
    k, c = make_signer(ca, "Image Service (expiring)", "OpenAI-like", not_after=expires)
    files["expired_ai"] = sign(k, [c, ca[1]], manifest(generator="Image API"), photo_jpeg(1))
    k, c = make_signer(ca, "Image Service", "Good Signer")
    good = (k, [c, ca[1]])
    files["trusted_ai"] = sign(*good, manifest(), photo_jpeg(2))
    files["trusted_camera"] = sign(*good, manifest(CAPTURE), photo_jpeg(3))
    files["tampered_ai"] = tamper(sign(*good, manifest(), photo_jpeg(4)))
    files["legacy_text_ai"] = sign(*good, manifest(actions=[
        {"action": "c2pa.created", "digitalSourceType": DIGITAL_CREATION},
        {"action": "c2pa.edited", "description": "AI Generated Image"},
    ]), photo_jpeg(5))
    ai_parent = sign(*good, manifest(), photo_jpeg(6))
    opened = [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["src"]}}]
    files["ingredient_ai"] = sign(*good, manifest(title="edit.jpg", actions=opened), photo_jpeg(7), ingredient=ai_parent)
    placed = [{"action": "c2pa.created", "digitalSourceType": DIGITAL_CREATION},
              {"action": "c2pa.placed", "parameters": {"ingredientIds": ["src"]}}]
    files["component_ai"] = sign(*good, manifest(title="comp.jpg", actions=placed), photo_jpeg(8),
                                 ingredient=ai_parent, relationship="componentOf")
    k, c = make_signer(ca, "Bing-like Signer", "Microsoft-like", eku=PRIVATE_EKU)
    files["eku_ai"] = sign(k, [c, ca[1]], manifest(), photo_jpeg(9), extra_eku=PRIVATE_EKU)
    k, c = make_signer(None, "Self Signer", "Self")
    files["selfsigned_ai"] = sign(k, [c], manifest(), photo_jpeg(10))
    k, c = make_signer(rogue, "Claims To Be OpenAI", "OpenAI")
    files["unknown_ai"] = sign(k, [c, rogue[1]], manifest(), photo_jpeg(11))
    k, c = make_signer(rogue, "Rogue expiring", "OpenAI", not_after=expires)
    files["unknown_expired_ai"] = sign(k, [c, rogue[1]], manifest(), photo_jpeg(12))
    for name, data in files.items():
        fx.files[name] = root / f"{name}.jpg"
        fx.files[name].write_bytes(data)
    wait = t_expire - time.time() + 1.1
    if wait > 0:
        time.sleep(wait)
    return fx
