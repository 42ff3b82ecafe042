"""The CNN's per-crop heatmap (cli.crop_map): box placement on the thumbnail, colours, legend, checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from _helpers import encode
from cli.crop_map import COOL_WARM, LEGEND_HEIGHT, cnn_crop_map, crop_heatmap, diverging_colours, max_crop_text


def _grey(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 128, dtype=np.uint8)


def _red(a: np.ndarray) -> np.ndarray:
    a = a.astype(int)
    return (a[..., 0] - a[..., 2] > 40) & (a[..., 0] - a[..., 1] > 30)


def _blue(a: np.ndarray) -> np.ndarray:
    a = a.astype(int)
    return a[..., 2] - a[..., 0] > 40


def test_colour_map_runs_blue_grey_red() -> None:
    c = diverging_colours(np.array([0.0, 0.5, 1.0]))
    assert c.dtype == np.uint8 and c.shape == (3, 3)
    assert (c[0] == COOL_WARM[0]).all() and (c[1] == (221, 221, 221)).all() and (c[2] == COOL_WARM[-1]).all()
    assert _blue(c[:1]).all() and _red(c[2:]).all()
    with pytest.raises(ValueError, match="1.5"):
        diverging_colours(np.array([0.2, 1.5]))


def test_one_ai_crop_is_red_inside_its_box_and_nowhere_else() -> None:
    thumb = _grey(192, 256)  # a 1024x768 image at 1/4
    out = crop_heatmap(thumb, [(256, 512, 128)], [0.99], image_size=(1024, 768))
    assert out.dtype == np.uint8 and out.shape == (192 + LEGEND_HEIGHT, 256, 3)
    img = out[:192]
    inside = np.zeros((192, 256), dtype=bool)
    inside[64:96, 128:160] = True  # rows 256/4..384/4, cols 512/4..640/4
    assert _red(img[inside]).all()
    assert not _red(img[~inside]).any() and (img[~inside] == 128).all()
    # the legend below runs from blue (left) to red (right)
    bar = out[192 + 8]
    assert _blue(bar[8:12]).all() and _red(bar[-12:-8]).all()


def test_real_crops_are_blue_and_the_higher_score_wins_an_overlap() -> None:
    thumb = _grey(100, 100)
    boxes = [(0, 0, 60), (40, 40, 60)]  # overlapping on rows/cols 40-60
    for probs in ([0.02, 0.97], [0.97, 0.02]):
        out = crop_heatmap(thumb, boxes, probs, image_size=(100, 100))[:100]
        ai, real = (1, 0) if probs[1] > probs[0] else (0, 1)
        (ta, la, sa), (tr, lr, sr) = boxes[ai], boxes[real]
        assert _red(out[ta : ta + sa, la : la + sa]).all()
        only_real = np.zeros((100, 100), dtype=bool)
        only_real[tr : tr + sr, lr : lr + sr] = True
        only_real[ta : ta + sa, la : la + sa] = False
        assert _blue(out[only_real]).all()


def test_highlighted_box_has_a_thicker_outline() -> None:
    thumb = _grey(64, 64)
    thin = crop_heatmap(thumb, [(16, 16, 32)], [0.9], image_size=(64, 64), alpha=0.0)[:64]
    thick = crop_heatmap(thumb, [(16, 16, 32)], [0.9], image_size=(64, 64), alpha=0.0, highlight=0)[:64]
    assert (thin[16, 16:48] != 128).all() and (thin[17, 18:46] == 128).all()
    assert (thick[17, 16:48] != 128).all() and (thick[18, 18:46] == 128).all()


def test_input_is_not_modified() -> None:
    thumb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    before = thumb.copy()
    boxes, probs = [(0, 0, 32), (16, 32, 32)], [0.1, 0.9]
    out = crop_heatmap(thumb, boxes, probs, image_size=(64, 48))
    assert (thumb == before).all() and boxes == [(0, 0, 32), (16, 32, 32)] and probs == [0.1, 0.9]
    assert out is not thumb and not np.shares_memory(out, thumb)


def test_no_crops_draws_the_thumbnail_and_the_legend() -> None:
    thumb = _grey(40, 80)
    out = crop_heatmap(thumb, [], [], image_size=(160, 80))
    assert out.shape == (40 + LEGEND_HEIGHT, 80, 3) and (out[:40] == thumb).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"thumbnail": np.zeros((8, 8, 3), np.float32)}, "float32"),
        ({"thumbnail": np.zeros((8, 8), np.uint8)}, r"\(8, 8\)"),
        ({"image_size": (0, 8)}, r"\(0, 8\)"),
        ({"image_size": (64, 16)}, "aspect"),  # a thumbnail of another image
        ({"boxes": [(0, 0, 4), (30, 30, 4)]}, "same length"),
        ({"probs": [1.5]}, "1.5"),
        ({"probs": [float("nan")]}, "nan"),
        ({"boxes": [(30, 30, 4)]}, r"\(30, 30, 4\)"),
        ({"boxes": [(-1, 0, 4)]}, r"\(-1, 0, 4\)"),
        ({"alpha": 2.0}, "alpha.*2.0"),
        ({"highlight": 1}, "highlight.*1"),
    ],
)
def test_bad_input_raises_naming_the_value(kwargs: dict, match: str) -> None:
    args = {"thumbnail": _grey(8, 8), "boxes": [(0, 0, 4)], "probs": [0.5], "image_size": (32, 32)} | kwargs
    with pytest.raises(ValueError, match=match):
        crop_heatmap(args.pop("thumbnail"), args.pop("boxes"), args.pop("probs"), **args)


# ----------------------------------------------------------------------------- with the real loader and detector


class _BrightnessNet:
    """A stand-in CNN whose logit rises with a crop's mean brightness."""

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(()))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return 16.0 * (x.mean(dim=(1, 2, 3)) - 0.55) + 0 * self.w

        return Net()


@pytest.mark.parametrize("huge", [False, True])
def test_the_ai_crop_lands_on_its_place_in_the_real_thumbnail(huge: bool) -> None:
    """A bright patch in a dark 900x600 photo: the CNN's max crop is there, and so is the red on the thumbnail.

    ``huge`` loads the image as full-resolution tiles (regions with origins), as a >16 MP image is.
    """
    pytest.importorskip("timm")
    from detectors.cnn import CNNDetector, tiny_model_config
    from forensics.io import load_image_bytes

    rng = np.random.default_rng(1)
    arr = np.clip(0.3 + 0.01 * rng.standard_normal((600, 900, 3)), 0, 1)
    top, left = 536, 836  # the patch, 64 px, at the bottom right: on the crop grid of the whole image and of its last tile
    arr[top : top + 64, left : left + 64] = np.clip(0.8 + 0.15 * rng.standard_normal((64, 64, 3)), 0, 1)
    data = encode(Image.fromarray((arr * 255).round().astype(np.uint8)), "PNG")
    opts = {"max_full_pixels": 100_000, "region_size": 256} if huge else {}
    img = load_image_bytes(data, path="x.png", thumbnail_size=256, **opts)
    assert img.is_whole is not huge and img.thumbnail.shape == (171, 256, 3)
    det = CNNDetector(model=_BrightnessNet.build(), config=tiny_model_config())
    ev = det.analyze(img).evidence
    assert ev["crops_in_image"][ev["max_crop_index"]] == [top, left]
    if huge:  # found in a tile that does not start at the image's corner: its origin was added
        region = ev["crops"][ev["max_crop_index"]][0]
        assert img.region_origin(region) != (0, 0) and ev["crops"][ev["max_crop_index"]][1:] != [top, left]
    out = cnn_crop_map(ev, img.thumbnail, image_size=(img.width, img.height))
    assert out is not None and out.shape == (171 + LEGEND_HEIGHT, 256, 3)
    red = _red(out[:171])
    sy, sx = 171 / 600, 256 / 900
    ys, xs = np.nonzero(red)
    assert red.sum() > 0.8 * (64 * sy) * (64 * sx)
    assert ys.min() >= np.floor(top * sy) and ys.max() < np.ceil((top + 64) * sy)
    assert xs.min() >= np.floor(left * sx) and xs.max() < np.ceil((left + 64) * sx)


def test_cnn_crop_map_needs_a_thumbnail_and_placed_crops() -> None:
    ev = {"crop_logits": [2.0], "crops_in_image": [[0, 0]], "crop_size": 16, "max_crop_index": 0}
    assert cnn_crop_map(ev, _grey(32, 32), image_size=(32, 32)) is not None
    assert cnn_crop_map(ev, None, image_size=(32, 32)) is None
    assert cnn_crop_map({k: v for k, v in ev.items() if k != "crops_in_image"}, _grey(32, 32), image_size=(32, 32)) is None
    with pytest.raises(ValueError, match="not inside"):
        cnn_crop_map({**ev, "crops_in_image": [[20, 20]]}, _grey(32, 32), image_size=(32, 32))


def test_max_crop_text() -> None:
    ev = {
        "crop_size": 96, "n_crops": 8, "aggregation": "mean", "crops": [[0, 0, 0]] * 2 + [[0, 32, 160]] + [[0, 0, 0]] * 5,
        "crops_in_image": [[0, 0]] * 2 + [[32, 160]] + [[0, 0]] * 5,
        "max_crop_index": 2, "max_crop_logit": 3.9312, "max_crop_p": 0.980752,
    }  # fmt: skip
    assert max_crop_text(ev) == (
        "Most AI-leaning crop: 3 of 8, P(AI) 0.981 (logit +3.93), at x 160-256, y 32-128 px; the score is the mean of all 8 crops."
    )
    no_place = {k: v for k, v in ev.items() if k != "crops_in_image"}
    assert "at x 160-256, y 32-128 px of region 0;" in max_crop_text(no_place)
    assert "P(AI) 0.999990" in max_crop_text({**ev, "max_crop_p": 0.99999})
    assert "P(AI) > 0.999999" in max_crop_text({**ev, "max_crop_p": 1.0})
    for bad in ({}, {**ev, "max_crop_index": 8}, {**ev, "max_crop_p": "0.9"}, {**ev, "max_crop_logit": float("inf")}):
        assert max_crop_text(bad) is None


def test_zed_crop_map_reads_the_coders_per_crop_surprise() -> None:
    from cli.crop_map import zed_crop_map
    from detectors.zeroshot import SURPRISE_SCALE, crop_surprise

    ev = {"crop_size": 32, "crops_in_image": [[0, 0], [64, 64]], "crop_delta": [[-1.0, 0.2, 0.1], [1.0, 0.0, 0.0]]}
    crops = crop_surprise(ev)
    assert [c.p > 0.5 for c in crops] == [True, False]  # cheaper than expected: more predictable
    assert crops[0].logit == pytest.approx(1.0 / SURPRISE_SCALE)
    assert crop_surprise({"crop_size": 32, "crops_in_image": [[0, 0]], "crop_delta": []}) == ()
    assert crop_surprise({"crop_size": 32, "crops_in_image": [[0, 0]], "crop_delta": [["x"]]}) == ()
    thumb = np.full((48, 48, 3), 128, dtype=np.uint8)
    out = zed_crop_map(ev, thumb, image_size=(96, 96))
    assert out is not None and out.dtype == np.uint8 and out.shape[1] == 48
    top_left, bottom_right = out[4, 4].astype(int), out[40, 40].astype(int)
    assert top_left[0] > top_left[2] and bottom_right[2] > bottom_right[0]  # red where predictable, blue where costly
    assert zed_crop_map(ev, None, image_size=(96, 96)) is None
