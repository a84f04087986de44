"""Training for every normexport family: ``normexport train`` and ``trainers.train(TrainConfig(...))``.

One loop (``loop.py``) with each paper's recipe as named defaults (``recipes.py``), SGD
parameter groups and the learning-rate schedule (``optim.py``), the data sets
(``datasets.py``) with per-sample-seeded augmentation (``transforms.py``, ``sampling.py``),
ProcResNet's Procrustes step (``procrustes.py``), resumable state (``state.py``), DDP under
torchrun (``distributed.py``), and the run's records and progress display (``records.py``,
``progress.py``). Data flows one way: this package uses ``normresnet_export``; the library
never imports it.
"""

from trainers.config import TrainConfig
from trainers.datasets import DATASETS, DataSource, load_data
from trainers.loop import StepInfo, Trainer, TrainResult, train
from trainers.procrustes import deviation_report
from trainers.recipes import RECIPES, Recipe, Schedule, default_recipe_name, get_recipe

__all__ = [
    "DATASETS",
    "RECIPES",
    "DataSource",
    "Recipe",
    "Schedule",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "default_recipe_name",
    "deviation_report",
    "get_recipe",
    "load_data",
    "train",
]
