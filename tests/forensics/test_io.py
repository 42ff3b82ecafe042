from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _helpers import encode, png_with_ihdr, textured
from forensics.io import ImageLoadError, load_image, load_image_bytes, to_float_rgb


def _check_rgb(arr: np.ndarray, h: int, w: int) -> None:
    assert arr.dtype == np.float32
    assert arr.shape == (h, w, 3)
    assert 0.0 <= arr.min() and arr.max() <= 1.0


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_to_float_rgb_every_mode(mode: str) -> None:
    base = Image.fromarray(textured(32, 48))
    if mode == "I;16":
        im = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
        assert im.mode.startswith("I;16")
    elif mode == "F":
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0)
    else:
        im = base.convert(mode)
    _check_rgb(to_float_rgb(im), 32, 48)


def test_i16_scaled_by_full_range() -> None:
    im = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert np.allclose(to_float_rgb(im), 1.0)


def test_input_image_not_modified() -> None:
    im = Image.fromarray(textured(16, 16))
    before = np.asarray(im).copy()
    to_float_rgb(im)
    assert np.array_equal(np.asarray(im), before)


@pytest.mark.parametrize(
    "fmt,mode,kw",
    [
        ("PNG", "RGB", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "LA", {}),
        ("PNG", "P", {}),
        ("PNG", "L", {}),
        ("JPEG", "RGB", {"quality": 90}),
        ("JPEG", "L", {"quality": 90}),
        ("JPEG", "CMYK", {"quality": 90}),
        ("TIFF", "RGB", {}),
        ("WEBP", "RGB", {"quality": 90}),
        ("BMP", "RGB", {}),
        ("GIF", "P", {}),
    ],
)
def test_load_formats_and_modes(fmt: str, mode: str, kw: dict) -> None:
    data = encode(Image.fromarray(textured(40, 60)).convert(mode), fmt, **kw)
    img = load_image_bytes(data, path="x")
    assert img.format == fmt
    assert img.mode == mode
    assert (img.width, img.height) == (60, 40)
    _check_rgb(img.pixels, 40, 60)
    assert img.data == data
    if mode == "CMYK":
        assert "cmyk" in {f.code for f in img.quality_flags}


def test_load_16bit_png_and_tiff() -> None:
    arr = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    for fmt in ("PNG", "TIFF"):
        img = load_image_bytes(encode(Image.fromarray(arr), fmt), path="x")
        _check_rgb(img.pixels, 64, 64)
        assert img.pixels.max() > 0.9  # full 16-bit range used
        assert "high_bit_depth" in {f.code for f in img.quality_flags}


def test_heic_roundtrip() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    try:
        data = encode(Image.fromarray(textured(64, 64)), "HEIF", quality=90)
    except Exception as exc:  # pragma: no cover - encoder missing in this libheif build
        pytest.skip(f"no HEIF encoder: {exc}")
    img = load_image_bytes(data, path="x.heic")
    assert img.format in ("HEIF", "HEIC")
    _check_rgb(img.pixels, 64, 64)


def test_avif_roundtrip() -> None:
    try:
        data = encode(Image.fromarray(textured(64, 64)), "AVIF", quality=90)
    except Exception as exc:  # pragma: no cover - no AVIF encoder in this Pillow build
        pytest.skip(f"no AVIF encoder: {exc}")
    img = load_image_bytes(data, path="x.avif")
    assert img.format in ("AVIF", "HEIF")
    _check_rgb(img.pixels, 64, 64)


def test_exif_orientation_applied() -> None:
    im = Image.fromarray(textured(40, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img = load_image_bytes(encode(im, "JPEG", exif=exif.tobytes()), path="x")
    assert (img.width, img.height) == (40, 60)
    assert img.pixels.shape == (60, 40, 3)
    assert img.exif is not None


def test_animated_gif_first_frame_flagged() -> None:
    frames = [Image.fromarray(textured(32, 32, seed=i)).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = load_image_bytes(buf.getvalue(), path="anim.gif")
    assert img.n_frames == 3
    assert "animated" in {f.code for f in img.quality_flags}


def test_one_pixel_image_loads() -> None:
    img = load_image_bytes(encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), path="x")
    assert img.pixels.shape == (1, 1, 3)


@pytest.mark.parametrize(
    "data,code",
    [
        (b"", "empty"),
        (b"this is not an image at all" * 10, "not_image"),
    ],
)
def test_bad_bytes_raise_named_error(data: bytes, code: str) -> None:
    with pytest.raises(ImageLoadError) as ei:
        load_image_bytes(data, path="bad.jpg")
    assert ei.value.code == code
    assert "bad.jpg" in str(ei.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(fmt: str) -> None:
    data = encode(Image.fromarray(textured(128, 128)), fmt)
    with pytest.raises(ImageLoadError) as ei:
        load_image_bytes(data[: len(data) // 2], path=f"cut.{fmt.lower()}")
    assert ei.value.code in ("truncated", "decode_error")
    assert f"cut.{fmt.lower()}" in str(ei.value)


def test_decompression_bomb_refused_before_decoding() -> None:
    with pytest.raises(ImageLoadError) as ei:
        load_image_bytes(png_with_ihdr(100_000, 100_000), path="bomb.png")
    assert ei.value.code == "too_large"
    assert "100000x100000" in str(ei.value)


def test_huge_image_analysed_on_full_resolution_regions() -> None:
    arr = textured(600, 900)
    img = load_image_bytes(encode(Image.fromarray(arr), "PNG"), path="x", max_full_pixels=100_000, region_size=256)
    assert not img.is_whole
    assert 1 < len(img.regions) <= 9
    for r in img.regions:
        assert r.shape[:2] == (256, 256)
    # regions are exact crops: no resampling
    r0 = img.regions[0]
    assert np.allclose(r0 * 255, arr[: r0.shape[0], : r0.shape[1]], atol=0.5)
    assert "huge_image_tiled" in {f.code for f in img.quality_flags}


def test_region_origins_place_each_region_in_the_image() -> None:
    arr = textured(600, 900)
    img = load_image_bytes(encode(Image.fromarray(arr), "PNG"), path="x", max_full_pixels=100_000, region_size=256)
    assert len(img.region_origins) == len(img.regions)
    assert len(set(img.region_origins)) == len(img.regions)
    for i, r in enumerate(img.regions):
        top, left = img.region_origin(i)
        assert np.allclose(r * 255, arr[top : top + 256, left : left + 256], atol=0.5)
    assert img.region_origin(len(img.regions) - 1) == (600 - 256, 900 - 256)
    whole = load_image_bytes(encode(Image.fromarray(arr), "PNG"), path="x")
    assert whole.region_origins == ((0, 0),) and whole.region_origin(0) == (0, 0)
    with pytest.raises(ValueError, match="region index"):
        whole.region_origin(1)
    # built by hand, without origins: known only for a whole image
    assert replace(whole, region_origins=()).region_origin(0) == (0, 0)
    assert replace(img, region_origins=()).region_origin(0) is None


def test_load_image_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as ei:
        load_image(tmp_path / "missing.png")
    assert ei.value.code == "missing" and "missing.png" in str(ei.value)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.png"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageLoadError) as ei:
        load_image(tmp_path)
    assert ei.value.code == "not_file"


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        load_image_bytes(b"x", max_pixels=0)
    with pytest.raises(ValueError, match="thumbnail_size"):
        load_image_bytes(b"x", thumbnail_size=0)


def test_thumbnail() -> None:
    img = load_image_bytes(encode(Image.fromarray(textured(300, 500)), "PNG"), path="x", thumbnail_size=100)
    assert img.thumbnail is not None and img.thumbnail.dtype == np.uint8
    assert max(img.thumbnail.shape[:2]) == 100


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_file(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    p = tmp_path / "locked.png"
    p.write_bytes(encode(Image.new("RGB", (4, 4)), "PNG"))
    p.chmod(0)
    with pytest.raises(ImageLoadError) as ei:
        load_image(p)
    assert ei.value.code == "unreadable"


def test_png_with_huge_compressed_text_chunk_still_decodes() -> None:
    import struct
    import zlib

    png = encode(Image.fromarray(textured(64, 64)), "PNG")
    text = b"Comment\x00\x00" + zlib.compress(b"x" * (5 * 1024 * 1024))
    chunk = struct.pack(">I", len(text)) + b"zTXt" + text + struct.pack(">I", zlib.crc32(b"zTXt" + text) & 0xFFFFFFFF)
    i = png.rindex(b"IEND") - 4
    data = png[:i] + chunk + png[i:]
    img = load_image_bytes(data, path="big_text.png")
    _check_rgb(img.pixels, 64, 64)
    assert img.data == data  # provenance still sees the original bytes
    assert "oversized_metadata" in {f.code for f in img.quality_flags}


# --------------------------------------------------------------------------- #
# Hostile input v2 (issue 17): formats allow-list, memory budget, thumbnails,
# oversized ICC profiles, decoder warnings
# --------------------------------------------------------------------------- #


def _hostile():
    import importlib.util
    import sys

    if "hostile_memory" in sys.modules:
        return sys.modules["hostile_memory"]
    from _helpers import REPO

    spec = importlib.util.spec_from_file_location("hostile_memory", REPO / "benchmarks" / "hostile_memory.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hostile_memory", mod)
    spec.loader.exec_module(sys.modules["hostile_memory"])
    return sys.modules["hostile_memory"]


@pytest.mark.parametrize("name", ["eps_named.png", "psd_named.png", "jpeg2000_named.jpg", "ico_named.png", "pcx_named.png", "dds_named.png"])
def test_formats_outside_the_allow_list_are_unsupported_and_never_decoded(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {k.name: k for k in _hostile().build_kinds()}
    if name not in kinds:
        pytest.skip(f"this Pillow cannot write {name}")
    opened: list[str] = []
    real = Image.Image.load

    def spy(self):  # noqa: ANN001, ANN202
        opened.append(self.format)
        return real(self)

    monkeypatch.setattr(Image.Image, "load", spy)
    with pytest.raises(ImageLoadError) as ei:
        load_image_bytes(kinds[name].data, path=name)
    assert ei.value.code == "unsupported_format"
    assert name in str(ei.value) and "not analysed" in str(ei.value)
    assert opened == []  # no plugin of the other format decoded anything


def test_supported_formats_still_open() -> None:
    for fmt in ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"):
        img = load_image_bytes(encode(Image.fromarray(textured(40, 40)), fmt), path=f"x.{fmt.lower()}")
        assert img.format == fmt


def test_memory_budget_refuses_huge_headers_before_decoding() -> None:
    import resource

    h = _hostile()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageLoadError) as ei:
        load_image_bytes(h.jpeg_header(15800), path="big.jpg")
    assert ei.value.code == "too_large" and "memory budget" in str(ei.value) and "big.jpg" in str(ei.value)
    # the budget scales with the mode: a 15000^2 palette canvas (225 MB) fits the default budget, not a small one
    with pytest.raises(ImageLoadError) as ei:
        load_image_bytes(h.gif_canvas(15000), path="canvas.gif", max_decode_bytes=100 * 1024 * 1024)
    assert ei.value.code == "too_large"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: nothing was decoded
    with pytest.raises(ValueError, match="max_decode_bytes"):
        load_image_bytes(b"x", max_decode_bytes=0)


def test_thumbnail_of_a_huge_palette_canvas_is_bounded_in_a_real_process() -> None:
    """The 35-byte GIF at 15000x15000: the old thumbnail made a full-size float32 copy (+5.7 GB, 33 s)."""
    import subprocess
    import sys

    from _helpers import REPO

    code = (
        "import resource, sys, time\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "from hostile_memory import gif_canvas\n"
        "from forensics.io import load_image_bytes\n"
        "t = time.perf_counter()\n"
        "img = load_image_bytes(gif_canvas(15000), path='c.gif', thumbnail_size=256)\n"
        "print(img.thumbnail.shape, [f.code for f in img.quality_flags], time.perf_counter() - t,\n"
        # VmHWM, not ru_maxrss: across fork+exec Linux keeps the parent's high-water mark in
        # ru_maxrss, so under a large pytest process the child reported pytest's peak.
        "      int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    seconds, peak_kib = float(words[-2]), int(words[-1])
    assert "(256, 256, 3)" in out.stdout and "huge_image_tiled" in out.stdout
    assert peak_kib < 700 * 1024, f"peak {peak_kib / 1024:.0f} MiB"  # raster 225 MB + interpreter; was ~5.8 GB
    assert seconds < 20, seconds


@pytest.mark.parametrize("mode", ["P", "RGBA", "CMYK", "I;16", "LA", "1", "F"])
def test_make_thumbnail_every_mode_without_full_size_conversion(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensics import io as fio

    base = Image.fromarray(textured(300, 500))
    if mode == "I;16":
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    elif mode == "F":
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0)
    else:
        im = base.convert(mode)
    sizes: list[tuple[int, int]] = []
    real = fio.to_float_rgb
    monkeypatch.setattr(fio, "to_float_rgb", lambda x: (sizes.append(x.size), real(x))[1])
    t = fio.make_thumbnail(im, size=64)
    assert t.dtype == np.uint8 and t.shape == (38, 64, 3)
    assert max(max(s) for s in sizes) <= 2 * 64 * 2  # only a reduced image was converted
    if mode in ("P", "RGBA", "LA"):  # a thumbnail resembles its image
        ref = np.asarray(base.convert("L").resize((64, 38)), dtype=np.float32)
        assert abs(t.astype(np.float32).mean() - ref.mean()) < 25


def test_png_with_an_oversized_icc_profile_decodes_without_it() -> None:
    """Was ``internal_error`` with the message ``_TextTooLarge: ``."""
    data = _hostile().png_iccp(3 * 1024 * 1024)
    img = load_image_bytes(data, path="icc.png")
    _check_rgb(img.pixels, 64, 64)
    assert "oversized_icc_profile" in {f.code for f in img.quality_flags}
    assert img.data == data


def test_pillow_warnings_become_quality_flags_not_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        img = load_image_bytes(_hostile().tiff_bad_tag(), path="bad_tag.tif")
    flags = [f for f in img.quality_flags if f.code == "decoder_warning"]
    assert flags and "Tag data larger than file" in flags[0].message
    assert "Tag data" not in capfd.readouterr().err


def test_a_huge_image_is_held_once_in_memory_in_a_real_process(tmp_path: Path) -> None:
    """exif_transpose used to copy the whole raster even with nothing to rotate (2x the decode)."""
    import subprocess
    import sys

    from PIL import ImageDraw

    from _helpers import REPO

    w, h = 10000, 5000
    im = Image.new("RGB", (w, h), (120, 130, 140))
    draw = ImageDraw.Draw(im)
    for i in range(0, w, 250):
        draw.line([(i, 0), (w - i, h)], fill=(i % 255, 60, 200), width=5)
    path = tmp_path / "wide.jpg"
    im.save(path, quality=90)
    del im, draw
    code = (
        "import sys\n"
        "from forensics.io import load_image\n"
        "def hwm():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        "load_image(sys.argv[1].replace('wide', 'warm'))\n"
        "before = hwm()\n"
        "img = load_image(sys.argv[1], thumbnail_size=256)\n"
        "print(len(img.regions), hwm() - before)\n"
    )
    Image.fromarray(textured(64, 64)).save(tmp_path / "warm.jpg")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    n_regions, delta_kib = (int(x) for x in out.stdout.split())
    raster = w * h * 4  # Pillow keeps RGB as 4 bytes per pixel
    regions = n_regions * 1024 * 1024 * 3 * 4  # float32 RGB crops
    assert delta_kib * 1024 < raster + regions + 64 * 1024 * 1024, f"+{delta_kib / 1024:.0f} MiB for a {raster / 2**20:.0f} MiB raster"
