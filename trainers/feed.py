"""Batches from the data set to the device: which samples, the loaders, and the conversion on arrival.

Which samples a process takes is computed, not drawn (``trainers.sampling``), so the loaders
run over fixed batch lists and a resumed epoch simply starts further down its list. Images
travel as ``uint8`` and become normalised floats on the device, in one fused step (a quarter
of the host-to-device traffic of float32).
"""

from __future__ import annotations

import signal
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from trainers.distributed import Topology
from trainers.sampling import Batch, epoch_batches, test_batches
from trainers.settings import RunSettings


def _ignore_sigint(_worker_id: int) -> None:
    # Data-loader workers must survive Ctrl-C: the main process finishes its step and saves first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Feed:
    """This process's batches of the run's data set, delivered to its device.

    Args:
        settings: The run's settings (data set, batch sizes, device, workers, memory format).
        topology: This process's rank and the world size (each process takes its own shard).
    """

    def __init__(self, settings: RunSettings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        device = settings.device
        self.mean = torch.tensor(settings.data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(settings.data.std, device=device).view(1, -1, 1, 1)

    def train_batches(self, epoch: int) -> list[Batch]:
        """This process's training batches of ``epoch``, as ``(index, epoch)`` keys."""
        s = self.settings
        return epoch_batches(
            s.data.num_train, s.batch_size_per_process, epoch=epoch, seed=s.seed, topology=self.topology
        )

    def test_batches(self) -> list[list[int]]:
        """This process's share of the test set (every image once over all processes)."""
        s = self.settings
        return test_batches(s.data.num_test, s.test_batch_size_per_process, topology=self.topology)

    def train(self, batches: list[Batch]) -> DataLoader:
        """Augmented training images and labels, batch by batch."""
        return self._loader(self.settings.data.train, batches)

    def test(self, batches: list[list[int]]) -> DataLoader:
        """Un-augmented test images and labels, batch by batch."""
        return self._loader(self.settings.data.test, batches)

    def _loader(self, dataset: Dataset, batches: list[Any]) -> DataLoader:
        s = self.settings
        return DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=s.workers,
            pin_memory=s.device.type == "cuda",
            worker_init_fn=_ignore_sigint if s.workers else None,
            generator=torch.Generator().manual_seed(s.seed),  # keeps the global RNG untouched
        )

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images as normalised floats on the device, in the run's memory format."""
        x = images.to(self.settings.device, non_blocking=True).float()
        x = x.div_(255).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels on the device."""
        return labels.to(self.settings.device, non_blocking=True)
