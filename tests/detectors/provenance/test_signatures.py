"""Generator signatures (generator_signatures.json): one test per rule, EXIF fixtures, and camera EXIF that never confirms AI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detectors import create_detector
from detectors.calibration import Calibration
from detectors.fusion import fuse
from detectors.provenance.signatures import load_signature_table, match_signatures
from forensics.io import load_image_bytes

CAL = Calibration("test", "t", likely_ai=0.9, likely_real=0.1)
RULES = load_signature_table().rules
_EXIF_TAGS = {"Make": 0x010F, "Model": 0x0110, "Software": 0x0131, "ImageDescription": 0x010E, "Artist": 0x013B}
_EXIF_IFD = {"ExposureTime": 0x829A, "FNumber": 0x829D, "ISO": 0x8827, "FocalLength": 0x920A, "UserComment": 0x9286}


def _photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((160, 160, 3)) * 255).astype(np.uint8))


def exif_jpeg(fields: dict, seed: int = 0) -> bytes:
    """A JPEG whose EXIF holds ``fields`` (IFD0 names, Exif-IFD names, ``UserComment`` as ASCII)."""
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    for k, v in fields.items():
        if k in _EXIF_TAGS:
            exif[_EXIF_TAGS[k]] = v
        elif k == "UserComment":
            sub[_EXIF_IFD[k]] = b"ASCII\x00\x00\x00" + v.encode("ascii")
        else:
            sub[_EXIF_IFD[k]] = v
    buf = io.BytesIO()
    _photo(seed).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def _verdict(data: bytes):
    image = load_image_bytes(data)
    results = [create_detector(n).analyze(image) for n in ("c2pa", "xmp", "generator_metadata", "exif")]
    return {r.name: r for r in results}, fuse(results, CAL)


def test_table_is_versioned_and_rule_ids_unique():
    table = load_signature_table()
    assert table.version
    assert len({r.id for r in RULES}) == len(RULES) >= 16


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_examples_and_counter_examples(rule):
    assert rule.examples and rule.counter_examples
    for field in rule.fields:
        for value in rule.examples:
            got = match_signatures([("test", field, value)])
            assert any(m.rule == rule.id for m in got), (field, value)
        for value in rule.counter_examples:
            assert not any(m.rule == rule.id for m in match_signatures([("test", field, value)])), (field, value)
    # a field the rule does not cover never matches
    assert not any(m.rule == rule.id for m in match_signatures([("test", "LensModel", rule.examples[0])]))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_on_an_exif_fixture(rule):
    field = next(f for f in rule.fields if f in _EXIF_TAGS or f == "UserComment")
    # camera-like exposure fields too: a signature still wins over them
    data = exif_jpeg({field: rule.examples[0], "ExposureTime": (1, 250), "FNumber": (28, 10)}, seed=len(rule.id))
    res, verdict = _verdict(data)
    gm = res["generator_metadata"]
    assert gm.claim == "ai_generated" and gm.strength == rule.strength
    assert any(s["rule"] == rule.id for s in gm.evidence["signatures"])
    assert res["exif"].claim != "camera"
    assert verdict.label == ("ai_confirmed" if rule.strength == "proof" else "likely_ai")


def test_bfl_cli_exif_is_ai_confirmed_and_not_a_camera():
    data = exif_jpeg({"Make": "Black Forest Labs", "Model": "flux-dev", "Software": "AI generated;txt2img;flux",
                      "ImageDescription": "a red fox in the snow, photorealistic"})
    res, verdict = _verdict(data)
    gm = res["generator_metadata"]
    assert gm.strength == "proof" and gm.evidence["tool"] == "Black Forest Labs FLUX"
    assert gm.evidence["prompt"] == "a red fox in the snow, photorealistic" and gm.evidence["model"] == "flux-dev"
    assert verdict.label == "ai_confirmed" and verdict.decided_by == "generator_metadata"
    ex = res["exif"]
    assert ex.claim == "none" and "not a camera" in ex.evidence["summary"]
    assert "Black Forest Labs" in ex.explanations[0]


def test_caption_mentioning_a_tool_is_not_a_signature():
    data = exif_jpeg({"Make": "Canon", "Model": "Canon EOS R5", "ExposureTime": (1, 500), "FNumber": (4, 1),
                      "ImageDescription": "Visitors look at Midjourney and DALL-E prints at the Black Forest Labs "
                                          "booth; flux-dev demo"})
    res, verdict = _verdict(data)
    assert res["generator_metadata"].status == "not_applicable"
    assert res["exif"].claim == "camera" and res["exif"].strength == "weak"
    assert verdict.label != "ai_confirmed"


@pytest.mark.parametrize(
    "fields",
    [
        {"Make": "NIKON CORPORATION", "Model": "NIKON D850", "ExposureTime": (1, 200), "FNumber": (56, 10),
         "ISO": 400, "FocalLength": (50, 1), "Software": "Ver.1.10"},
        {"Make": "Apple", "Model": "iPhone 13", "ExposureTime": (1, 120), "FocalLength": (51, 10),
         "Software": "17.1"},
        {"Make": "samsung", "Model": "SM-G991B", "ISO": 50, "Software": "G991BXXU5CVF1"},
        {"Make": "Canon", "Model": "Canon EOS 5D Mark IV", "FNumber": (8, 1), "Software": "Adobe Photoshop 25.0"},
    ],
)
def test_real_camera_exif_is_a_weak_camera_hint_never_ai(fields):
    res, verdict = _verdict(exif_jpeg(fields))
    assert res["exif"].claim == "camera" and res["exif"].strength == "weak"
    assert res["generator_metadata"].status == "not_applicable"
    assert verdict.label != "ai_confirmed"


def test_make_and_model_alone_are_no_camera_hint():
    res, _ = _verdict(exif_jpeg({"Make": "Acme", "Model": "Unknown 3000"}))
    assert res["exif"].status == "not_applicable" and res["exif"].claim == "none"
    assert "Make/Model alone" in res["exif"].message


def test_xmp_creator_tool_is_a_generator_claim():
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Adobe Firefly"/>'
           '</rdf:RDF></x:xmpmeta>')
    buf = io.BytesIO()
    _photo().save(buf, "JPEG", xmp=xmp.encode())
    res, verdict = _verdict(buf.getvalue())
    gm = res["generator_metadata"]
    assert gm.claim == "ai_generated" and gm.strength == "strong" and gm.evidence["tool"] == "Adobe Firefly"
    assert verdict.label == "likely_ai"


def test_xmp_regex_fallback_signature_is_never_proof():
    # A DOCTYPE makes defusedxml refuse the packet; the regex fallback may read CreatorTool, but not as proof.
    xmp = ('<!DOCTYPE x [<!ENTITY a "b">]><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
           'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
           'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="AI generated;txt2img;flux"/></rdf:RDF></x:xmpmeta>')
    buf = io.BytesIO()
    _photo().save(buf, "JPEG", xmp=xmp.encode())
    res, verdict = _verdict(buf.getvalue())
    assert res["generator_metadata"].strength != "proof"
    assert verdict.label != "ai_confirmed"
