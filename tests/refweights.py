"""Deterministic tensors keyed by name, shared by the reference-logit fixtures and the tests.

``tests/expect/reference_logits.json`` holds logits that the *original research code*
computed with weights made by :func:`reference_state_dict`. The tests rebuild the same
weights, load them into our models and compare. The values come from a counter-based
integer hash (splitmix64 over the tensor's name and the element index), not from
torch's or NumPy's random streams, so they are identical on every platform and in every
library version, and the stored logits stay valid.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hash_uniform(name: str, shape: Sequence[int]) -> np.ndarray:
    """Values in [0, 1), float64, a pure function of ``name`` and the element index."""
    count = math.prod(shape)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        z = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN + np.uint64(zlib.crc32(name.encode())) * _M1
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(tuple(shape))


def reference_tensor(name: str, shape: Sequence[int], *, tau: float | None = None) -> torch.Tensor:
    """The value of the tensor called ``name`` (its key in the *original* code's state_dict).

    Conv/linear weights have variance 1/fan_in; BatchNorm scale and running variance lie
    in [0.5, 1.5), shifts and means are small and centred; Dirac ``alpha`` in [0.5, 1.5),
    ``beta`` in [0.05, 0.15); every ``tau`` entry (one shared parameter) is ``tau``.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(tuple(shape), dtype=torch.int64)
    if leaf == "tau":
        if tau is None:
            raise ValueError(f"{name}: a tau value is needed")
        return torch.full(tuple(shape), float(tau))
    u = hash_uniform(name, shape)
    if name == "input":
        values = (2 * u - 1) * math.sqrt(3.0)
    elif leaf in ("running_mean",):
        values = (u - 0.5) * 0.2
    elif leaf in ("running_var", "alpha"):
        values = 0.5 + u
    elif leaf == "beta":
        values = 0.05 + 0.1 * u
    elif len(shape) >= 2:
        values = (2 * u - 1) * math.sqrt(3.0 / math.prod(shape[1:]))
    elif leaf == "weight":
        values = 0.5 + u
    else:  # biases and scalar offsets
        values = (u - 0.5) * 0.2
    return torch.from_numpy(values.astype(np.float32))


def reference_state_dict(
    keys: Iterable[tuple[str, Sequence[int]]], *, tau: float | None = None, skip_prefix: str = "eye"
) -> dict[str, torch.Tensor]:
    """``{name: reference_tensor(name, shape)}``, leaving out constant entries (DiracNet's ``eye*``)."""
    return {k: reference_tensor(k, s, tau=tau) for k, s in keys if not k.startswith(skip_prefix)}


def reference_input(shape: Sequence[int]) -> torch.Tensor:
    """The input all reference cases are run on (unit variance)."""
    return reference_tensor("input", shape)
