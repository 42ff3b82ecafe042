"""Generator metadata: the parameters that Stable Diffusion front-ends write into their images.

Recognised, in PNG text chunks (``tEXt``/``zTXt``/``iTXt``, including chunks
after the image data) and in the same fields of EXIF (``UserComment``,
``ImageDescription``, ``Make``/``Model``) and JPEG comments for JPEG/WebP:

* Stable Diffusion web UI (AUTOMATIC1111), Forge, SD.Next: ``parameters``
  (``prompt / Negative prompt: / Steps: .., Sampler: .., Seed: .., Model hash: ..``),
  also hidden in the alpha or RGB least-significant bits ("stealth pnginfo");
* Fooocus: ``parameters`` as JSON with ``fooocus_scheme``;
* ComfyUI: ``prompt`` (API graph) and ``workflow`` (UI graph) JSON, and the
  ``prompt:``/``workflow:`` EXIF strings of its WebP saver;
* InvokeAI: ``invokeai_metadata``, ``invokeai_graph``, ``sd-metadata`` and the
  older ``Dream`` command line;
* NovelAI: ``Software`` = ``NovelAI`` with its ``Comment`` JSON;
* generator signatures (the versioned table ``generator_signatures.json``,
  see :mod:`detectors.provenance.signatures`): Black Forest Labs' FLUX CLI
  EXIF, and tool names (DALL-E, Bing Image Creator, Midjourney, Firefly,
  Imagen/Gemini, SD front-ends, NovelAI, Leonardo, Ideogram, Fooocus,
  InvokeAI, ComfyUI) in EXIF/PNG ``Software`` and XMP ``CreatorTool``.

Prompt, negative prompt, sampler, seed, steps, CFG, model and model hash are
parsed where present. Text chunks may be many MB: decompression is capped,
JSON is parsed only up to 16 MB and every string kept in evidence is cut at
about 4 KB. All values are attacker controlled and returned as plain strings.

References:
    AUTOMATIC1111/stable-diffusion-webui ``modules/infotext_utils.py`` (infotext format).
    comfyanonymous/ComfyUI ``nodes.py`` SaveImage / SaveAnimatedWEBP (PNG text, EXIF).
    invoke-ai/InvokeAI docs, "Image metadata" (``invokeai_metadata``, ``sd-metadata``).
    d3x-at/sd-parsers (reference parsers and fixtures), ashen-sensored/sd_webui_stealth_pnginfo.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.base import DetectorResult, register_detector
from detectors.provenance._common import MAX_EVIDENCE_CHARS, ProvenanceReader, jpeg_segments, png_text_store, result, \
    truncate, with_limits
from detectors.provenance.signatures import load_signature_table, match_signatures
from forensics.io import LoadedImage

__all__ = [
    "GeneratorFinding",
    "GeneratorMetadataDetector",
    "collect_text_fields",
    "exif_text_fields",
    "find_generator_metadata",
    "parse_a1111",
    "parse_comfyui",
    "read_stealth_pnginfo",
]

VERSION = "genmeta-v2"
#: JSON text longer than this is not parsed (kept truncated in ``raw`` only).
MAX_JSON_CHARS = 16 * 1024 * 1024
#: Stealth pnginfo is only searched in images up to this many pixels.
MAX_STEALTH_PIXELS = 16_000_000
#: Longest stealth payload read, in bytes.
MAX_STEALTH_BYTES = 4 * 1024 * 1024
_SHORT = 512

_A1111_PARAM = re.compile(r'\s*([\w ,/+\-.()\[\]]{1,64}?):\s*("(?:\\.|[^\\"]){0,4096}"|[^,]{0,4096})(?:,|$)')


@dataclass
class GeneratorFinding:
    """One recognised block of generator metadata.

    Attributes:
        tool: Generator name, e.g. ``"ComfyUI"``.
        source: Where it was found, e.g. ``"PNG tEXt 'prompt'"``.
        fields: Parsed ``prompt``, ``negative_prompt``, ``sampler``, ``seed``,
            ``steps``, ``cfg``, ``model``, ``model_hash`` (those present).
        raw: The raw text of each field read, truncated.
        strength: ``proof`` for a generator's own parameter block or a
            ``proof`` signature, ``strong`` for a tool name.
        signatures: The generator-signature rules that matched (empty for
            parameter blocks).
    """

    tool: str
    source: str
    fields: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    strength: str = "proof"
    signatures: list[dict[str, str]] = field(default_factory=list)


def _json(text: str) -> Any:
    if len(text) > MAX_JSON_CHARS:
        return None
    t = text.strip().strip("\x00")
    if not t or t[0] not in "{[":
        return None
    try:
        return json.loads(t)
    except (ValueError, RecursionError):
        return None


def _val(v: Any) -> Any:
    """Seed/steps/cfg as JSON scalars; everything else as a short string."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        return v
    return truncate(v, _SHORT)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if v is None or v == "" or isinstance(v, (dict, list)):
            continue
        out[k] = truncate(v) if k in ("prompt", "negative_prompt") else _val(v)
    return out


# --------------------------------------------------------------------------- A1111 / Forge


def parse_a1111(text: str) -> dict[str, Any] | None:
    """Parse AUTOMATIC1111-style infotext.

    Returns:
        The parsed fields plus ``"_params"`` (all ``key: value`` pairs), or
        ``None`` when the text is not infotext.
    """
    text = text.strip()
    if "Steps:" not in text:
        return None
    lines = text.split("\n")
    idx = None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("Steps:"):
            idx = i
            break
    if idx is None:
        return None
    params_text = lines[idx]
    params: dict[str, str] = {}
    for m in _A1111_PARAM.finditer(params_text):
        key, value = m.group(1).strip(), m.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        if len(params) < 128:
            params[key] = value
    if "Sampler" not in params and "Seed" not in params:
        return None
    body = "\n".join(lines[:idx])
    prompt, neg = body, None
    k = body.find("Negative prompt:")
    if k >= 0:
        prompt, neg = body[:k], body[k + len("Negative prompt:") :]
    seed: Any = params.get("Seed")
    if isinstance(seed, str) and seed.lstrip("-").isdigit():
        seed = int(seed)
    return {
        "prompt": prompt.strip(),
        "negative_prompt": neg.strip() if neg is not None else None,
        "sampler": params.get("Sampler"),
        "seed": seed,
        "steps": params.get("Steps"),
        "cfg": params.get("CFG scale"),
        "model": params.get("Model"),
        "model_hash": params.get("Model hash"),
        "size": params.get("Size"),
        "version": params.get("Version"),
        "_params": params,
    }


def _a1111_tool(fields: dict[str, Any]) -> str:
    version = str(fields.get("version") or "")
    params = fields.get("_params") or {}
    if version.startswith("f") or "forge" in version.lower():
        return "Stable Diffusion WebUI Forge"
    if "App" in params and "next" in str(params.get("App", "")).lower():
        return "SD.Next"
    if version.startswith("v"):
        return "AUTOMATIC1111 Stable Diffusion web UI"
    return "Stable Diffusion web UI (A1111 format)"


# --------------------------------------------------------------------------- ComfyUI


_SAMPLER_CLASSES = ("KSampler", "SamplerCustom", "Sampler")


def _link_target(graph: dict[str, Any], value: Any) -> dict[str, Any] | None:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)):
        node = graph.get(str(value[0]))
        return node if isinstance(node, dict) else None
    return None


def _resolve_text(graph: dict[str, Any], value: Any, depth: int = 0) -> str | None:
    """Follow conditioning links back to the first text-encoder text."""
    if isinstance(value, str):
        return value
    if depth > 12:
        return None
    node = _link_target(graph, value)
    if node is None:
        return None
    inputs = node.get("inputs") or {}
    if not isinstance(inputs, dict):
        return None
    for key in ("text", "text_g", "prompt", "positive", "string", "value", "text_l"):
        if key in inputs:
            got = _resolve_text(graph, inputs[key], depth + 1)
            if got:
                return got
    for key, v in inputs.items():
        if "conditioning" in key or key in ("positive", "cond"):
            got = _resolve_text(graph, v, depth + 1)
            if got:
                return got
    return None


def _resolve_scalar(graph: dict[str, Any], value: Any, depth: int = 0) -> Any:
    if not isinstance(value, list):
        return value
    node = _link_target(graph, value)
    if node is None or depth > 6:
        return None
    inputs = node.get("inputs") or {}
    for key in ("seed", "noise_seed", "value", "int", "sampler_name"):
        if key in inputs:
            return _resolve_scalar(graph, inputs[key], depth + 1)
    return None


def parse_comfyui(prompt: Any, workflow: Any) -> dict[str, Any] | None:
    """Extract generation parameters from ComfyUI's ``prompt`` / ``workflow`` JSON.

    Args:
        prompt: Parsed API graph (``{node_id: {"class_type", "inputs"}}``) or None.
        workflow: Parsed UI graph (``{"nodes": [...]}``) or None.

    Returns:
        Parsed fields (possibly empty), or ``None`` when neither is a ComfyUI graph.
    """
    is_prompt = isinstance(prompt, dict) and any(
        isinstance(v, dict) and "class_type" in v for v in list(prompt.values())[:5000]
    )
    is_workflow = isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list)
    if not (is_prompt or is_workflow):
        return None
    out: dict[str, Any] = {"n_nodes": len(prompt) if is_prompt else len(workflow["nodes"])}
    if is_prompt:
        graph = {str(k): v for k, v in prompt.items() if isinstance(v, dict)}
        for node in graph.values():
            cls = str(node.get("class_type", ""))
            inputs = node.get("inputs") or {}
            if not isinstance(inputs, dict):
                continue
            if "ckpt_name" in inputs and "model" not in out:
                out["model"] = inputs.get("ckpt_name")
            elif "unet_name" in inputs and "model" not in out:
                out["model"] = inputs.get("unet_name")
            if any(s in cls for s in _SAMPLER_CLASSES) and "sampler" not in out and (
                "seed" in inputs or "noise_seed" in inputs or "sampler_name" in inputs
            ):
                out["sampler"] = _resolve_scalar(graph, inputs.get("sampler_name"))
                out["seed"] = _resolve_scalar(graph, inputs.get("seed", inputs.get("noise_seed")))
                out["steps"] = inputs.get("steps") if not isinstance(inputs.get("steps"), list) else None
                out["cfg"] = inputs.get("cfg") if not isinstance(inputs.get("cfg"), list) else None
                out["prompt"] = _resolve_text(graph, inputs.get("positive"))
                out["negative_prompt"] = _resolve_text(graph, inputs.get("negative"))
        if not out.get("prompt"):
            for node in graph.values():
                if "CLIPTextEncode" in str(node.get("class_type", "")):
                    t = (node.get("inputs") or {}).get("text")
                    if isinstance(t, str):
                        out["prompt"] = t
                        break
    if is_workflow and not (out.get("prompt") and out.get("seed") is not None):
        for node in workflow["nodes"][:5000]:
            if not isinstance(node, dict):
                continue
            typ = str(node.get("type", ""))
            wv = node.get("widgets_values")
            if not isinstance(wv, list) or not wv:
                continue
            if "CLIPTextEncode" in typ and not out.get("prompt") and isinstance(wv[0], str):
                out["prompt"] = wv[0]
            elif typ in ("KSampler", "KSamplerAdvanced") and out.get("seed") is None:
                vals = wv[1:] if typ == "KSamplerAdvanced" else wv
                if len(vals) >= 5:
                    out["seed"], out["steps"], out["cfg"], out["sampler"] = vals[0], vals[2], vals[3], vals[4]
            elif "CheckpointLoader" in typ and not out.get("model") and isinstance(wv[0], str):
                out["model"] = wv[0]
    return out


# --------------------------------------------------------------------------- InvokeAI / NovelAI


def _invoke_prompt(p: Any) -> str | None:
    if isinstance(p, str):
        return p
    if isinstance(p, list):
        parts = [str(x.get("prompt")) for x in p if isinstance(x, dict) and x.get("prompt")]
        return " ".join(parts) if parts else None
    return None


def _parse_invokeai_metadata(d: dict[str, Any]) -> dict[str, Any]:
    model = d.get("model")
    name = hash_ = None
    if isinstance(model, dict):
        name = model.get("name") or model.get("model_name")
        hash_ = model.get("hash")
    elif isinstance(model, str):
        name = model
    return {
        "prompt": d.get("positive_prompt"),
        "negative_prompt": d.get("negative_prompt"),
        "seed": d.get("seed"),
        "sampler": d.get("scheduler"),
        "steps": d.get("steps"),
        "cfg": d.get("cfg_scale"),
        "model": name,
        "model_hash": hash_,
        "version": d.get("app_version"),
    }


def _parse_sd_metadata(d: dict[str, Any]) -> dict[str, Any]:
    img = d.get("image")
    if not isinstance(img, dict):
        imgs = d.get("images")
        img = imgs[0] if isinstance(imgs, list) and imgs and isinstance(imgs[0], dict) else {}
    return {
        "prompt": _invoke_prompt(img.get("prompt")),
        "seed": img.get("seed"),
        "sampler": img.get("sampler"),
        "steps": img.get("steps"),
        "cfg": img.get("cfg_scale"),
        "model": d.get("model_weights") or d.get("model_id") or d.get("model"),
        "model_hash": d.get("model_hash"),
        "version": d.get("app_version"),
        "app_id": d.get("app_id"),
    }


def _parse_dream(text: str) -> dict[str, Any] | None:
    m = re.match(r'\s*"((?:[^"\\]|\\.){0,20000})"(.{0,4096})', text, re.S)
    if not m:
        return None
    opts = m.group(2)
    if not re.search(r"\s-[sSWHCA]\s", opts + " "):
        return None

    def opt(flag: str) -> str | None:
        mm = re.search(r"(?:^|\s)-" + flag + r"\s+(\S+)", opts)
        return mm.group(1) if mm else None

    seed = opt("S")
    return {
        "prompt": m.group(1),
        "seed": int(seed) if seed and seed.isdigit() else seed,
        "steps": opt("s"),
        "cfg": opt("C"),
        "sampler": opt("A"),
    }


# --------------------------------------------------------------------------- field collection


def _decode_user_comment(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)):
        return None
    raw = bytes(raw[: 2 * MAX_JSON_CHARS])
    head, body = raw[:8], raw[8:]
    if head.startswith(b"UNICODE"):
        be = body.decode("utf-16-be", "replace")
        le = body.decode("utf-16-le", "replace")

        def printable(s: str) -> int:
            return sum(1 for c in s[:2000] if c.isprintable() or c in "\n\r\t")

        return be if printable(be) >= printable(le) else le
    if head.startswith(b"ASCII") or head == b"\x00" * 8:
        return body.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def collect_text_fields(image: LoadedImage) -> list[tuple[str, str, str]]:
    """All text fields that may hold generator metadata: ``(where, key, text)``.

    PNG text chunks are read from the raw bytes (all of them, including those
    after the image data); EXIF strings and ``UserComment`` from the raw EXIF;
    JPEG ``COM`` segments from the JPEG markers.
    """
    fields: list[tuple[str, str, str]] = []
    data = image.data
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        for key, text, ctype in png_text_store(image).read().fields:
            fields.append((f"PNG {ctype} '{truncate(key, 80)}'", key, text))
    if data.startswith(b"\xff\xd8"):
        for marker, payload in jpeg_segments(data):
            if marker == 0xFE:
                fields.append(("JPEG comment", "Comment", bytes(payload).decode("utf-8", "replace")))
    if image.exif:
        fields.extend(exif_text_fields(image.exif))
    fields.extend(_xmp_creator_tools(image))
    return fields


def _xmp_creator_tools(image: LoadedImage) -> list[tuple[str, str, str]]:
    """XMP ``CreatorTool`` values; those read by the regex fallback say so in ``where``."""
    from detectors.provenance.xmp import extract_xmp_packets, parse_xmp

    out: list[tuple[str, str, str]] = []
    store = png_text_store(image) if image.data.startswith(b"\x89PNG\r\n\x1a\n") else None
    for loc, packet in extract_xmp_packets(image.data, image.format, png_text=store):
        got, method = parse_xmp(packet)
        for v in got.get("CreatorTool", [])[:4]:
            out.append((f"XMP CreatorTool ({loc}{', regex fallback' if method != 'xml' else ''})", "CreatorTool", v))
    return out


def exif_text_fields(raw: bytes) -> list[tuple[str, str, str]]:
    """EXIF text fields that may name a generator: ``(where, key, text)`` for ImageDescription, Make, Model,
    Software, Artist and UserComment."""
    from PIL import Image

    out: list[tuple[str, str, str]] = []
    try:
        exif = Image.Exif()
        exif.load(raw)
    except Exception:  # noqa: BLE001 - malformed EXIF is common in hostile files
        return out
    names = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x013B: "Artist"}
    for tag, name in names.items():
        v = exif.get(tag)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if isinstance(v, str) and v.strip():
            out.append((f"EXIF {name}", name, v))
    try:
        sub = exif.get_ifd(0x8769)
    except Exception:  # noqa: BLE001
        sub = {}
    uc = _decode_user_comment(sub.get(0x9286)) if sub else None
    if uc and uc.strip("\x00 "):
        out.append(("EXIF UserComment", "UserComment", uc.strip("\x00")))
    return out


def read_stealth_pnginfo(data: bytes) -> str | None:
    """Read A1111 "stealth pnginfo" hidden in the alpha (or RGB) least-significant bits.

    Format: pixels read column by column; a 15-byte signature
    (``stealth_pnginfo``/``stealth_pngcomp`` in alpha, ``stealth_rgbinfo``/
    ``stealth_rgbcomp`` in RGB), a 32-bit payload length in bits, then the
    payload (gzip when ``comp``).
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > MAX_STEALTH_PIXELS or im.mode not in ("RGBA", "RGB"):
            return None
        arr = np.asarray(im)
    except Exception:  # noqa: BLE001
        return None
    streams = []
    if arr.shape[2] == 4:
        streams.append(("alpha", (arr[:, :, 3].T.reshape(-1) & 1), ("stealth_pnginfo", "stealth_pngcomp")))
    streams.append(("rgb", (arr[:, :, :3].transpose(1, 0, 2).reshape(-1) & 1), ("stealth_rgbinfo", "stealth_rgbcomp")))
    for _mode, bits, sigs in streams:
        if bits.size < 152:
            continue
        sig = np.packbits(bits[:120]).tobytes().decode("latin-1")
        if sig not in sigs:
            continue
        length = int("".join("1" if b else "0" for b in bits[120:152]), 2)
        length = min(length, bits.size - 152, MAX_STEALTH_BYTES * 8)
        payload = np.packbits(bits[152 : 152 + length]).tobytes()
        if sig.endswith("comp"):
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(payload)) as gz:
                    payload = gz.read(MAX_STEALTH_BYTES)
            except (OSError, EOFError):
                return None
        return payload.decode("utf-8", "replace")
    return None


def _may_have_stealth(image: LoadedImage) -> bool:
    """Cheap pre-check: RGBA images may hide it in alpha; others need the RGB signature."""
    if image.mode in ("RGBA", "PA", "LA"):
        return True
    px = image.pixels
    if px.shape[0] < 40 or not image.is_whole:
        return False
    first = np.clip(np.rint(px[:40, 0, :] * 255.0), 0, 255).astype(np.uint8).reshape(-1) & 1
    return np.packbits(first).tobytes() in (b"stealth_rgbinfo", b"stealth_rgbcomp")


# --------------------------------------------------------------------------- recognition


def find_generator_metadata(fields: list[tuple[str, str, str]]) -> list[GeneratorFinding]:
    """Recognise generator metadata among text fields.

    Args:
        fields: ``(where, key, text)`` triples from :func:`collect_text_fields`.

    Returns:
        Findings, most specific first.
    """
    by_key: dict[str, tuple[str, str]] = {}
    for where, key, text in fields:
        by_key.setdefault(key, (where, text))
        # ComfyUI's WebP/JPEG saver writes "prompt:{json}" / "workflow:{json}" EXIF strings.
        if where.startswith("EXIF") and text[:10].lower().startswith(("prompt:", "workflow:")):
            k, _, rest = text.partition(":")
            by_key.setdefault(k.lower(), (where, rest))
    findings: list[GeneratorFinding] = []

    def raw(*keys: str) -> dict[str, str]:
        return {k: truncate(by_key[k][1], MAX_EVIDENCE_CHARS) for k in keys if k in by_key}

    # ComfyUI
    if "prompt" in by_key or "workflow" in by_key:
        p = _json(by_key["prompt"][1]) if "prompt" in by_key else None
        w = _json(by_key["workflow"][1]) if "workflow" in by_key else None
        parsed = parse_comfyui(p, w)
        if parsed is not None:
            src = " and ".join(by_key[k][0] for k in ("prompt", "workflow") if k in by_key)
            findings.append(GeneratorFinding("ComfyUI", src, parsed, raw("prompt", "workflow")))
    # InvokeAI
    if "invokeai_metadata" in by_key:
        d = _json(by_key["invokeai_metadata"][1])
        if isinstance(d, dict):
            findings.append(GeneratorFinding("InvokeAI", by_key["invokeai_metadata"][0],
                                             _parse_invokeai_metadata(d), raw("invokeai_metadata", "invokeai_graph")))
    if "sd-metadata" in by_key:
        d = _json(by_key["sd-metadata"][1])
        if isinstance(d, dict):
            parsed = _parse_sd_metadata(d)
            app = str(d.get("app_id") or "")
            tool = "InvokeAI" if "invoke" in app.lower() else "InvokeAI (lstein/stable-diffusion)" \
                if "lstein" in app.lower() else "InvokeAI-compatible (sd-metadata)"
            findings.append(GeneratorFinding(tool, by_key["sd-metadata"][0], parsed, raw("sd-metadata", "Dream")))
    if "invokeai_graph" in by_key and not any(f.tool == "InvokeAI" for f in findings):
        if isinstance(_json(by_key["invokeai_graph"][1]), dict):
            findings.append(GeneratorFinding("InvokeAI", by_key["invokeai_graph"][0], {}, raw("invokeai_graph")))
    if "Dream" in by_key:
        parsed = _parse_dream(by_key["Dream"][1])
        if parsed is not None:
            findings.append(GeneratorFinding("InvokeAI (Dream)", by_key["Dream"][0], parsed, raw("Dream")))
    # NovelAI
    software = by_key.get("Software", ("", ""))[1].strip()
    if software.lower().startswith("novelai") or "Comment" in by_key and "NovelAI" in by_key.get("Source", ("", ""))[1]:
        c = _json(by_key["Comment"][1]) if "Comment" in by_key else None
        c = c if isinstance(c, dict) else {}
        source = by_key.get("Source", ("", ""))[1]
        mh = re.search(r"\b([0-9A-Fa-f]{8})\b", source)
        findings.append(
            GeneratorFinding(
                "NovelAI",
                by_key.get("Comment", by_key.get("Software"))[0],
                {
                    "prompt": c.get("prompt") or by_key.get("Description", ("", ""))[1] or None,
                    "negative_prompt": c.get("uc"),
                    "seed": c.get("seed"),
                    "sampler": c.get("sampler"),
                    "steps": c.get("steps"),
                    "cfg": c.get("scale"),
                    "model": source or None,
                    "model_hash": mh.group(1) if mh else None,
                },
                raw("Comment", "Description", "Source", "Software"),
            )
        )
    # A1111 / Forge / Fooocus: "parameters" (PNG), UserComment / comments (JPEG, WebP)
    for key in ("parameters", "UserComment", "Comment", "ImageDescription"):
        if key not in by_key:
            continue
        where, text = by_key[key]
        d = _json(text) if key == "parameters" else None
        if isinstance(d, dict) and ("fooocus_scheme" in by_key or "Fooocus" in str(d.get("version", ""))
                                    or "base_model" in d):
            findings.append(
                GeneratorFinding(
                    "Fooocus",
                    where,
                    {
                        "prompt": d.get("prompt"),
                        "negative_prompt": d.get("negative_prompt"),
                        "seed": d.get("seed"),
                        "sampler": d.get("sampler"),
                        "steps": d.get("steps"),
                        "cfg": d.get("guidance_scale"),
                        "model": d.get("base_model"),
                        "model_hash": d.get("base_model_hash"),
                        "version": d.get("version"),
                    },
                    raw(key, "fooocus_scheme"),
                )
            )
            continue
        parsed = parse_a1111(text)
        if parsed is not None:
            findings.append(GeneratorFinding(_a1111_tool(parsed), where, parsed, raw(key)))
    # Generator signatures (generator_signatures.json): BFL's EXIF, tool names in Software/CreatorTool...
    if not findings:
        findings.extend(_signature_findings(fields, by_key))
    return findings


def _signature_findings(fields: list[tuple[str, str, str]], by_key: dict[str, tuple[str, str]]) -> list[GeneratorFinding]:
    """One finding per tool whose signature matched; a match read by the XMP regex fallback is at most strong."""
    rules = {r.id: r for r in load_signature_table().rules}
    by_tool: dict[str, list[Any]] = {}
    for m in match_signatures(fields):
        by_tool.setdefault(m.tool, []).append(m)
    out = []
    for tool, matches in by_tool.items():
        strengths = [m.strength if "regex fallback" not in m.where else "strong" for m in matches]
        parsed: dict[str, Any] = {}
        for m in matches:
            rule = rules[m.rule]
            if rule.prompt_field and rule.prompt_field in by_key and "prompt" not in parsed:
                parsed["prompt"] = by_key[rule.prompt_field][1]
            if rule.model_field and rule.model_field in by_key and "model" not in parsed:
                parsed["model"] = by_key[rule.model_field][1]
        raw = {f"{m.where}": truncate(m.value, MAX_EVIDENCE_CHARS) for m in matches}
        finding = GeneratorFinding(tool, ", ".join(dict.fromkeys(m.where for m in matches)), parsed, raw,
                                   strength="proof" if "proof" in strengths else "strong")
        finding.signatures = [{"rule": m.rule, "strength": s, "where": m.where, "value": m.value}
                              for m, s in zip(matches, strengths)]
        out.append(finding)
    out.sort(key=lambda f: f.strength != "proof")
    return out


class GeneratorMetadataDetector(ProvenanceReader):
    """Finds and parses image-generator parameter metadata.

    Args:
        stealth: Also look for A1111 "stealth pnginfo" in PNG pixel LSBs.
    """

    name = "generator_metadata"
    version = VERSION

    def __init__(self, *, stealth: bool = True) -> None:
        self.stealth = stealth

    def _analyze(self, image: LoadedImage, t0: float) -> DetectorResult:
        res = self._read(image, t0)
        if image.data.startswith(b"\x89PNG\r\n\x1a\n"):
            return with_limits(res, png_text_store(image).read().notes)
        return res

    def _read(self, image: LoadedImage, t0: float) -> DetectorResult:
        fields = collect_text_fields(image)
        findings = find_generator_metadata(fields)
        if not findings and self.stealth and image.format == "PNG" and _may_have_stealth(image):
            hidden = read_stealth_pnginfo(image.data)
            if hidden:
                parsed = parse_a1111(hidden)
                findings.append(
                    GeneratorFinding(
                        _a1111_tool(parsed) if parsed else "Stable Diffusion web UI (stealth pnginfo)",
                        "PNG pixel LSBs (stealth pnginfo)",
                        parsed or {},
                        {"stealth_pnginfo": truncate(hidden)},
                    )
                )
        if not findings:
            return result(self.name, self.version, t0, status="not_applicable",
                          evidence={"summary": "no generator metadata"}, message="no generator metadata")
        main = findings[0]
        merged = dict(main.fields)
        for f in findings[1:]:
            for k, v in f.fields.items():
                if merged.get(k) in (None, "") and v not in (None, ""):
                    merged[k] = v
        raw_all: dict[str, str] = {}
        for f in findings:
            raw_all.update(f.raw)
        signatures = [sig for f in findings for sig in f.signatures]
        matched = signatures or [{"rule": m.rule, "strength": m.strength, "where": m.where, "value": m.value}
                                 for m in match_signatures(fields)]
        clean = _clean(merged)
        evidence: dict[str, Any] = {
            "tool": main.tool,
            "tools": list(dict.fromkeys(f.tool for f in findings)),
            "source": main.source,
            "prompt": clean.get("prompt"),
            "negative_prompt": clean.get("negative_prompt"),
            "sampler": clean.get("sampler"),
            "seed": clean.get("seed"),
            "steps": clean.get("steps"),
            "cfg": clean.get("cfg"),
            "model": clean.get("model"),
            "model_hash": clean.get("model_hash"),
            "raw": raw_all,
        }
        if matched:
            evidence["signatures"] = matched
            evidence["signature_table"] = load_signature_table().version
        bits = [f"seed {clean['seed']}" if clean.get("seed") is not None else "",
                f"sampler {clean['sampler']}" if clean.get("sampler") else ""]
        detail = ", ".join(b for b in bits if b)
        evidence["summary"] = truncate(f"{main.tool} generation metadata" + (f" ({detail})" if detail else ""), 200)
        strength = "proof" if any(f.strength == "proof" for f in findings) else "strong"
        if signatures:
            shown = "; ".join(f"{sig['where']} \u201c{truncate(sig['value'], 80)}\u201d" for sig in signatures[:4])
            expl = (
                f"The file's metadata carries the signature that {main.tool} writes into its images ({shown}). "
                "Such metadata can be removed or copied, but cameras never write it."
                if strength == "proof" else
                f"The file's metadata names an image generator, {main.tool} ({shown}); this is a strong hint that "
                "it was AI-generated, though the field can be edited."
            )
        else:  # a generator's own parameter block (always proof)
            expl = (
                f"The file carries the generation parameters that {main.tool} writes into its images "
                f"({main.source}"
                + (f"; prompt: \u201c{truncate(clean['prompt'], 120)}\u201d" if clean.get("prompt") else "")
                + "). Such metadata can be removed or copied, but real cameras never write it."
            )
        return result(self.name, self.version, t0, claim="ai_generated", strength=strength,
                      evidence=evidence, explanations=(expl,))


@register_detector("generator_metadata")
def _generator_metadata(**kwargs: Any) -> GeneratorMetadataDetector:
    return GeneratorMetadataDetector(**kwargs)
