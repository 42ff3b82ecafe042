"""Provenance detectors: what the file itself says about its origin.

Importing this package registers five detectors of kind ``provenance``
(``detectors.list_detectors(kind="provenance")``), all reading the original
file bytes offline:

* ``c2pa``: C2PA manifests (validation state, signer, actions, source types),
  with integrity told from credentials (see ``docs/provenance.md``);
* ``xmp``: IPTC ``DigitalSourceType`` and AI-system fields in XMP;
* ``generator_metadata``: Stable Diffusion front-end parameters (A1111/Forge,
  ComfyUI, InvokeAI, NovelAI, Fooocus) and generator signatures in EXIF,
  PNG text and XMP (the versioned table ``generator_signatures.json``);
* ``watermark``: the Stable Diffusion invisible watermarks (dwtDct);
* ``exif``: camera EXIF fields (a weak hint only).

Provenance detectors give no score (``score`` is ``None``); they return a
``claim`` (``ai_generated``, ``ai_edited``, ``camera`` or ``none``) with a
``strength`` that the fusion weighs. Nothing found is ``not_applicable``:
missing provenance is neutral.

References:
    C2PA Technical Specification 2.x; IPTC Photo Metadata Standard 2025.1 and
    the Digital Source Type NewsCodes; ShieldMnt/invisible-watermark and the
    Stable Diffusion reference scripts; CIPA DC-008 (Exif 3.0).
"""

from __future__ import annotations

from detectors.provenance.c2pa_manifest import C2paDetector
from detectors.provenance.exif import ExifDetector
from detectors.provenance.metadata import GeneratorMetadataDetector
from detectors.provenance.watermark import WatermarkDetector
from detectors.provenance.xmp import XmpDetector

__all__ = [
    "C2paDetector",
    "ExifDetector",
    "GeneratorMetadataDetector",
    "WatermarkDetector",
    "XmpDetector",
]

