"""Training for every normexport family: ``normexport train`` and ``trainers.train(TrainConfig(...))``.

A request (``config.py``) is resolved once into frozen run settings (``settings.py``), with
each paper's recipe as named defaults (``recipes.py``). The run (``loop.py``) then builds the
model with its SGD parameter groups and schedule (``learner.py``, ``optim.py``), restores or
seeds it (``checkpoints.py``, ``state.py``), and trains epoch by epoch (``epochs.py``) on
batches fed to the device (``feed.py``) from the data sets (``datasets.py``) with
per-sample-seeded augmentation (``transforms.py``, ``sampling.py``); ProcResNet's Procrustes
step (``procrustes.py``), DDP under torchrun (``distributed.py``), and what the run reports
(``report.py``, ``records.py``, ``progress.py``) complete it. Data flows one way: this
package uses ``normresnet_export``; the library never imports it.
"""

from trainers.config import TrainConfig
from trainers.datasets import DATASETS, DataSource, load_data
from trainers.epochs import StepInfo
from trainers.loop import Trainer, train
from trainers.procrustes import deviation_report
from trainers.recipes import RECIPES, Recipe, Schedule, default_recipe_name, get_recipe
from trainers.report import TrainResult
from trainers.settings import RunSettings, resolve_settings

__all__ = [
    "DATASETS",
    "RECIPES",
    "DataSource",
    "Recipe",
    "RunSettings",
    "Schedule",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "default_recipe_name",
    "deviation_report",
    "get_recipe",
    "load_data",
    "resolve_settings",
    "train",
]
