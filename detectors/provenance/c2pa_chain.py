"""The signing certificate chain of a C2PA manifest, and whether it leads to a trust anchor.

c2pa-rs checks the chain against the trust anchors only while the
certificate is valid: an expired certificate, or one that fails a
certificate-policy check (a missing EKU), comes out ``untrusted`` even when it
was issued under a listed anchor. To tell "a listed signer whose certificate
has since expired" from "a signer nobody vouches for", this module reads the
``x5chain`` of the active manifest's COSE signature from the file and walks
it to an anchor by signature alone, ignoring validity dates and extensions.
It decides nothing about the content: integrity stays c2pa-rs's verdict.

The manifest store is taken from JPEG APP11 (JUMBF, reassembled by box
instance and sequence number), PNG ``caBX``, WebP ``C2PA`` and ISO BMFF
(HEIF/AVIF) ``uuid`` boxes. Every length field is bounded by the data.

References:
    C2PA Technical Specification 2.1, sections 11 (embedding: JPEG APP11,
    PNG caBX, BMFF uuid, RIFF C2PA), 13.2 (COSE signature, x5chain) and 14
    (trust model, trust anchors and allow-lists).
    ISO/IEC 19566-5 (JUMBF); IETF RFC 9052/9360 (COSE, header parameter
    ``x5chain`` = 33); RFC 5280 (certification paths).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from detectors.provenance._common import MAX_CHUNKS, jpeg_segments, png_chunks, truncate, webp_chunks

__all__ = ["AnchorSet", "ChainCheck", "cose_x5chain", "check_chain", "manifest_store_bytes", "signature_box"]

#: Largest manifest store read (JUMBF); C2PA stores are usually well under 1 MB.
MAX_STORE_BYTES = 32 * 1024 * 1024
#: Longest certificate path walked.
MAX_PATH = 8
_C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_X5CHAIN = 33


def _boxes(buf: bytes | memoryview, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO BMFF / JUMBF boxes in ``buf[start:end]``: ``(type, payload_start, payload_end)``."""
    pos = start
    for _ in range(MAX_CHUNKS):
        if pos + 8 > end:
            return
        size, btype = struct.unpack(">I4s", bytes(buf[pos : pos + 8]))
        head = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack(">Q", bytes(buf[pos + 8 : pos + 16]))
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            return
        yield btype, pos + head, pos + size
        pos += size


def _jpeg_store(data: bytes) -> bytes | None:
    parts: dict[int, dict[int, bytes]] = {}
    total = 0
    for marker, payload in jpeg_segments(data):
        if marker != 0xEB or len(payload) < 16 or bytes(payload[:2]) != b"JP":
            continue
        en, z = struct.unpack(">HI", bytes(payload[2:8]))
        body = bytes(payload[8:])
        total += len(body)
        if total > MAX_STORE_BYTES:
            break
        parts.setdefault(en, {})[z] = body
    for seq in parts.values():
        ordered = [seq[k] for k in sorted(seq)]
        first = ordered[0]
        if first[4:8] != b"jumb":
            continue
        head = 16 if first[:4] == b"\x00\x00\x00\x01" else 8
        store = first + b"".join(p[head:] for p in ordered[1:])
        if b"c2pa" in store[:64]:
            return store
    return None


def manifest_store_bytes(data: bytes) -> bytes | None:
    """The embedded C2PA manifest store (a JUMBF superbox), or ``None``."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_store(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        for ctype, payload in png_chunks(data):
            if ctype == b"caBX":
                return bytes(payload[:MAX_STORE_BYTES])
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        for fourcc, payload in webp_chunks(data):
            if fourcc == b"C2PA":
                return bytes(payload[:MAX_STORE_BYTES])
        return None
    if data[4:8] == b"ftyp":
        for btype, s, e in _boxes(data, 0, len(data)):
            if btype == b"uuid" and data[s : s + 16] == _C2PA_UUID:
                p = s + 16 + 4  # usertype, version and flags
                nul = data.find(b"\x00", p, min(e, p + 64))
                if nul < 0:
                    return None
                purpose = data[p:nul]
                p = nul + 1 + (8 if purpose == b"manifest" else 0)
                return data[p : min(e, p + MAX_STORE_BYTES)]
    return None


def _superbox(store: bytes, s: int, e: int) -> tuple[str | None, list[tuple[bytes, int, int]]]:
    """Label and child boxes of a JUMBF superbox payload ``store[s:e]``."""
    children = list(_boxes(store, s, e))
    label = None
    if children and children[0][0] == b"jumd":
        _, ds, de = children[0]
        if de - ds > 17 and store[ds + 16] & 0x02:
            nul = store.find(b"\x00", ds + 17, de)
            if nul > 0:
                label = store[ds + 17 : nul].decode("utf-8", "replace")
        children = children[1:]
    return label, children


def signature_box(store: bytes, manifest_label: str | None) -> bytes | None:
    """The COSE_Sign1 bytes of the manifest labelled ``manifest_label`` (the last manifest if ``None``)."""
    top = next(iter(_boxes(store, 0, len(store))), None)
    if top is None or top[0] != b"jumb":
        return None
    _, manifests = _superbox(store, top[1], top[2])
    chosen = None
    for btype, s, e in manifests:
        if btype != b"jumb":
            continue
        label, children = _superbox(store, s, e)
        if manifest_label is None or label == manifest_label:
            chosen = children
    for btype, s, e in chosen or []:
        if btype != b"jumb":
            continue
        label, children = _superbox(store, s, e)
        if label == "c2pa.signature":
            for ctype, cs, ce in children:
                if ctype == b"cbor":
                    return store[cs:ce]
    return None


def cose_x5chain(cose: bytes) -> list[bytes]:
    """DER certificates of the ``x5chain`` header (protected, else unprotected), leaf first."""
    import cbor2

    try:
        obj: Any = cbor2.loads(cose)
    except Exception:  # noqa: BLE001 - malformed CBOR from a hostile file
        return []
    if isinstance(obj, cbor2.CBORTag):
        obj = obj.value
    if not isinstance(obj, (list, tuple)) or len(obj) < 2:
        return []
    headers: list[Any] = []
    if isinstance(obj[0], bytes) and obj[0]:
        try:
            headers.append(cbor2.loads(obj[0]))
        except Exception:  # noqa: BLE001
            pass
    headers.append(obj[1])
    for h in headers:
        if not isinstance(h, Mapping):
            continue
        chain = h.get(_X5CHAIN, h.get("x5chain"))
        if isinstance(chain, bytes):
            return [chain]
        if isinstance(chain, (list, tuple)):
            return [c for c in chain[:MAX_PATH] if isinstance(c, bytes)]
    return []


@dataclass(frozen=True)
class AnchorSet:
    """A trust list: root/intermediate anchors plus an allow-list of end-entity certificates.

    Attributes:
        name: ``"c2pa"`` (the C2PA trust list and user anchors) or ``"legacy"``
            (the pre-2025 interim list of Content Credentials).
        anchors: Anchor certificates (``cryptography.x509.Certificate``).
        allowed_sha256: SHA-256 fingerprints of allow-listed end-entity
            certificates (DER), as bytes.
    """

    name: str
    anchors: tuple[Any, ...] = ()
    allowed_sha256: frozenset[bytes] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.anchors or self.allowed_sha256)


@dataclass(frozen=True)
class ChainCheck:
    """What the certificate chain says about the signer.

    Attributes:
        read: The chain was read from the file.
        anchored_by: Name of the :class:`AnchorSet` the chain leads to, or ``None``.
        anchor: Subject of the anchor reached (or ``"allow-list"``), else ``None``.
        self_signed: The signing certificate signed itself.
        subject: The signing certificate's subject (RFC 4514).
        issuer: Its issuer.
        not_before: Start of validity, ISO 8601 UTC.
        not_after: End of validity, ISO 8601 UTC.
        serial: The signing certificate's serial number, in decimal.
    """

    read: bool
    anchored_by: str | None = None
    anchor: str | None = None
    self_signed: bool = False
    subject: str | None = None
    issuer: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    serial: str | None = None


def _issued_by(cert: Any, issuer: Any) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # noqa: BLE001 - InvalidSignature, unsupported key, wrong issuer
        return False
    return True


def check_chain(der_chain: list[bytes], anchor_sets: tuple[AnchorSet, ...]) -> ChainCheck:
    """Walk the chain from the signing certificate to an anchor, by signatures only.

    Validity dates, key usage and EKU are deliberately not checked here
    (c2pa-rs reports those as credential findings). A certificate that is
    itself an anchor, or an allow-listed end-entity certificate, counts as
    anchored.

    Args:
        der_chain: DER certificates, signing certificate first.
        anchor_sets: Trust lists to try, in order.

    Returns:
        A :class:`ChainCheck`; ``read`` is False when no certificate parsed.
    """
    from cryptography import x509

    certs = []
    for der in der_chain[:MAX_PATH]:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            break
    if not certs:
        return ChainCheck(read=False)
    leaf = certs[0]
    info = {
        "subject": truncate(leaf.subject.rfc4514_string(), 256),
        "issuer": truncate(leaf.issuer.rfc4514_string(), 256),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "self_signed": _issued_by(leaf, leaf),
        "serial": str(leaf.serial_number),
    }
    leaf_fp = hashlib.sha256(der_chain[0]).digest()
    for aset in anchor_sets:
        if leaf_fp in aset.allowed_sha256:
            return ChainCheck(True, aset.name, "allow-list", **info)
        anchor_fps = {a.fingerprint(_sha256()): a for a in aset.anchors}
        current = leaf
        pool = certs[1:]
        for _ in range(MAX_PATH):
            fp = current.fingerprint(_sha256())
            if fp in anchor_fps:
                return ChainCheck(True, aset.name, truncate(current.subject.rfc4514_string(), 256), **info)
            anchor = next((a for a in aset.anchors if _issued_by(current, a)), None)
            if anchor is not None:
                return ChainCheck(True, aset.name, truncate(anchor.subject.rfc4514_string(), 256), **info)
            nxt = next((c for c in pool if c is not current and _issued_by(current, c)), None)
            if nxt is None or nxt is current:
                break
            pool = [c for c in pool if c is not nxt]
            current = nxt
    return ChainCheck(True, **info)


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()
