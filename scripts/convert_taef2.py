#!/usr/bin/env python
"""Convert the TAEF2 state dicts (pickled ``.pth``) once to ``generators/weights/taef2.safetensors``.

The ``.pth`` files are read with ``torch.load(..., weights_only=True)`` (no
code is unpickled), checked tensor by tensor against :class:`generators.taef2.TAEF2`,
and written unchanged (float16) as ``encoder.*`` / ``decoder.*`` tensors, with
the config, the upstream commit and the sources' sha256 in the file's metadata.

``--ablation`` instead measures how the choices that the tensor shapes leave
open change the round trip's PSNR (median over 256 px crops of the shared
train split's real photos, so that the test split stays for reporting), which is how :mod:`generators.taef2`'s
layout was settled (table in ``generators/weights/MODEL_CARD.md``).

Usage::

    python scripts/convert_taef2.py [--src ../shared/data2/weights/taef2] [--out generators/weights/taef2.safetensors]
    python scripts/convert_taef2.py --ablation [--manifest ../shared/data/manifest.json] [--split train] [--per-photo 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

UPSTREAM = "madebyollin/taesd@5cccb12dc72074a4be35680c3b108548a7c69978 (MIT, Ollin Boer Bohan)"
PARTS = ("encoder", "decoder")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_upstream(src: Path) -> dict:
    """``{"encoder.<name>": tensor, "decoder.<name>": tensor}`` from the two ``.pth`` files, never unpickling code."""
    import torch

    state = {}
    for part in PARTS:
        path = src / f"taef2_{part}.pth"
        if not path.is_file():
            raise SystemExit(f"{path}: missing")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise SystemExit(f"{path}: not a flat state dict of tensors")
        state.update({f"{part}.{k}": v.contiguous() for k, v in sd.items()})
    return state


def convert(src: Path, out: Path) -> None:
    import torch

    from generators.taef2 import TAEF2, check_state_dict, load_taef2, save_taef2

    state = read_upstream(src)
    model = TAEF2()
    check_state_dict(model.state_dict(), state, source=str(src))
    model.load_state_dict({k: v.float() for k, v in state.items()})  # float16 -> float32 is exact
    meta = {
        "upstream": UPSTREAM,
        "licence": "MIT",
        "sources": json.dumps({f"taef2_{p}.pth": _sha256(src / f"taef2_{p}.pth") for p in PARTS}),
        "converted_by": "scripts/convert_taef2.py (torch.load weights_only=True; tensors unchanged, float16)",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_taef2(model, out, dtype=torch.float16, metadata=meta)
    back = load_taef2(out).state_dict()  # through the checked loader, bit for bit
    assert all(torch.equal(back[k].half(), v) for k, v in state.items())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(state)} tensors, sha256 {_sha256(out)})")


# -- ablation -------------------------------------------------------------------


def _crops(manifest: Path, *, split: str, side: int = 256, per_photo: int = 1) -> list:
    import numpy as np
    from PIL import Image

    from datasets.samples import load_dataset

    reals = [s.path for s in load_dataset(manifest) if s.split == split and s.label == "real"]
    out = []
    for p in reals:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
        h, w = a.shape[:2]
        # per_photo crops on the diagonal, the first one central
        for k in range(per_photo):
            fy = fx = 0.5 if k == 0 else k / (per_photo + 1)
            y, x = int((h - side) * fy), int((w - side) * fx)
            out.append(a[y : y + side, x : x + side])
    return out


def ablation(src: Path, manifest: Path, *, split: str, per_photo: int, side: int = 256, only: list[int] | None = None) -> None:
    """Median round-trip PSNR for each alternative reading of the shapes (one change at a time)."""
    import numpy as np
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    import generators.taef2 as t

    crops = _crops(manifest, split=split, per_photo=per_photo, side=side)
    x01 = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
    state = read_upstream(src)

    def with_mlp(fn):  # the variants differ only in the blocks that have a channel MLP
        def forward(self, x):
            return torch.relu(self.conv(x) + x) if self.pool is None else fn(self, x)

        return forward

    @with_mlp
    def mlp_pre(self, x):  # the shipped reading
        x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)

    @with_mlp
    def mlp_parallel(self, x):
        return torch.relu(self.conv(x) + x + self.pool(x))

    @with_mlp
    def mlp_after(self, x):
        y = torch.relu(self.conv(x) + x)
        return y + self.pool(y)

    @with_mlp
    def mlp_global(self, x):  # "pool" read as global average pooling before the MLP
        x = x + self.pool(x.mean((2, 3), keepdim=True))
        return torch.relu(self.conv(x) + x)

    @with_mlp
    def mlp_gate(self, x):
        return torch.relu(self.conv(x) * torch.sigmoid(self.pool(x)) + x)

    def no_mlp(self, x):
        return torch.relu(self.conv(x) + x)

    def no_fuse(self, x):
        x = x + self.pool(x) if self.pool is not None else x
        return self.conv(x) + x

    def group_norm(self, x):
        return torch.nn.functional.group_norm(x, 1, self.weight, self.bias, 1e-5)

    def batch_stats(self, x):
        return torch.nn.functional.batch_norm(x, None, None, self.weight, self.bias, training=True)

    variants = [  # most informative first: a partial run (see stderr) is still useful
        ("shipped: [0,1] pixels, MLP added to the block input, channel LayerNorm, ReLU, ReLU after the sum, no latent clamp", {}),
        ("MLP in parallel with the convs", {"block": mlp_parallel}),
        ("latent clamp 3 tanh(z/3) before the decoder", {"clamp": 3.0}),
        ("MLP after the block", {"block": mlp_after}),
        ("MLP on the global average (squeeze-excite-like, added)", {"block": mlp_global}),
        ("pixels in [-1, 1]", {"range": "pm1"}),
        ("MLP ignored", {"block": no_mlp}),
        ("GroupNorm(1) instead of channel LayerNorm", {"norm": group_norm}),
        ("GELU instead of ReLU in the MLP", {"act": torch.nn.GELU()}),
        ("MLP as a sigmoid gate on the convs", {"block": mlp_gate}),
        ("batch-statistics norm instead of channel LayerNorm", {"norm": batch_stats}),
        ("no ReLU after the residual sum", {"block": no_fuse}),
    ]
    if only:
        variants = [variants[0]] + [variants[i] for i in only if i > 0]
    rows = []
    orig_block, orig_norm = t.ResidualBlock.forward, t.ChannelLayerNorm.forward
    for label, v in variants:
        t.ResidualBlock.forward = v.get("block", mlp_pre)
        t.ChannelLayerNorm.forward = v.get("norm", orig_norm)
        try:
            model = t.TAEF2(t.TAEF2Config(latent_clamp=v.get("clamp")))
            model.load_state_dict({k: w.float() for k, w in state.items()})
            if "act" in v:
                for m in model.modules():
                    if isinstance(m, t.ResidualBlock) and m.pool is not None:
                        m.pool[2] = v["act"]
            model.eval()
            with torch.inference_mode():
                inp = x01 * 2 - 1 if v.get("range") == "pm1" else x01
                y = model(inp)
                y = (y + 1) / 2 if v.get("range") == "pm1" else y
            y = y.clamp(0, 1).permute(0, 2, 3, 1).numpy()
            each = np.array([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(crops, y)])
            psnr = float(np.median(each))
        finally:
            t.ResidualBlock.forward, t.ChannelLayerNorm.forward = orig_block, orig_norm
        rows.append((label, psnr, each))
        print(f"{psnr:6.2f} dB  {label}", file=sys.stderr, flush=True)
    base = rows[0][2]
    print(f"| reading of the shapes ({len(crops)} crops of {side} px, {split}-split real photos) | median PSNR (dB) | mean PSNR (dB) | crops better than the shipped reading |")
    print("|---|---|---|---|")
    for label, psnr, each in rows:
        print(f"| {label} | {psnr:.2f} | {float(np.mean(each)):.2f} | {'-' if each is base else f'{int(np.sum(each > base + 1e-9))}/{len(each)}'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=REPO.parent / "shared" / "data2" / "weights" / "taef2")
    ap.add_argument("--out", type=Path, default=REPO / "generators" / "weights" / "taef2.safetensors")
    ap.add_argument("--ablation", action="store_true", help="measure the alternative readings of the shapes instead")
    ap.add_argument("--manifest", type=Path, default=REPO.parent / "shared" / "data" / "manifest.json")
    ap.add_argument("--split", default="train", help="--ablation: the manifest split whose real photos are cropped")
    ap.add_argument("--per-photo", type=int, default=1, help="--ablation: crops per photo")
    ap.add_argument("--side", type=int, default=256, help="--ablation: crop side in pixels")
    ap.add_argument("--only", help="--ablation: comma-separated variant indices to run (0, the shipped reading, always runs)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.ablation:
        ablation(args.src, args.manifest, split=args.split, per_photo=args.per_photo, side=args.side, only=[int(i) for i in args.only.split(",")] if args.only else None)
    else:
        convert(args.src, args.out)


if __name__ == "__main__":
    main()
