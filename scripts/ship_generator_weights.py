"""Copy trained f=8 generator runs into the shipped ``generators/weights/``.

The f=8, 4-channel run (autoencoder + latent UNet) becomes the default
generator (``config.json``, ``autoencoder.safetensors``, ``unet.safetensors``,
its sample grid); the f=8, 16-channel run's autoencoder becomes
``autoencoder_f8c16.{json,safetensors}`` (its UNet is not shipped). The f=2
autoencoder (``autoencoder_f2.*``) and TAEF2 stay as they are. Usage::

    python scripts/ship_generator_weights.py --f8c4 runs/gen_f8c4 --f8c16 runs/gen_f8c16
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from generators.models import (
    AUTOENCODER_FILE,
    CONFIG_FILE,
    UNET_FILE,
    WEIGHTS_DIR,
    load_models,
    save_autoencoder,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f8c4", type=Path, help="run folder of the f=8, 4-channel generator (its weights/ and samples.png)")
    ap.add_argument("--f8c16", type=Path, help="run folder of the f=8, 16-channel autoencoder")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = ap.parse_args()
    if args.f8c4:
        src = args.f8c4 / "weights"
        models = load_models(src, device="cpu")  # checks the files load
        if (models.downsample_factor, models.config.autoencoder.latent_channels) != (8, 4):
            raise SystemExit(f"{src}: not an f=8, 4-channel generator")
        for name in (CONFIG_FILE, AUTOENCODER_FILE, UNET_FILE):
            shutil.copyfile(src / name, args.out / name)
        grid = args.f8c4 / "samples.png"
        if grid.is_file():
            shutil.copyfile(grid, args.out / "sample_grid_256px.png")
        print(f"default generator (f8c4 + UNet) <- {src}")
    if args.f8c16:
        src = args.f8c16 / "weights"
        models = load_models(src, device="cpu")
        ae = models.config.autoencoder
        if (ae.downsample_factor, ae.latent_channels) != (8, 16):
            raise SystemExit(f"{src}: not an f=8, 16-channel autoencoder")
        training = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8")).get("training", {})
        path = save_autoencoder(models.vae, ae, "f8c16", args.out, metadata=training)
        print(f"{path} <- {src}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
