"""C2PA manifests (Content Credentials): validation state, signer, actions, source types.

Reads the manifest store embedded in the original file bytes with
c2pa-python (the c2pa-rs SDK), fully offline: remote manifests are never
fetched, OCSP is never queried, and CAWG identity assertions are not decoded
(resolving their ``did:web`` issuers would need the network). Trust is
checked against the C2PA trust list anchors shipped with this package
(``c2pa_trust_anchors.pem``, see ``TRUST_ANCHORS.md``) plus any PEM bundle the
caller supplies.

What is reported: the validation state (``Invalid``, ``Valid`` or
``Trusted``), the signer, ``claim_generator`` / ``claim_generator_info``, every
action of ``c2pa.actions`` and ``c2pa.actions.v2`` in the active manifest and
in its ingredients' manifests, and every ``digitalSourceType``.
``trainedAlgorithmicMedia`` means AI-generated and
``compositeWithTrainedAlgorithmicMedia`` AI-edited.

The validation codes are read one by one, to tell integrity from
credentials (the policy table is in ``docs/provenance.md``):

* integrity: the claim signature verifies and the hard binding (data, box or
  BMFF hash) and every assertion hash match. A failure here means the content
  or the manifest changed after signing: the declared claim is reported at
  ``weak`` strength, never as absent.
* credentials: who signed, and whether the certificate is trusted, in date,
  within policy (EKU) and not revoked. An intact manifest whose certificate
  chains to a shipped or configured trust anchor is taken at its word
  (``proof`` for an AI claim), even when the certificate has expired, fails
  a policy check or could not be checked for revocation offline; the
  finding is stated. An intact manifest from a signer that chains to no
  anchor (unknown or self-signed) gives ``strong``: anyone can sign a
  manifest calling a real photo AI-made. A revoked certificate never gives
  more than ``weak``.

References:
    C2PA Technical Specification 2.1/2.2 (c2pa.org/specifications): claims,
    assertions (``c2pa.actions``, ``c2pa.actions.v2``, ``c2pa.ingredient``),
    validation states and status codes, trust lists.
    IPTC NewsCodes Digital Source Type vocabulary
    (https://cv.iptc.org/newscodes/digitalsourcetype/).
    contentauth/c2pa-python (Reader, Context, Settings).
    C2PA Technical Specification 2.1, section 15 (validation: status codes
    for claim signature, hard bindings, signing credential and time-stamps).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

from detectors.base import DetectorResult, register_detector
from detectors.provenance._common import ProvenanceReader, classify_source_type, result, source_type_code, truncate
from detectors.provenance.c2pa_chain import AnchorSet, ChainCheck, check_chain, cose_x5chain, manifest_store_bytes, \
    signature_box
from forensics.io import LoadedImage

__all__ = [
    "C2paDetector",
    "TrustAssessment",
    "assess_validation",
    "load_anchor_set",
    "load_trust_anchors",
    "offline_settings",
    "summarize_manifest_store",
]

VERSION = "c2pa-v2"
#: Embedded thumbnails larger than this are not inlined into the report.
MAX_THUMBNAIL_BYTES = 64 * 1024
#: Ingredient manifests are followed at most this deep.
MAX_INGREDIENT_DEPTH = 8
#: At most this many actions are listed in evidence.
MAX_ACTIONS = 64
_SHORT = 256

#: Pre-2024 manifests (e.g. Bing Image Creator) said "AI Generated Image" in an action's description.
_LEGACY_AI = re.compile(r"\bAI[- ]generated\b", re.I)
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
_MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
}


def load_trust_anchors(paths: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...] = (), *,
                       shipped: bool = True) -> tuple[str, int]:
    """Collect trust anchor certificates into one clean PEM bundle.

    Comments and malformed blocks are dropped (one bad certificate would make
    the SDK reject every read).

    Args:
        paths: Extra PEM bundles to trust, e.g. a newer C2PA trust list.
        shipped: Include the C2PA trust list anchors shipped in this package.

    Returns:
        ``(pem_bundle, count)``; the bundle is empty when no anchor was found.

    Raises:
        OSError: If a given path cannot be read.
    """
    from cryptography import x509

    blobs: list[bytes] = []
    if shipped:
        blobs.append(resources.files("detectors.provenance").joinpath("c2pa_trust_anchors.pem").read_bytes())
    for p in paths:
        with open(p, "rb") as fh:
            blobs.append(fh.read(16 * 1024 * 1024))
    seen: set[bytes] = set()
    good: list[bytes] = []
    for blob in blobs:
        for m in _PEM_RE.finditer(blob):
            block = m.group(0)
            try:
                cert = x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
            fp = cert.fingerprint(cert.signature_hash_algorithm or _sha256())
            if fp in seen:
                continue
            seen.add(fp)
            good.append(block.strip())
    return (b"\n".join(good) + b"\n").decode("ascii") if good else "", len(good)


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def offline_settings(trust_anchors_pem: str = "") -> dict[str, Any]:
    """c2pa-rs settings for offline validation with the given trust anchors."""
    settings: dict[str, Any] = {
        "verify": {
            "verify_trust": True,
            "remote_manifest_fetch": False,
            "ocsp_fetch": False,
        },
        "core": {"decode_identity_assertions": False},
    }
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
    return settings


def load_anchor_set(name: str, anchor_paths: tuple[str | os.PathLike[str], ...] = (), *,
                    allowed_paths: tuple[str | os.PathLike[str], ...] = (), shipped: bool = False) -> AnchorSet:
    """Load a trust list for the chain check: anchors (PEM) and an allow-list of end-entity certificates.

    Args:
        name: ``"c2pa"`` or ``"legacy"``.
        anchor_paths: PEM bundles of anchor certificates.
        allowed_paths: Allow-lists: PEM certificates, or lines of hex /
            base64 SHA-256 fingerprints of DER end-entity certificates (the
            form of the interim list's ``allowed.sha256.txt``).
        shipped: Include the C2PA trust list anchors shipped in this package.

    Raises:
        OSError: If a given path cannot be read.
    """
    from cryptography import x509

    pem, _ = load_trust_anchors(anchor_paths, shipped=shipped)
    anchors = tuple(x509.load_pem_x509_certificates(pem.encode("ascii"))) if pem else ()
    allowed: set[bytes] = set()
    for p in allowed_paths:
        with open(p, "rb") as fh:
            blob = fh.read(16 * 1024 * 1024)
        for m in _PEM_RE.finditer(blob):
            try:
                cert = x509.load_pem_x509_certificate(m.group(0))
            except ValueError:
                continue
            allowed.add(cert.fingerprint(_sha256()))
        for line in _PEM_RE.sub(b"", blob).splitlines():
            tok = line.strip().split(b"#", 1)[0].strip()
            if not tok:
                continue
            try:
                digest = bytes.fromhex(tok.decode("ascii")) if len(tok) == 64 else base64.b64decode(tok, validate=True)
            except ValueError:
                continue
            if len(digest) == 32:
                allowed.add(digest)
    return AnchorSet(name, anchors, frozenset(allowed))


#: Hard-binding success codes: the asset's bytes are what was signed.
_BINDING_OK = frozenset({"assertion.dataHash.match", "assertion.bmffHash.match", "assertion.boxesHash.match",
                         "assertion.collectionHash.match"})
#: Failure codes that concern the signing credential (or its time-stamp), not the content.
_CREDENTIAL_PREFIXES = ("signingCredential.", "timeStamp.")
_NOT_CREDENTIAL = frozenset({"timeStamp.mismatch"})
_TIME_CODES = frozenset({"claimSignature.outsideValidity"})
_REVOKED = frozenset({"signingCredential.revoked", "signingCredential.ocsp.revoked"})
_OFFLINE = ("signingCredential.ocsp.skipped", "signingCredential.ocsp.unknown", "signingCredential.ocsp.inaccessible")

#: Trust tiers (``evidence["trust"]``), see :func:`assess_validation`.
TRUST_TIERS = ("trusted", "trusted_legacy", "credential_issue", "unknown_signer", "revoked", "integrity_failed")


@dataclass(frozen=True)
class TrustAssessment:
    """What the validation codes and the certificate chain say, in the terms of the policy.

    Attributes:
        tier: One of :data:`TRUST_TIERS`.
        intact: The claim signature verified and every hash matched.
        trust_list: ``"c2pa"`` or ``"legacy"`` when the chain leads to that list's anchors, else ``None``.
        integrity_failures: Failure codes that break integrity.
        credential_findings: Credential-only failure codes (expired, EKU, untrusted...).
        revocation_unchecked: OCSP was skipped or unknown (offline).
        chain: The certificate chain check.
    """

    tier: str
    intact: bool
    trust_list: str | None
    integrity_failures: tuple[str, ...]
    credential_findings: tuple[str, ...]
    revocation_unchecked: bool
    chain: ChainCheck

    @property
    def relied_on(self) -> bool:
        """Whether an AI claim in this manifest is taken as proof."""
        return self.tier in ("trusted", "trusted_legacy", "credential_issue")


def _codes(block: dict[str, Any] | None, kind: str) -> list[str]:
    items = (block or {}).get(kind) or []
    return [str(f.get("code")) for f in items[:256] if isinstance(f, dict) and f.get("code")]


def assess_validation(state: str, results: dict[str, Any], chain: ChainCheck) -> TrustAssessment:
    """Apply the provenance policy to c2pa-rs's validation results and the chain check.

    Args:
        state: c2pa-rs validation state (``Invalid``, ``Valid``, ``Trusted``).
        results: ``Reader.get_validation_results()``: ``activeManifest`` with
            ``success``/``failure``/``informational`` lists, and ``ingredientDeltas``.
        chain: :func:`detectors.provenance.c2pa_chain.check_chain` on the signer's chain.

    Returns:
        A :class:`TrustAssessment`. Integrity needs ``claimSignature.validated``,
        a hard-binding match, and no failure code outside the credential
        family; an unknown code counts against integrity.
    """
    active = results.get("activeManifest") if isinstance(results, dict) else None
    failures = _codes(active, "failure")
    for delta in (results.get("ingredientDeltas") or [])[:64] if isinstance(results, dict) else []:
        if isinstance(delta, dict):
            failures += _codes(delta.get("validationDeltas"), "failure")
    success = set(_codes(active, "success"))
    info = _codes(active, "informational")

    def credential(code: str) -> bool:
        return (code.startswith(_CREDENTIAL_PREFIXES) and code not in _NOT_CREDENTIAL) or code in _TIME_CODES

    integrity_failures = tuple(dict.fromkeys(c for c in failures if not credential(c)))
    findings = tuple(dict.fromkeys(c for c in failures if credential(c)))
    intact = not integrity_failures and "claimSignature.validated" in success and bool(_BINDING_OK & success)
    offline = any(c in _OFFLINE for c in info + failures)
    revoked = any(c in _REVOKED for c in failures)
    trust_list = chain.anchored_by
    if not intact:
        tier = "integrity_failed"
    elif revoked:
        tier = "revoked"
    elif state == "Trusted":
        tier, trust_list = "trusted", "c2pa"
    elif trust_list is None:
        tier = "unknown_signer"
    elif trust_list == "legacy" and set(findings) <= {"signingCredential.untrusted"}:
        tier = "trusted_legacy"
    else:
        tier = "credential_issue"
    return TrustAssessment(tier, intact, trust_list, integrity_failures, findings, offline, chain)


def _date(iso: str | None) -> str:
    return iso[:10] if iso else "an unknown date"


_FINDING_WORDS = {
    "signingCredential.expired": "certificate expired",
    "claimSignature.outsideValidity": "certificate expired",
    "signingCredential.invalid": "certificate policy",
    "signingCredential.untrusted": "untrusted by the SDK",
}


def _finding_words(a: TrustAssessment) -> str:
    """Short words for the credential findings, e.g. ``certificate expired``."""
    words = [_FINDING_WORDS.get(c, c) for c in a.credential_findings
             if not (c == "signingCredential.untrusted" and len(a.credential_findings) > 1)]
    return ", ".join(dict.fromkeys(words)) or "no finding"


def _credential_sentence(a: TrustAssessment, explanations: dict[str, str]) -> str:
    """Plain words for the credential findings of an intact, anchored manifest."""
    parts = []
    codes = set(a.credential_findings)
    if "signingCredential.expired" in codes or "claimSignature.outsideValidity" in codes:
        parts.append(f"the certificate expired on {_date(a.chain.not_after)}")
    if "signingCredential.invalid" in codes:
        why = explanations.get("signingCredential.invalid") or "a certificate-policy check"
        parts.append(f"the certificate fails a certificate-policy check ({why}), which concerns the "
                     "certificate, not the content")
    other = sorted(codes - {"signingCredential.expired", "claimSignature.outsideValidity",
                            "signingCredential.invalid", "signingCredential.untrusted"})
    if other:
        parts.append("the credential has further findings (" + ", ".join(other) + ")")
    if a.revocation_unchecked:
        parts.append("its revocation could not be checked offline")
    return "; ".join(parts)


def _s(value: Any, limit: int = _SHORT) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return truncate(value, limit)


def _agent(value: Any) -> str | None:
    """softwareAgent is a string (v1) or a ClaimGeneratorInfo map (v2)."""
    if isinstance(value, dict):
        name = value.get("name")
        ver = value.get("version")
        return _s(f"{name} {ver}" if name and ver else name or value)
    return _s(value)


def _find_source_types(obj: Any, out: list[str], depth: int = 0) -> None:
    if depth > 12 or len(out) > 64:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "digitalSourceType" and isinstance(v, str):
                out.append(truncate(v, _SHORT))
            else:
                _find_source_types(v, out, depth + 1)
    elif isinstance(obj, list):
        for v in obj[:1000]:
            _find_source_types(v, out, depth + 1)


def summarize_manifest_store(store: dict[str, Any]) -> dict[str, Any]:
    """Walk a c2pa-rs manifest store (``Reader.json()``) from the active manifest.

    Args:
        store: The parsed JSON of the manifest store.

    Returns:
        A dict with ``claim_generator``, ``claim_generator_info``, ``signer``,
        ``signer_issuer``, ``signed_at``, ``title``, ``actions`` (list of
        ``{action, digitalSourceType, softwareAgent, where}``),
        ``digital_source_types``, ``source_claims`` (list of
        ``(claim, where)`` for AI/camera source types) and ``n_manifests``.
    """
    manifests = store.get("manifests") or {}
    active_label = store.get("active_manifest")
    active = manifests.get(active_label) if isinstance(manifests, dict) else None
    out: dict[str, Any] = {
        "active_manifest": _s(active_label),
        "n_manifests": len(manifests) if isinstance(manifests, dict) else 0,
        "actions": [],
        "digital_source_types": [],
        "source_claims": [],
        "legacy_ai": [],
    }
    if not isinstance(active, dict):
        return out
    sig = active.get("signature_info") or {}
    out["signer"] = _s(sig.get("common_name") or sig.get("issuer"))
    out["signer_issuer"] = _s(sig.get("issuer"))
    out["signed_at"] = _s(sig.get("time"))
    out["signature_alg"] = _s(sig.get("alg"))
    out["title"] = _s(active.get("title"))
    cg = active.get("claim_generator")
    out["claim_generator"] = _s(cg)
    info = active.get("claim_generator_info")
    if isinstance(info, list):
        out["claim_generator_info"] = [
            {str(k)[:64]: _s(v) for k, v in list(item.items())[:16]} for item in info[:8] if isinstance(item, dict)
        ]
        if not cg:
            names = [i.get("name") for i in info if isinstance(i, dict) and i.get("name")]
            out["claim_generator"] = _s(", ".join(str(n) for n in names)) if names else None

    visited: set[str] = set()

    def walk(manifest: dict[str, Any], where: str, via_component: bool, depth: int) -> None:
        label = str(manifest.get("label") or id(manifest))
        if label in visited or depth > MAX_INGREDIENT_DEPTH:
            return
        visited.add(label)
        types_here: list[str] = []
        for assertion in (manifest.get("assertions") or [])[:256]:
            if not isinstance(assertion, dict):
                continue
            lab = str(assertion.get("label") or "")
            data = assertion.get("data")
            if re.fullmatch(r"c2pa\.actions(\.v2)?(__\d+)?", lab) and isinstance(data, dict):
                for act in (data.get("actions") or [])[:MAX_ACTIONS]:
                    if not isinstance(act, dict):
                        continue
                    dst = act.get("digitalSourceType")
                    desc = act.get("description")
                    if not dst and isinstance(desc, str) and _LEGACY_AI.search(desc[:512]):
                        out["legacy_ai"].append(where)
                    if len(out["actions"]) < MAX_ACTIONS:
                        out["actions"].append(
                            {
                                "action": _s(act.get("action")),
                                "digitalSourceType": _s(dst),
                                "softwareAgent": _agent(act.get("softwareAgent")),
                                "where": where,
                            }
                        )
            _find_source_types(data, types_here)
        for t in types_here:
            if t not in out["digital_source_types"]:
                out["digital_source_types"].append(t)
            kind = classify_source_type(t)
            if kind == "ai_generated" and via_component:
                kind = "ai_edited"  # an AI element placed into another image
            if kind != "none":
                out["source_claims"].append((kind, where))
        for ing in (manifest.get("ingredients") or [])[:64]:
            if not isinstance(ing, dict):
                continue
            rel = str(ing.get("relationship") or "componentOf")
            child_label = ing.get("active_manifest")
            child = manifests.get(child_label) if child_label else None
            if isinstance(child, dict):
                title = truncate(ing.get("title") or child.get("title") or "untitled", 80)
                walk(child, f"ingredient '{title}' ({rel})", via_component or rel != "parentOf", depth + 1)

    walk(active, "active manifest", False, 0)
    return out


#: Environment variables naming the user's copy of the legacy (interim) trust list: its anchors
#: (``anchors.pem``) and its end-entity allow-list (``allowed.pem`` or ``allowed.sha256.txt``).
LEGACY_ANCHORS_ENV = "AIDETECT_C2PA_LEGACY_ANCHORS"
LEGACY_ALLOWED_ENV = "AIDETECT_C2PA_LEGACY_ALLOWED"


class C2paDetector(ProvenanceReader):
    """Reads and validates C2PA manifests offline.

    Args:
        trust_anchors: Extra PEM bundle paths whose certificates are trusted
            (e.g. a newer copy of the C2PA trust list).
        shipped_anchors: Also trust the C2PA trust list anchors shipped in
            the package (default True).
        legacy_anchors: PEM bundles of the legacy (interim, pre-2025) trust
            list's anchors. Nothing is shipped: the list could not be
            obtained offline (see ``docs/provenance.md``). ``None`` reads
            :data:`LEGACY_ANCHORS_ENV` (paths separated by ``os.pathsep``), so
            every command and its worker processes can use a copy the user
            keeps; ``()`` uses none.
        legacy_allowed: The legacy list's allow-list of end-entity
            certificates (PEM, or SHA-256 fingerprints one per line);
            ``None`` reads :data:`LEGACY_ALLOWED_ENV`.
        include_thumbnail: Put the manifest's embedded thumbnail (at most
            64 KB, JPEG or PNG) into evidence as a data URI.
    """

    name = "c2pa"
    version = VERSION

    def __init__(
        self,
        *,
        trust_anchors: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...] | str | None = None,
        shipped_anchors: bool = True,
        legacy_anchors: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...] | str | None = None,
        legacy_allowed: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...] | str | None = None,
        include_thumbnail: bool = True,
    ) -> None:
        def paths(v: Any) -> tuple[str | os.PathLike[str], ...]:
            return (v,) if isinstance(v, (str, os.PathLike)) else tuple(v or ())

        self.trust_anchor_paths = paths(trust_anchors)
        self.shipped_anchors = shipped_anchors
        def from_env(var: str) -> tuple[str, ...]:
            return tuple(p for p in os.environ.get(var, "").split(os.pathsep) if p)

        self.legacy_anchor_paths = from_env(LEGACY_ANCHORS_ENV) if legacy_anchors is None else paths(legacy_anchors)
        self.legacy_allowed_paths = from_env(LEGACY_ALLOWED_ENV) if legacy_allowed is None else paths(legacy_allowed)
        self.include_thumbnail = include_thumbnail
        self._ctx: Any = None
        self._ctx_pid: int | None = None
        self._n_anchors = 0
        self._anchor_sets: tuple[AnchorSet, ...] = ()
        self._lock = threading.Lock()

    def _context(self) -> Any:
        import c2pa

        with self._lock:
            if self._ctx is None or self._ctx_pid != os.getpid():
                pem, n = load_trust_anchors(self.trust_anchor_paths, shipped=self.shipped_anchors)
                self._ctx = c2pa.Context.from_dict(offline_settings(pem))
                self._ctx_pid = os.getpid()
                self._n_anchors = n
                sets = [load_anchor_set("c2pa", self.trust_anchor_paths, shipped=self.shipped_anchors)]
                if self.legacy_anchor_paths or self.legacy_allowed_paths:
                    sets.append(load_anchor_set("legacy", self.legacy_anchor_paths,
                                                allowed_paths=self.legacy_allowed_paths))
                self._anchor_sets = tuple(a for a in sets if a)
            return self._ctx

    def _analyze(self, image: LoadedImage, t0: float) -> DetectorResult:
        try:
            import c2pa
        except ImportError:
            return result(self.name, self.version, t0, status="error", message="c2pa-python is not installed")
        ctx = self._context()
        mime = _MIME.get(image.format)
        try:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(image.data), None, ctx)
        except c2pa.C2paError as exc:
            msg = truncate(str(exc), 300)
            if "remote" in type(exc).__name__.lower() or msg.lower().startswith("remote"):
                return result(
                    self.name,
                    self.version,
                    t0,
                    evidence={"state": "RemoteNotFetched", "summary": "remote C2PA manifest (not fetched)",
                              "error": msg},
                    explanations=(
                        "The file points to a C2PA manifest stored online; it was not fetched because "
                        "analysis runs offline, so it was not checked.",
                    ),
                )
            # C2PA data is present but could not be parsed or verified at all.
            return result(
                self.name,
                self.version,
                t0,
                evidence={"state": "Invalid", "trust": "integrity_failed",
                          "summary": "C2PA data present but unreadable", "error": msg},
                explanations=(
                    "The file contains C2PA provenance data that could not be read or verified "
                    f"({msg}); it is reported as invalid, not as absent.",
                ),
            )
        if reader is None:
            return result(
                self.name,
                self.version,
                t0,
                status="not_applicable",
                evidence={"summary": "no C2PA manifest"},
                message="no C2PA manifest",
            )
        try:
            return self._report(reader, image.data, t0)
        finally:
            reader.close()

    def _chain(self, data: bytes, store: dict[str, Any]) -> ChainCheck:
        """The signer's chain as read from the file, if it is the certificate the SDK verified the claim with.

        The serial number must equal c2pa-rs's ``signature_info``: a decoy
        manifest store carrying someone else's chain cannot lend its anchor.
        """
        active_label = store.get("active_manifest")
        jumbf = manifest_store_bytes(data)
        cose = signature_box(jumbf, str(active_label) if active_label else None) if jumbf else None
        chain = check_chain(cose_x5chain(cose), self._anchor_sets) if cose else ChainCheck(read=False)
        active = (store.get("manifests") or {}).get(active_label) if isinstance(store.get("manifests"), dict) else None
        sdk_serial = str(((active or {}).get("signature_info") or {}).get("cert_serial_number") or "")
        if chain.read and sdk_serial != chain.serial:
            return ChainCheck(read=False)
        return chain

    def _report(self, reader: Any, data: bytes, t0: float) -> DetectorResult:
        store = json.loads(reader.json())
        state = reader.get_validation_state() or "Invalid"
        vr = reader.get_validation_results() or {}
        failures = [
            {"code": _s(f.get("code"), 80), "explanation": _s(f.get("explanation"))}
            for f in ((vr.get("activeManifest") or {}).get("failure") or [])[:32]
            if isinstance(f, dict)
        ]
        for delta in (vr.get("ingredientDeltas") or [])[:32]:
            for f in (((delta or {}).get("validationDeltas") or {}).get("failure") or [])[:16]:
                if isinstance(f, dict):
                    failures.append({"code": _s(f.get("code"), 80), "explanation": _s(f.get("explanation")),
                                     "ingredient": True})
        code_text = {str(f["code"]): str(f["explanation"]) for f in failures if f.get("code") and f.get("explanation")}
        summary = summarize_manifest_store(store)
        chain = self._chain(data, store)
        a = assess_validation(state, vr, chain)
        trusted = a.tier in ("trusted", "trusted_legacy")
        evidence: dict[str, Any] = {
            "state": state,
            "trusted": trusted,
            "trust": a.tier,
            "trust_list": a.trust_list,
            "integrity": "intact" if a.intact else "failed",
            "integrity_failures": list(a.integrity_failures),
            "credential_findings": list(a.credential_findings),
            "revocation_checked": not a.revocation_unchecked,
            "certificate": {
                "subject": chain.subject,
                "issuer": chain.issuer,
                "not_before": chain.not_before,
                "not_after": chain.not_after,
                "self_signed": chain.self_signed,
                "anchor": chain.anchor,
            } if chain.read else None,
            "signer": summary.get("signer"),
            "signer_issuer": summary.get("signer_issuer"),
            "signed_at": summary.get("signed_at"),
            "claim_generator": summary.get("claim_generator"),
            "claim_generator_info": summary.get("claim_generator_info"),
            "title": summary.get("title"),
            "actions": summary["actions"],
            "digital_source_types": summary["digital_source_types"],
            "failures": failures,
            "n_manifests": summary["n_manifests"],
            "trust_anchors": self._n_anchors,
        }
        if self.include_thumbnail:
            thumb = self._thumbnail(reader, store)
            if thumb:
                evidence["thumbnail_data_uri"] = thumb

        kinds = [k for k, _ in summary["source_claims"]]
        where = {k: w for k, w in reversed(summary["source_claims"])}
        if "ai_generated" in kinds:
            claim = "ai_generated"
        elif "ai_edited" in kinds:
            claim = "ai_edited"
        elif "camera" in kinds:
            claim = "camera"
        else:
            claim = "none"
        legacy = claim == "none" and bool(summary["legacy_ai"])
        if legacy:
            claim = "ai_generated"

        signer = summary.get("signer") or "an unknown signer"
        gen = summary.get("claim_generator") or "unknown software"
        ai = claim in ("ai_generated", "ai_edited")
        expl: list[str] = []
        if a.tier == "integrity_failed":
            codes = ", ".join(a.integrity_failures) or "the claim signature or content hash was not verified"
            expl.append(
                f"The file carries a C2PA manifest signed by {signer}, but its validation failed ({codes}): "
                "the content or the manifest changed after signing, so what it declares cannot be relied on."
            )
            strength = "weak" if claim != "none" else "none"
        elif a.tier == "revoked":
            expl.append(
                f"The file carries a C2PA manifest signed by {signer} whose content is unchanged since signing, "
                "but the signing certificate has been revoked (its key may be in other hands), so what it "
                "declares is not taken as proof."
            )
            strength = "weak" if claim != "none" else "none"
        elif a.tier == "trusted":
            expl.append(f"The file carries a valid C2PA manifest signed by {signer}, whose certificate is on "
                        "the C2PA trust list.")
            strength = "proof" if ai else ("strong" if claim == "camera" else "none")
        elif a.tier == "trusted_legacy":
            expl.append(f"The file carries a valid C2PA manifest signed by {signer}, whose certificate is on "
                        "the legacy (pre-2025 interim) Content Credentials trust list.")
            strength = "proof" if ai else ("strong" if claim == "camera" else "none")
        elif a.tier == "credential_issue":
            listed = "the legacy (pre-2025 interim) trust list" if a.trust_list == "legacy" else "the C2PA trust list"
            expl.append(
                f"The file carries a C2PA manifest signed by {signer}, issued under {listed}: content unchanged "
                f"since signing; {_credential_sentence(a, code_text)}."
            )
            strength = "proof" if ai else ("strong" if claim == "camera" else "none")
        else:  # unknown_signer
            how = "a self-signed certificate" if chain.self_signed else (
                "a certificate that chains to no trust list shipped with this tool" if chain.read
                else "a certificate whose chain could not be read")
            extra = [c for c in a.credential_findings if c != "signingCredential.untrusted"]
            expl.append(
                f"The file carries a C2PA manifest whose content is unchanged since signing, but it is signed by "
                f"{signer} with {how}"
                + (f" ({', '.join(extra)})" if extra else "")
                + (". Anyone can sign a manifest that calls a real photo AI-made in order to discredit it, so "
                   "the claim is reported but not taken as proof." if ai else ": the signer's identity is not "
                   "vouched for.")
            )
            strength = "strong" if ai else ("weak" if claim == "camera" else "none")
        if legacy:
            expl.append(
                f"Its {summary['legacy_ai'][0]} describes the image as AI-generated in free text (an older "
                f"convention, without the IPTC digital source type), written by {gen}."
            )
        elif claim == "ai_generated":
            expl.append(
                f"Its {where['ai_generated']} declares the content as generated by a trained AI model "
                f"(IPTC digital source type trainedAlgorithmicMedia), written by {gen}."
            )
        elif claim == "ai_edited":
            expl.append(
                f"Its {where['ai_edited']} declares that AI-generated content was composited into or used to "
                f"edit the image (written by {gen})."
            )
        elif claim == "camera":
            expl.append(f"Its {where['camera']} declares a capture from the physical world (e.g. a camera).")
        else:
            expl.append(f"It declares no AI or camera source type (written by {gen}).")

        dst = ", ".join(source_type_code(t) for t in summary["digital_source_types"]) or "no source type"
        tier_text = {
            "trusted": "Trusted",
            "trusted_legacy": "Trusted (legacy list)",
            "credential_issue": f"{state} (intact; {_finding_words(a)})",
            "unknown_signer": f"{state} (intact; untrusted signer)" if state != "Valid" else "Valid (untrusted signer)",
            "revoked": f"{state} (certificate revoked)",
            "integrity_failed": "Invalid",
        }[a.tier]
        evidence["summary"] = f"C2PA {tier_text}: {signer}; {dst}"
        return result(
            self.name,
            self.version,
            t0,
            claim=claim,
            strength=strength,
            evidence=evidence,
            explanations=expl,
        )

    @staticmethod
    def _thumbnail(reader: Any, store: dict[str, Any]) -> str | None:
        active = (store.get("manifests") or {}).get(store.get("active_manifest")) or {}
        thumb = active.get("thumbnail") if isinstance(active, dict) else None
        if not isinstance(thumb, dict) or not thumb.get("identifier"):
            return None
        fmt = str(thumb.get("format") or "").lower()
        mime = {"image/jpeg": "image/jpeg", "jpeg": "image/jpeg", "jpg": "image/jpeg",
                "image/png": "image/png", "png": "image/png"}.get(fmt)
        if mime is None:
            return None
        buf = io.BytesIO()
        try:
            reader.resource_to_stream(str(thumb["identifier"]), buf)
        except Exception:  # noqa: BLE001 - a missing resource only loses the thumbnail
            return None
        data = buf.getvalue()
        if not data or len(data) > MAX_THUMBNAIL_BYTES:
            return None
        magic_ok = data.startswith(b"\xff\xd8\xff") if mime == "image/jpeg" else data.startswith(b"\x89PNG\r\n\x1a\n")
        if not magic_ok:
            return None
        return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@register_detector("c2pa")
def _c2pa(**kwargs: Any) -> C2paDetector:
    return C2paDetector(**kwargs)
