"""Tests for the generator-metadata detector: PNGs carrying each generator's chunks, JPEG/WebP EXIF."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, features
from PIL.PngImagePlugin import PngInfo

from detectors import create_detector
from detectors.provenance.metadata import parse_a1111, parse_comfyui
from forensics.io import LoadedImage, load_image_bytes

A1111 = (
    "photo of a duck, (masterpiece:1.2)\nNegative prompt: monochrome, blurry\n"
    'Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567890, Size: 512x512, '
    'Model hash: c0d1994c73, Model: realisticVision_v20, Lora hashes: "a: 1, b: 2", Version: v1.7.0'
)
FORGE = A1111.replace("Version: v1.7.0", "Version: f0.0.17v1.8.0rc-latest-276-g29be1da7")

COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 280823642470253, "steps": 20, "cfg": 8.0,
                                               "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                                               "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                                               "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a glass bottle with a galaxy inside", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark, text", "clip": ["4", 1]}},
}
COMFY_WORKFLOW = {
    "last_node_id": 7,
    "nodes": [
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a glass bottle with a galaxy inside"]},
        {"id": 3, "type": "KSampler", "widgets_values": [99, "randomize", 25, 6.5, "dpmpp_2m", "karras", 1.0]},
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["v1-5-pruned-emaonly.ckpt"]},
    ],
}
INVOKE_META = {"generation_mode": "sdxl_txt2img", "positive_prompt": "oil painting of a harbour",
               "negative_prompt": "blurry", "seed": 3293022630, "steps": 30, "cfg_scale": 7.5,
               "scheduler": "euler", "model": {"name": "sdxl-base", "hash": "blake3:abcd"}, "app_version": "3.4.0"}
SD_META = {"model": "stable diffusion", "model_weights": "stable-diffusion-1.5", "model_hash": "cc6cb27103417325",
           "app_id": "invoke-ai/InvokeAI", "app_version": "2.3.0",
           "image": {"prompt": [{"prompt": "a red fox in snow", "weight": 1.0}], "seed": 42, "sampler": "k_lms",
                     "steps": 50, "cfg_scale": 7.5}}
DREAM = '"a red fox in snow" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms'
NOVELAI_COMMENT = {"prompt": "masterpiece, cat, space", "steps": 28, "sampler": "k_euler_ancestral",
                   "seed": 2253955223, "scale": 10.0, "uc": "lowres, bad anatomy"}


def base_image(mode: str = "RGB", size: int = 64) -> Image.Image:
    rng = np.random.default_rng(1)
    arr = (rng.random((size, size, 4)) * 255).astype(np.uint8)
    return Image.fromarray(arr, "RGBA").convert(mode)


def png(chunks: list[tuple[str, str, str]], mode: str = "RGB") -> bytes:
    """chunks: (kind, key, text) with kind tEXt / zTXt / iTXt."""
    info = PngInfo()
    for kind, key, text in chunks:
        if kind == "tEXt":
            info.add_text(key, text)
        elif kind == "zTXt":
            info.add_text(key, text, zip=True)
        else:
            info.add_itxt(key, text)
    buf = io.BytesIO()
    base_image(mode).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def analyze(data: bytes):
    return create_detector("generator_metadata").analyze(load_image_bytes(data))


def check(res, tool_part: str, **expected):
    assert res.status == "ok", res.message
    assert res.claim == "ai_generated" and res.strength == "proof"
    assert tool_part in res.evidence["tool"], res.evidence["tool"]
    for k, v in expected.items():
        assert res.evidence[k] == v, (k, res.evidence[k])
    assert res.evidence["summary"] and res.explanations
    assert res.score is None
    json.dumps(res.to_dict())


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt"])
def test_a1111_parameters_in_every_text_chunk_kind(kind):
    res = analyze(png([(kind, "parameters", A1111)]))
    check(res, "AUTOMATIC1111", seed=1234567890, sampler="DPM++ 2M Karras", model_hash="c0d1994c73",
          model="realisticVision_v20", prompt="photo of a duck, (masterpiece:1.2)",
          negative_prompt="monochrome, blurry")
    assert res.evidence["raw"]["parameters"] == A1111


def test_forge_is_named():
    check(analyze(png([("tEXt", "parameters", FORGE)])), "Forge", seed=1234567890)


def test_comfyui_prompt_and_workflow():
    res = analyze(png([("tEXt", "prompt", json.dumps(COMFY_PROMPT)), ("tEXt", "workflow", json.dumps(COMFY_WORKFLOW))]))
    check(res, "ComfyUI", seed=280823642470253, sampler="euler", prompt="a glass bottle with a galaxy inside",
          negative_prompt="watermark, text", model="sd_xl_base_1.0.safetensors")
    assert set(res.evidence["raw"]) == {"prompt", "workflow"}


def test_comfyui_workflow_only():
    res = analyze(png([("tEXt", "workflow", json.dumps(COMFY_WORKFLOW))]))
    check(res, "ComfyUI", seed=99, sampler="dpmpp_2m", prompt="a glass bottle with a galaxy inside",
          model="v1-5-pruned-emaonly.ckpt")


def test_invokeai_metadata_sd_metadata_and_dream():
    check(analyze(png([("tEXt", "invokeai_metadata", json.dumps(INVOKE_META))])), "InvokeAI",
          seed=3293022630, sampler="euler", prompt="oil painting of a harbour", model="sdxl-base",
          model_hash="blake3:abcd")
    check(analyze(png([("tEXt", "sd-metadata", json.dumps(SD_META)), ("tEXt", "Dream", DREAM)])), "InvokeAI",
          seed=42, sampler="k_lms", prompt="a red fox in snow", model_hash="cc6cb27103417325")
    check(analyze(png([("tEXt", "Dream", DREAM)])), "InvokeAI", seed=42, sampler="k_lms", prompt="a red fox in snow")


def test_novelai():
    res = analyze(png([("tEXt", "Title", "AI generated image"), ("tEXt", "Description", "masterpiece, cat, space"),
                       ("tEXt", "Software", "NovelAI"), ("tEXt", "Source", "Stable Diffusion 1D44365E"),
                       ("tEXt", "Comment", json.dumps(NOVELAI_COMMENT))]))
    check(res, "NovelAI", seed=2253955223, sampler="k_euler_ancestral", prompt="masterpiece, cat, space",
          model_hash="1D44365E")


def test_fooocus_json_parameters():
    params = {"prompt": "a lighthouse", "negative_prompt": "", "seed": "6952411511246973023",
              "sampler": "dpmpp_2m_sde_gpu", "base_model": "juggernautXL_v8", "base_model_hash": "aeb7e9e689",
              "version": "Fooocus v2.3.1"}
    res = analyze(png([("tEXt", "parameters", json.dumps(params)), ("tEXt", "fooocus_scheme", "fooocus")]))
    check(res, "Fooocus", sampler="dpmpp_2m_sde_gpu", model_hash="aeb7e9e689", prompt="a lighthouse")


def _exif_usercomment(text: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode("utf-16-be")
    return exif.tobytes()


def test_a1111_in_jpeg_exif_usercomment():
    buf = io.BytesIO()
    base_image().save(buf, "JPEG", exif=_exif_usercomment(A1111))
    check(analyze(buf.getvalue()), "AUTOMATIC1111", seed=1234567890, model_hash="c0d1994c73")


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_a1111_in_webp_exif_and_comfyui_webp_exif_strings():
    buf = io.BytesIO()
    base_image().save(buf, "WEBP", exif=_exif_usercomment(A1111), lossless=True)
    check(analyze(buf.getvalue()), "AUTOMATIC1111", seed=1234567890)

    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(COMFY_PROMPT)
    exif[0x010F] = "workflow:" + json.dumps(COMFY_WORKFLOW)
    buf = io.BytesIO()
    base_image().save(buf, "WEBP", exif=exif.tobytes(), lossless=True)
    res = analyze(buf.getvalue())
    check(res, "ComfyUI", seed=280823642470253)
    exif_res = create_detector("exif").analyze(load_image_bytes(buf.getvalue()))
    assert exif_res.claim != "camera"  # a JSON payload in Make/Model is not a camera


def test_chunk_after_image_data_is_read():
    data = png([])
    body = b"parameters\x00" + A1111.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    iend = data.rfind(b"IEND") - 4
    check(analyze(data[:iend] + chunk + data[iend:]), "AUTOMATIC1111", seed=1234567890)


def _stealth_png(text: str, compressed: bool) -> bytes:
    payload = gzip.compress(text.encode()) if compressed else text.encode()
    sig = b"stealth_pngcomp" if compressed else b"stealth_pnginfo"
    bits = np.unpackbits(np.frombuffer(sig + struct.pack(">I", len(payload) * 8) + payload, np.uint8))
    im = base_image("RGBA", 128)
    arr = np.array(im)
    alpha = arr[:, :, 3].T.copy().reshape(-1)  # column-major order
    alpha[: bits.size] = (alpha[: bits.size] & 0xFE) | bits
    arr[:, :, 3] = alpha.reshape(arr.shape[1], arr.shape[0]).T
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
def test_stealth_pnginfo_in_alpha(compressed):
    res = analyze(_stealth_png(A1111, compressed))
    check(res, "AUTOMATIC1111", seed=1234567890)
    assert res.evidence["source"].startswith("PNG pixel LSBs")


def test_plain_png_and_unrelated_text_are_not_applicable():
    res = analyze(png([("tEXt", "Software", "GIMP 2.10"), ("tEXt", "prompt", "not json"),
                       ("tEXt", "parameters", "just a caption")]))
    assert res.status == "not_applicable" and res.claim == "none"


def test_generator_software_name_alone_is_strong():
    res = analyze(png([("tEXt", "Software", "Midjourney v6")]))
    assert res.status == "ok" and res.claim == "ai_generated" and res.strength == "strong"


def _raw_png_with_chunk(ctype: bytes, body: bytes) -> LoadedImage:
    data = png([])
    chunk = struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
    data = data[:33] + chunk + data[33:]
    base = load_image_bytes(png([]))
    # Pillow itself refuses >1 MB compressed text chunks; analyse the bytes directly.
    return LoadedImage(path=None, data=data, sha256=hashlib.sha256(data).hexdigest(), format="PNG", mode="RGB",
                       width=base.width, height=base.height, n_frames=1, regions=base.regions)


def test_compressed_text_bomb_is_capped():
    bomb = zlib.compress(b'{"3": {"class_type": "KSampler", "inputs": {"seed": 1}}, "pad": "' + b"A" * 200_000_000)
    t0 = time.perf_counter()
    res = create_detector("generator_metadata").analyze(_raw_png_with_chunk(b"zTXt", b"prompt\x00\x00" + bomb))
    assert time.perf_counter() - t0 < 20
    assert res.status in ("ok", "not_applicable")  # JSON cut at the cap is not parsed; no crash, no blow-up


def test_huge_workflow_is_truncated_in_evidence():
    wf = dict(COMFY_WORKFLOW)
    wf["extra"] = "x" * 3_000_000
    res = analyze(png([("tEXt", "prompt", json.dumps(COMFY_PROMPT)), ("tEXt", "workflow", json.dumps(wf))]))
    check(res, "ComfyUI", seed=280823642470253)
    assert len(res.evidence["raw"]["workflow"]) < 5000
    assert len(json.dumps(res.to_dict())) < 20_000


def test_parsers_directly():
    p = parse_a1111(A1111)
    assert p["_params"]["Lora hashes"] == "a: 1, b: 2"
    assert parse_a1111("a caption without parameters") is None
    assert parse_comfyui({"1": {"nope": 1}}, None) is None
    assert parse_comfyui(None, {"nodes": []}) == {"n_nodes": 0}
