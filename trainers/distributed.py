"""Process topology: one process, or DistributedDataParallel under ``torchrun``; and the device.

``torchrun --nproc_per_node=N`` (one node) or ``torchrun --nnodes=M --node_rank=R
--rdzv_endpoint=HOST:PORT …`` (several) starts one process per device and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :meth:`Topology.from_env` reads them. Processes talk over
NCCL on GPUs and gloo on CPUs. Rank 0 alone logs and writes files; every rank holds the same
weights (DDP all-reduces gradients), the same RNG stream for the Procrustes projection, and
its own shard of every epoch (``DistributedSampler``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from normresnet_export.errors import InputError
from normresnet_export.vocabulary import TRAINING_DEVICES as DEVICES


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class Topology:
    """Where this process sits among the training processes.

    Attributes:
        rank: Global rank (0 when not distributed).
        world_size: Number of processes.
        local_rank: Rank on this node (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Topology:
        """The topology ``torchrun`` describes in the environment (one process when it is absent)."""
        world = _env_int("WORLD_SIZE", 1)
        rank = _env_int("RANK", 0)
        local = _env_int("LOCAL_RANK", rank)
        if world < 1 or not 0 <= rank < world:
            raise InputError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
        return cls(rank=rank, world_size=world, local_rank=local)

    @property
    def distributed(self) -> bool:
        """More than one process: train with DDP."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that logs and writes files."""
        return self.rank == 0


def resolve_device(requested: str, topology: Topology) -> torch.device:
    """The device to train on; ``cuda`` when asked and unusable is an error, never a silent CPU run.

    Raises:
        InputError: Unknown device name, CUDA asked for but unusable, or more local processes
            than GPUs.
    """
    if requested not in DEVICES:
        raise InputError(f"unknown device {requested!r}; expected one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return torch.device("cpu")
    usable = torch.cuda.is_available()
    if requested == "cuda" and not usable:
        built = torch.version.cuda
        reason = (
            f"this torch ({torch.__version__}) was built without CUDA"
            if not built
            else f"torch (built with CUDA {built}) finds no usable GPU or driver"
        )
        raise InputError(f"--device cuda was asked for, but {reason}; use --device cpu (or auto)")
    if not usable:
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if topology.local_rank >= count:
        raise InputError(
            f"process with LOCAL_RANK {topology.local_rank} has no GPU of its own (this node has {count}); "
            f"start at most {count} processes per node"
        )
    return torch.device("cuda", topology.local_rank)


def describe_device(device: torch.device) -> str:
    """``"cuda:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu (16 threads)"``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


class Communicator:
    """Collective operations that are no-ops in a single process."""

    def __init__(self, topology: Topology, device: torch.device) -> None:
        self.topology = topology
        self.device = device
        self.backend: str | None = None

    def start(self) -> None:
        """Join the process group (NCCL on GPUs, gloo on CPUs)."""
        if not self.topology.distributed or dist.is_initialized():
            self.backend = dist.get_backend() if dist.is_initialized() else None
            return
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            backend=self.backend, rank=self.topology.rank, world_size=self.topology.world_size
        )

    def stop(self) -> None:
        """Leave the process group."""
        if self.topology.distributed and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def active(self) -> bool:
        """Whether collectives go anywhere."""
        return self.topology.distributed and dist.is_initialized()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes."""
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on any."""
        if not self.active:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite ``tensors`` on every process with rank 0's values."""
        if self.active:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (a one-element list when not distributed)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.topology.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for every process."""
        if self.active:
            dist.barrier()
