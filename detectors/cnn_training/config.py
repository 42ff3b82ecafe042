"""Typed configuration of a CNN training run (``detect train --config``), read from JSON.

A run is a :class:`CNNTrainConfig` holding a :class:`DataConfig` (where the
real/fake pairs come from), an :class:`AugmentConfig` (the paired
augmentation ranges) and a :class:`ScheduleConfig` (optimisation), plus the
network fields of :class:`detectors.cnn_model.CNNModelConfig`. Unknown keys
are errors, naming the file and the section. This module imports no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from detectors.cnn_model import CNNModelConfig

__all__ = ["AugmentConfig", "CNNTrainConfig", "DataConfig", "ScheduleConfig", "load_train_config"]


def _from_dict(cls: type, d: dict[str, Any], where: str) -> Any:
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    return cls(**d)


@dataclass(frozen=True)
class AugmentConfig:
    """Paired augmentation ranges (each drawn once per pair).

    Attributes:
        resize_p: Probability of a rescale.
        resize_range: Scale factor range ``[lo, hi]``, within ``(0, 4]``.
        interpolations: Pillow interpolations drawn uniformly.
        blur_p: Probability of a Gaussian blur.
        blur_sigma: Sigma range in pixels.
        jpeg_p: Probability of a JPEG re-save (else the pair stays lossless, as a PNG re-save).
        jpeg_quality: Quality range ``[lo, hi]`` in 1..100.
        texture_tries: Candidate positions per pair; the most textured is kept (>= 1).
        sharpen_p: Probability of an unsharp mask (design-tool export, phone processing).
        sharpen_radius: Its radius range in pixels.
        sharpen_percent: Its strength range in percent.
        reencode_p: Probability of a re-export before the final JPEG step, as one of
            ``reencode_kinds`` (:data:`datasets.perturbations.REENCODINGS`).
        reencode_kinds: The re-encodings drawn from.
        reencode_quality: Their quality range ``[lo, hi]``.
        real_only_p: Probability that the real member alone also gets one processing
            step (a sharpen or a re-export drawn as above, always applied), so that
            processed real photos are seen as real, not only as half of a processed pair.
    """

    resize_p: float = 0.5
    resize_range: tuple[float, float] = (0.5, 1.5)
    interpolations: tuple[str, ...] = ("bilinear", "bicubic", "lanczos")
    blur_p: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 1.0)
    jpeg_p: float = 0.7
    jpeg_quality: tuple[int, int] = (30, 100)
    texture_tries: int = 3
    sharpen_p: float = 0.0
    sharpen_radius: tuple[float, float] = (0.5, 2.0)
    sharpen_percent: tuple[int, int] = (30, 150)
    reencode_p: float = 0.0
    reencode_kinds: tuple[str, ...] = ("jpeg420", "jpeg444", "webp", "double_jpeg", "png")
    reencode_quality: tuple[int, int] = (70, 95)
    real_only_p: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sharpen_radius", tuple(float(v) for v in self.sharpen_radius))
        object.__setattr__(self, "sharpen_percent", tuple(int(v) for v in self.sharpen_percent))
        object.__setattr__(self, "reencode_kinds", tuple(self.reencode_kinds))
        object.__setattr__(self, "reencode_quality", tuple(int(v) for v in self.reencode_quality))
        for name in ("resize_p", "blur_p", "jpeg_p", "sharpen_p", "reencode_p", "real_only_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {v}")
        object.__setattr__(self, "resize_range", tuple(float(v) for v in self.resize_range))
        object.__setattr__(self, "interpolations", tuple(self.interpolations))
        object.__setattr__(self, "blur_sigma", tuple(float(v) for v in self.blur_sigma))
        object.__setattr__(self, "jpeg_quality", tuple(int(v) for v in self.jpeg_quality))
        if self.texture_tries < 1:
            raise ValueError(f"texture_tries must be >= 1, got {self.texture_tries}")


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from.

    Attributes:
        kind: ``manifest`` (real photos + generator fakes + manifest AI images)
            or ``synthetic`` (no files needed; for smoke runs and tests).
        manifest: Dataset spec for :func:`datasets.samples.load_dataset`, or a list of
            them (e.g. ``../shared/data`` and ``../shared/data2`` manifests), read in order.
        exclude_families: AI families (:data:`datasets.samples.FAMILIES`) left out of
            training, for leave-one-family-out runs; their real photos stay.
        split: The split whose images are trained on (``train``).
        val_fraction: Share of the split's images (by file-name hash) held out
            for checkpoint selection.
        tile_size: Side of the native-resolution tiles cut from each image.
        tiles_per_image: Most tiles per real photo.
        tiles_per_ai_image: Most tiles per manifest AI image.
        aligned: Generator fakes to make from the real tiles, each
            ``{"mode": "reconstruct"}`` or ``{"mode": "regenerate", "strength": s, "steps": n}``,
            or ``{"mode": "reconstruct", "decoder": name}`` for a round trip through one
            decoder of the zoo (:data:`generators.zoo.DECODER_NAMES`: source ``reconstruct_<name>``),
            optionally with ``"tiles": k`` (only the k most textured tiles of each
            photo) and ``"crop": c`` (only a centred c x c window of each tile;
            both keep CPU generation affordable). The source is named after its mode.
        match_jpeg: JPEG-compress each aligned fake at its real photo's estimated
            quality, on the same 8x8 grid, and each PNG AI image at the quality of
            a real photo picked by hash, so that "has a JPEG history" cannot
            separate the classes.
        match_colour: Give each zoo reconstruction its real tile's low-frequency chroma
            (:func:`generators.fakes.match_low_frequency_colour`), so that the f=8 decoders'
            desaturation cannot teach "grey means AI"; fine detail and decoder traces stay.
        shared_ai: Use the manifest's AI images of ``split`` as unpaired fakes.
        samples: Fresh samples from noise by the bundled generator, as unpaired
            fakes: ``{"n": count, "size": side, "steps": DDIM steps}`` (``None``: none).
            Seeded from the run's seed; JPEG-matched like the PNG AI images.
        mix: Sampling weight of each source name (``reconstruct``,
            ``regenerate``, ``samples``, ``shared_ai``, ``synthetic``); missing names weigh 1.
        generator_weights: Generator weights folder (``None``: the shipped one).
        cache_dir: Where tiles and fakes are written (under ``runs/``; reused).
        synthetic_n: Synthetic pairs (``kind == "synthetic"``).
        synthetic_size: Side of the synthetic images.
    """

    kind: str = "manifest"
    manifest: str | tuple[str, ...] = "../shared/data/manifest.json"
    exclude_families: tuple[str, ...] = ()
    split: str = "train"
    val_fraction: float = 0.15
    tile_size: int = 384
    tiles_per_image: int = 6
    tiles_per_ai_image: int = 4
    aligned: tuple[dict[str, Any], ...] = ({"mode": "reconstruct"},)
    match_jpeg: bool = True
    match_colour: bool = False
    shared_ai: bool = True
    samples: dict[str, Any] | None = None
    mix: dict[str, float] = field(default_factory=dict)
    generator_weights: str | None = None
    cache_dir: str = "runs/cnn-data"
    synthetic_n: int = 12
    synthetic_size: int = 160

    def __post_init__(self) -> None:
        object.__setattr__(self, "aligned", tuple(dict(a) for a in self.aligned))
        if not isinstance(self.manifest, str):
            object.__setattr__(self, "manifest", tuple(str(m) for m in self.manifest))
        object.__setattr__(self, "exclude_families", tuple(self.exclude_families))
        from datasets.samples import FAMILIES

        bad = [f for f in self.exclude_families if f not in FAMILIES]
        if bad:
            raise ValueError(f"data.exclude_families must be among {FAMILIES}, got {bad}")
        if self.kind not in ("manifest", "synthetic"):
            raise ValueError(f"data.kind must be 'manifest' or 'synthetic', got {self.kind!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        for a in self.aligned:
            if a.get("mode") not in ("reconstruct", "regenerate"):
                raise ValueError(f"data.aligned entries need mode reconstruct or regenerate, got {a}")
            if "decoder" in a:
                from generators.zoo import DECODER_NAMES

                if a["mode"] != "reconstruct" or a["decoder"] not in DECODER_NAMES:
                    raise ValueError(f"data.aligned: a decoder entry needs mode reconstruct and a decoder in {list(DECODER_NAMES)}, got {a}")
        if self.samples is not None:
            n, steps = int(self.samples.get("n", 0)), int(self.samples.get("steps", 50))
            if n < 1 or steps < 1:
                raise ValueError(f"data.samples needs n >= 1 and steps >= 1, got {self.samples}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Optimisation schedule.

    Attributes:
        steps: Total optimizer steps.
        batch_pairs: Pairs per batch (the batch holds twice as many crops).
        lr: Peak AdamW learning rate (linear warm-up, then cosine to ``lr_floor``;
            :func:`generators.optimization.cosine_lr_factor`).
        lr_floor: Final learning rate as a fraction of ``lr``.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up length.
        log_every: Steps between log lines.
        eval_every: Steps between validations (and best-checkpoint updates).
        checkpoint_every: Steps between resumable checkpoints.
        num_threads: ``torch.set_num_threads`` for the run.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
            (:func:`generators.training_utils.resolve_device`).
        val_perturbations: Named perturbations of the validation tiles.
        val_crops: Crops per validation tile.
    """

    steps: int = 1000
    batch_pairs: int = 16
    lr: float = 1e-3
    lr_floor: float = 0.05
    weight_decay: float = 0.05
    warmup_steps: int = 50
    log_every: int = 10
    eval_every: int = 200
    checkpoint_every: int = 100
    num_threads: int = 2
    device: str = "auto"
    val_perturbations: tuple[str, ...] = ("none", "jpeg75", "resize0.5")
    val_crops: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "val_perturbations", tuple(self.val_perturbations))
        if self.steps < 1 or self.batch_pairs < 1 or self.lr <= 0 or self.num_threads < 1:
            raise ValueError("schedule needs steps >= 1, batch_pairs >= 1, lr > 0, num_threads >= 1")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"schedule.lr_floor must be in [0, 1], got {self.lr_floor}")
        if min(self.log_every, self.eval_every, self.checkpoint_every, self.val_crops) < 1:
            raise ValueError("log_every, eval_every, checkpoint_every and val_crops must be >= 1")


@dataclass(frozen=True)
class CNNTrainConfig:
    """A whole training run, read from JSON by :func:`load_train_config`.

    Attributes:
        name: Run name (used in logs and the exported version).
        seed: Seeds the weights and the data/augmentation RNG.
        out: Run folder (checkpoints, logs, best weights).
        model: :class:`detectors.cnn_model.CNNModelConfig` fields.
        data: :class:`DataConfig` fields.
        augment: :class:`AugmentConfig` fields.
        schedule: :class:`ScheduleConfig` fields.
        finalize: Optional ``{"split": "calib", "perturbations": [...],
            "target_fpr": 0.01, "aggregations": [...]}``: after training, choose
            the aggregation and the detector's threshold on that split.
        export: Optional path of the config JSON to write the final weights to
            (e.g. ``detectors/weights/cnn_v3.json``).
    """

    name: str = "cnn"
    seed: int = 0
    out: str = "runs/cnn"
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    finalize: dict[str, Any] | None = None
    export: str | None = None

    def model_config(self) -> CNNModelConfig:
        """The network description this run trains."""
        from detectors.cnn_model import CNNModelConfig

        return CNNModelConfig.from_dict({"version": f"{self.name}", **self.model})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (round-trips through :func:`load_train_config`)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CNNTrainConfig:
        """Build from a parsed JSON document; unknown keys raise ``ValueError``."""
        d = dict(d)
        d.pop("comment", None)
        sub = {
            "data": (DataConfig, "data"),
            "augment": (AugmentConfig, "augment"),
            "schedule": (ScheduleConfig, "schedule"),
        }
        for key, (klass, where) in sub.items():
            if key in d:
                d[key] = _from_dict(klass, dict(d[key]), where)
        cfg = _from_dict(cls, d, "train config")
        cfg.model_config()  # validate early
        return cfg


def load_train_config(path: str | os.PathLike[str]) -> CNNTrainConfig:
    """Read a training config JSON.

    Raises:
        ValueError: If the file is not valid JSON or has unknown or bad fields, naming the file.
    """
    try:
        return CNNTrainConfig.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
