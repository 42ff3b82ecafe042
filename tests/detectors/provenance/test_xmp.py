"""Tests for the XMP / IPTC DigitalSourceType detector: every serialisation in JPEG, PNG and WebP."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, features

from detectors import create_detector
from detectors.provenance.xmp import extract_xmp_packets, parse_xmp
from forensics.io import load_image_bytes

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
NS = (
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
)


def packet(body: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF {NS}>{body}</rdf:RDF></x:xmpmeta>'
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def attr_form(code: str) -> bytes:
    return packet(f'<rdf:Description rdf:about="" Iptc4xmpExt:DigitalSourceType="{DST}{code}"/>')


def element_form(code: str) -> bytes:
    return packet(
        f'<rdf:Description rdf:about=""><Iptc4xmpExt:DigitalSourceType>{DST}{code}'
        "</Iptc4xmpExt:DigitalSourceType></rdf:Description>"
    )


def resource_form(code: str) -> bytes:
    return packet(
        f'<rdf:Description rdf:about=""><Iptc4xmpExt:DigitalSourceType rdf:resource="{DST}{code}"/>'
        "</rdf:Description>"
    )


FORMS = {"attribute": attr_form, "element": element_form, "resource": resource_form}


def base_image(mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    arr = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


def jpeg_with_app1(payloads: list[bytes]) -> bytes:
    buf = io.BytesIO()
    base_image().save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    segs = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in payloads)
    return data[:2] + segs + data[2:]


def jpeg_xmp(pkt: bytes) -> bytes:
    return jpeg_with_app1([b"http://ns.adobe.com/xap/1.0/\x00" + pkt])


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def png_xmp(pkt: bytes, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    base_image().save(buf, "PNG")
    data = buf.getvalue()
    text = zlib.compress(pkt) if compressed else pkt
    body = b"XML:com.adobe.xmp\x00" + bytes([1 if compressed else 0, 0]) + b"\x00\x00" + text
    iend = data.rfind(b"IEND") - 4
    return data[:iend] + png_chunk(b"iTXt", body) + data[iend:]


def webp_xmp(pkt: bytes) -> bytes:
    buf = io.BytesIO()
    base_image().save(buf, "WEBP", xmp=pkt, lossless=True)
    return buf.getvalue()


needs_webp = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("container", ["jpeg", "png", "png_z", "webp"])
def test_trained_algorithmic_media_in_every_form_and_container(form, container):
    if container == "webp" and not features.check("webp"):
        pytest.skip("no WebP")
    pkt = FORMS[form]("trainedAlgorithmicMedia")
    data = {"jpeg": jpeg_xmp, "png": png_xmp, "png_z": lambda p: png_xmp(p, True), "webp": webp_xmp}[container](pkt)
    img = load_image_bytes(data)
    res = create_detector("xmp").analyze(img)
    assert res.status == "ok", res.message
    assert res.claim == "ai_generated" and res.strength == "proof"
    assert res.evidence["digital_source_types"] == [DST + "trainedAlgorithmicMedia"]
    assert "trainedAlgorithmicMedia" in res.evidence["summary"]
    assert res.evidence["packets"][0]["parsed_by"] == "xml"
    assert res.score is None and res.explanations


def test_composite_is_ai_edited_and_capture_is_weak_camera():
    composite = resource_form("compositeWithTrainedAlgorithmicMedia")
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(composite)))
    assert (res.claim, res.strength) == ("ai_edited", "proof")
    res = create_detector("xmp").analyze(load_image_bytes(png_xmp(element_form("digitalCapture"))))
    assert (res.status, res.claim, res.strength) == ("ok", "camera", "weak")
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(attr_form("digitalArt"))))
    assert (res.status, res.claim, res.strength) == ("ok", "none", "none")


def test_ai_system_used_alone_is_strong():
    pkt = packet(
        '<rdf:Description rdf:about=""><Iptc4xmpExt:AISystemUsed>ExampleGen 3</Iptc4xmpExt:AISystemUsed>'
        '<Iptc4xmpExt:AIPromptInformation><rdf:Alt><rdf:li xml:lang="x-default">a cat</rdf:li></rdf:Alt>'
        "</Iptc4xmpExt:AIPromptInformation></rdf:Description>"
    )
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(pkt)))
    assert (res.claim, res.strength) == ("ai_generated", "strong")
    assert res.evidence["ai_system_used"] == ["ExampleGen 3"]
    assert res.evidence["ai_prompt"] == ["a cat"]


def test_ai_system_with_source_type_in_summary():
    pkt = packet(
        f'<rdf:Description rdf:about="" Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia" '
        'Iptc4xmpExt:AISystemUsed="ExampleGen"/>'
    )
    res = create_detector("xmp").analyze(load_image_bytes(png_xmp(pkt)))
    assert res.strength == "proof" and "ExampleGen" in res.evidence["summary"]


def test_extended_xmp_in_jpeg():
    main = packet('<rdf:Description rdf:about=""/>')
    ext = element_form("trainedAlgorithmicMedia")
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    half = len(ext) // 2
    parts = [
        b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">II", len(ext), off) + chunk
        for off, chunk in ((half, ext[half:]), (0, ext[:half]))  # out of order on purpose
    ]
    data = jpeg_with_app1([b"http://ns.adobe.com/xap/1.0/\x00" + main] + parts)
    res = create_detector("xmp").analyze(load_image_bytes(data))
    assert res.claim == "ai_generated"
    assert any(p["where"] == "JPEG APP1 extended XMP" for p in res.evidence["packets"])


def test_entity_expansion_is_refused_and_regex_fallback_reads_literal_values():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    ).encode() + packet(
        f'<rdf:Description rdf:about="" Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia">'
        "<Iptc4xmpExt:AISystemUsed>&d;</Iptc4xmpExt:AISystemUsed></rdf:Description>"
    )
    fields, method = parse_xmp(bomb)
    assert method == "regex"
    assert fields["DigitalSourceType"] == [DST + "trainedAlgorithmicMedia"]
    assert fields["AISystemUsed"] == ["&d;"]  # never expanded


def test_huge_packet_is_scanned_with_bounded_regex():
    filler = "<rdf:Description rdf:about=''>" + ("x" * 1000 + "\n") * 5000 + "</rdf:Description>"
    pkt = packet(filler + f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"/>')
    assert len(pkt) > 4 * 1024 * 1024
    t0 = time.perf_counter()
    # uncompressed iTXt: Pillow itself refuses compressed text chunks over 1 MB
    res = create_detector("xmp").analyze(load_image_bytes(png_xmp(pkt)))
    assert time.perf_counter() - t0 < 10
    assert res.claim == "ai_generated" and res.strength == "strong"  # fallback scan: never proof
    assert res.evidence["packets"][0]["parsed_by"] == "regex"


def test_malformed_packet_falls_back_to_regex():
    pkt = resource_form("trainedAlgorithmicMedia").replace(b"</rdf:RDF>", b"")
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(pkt)))
    assert res.claim == "ai_generated"
    assert res.evidence["packets"][0]["parsed_by"] == "regex"


def test_no_xmp_and_xmp_without_source_type_are_not_applicable():
    buf = io.BytesIO()
    base_image().save(buf, "JPEG")
    res = create_detector("xmp").analyze(load_image_bytes(buf.getvalue()))
    assert res.status == "not_applicable" and res.claim == "none"
    pkt = packet('<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
                 'xmp:CreatorTool="Camera Firmware 1.0"/>')
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(pkt)))
    assert res.status == "not_applicable"
    assert res.evidence["creator_tool"] == ["Camera Firmware 1.0"]


def test_generic_container_scan_finds_packet():
    pkt = attr_form("trainedAlgorithmicMedia")
    found = extract_xmp_packets(b"II*\x00" + b"\x00" * 100 + pkt + b"\x00" * 10, "TIFF")
    assert len(found) == 1 and parse_xmp(found[0][1])[0]["DigitalSourceType"]


def test_ai_claim_inside_a_comment_of_a_refused_packet_is_not_read():
    # issue 17 point 9: a DOCTYPE makes defusedxml refuse the packet; the fallback must not read comments
    pkt = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "v">]>' + packet(
        "<!-- <rdf:Description Iptc4xmpExt:DigitalSourceType="
        f'"{DST}trainedAlgorithmicMedia"/> <Iptc4xmpExt:DigitalSourceType>{DST}trainedAlgorithmicMedia'
        "</Iptc4xmpExt:DigitalSourceType> -->"
        f'<rdf:Description rdf:about="" Iptc4xmpExt:DigitalSourceType="{DST}digitalCapture"/>'
    )
    fields, method = parse_xmp(pkt)
    assert method == "regex" and fields["DigitalSourceType"] == [DST + "digitalCapture"]
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(pkt)))
    assert res.claim == "camera" and res.strength == "weak"


def test_ai_claim_in_an_unterminated_comment_or_doctype_is_not_read():
    for junk in ("<!-- never closed ", '<!DOCTYPE x [ <!ENTITY a "'):
        pkt = packet(f'<rdf:Description rdf:about=""/>{junk}<rdf:Description '
                     f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"/>')
        fields, method = parse_xmp(pkt)
        assert method == "regex" and "DigitalSourceType" not in fields, junk


def test_fallback_evidence_never_reaches_proof():
    from detectors.calibration import Calibration
    from detectors.fusion import fuse

    pkt = b'<!DOCTYPE x [<!ENTITY e "v">]>' + attr_form("trainedAlgorithmicMedia")
    res = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(pkt)))
    assert res.evidence["packets"][0]["parsed_by"] == "regex"
    assert res.claim == "ai_generated" and res.strength == "strong"
    assert "fallback text scan" in res.explanations[0]
    assert fuse([res], Calibration("t", "t", likely_ai=0.9, likely_real=0.1)).label == "likely_ai"
    # the same claim in a packet the XML parser accepts is proof
    ok = create_detector("xmp").analyze(load_image_bytes(jpeg_xmp(attr_form("trainedAlgorithmicMedia"))))
    assert ok.strength == "proof"
