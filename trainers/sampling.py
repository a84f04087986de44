"""Which samples each process sees, batch by batch: a function of (seed, epoch, rank) alone.

Training order is ``torch.utils.data.DistributedSampler``'s (a permutation seeded with
``seed + epoch``, split round-robin over the processes, padded so every process takes the
same number of steps); with one process it is a plain seeded shuffle. Because the batches of
an epoch are computed, not drawn from a stateful iterator, a run resumed in the middle of an
epoch simply skips the batches it already took.
"""

from __future__ import annotations

from torch.utils.data import DistributedSampler

from trainers.distributed import Topology

Batch = list[tuple[int, int]]


def epoch_batches(
    num_samples: int, batch_size: int, *, epoch: int, seed: int, topology: Topology
) -> list[Batch]:
    """This process's training batches of ``epoch``, as ``(index, epoch)`` keys.

    Args:
        num_samples: Size of the training set.
        batch_size: Samples per batch *in this process* (the global batch / world size).
        epoch: 0-based epoch (seeds the permutation and each sample's augmentation).
        seed: Run seed.
        topology: This process's rank and the world size.

    A final batch of a single sample is dropped: BatchNorm cannot normalise one sample whose
    feature map has shrunk to 1×1.
    """
    sampler = DistributedSampler(
        range(num_samples),  # type: ignore[arg-type]
        num_replicas=topology.world_size,
        rank=topology.rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
    sampler.set_epoch(epoch)
    indices = list(sampler)
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return [[(index, epoch) for index in batch] for batch in batches]


def test_batches(num_samples: int, batch_size: int, *, topology: Topology) -> list[list[int]]:
    """This process's evaluation batches: every ``world_size``-th sample from ``rank``, no padding.

    Every test image is evaluated exactly once over all processes, so the accuracy summed
    over processes is exact.
    """
    indices = list(range(topology.rank, num_samples, topology.world_size))
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
