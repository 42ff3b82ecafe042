"""Training the CNN detector on aligned real/fake pairs (``detect train``).

Focused modules, each with one job:

* :mod:`~detectors.cnn_training.config`: the typed run configuration read from JSON;
* :mod:`~detectors.cnn_training.augment`: paired augmentation (one draw per pair);
* :mod:`~detectors.cnn_training.sources`: real tiles and aligned/unpaired fakes, cached;
* :mod:`~detectors.cnn_training.loop`: batches, validation, checkpoints, ``--max-minutes``;
* :mod:`~detectors.cnn_training.finalize`: aggregation and threshold on a held-out split, export.

The machinery shared with the generator's trainer (device, schedule,
safetensors checkpoints, the time-limited loop) lives in
:mod:`generators.training_utils` and :mod:`generators.optimization`.
Importing this package imports no torch.
"""

from __future__ import annotations

from detectors.cnn_training.augment import PairedAugment
from detectors.cnn_training.config import (
    AugmentConfig,
    CNNTrainConfig,
    DataConfig,
    ScheduleConfig,
    load_train_config,
)
from detectors.cnn_training.finalize import finalize
from detectors.cnn_training.loop import (
    CNNTrainResult,
    image_logits,
    sample_batch,
    train,
    validate,
)
from detectors.cnn_training.sources import PairSource, prepare_sources

__all__ = [
    "AugmentConfig",
    "CNNTrainConfig",
    "CNNTrainResult",
    "DataConfig",
    "PairSource",
    "PairedAugment",
    "ScheduleConfig",
    "finalize",
    "image_logits",
    "load_train_config",
    "prepare_sources",
    "sample_batch",
    "train",
    "validate",
]
