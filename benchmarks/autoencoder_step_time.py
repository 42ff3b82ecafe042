#!/usr/bin/env python
"""Seconds per training step of an f=8 AutoencoderKL at several widths (the model card's channel choice).

One step: encode, sample the posterior, decode, L1 loss, backward, AdamW, on
random ``(batch, 3, crop, crop)`` inputs, float32 on the CPU. The first
``--warmup`` steps are not timed; the median of the rest is printed. Usage::

    python benchmarks/autoencoder_step_time.py [--widths 16,32,64,64 32,64,128,128] [--latent 4] [--crop 128] [--batch 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", nargs="+", default=["16,32,64,64", "32,64,128,128", "64,128,256,256"])
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch
    from diffusers import AutoencoderKL

    from generators.config import f8_autoencoder_config
    from generators.training_utils import torch_generator

    torch.set_num_threads(args.threads)
    g = torch_generator(0)
    for w in args.widths:
        widths = tuple(int(c) for c in w.split(","))
        groups = 8 if min(widths) % 16 else 16
        from dataclasses import asdict

        vae = AutoencoderKL(**asdict(f8_autoencoder_config(args.latent, block_out_channels=widths, norm_num_groups=groups)))
        opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
        x = torch.rand(args.batch, 3, args.crop, args.crop, generator=g) * 2 - 1
        times = []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            rec = vae.decode(vae.encode(x).latent_dist.sample(generator=g)).sample
            loss = (rec - x).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        params = sum(p.numel() for p in vae.parameters())
        print(f"widths {w:>16s}: {params / 1e6:5.2f} M params ({params * 4 / 1e6:5.1f} MB float32), "
              f"{statistics.median(times):6.2f} s/step at batch {args.batch} x {args.crop}^2, {args.threads} thread(s)")  # fmt: skip


if __name__ == "__main__":
    main()
