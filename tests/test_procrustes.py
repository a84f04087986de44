"""The Procrustes projection of ProcResNet's transition convolutions.

``exact`` is checked against the definition (every singular value of the operator equal to
the target; for the 3×3 stem an independent per-frequency SVD written with explicit DFT
sums), ``reference`` against an independent float64 transcription of the original algorithm's
eight steps and against the outputs the spec measured for the original code.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import normresnet_export as nx
from normresnet_export.nn.procrustes import (
    operator_singular_values,
    project_conv,
    project_exact,
    project_reference,
    projection_deviation,
)


@pytest.fixture(scope="module")
def _pristine_procresnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return nx.create_model("procresnet166")


@pytest.fixture
def procresnet(_pristine_procresnet) -> torch.nn.Module:
    """A fresh ProcResNet-166 per test (the projections change its weights), built once per module."""
    return copy.deepcopy(_pristine_procresnet)


def _stem_like(seed: int, n_out: int = 64) -> torch.Tensor:
    """A 3×3 stem kernel initialised as PyTorch initialises ProcResNet's (Kaiming-uniform, a=√5)."""
    torch.manual_seed(seed)
    return torch.nn.Conv2d(3, n_out, 3, padding=1, bias=False).weight.detach().clone()


# ------------------------------------------------------------------------------------------ exact


def test_exact_projection_makes_the_1x1_transitions_norm_preserving(procresnet):
    model = procresnet
    before = {name: conv.weight.detach().clone() for name, conv in model.regularized_convs().items()}
    assert model.regularize_convs(p=1.0, mode="exact") is True
    for name in ("trans_conv1", "trans_conv2"):
        conv = model.regularized_convs()[name]
        target = math.sqrt(conv.out_channels / conv.in_channels)
        sigma = operator_singular_values(conv.weight, model.PROCRUSTES_GRIDS[name])
        assert sigma.numel() == conv.in_channels
        assert (sigma - target).abs().max() < 1e-3, name
        # The stride-1 operator preserves norms up to the target: ||W x|| = c ||x|| for any x.
        x = torch.randn(conv.in_channels, 5, dtype=torch.float64)
        w = conv.weight.detach().double()[:, :, 0, 0]
        torch.testing.assert_close((w @ x).norm(dim=0), target * x.norm(dim=0), rtol=1e-5, atol=0)
        assert not torch.equal(conv.weight, before[name])
        # The projection is the nearest such operator: the polar factor of the old weight.
        u, _, vh = torch.linalg.svd(before[name].double()[:, :, 0, 0], full_matrices=False)
        torch.testing.assert_close(w, target * (u @ vh), rtol=0, atol=1e-5)


def _independent_exact_projection(weight: np.ndarray, grid: int, target: float) -> np.ndarray:
    """Per-frequency SVD projection + crop, with the DFT written out as sums (no FFT library)."""
    n_out, n_in, kh, kw = weight.shape
    taps = [(a, b) for a in range(kh) for b in range(kw)]
    projected_taps = np.zeros((n_out, n_in, kh, kw), dtype=np.complex128)
    for f1 in range(grid):
        for f2 in range(grid):
            spectrum = sum(
                weight[:, :, a, b] * np.exp(-2j * np.pi * (f1 * a + f2 * b) / grid) for a, b in taps
            )
            u, _, vh = np.linalg.svd(spectrum, full_matrices=False)
            projected = target * (u @ vh)
            for a, b in taps:  # inverse DFT, evaluated only on the kernel's support (the crop)
                projected_taps[:, :, a, b] += projected * np.exp(2j * np.pi * (f1 * a + f2 * b) / grid)
    return (projected_taps / grid**2).real


def test_exact_stem_equals_an_independent_per_frequency_svd_projection():
    weight = _stem_like(1, n_out=16)
    target = math.sqrt(16 / 3)
    ours = project_exact(weight, (8, 8)).double().numpy()
    expected = _independent_exact_projection(weight.double().numpy(), 8, target)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_exact_stem_of_procresnet_matches_the_independent_projection_on_its_32x32_grid(procresnet):
    torch.manual_seed(3)
    weight = torch.nn.Conv2d(3, 64, 3, padding=1, bias=False).weight.detach().clone()
    ours = project_conv(weight, procresnet.PROCRUSTES_GRIDS["conv1"], mode="exact").double().numpy()
    expected = _independent_exact_projection(weight.double().numpy(), 32, math.sqrt(64 / 3))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_cropping_leaves_a_reported_deviation_on_the_3x3_stem_and_none_on_1x1():
    stem = _stem_like(4)
    before = projection_deviation(stem, (32, 32))
    after = projection_deviation(project_exact(stem, (32, 32)), (32, 32))
    assert after["target"] == pytest.approx(math.sqrt(64 / 3))
    # The crop back to 3×3 is not norm-preserving, but the projection moves a fresh kernel much closer.
    assert 1e-3 < after["max_rel_dev"] < 0.5 * before["max_rel_dev"]
    assert after["min"] <= after["target"] <= after["max"]
    transition = torch.randn(128, 64, 1, 1)
    assert projection_deviation(project_exact(transition, (16, 16)), (16, 16))["max_rel_dev"] < 1e-6


# -------------------------------------------------------------------------------------- reference


def _independent_reference(weight: np.ndarray, grid: int, target: float, *, sign: float = -1.0) -> np.ndarray:
    """ProcResNet_PyTorch's ``regularize_conv`` transcribed step by step, in float64, literally.

    ``sign=-1`` is the reference's step 7 (``TL − i·TR``, the conjugate); ``+1`` the corrected one.
    """
    n_out, n_in, kh, kw = weight.shape
    kernel = weight.transpose(3, 2, 1, 0)  # 1. (kw, kh, in, out)
    padded = np.zeros((grid, grid, n_in, n_out))
    padded[:kw, :kh] = kernel
    spectrum = np.fft.fft2(padded, axes=(0, 1)).reshape(-1, n_in, n_out)  # 2.
    out = np.empty_like(spectrum)
    for k, a in enumerate(spectrum):
        m = np.block([[a.real, a.imag], [-a.imag, a.real]])  # 3.
        g = m.T @ m  # 4.
        rho = np.linalg.norm(g)  # 5. Newton–Schulz, reg 1, 10 iterations
        kappa = rho if rho > 1 else 1.0
        y, z = g / kappa, np.eye(len(g))
        for _ in range(10):
            t = 0.5 * (3 * np.eye(len(g)) - z @ y)
            y, z = y @ t, t @ z
        p = target * m @ (z / np.sqrt(kappa))  # 6.
        out[k] = p[:n_in, :n_out] + sign * 1j * p[:n_in, n_out:]  # 7.
    back = np.fft.ifft2(out.reshape(grid, grid, n_in, n_out), axes=(0, 1)).real  # 8.
    return back[:kw, :kh].transpose(3, 2, 1, 0)


@pytest.mark.parametrize(
    ("shape", "grid"), [((16, 3, 3, 3), 8), ((24, 8, 1, 1), 4)], ids=["stem-3x3", "transition-1x1"]
)
def test_reference_mode_reproduces_the_original_algorithm(shape, grid):
    torch.manual_seed(5)
    weight = torch.randn(shape) * math.sqrt(2 / (shape[1] * shape[2] * shape[3]))
    target = math.sqrt(shape[0] / shape[1])
    expected = _independent_reference(weight.double().numpy(), grid, target)
    scale = np.abs(expected).max()
    ours = project_reference(weight, (grid, grid))
    assert ours.dtype == torch.float32  # the reference works in float32 / complex64
    np.testing.assert_allclose(ours.double().numpy(), expected, rtol=0, atol=2e-5 * scale)
    # The shortcuts (smaller Gram matrix, one frequency for 1×1) change nothing beyond float rounding.
    literal = project_reference(weight, (grid, grid), collapse_pointwise=False, small_gram=False)
    np.testing.assert_allclose(literal.double().numpy(), expected, rtol=0, atol=2e-5 * scale)


def test_reference_sign_quirk_collapses_the_stem_onto_its_corner_tap(procresnet):
    """Spec §1.7: after one projection of a fresh stem ≈99.4 % of the energy is in W[:, :, 0, 0],
    and the operator's singular values are ≈1.2-1.9 instead of √(64/3) ≈ 4.62."""
    weight = _stem_like(0)
    projected = project_reference(weight, (32, 32))
    energy = projected.pow(2).sum(dim=(0, 1))
    assert energy[0, 0] / energy.sum() > 0.98
    deviation = projection_deviation(projected, (32, 32))
    assert deviation["min"] > 1.1 and deviation["max"] < 2.0


def test_reference_with_the_sign_of_step_7_flipped_is_the_exact_projection():
    """Spec §8.1: ``B = TL + i·TR`` turns the original route into the per-frequency SVD projection."""
    weight = _stem_like(0, n_out=16)
    corrected = _independent_reference(weight.double().numpy(), 8, math.sqrt(16 / 3), sign=1.0)
    exact = project_exact(weight, (8, 8)).double().numpy()
    np.testing.assert_allclose(exact, corrected, rtol=0, atol=1e-6)
    energy = np.square(exact).sum(axis=(0, 1))
    assert energy[0, 0] / energy.sum() < 0.3  # spread over the taps, not collapsed onto one


def test_reference_1x1_equals_sqrt2_times_the_polar_factor():
    """Spec §1.7: for the transitions the original returns √2·U·Vᵀ to ~4e-6."""
    torch.manual_seed(6)
    weight = torch.randn(128, 64, 1, 1) * math.sqrt(2 / 64)
    projected = project_reference(weight, (16, 16))[:, :, 0, 0].double()
    u, _, vh = torch.linalg.svd(weight[:, :, 0, 0].double(), full_matrices=False)
    torch.testing.assert_close(projected, math.sqrt(2) * (u @ vh), rtol=0, atol=2e-5)


# ------------------------------------------------------------------------------ regularize_convs


def test_regularize_convs_draws_from_the_given_generator(procresnet):
    model = procresnet
    coins = torch.Generator().manual_seed(11)
    expected = [float(torch.rand((), generator=coins)) <= 0.5 for _ in range(12)]
    generator = torch.Generator().manual_seed(11)
    decisions = []
    for _ in range(12):
        before = model.trans_conv2.weight.detach().clone()
        model.trans_conv2.weight.data.mul_(1.01)  # make every projection visible
        projected = model.regularize_convs(p=0.5, mode="exact", generator=generator)
        decisions.append(projected)
        assert projected == (not torch.allclose(model.trans_conv2.weight, before * 1.01))
    assert decisions == expected and any(decisions) and not all(decisions)
    snapshot = model.conv1.weight.detach().clone()
    assert model.regularize_convs(p=0.0, generator=generator) is False
    assert torch.equal(model.conv1.weight, snapshot)


def test_regularize_convs_rejects_bad_arguments(procresnet):
    with pytest.raises(nx.InputError, match=r"\[0, 1\]"):
        procresnet.regularize_convs(p=1.5)
    with pytest.raises(nx.InputError, match="exact, reference"):
        procresnet.regularize_convs(p=1.0, mode="svd")
