"""What every test module shares: CPU threads per xdist worker, and artefacts built once per run.

``make test`` runs one xdist worker per core (``-n auto`` in ``pyproject.toml``). PyTorch
would start one compute thread per core in *every* worker, so two workers on two cores run
four threads whose OpenMP barriers spin against each other: measured on a busy 2-core machine,
one forward pass of ProcResNet-166 took 0.2-0.3 s on one thread and 4-15 s on two. Each worker
therefore gets ``cores // workers`` threads (at least one); a run without xdist keeps every
core. Subprocesses that tests start inherit the same limit through ``OMP_NUM_THREADS``, unless
the caller set it already.

Expensive read-only artefacts (exports, trained models) go through :class:`SharedArtefacts`:
the first worker that needs one builds it, the others wait for it and reuse the files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def _usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_worker() -> int:
    """Compute threads for this test process: its share of the cores among the xdist workers."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, _usable_cores() // max(1, workers))


def _runs_tests(config: pytest.Config) -> bool:
    """False only in the xdist controller, which hands tests to the workers and runs none itself."""
    return hasattr(config, "workerinput") or getattr(config.option, "dist", "no") == "no"


def pytest_configure(config: pytest.Config) -> None:
    if not _runs_tests(config):
        # The controller computes nothing, and the workers inherit its environment: leave it as the
        # caller set it (and spare the controller the import of torch).
        return
    threads = threads_per_worker()
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


class SharedArtefacts:
    """Directories of files built at most once per test run, whichever worker asks first.

    Each artefact is a directory named by its key; a file lock next to it makes the other
    workers wait while one builds it, and a marker written last tells them it is complete
    (a build that failed leaves no marker and is tried again by the next test that asks).
    Tests must treat the files as read-only and write their own outputs under ``tmp_path``.
    """

    _COMPLETE = ".complete"

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str, build: Callable[[Path], None]) -> Path:
        """The directory of artefact ``key``, after ``build(directory)`` has filled it once."""
        directory = self.root / key
        with FileLock(f"{directory}.lock"):
            if not (directory / self._COMPLETE).exists():
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir(parents=True)
                build(directory)
                (directory / self._COMPLETE).touch()
        return directory


@pytest.fixture(scope="session")
def shared_artefacts(tmp_path_factory: pytest.TempPathFactory) -> SharedArtefacts:
    """Artefacts shared by every test of this run (by all workers under xdist, which share a parent)."""
    base = tmp_path_factory.getbasetemp()
    # A worker's base directory is <run>/popen-gwN, and <run> is this run's alone; without xdist the
    # parent is shared by every run of the user, so the cache must stay inside the run's own base.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return SharedArtefacts(root / "shared-artefacts")
