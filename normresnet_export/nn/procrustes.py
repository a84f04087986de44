"""Norm-preserving (Procrustes) projection of a convolution, and how far a kernel is from one.

Paper: Zaeemzadeh, Rahnavard, Shah, "Norm-Preservation: Why Residual Networks Can Become
Extremely Deep?" (TPAMI 2020, arXiv 1805.07477); algorithm as in zaeemzadeh/ProcResNet_PyTorch
(``regularize_conv`` in its ``main.py``).

A stride-1 convolution with circular padding on an ``H×W`` grid is block-diagonalised by the
2-D DFT: at every frequency ``f`` it acts as the ``n_out×n_in`` matrix
``A_f = Σ_{a,b} W[:, :, a, b]·exp(−2πi(f₁a/H + f₂b/W))``. The operator preserves norms (up to a
factor ``c``) when every singular value of every ``A_f`` equals ``c``; the ProcResNet target is
``c = sqrt(n_out/n_in)``. Two projections are provided:

* ``"exact"``: a complex SVD per frequency, every singular value set to ``c``, inverse DFT, crop
  back to the kernel's support. For a 1×1 kernel the spectrum is the same matrix at every
  frequency, so the result is exactly ``c·U·Vᴴ`` of the weight matrix (norm-preserving); for a
  larger kernel the crop makes it approximate (:func:`operator_singular_values` measures by how
  much).
* ``"reference"``: the original code step by step (real embedding of the complex spectrum, ten
  coupled Newton–Schulz iterations for ``G^{-1/2}``, float32), including its sign quirk: step 7
  extracts the *complex conjugate* of the projected spectrum, which for a real 3×3 kernel flips
  it circularly, so the crop keeps mostly the corner tap ``W[:, :, 0, 0]``.
  It exists to reproduce published numbers, not because it is right.

Everything here is pure tensor maths on one weight; the model method
``ProcResNet.regularize_convs`` and the training hook in ``trainers/`` call it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from normresnet_export.errors import InputError
from normresnet_export.vocabulary import PROJECTION_MODES

ProjectionMode = Literal["exact", "reference"]

#: The reference calls ``batch_sqrtm`` with these values; the function's own defaults (20, 2.0) are unused.
REFERENCE_ITERATIONS = 10
REFERENCE_REG = 1.0


def norm_preserving_target(weight: torch.Tensor) -> float:
    """The singular value a norm-preserving ``n_out×n_in`` convolution has: ``sqrt(n_out / n_in)``."""
    return math.sqrt(weight.shape[0] / weight.shape[1])


def _check(weight: torch.Tensor, grid: tuple[int, int]) -> tuple[int, int]:
    if weight.dim() != 4:
        raise InputError(f"expected a conv weight [out, in, kh, kw], got shape {list(weight.shape)}")
    height, width = (int(g) for g in grid)
    kh, kw = weight.shape[-2:]
    if height < kh or width < kw:
        raise InputError(
            f"the FFT grid {height}×{width} is smaller than the kernel {kh}×{kw}; use a grid at least as "
            "large as the kernel (the layer's feature-map size)"
        )
    return height, width


def conv_spectrum(weight: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The matrices ``A_f`` of a kernel on an ``H×W`` grid, shape ``[H, W, n_out, n_in]`` (complex).

    Whether the layer correlates or convolves, and where its padding puts the origin, only
    relabels frequencies (``f → −f``) or multiplies ``A_f`` by a unit phase, so the set of
    singular values is the same.
    """
    height, width = _check(weight, grid)
    return torch.fft.fft2(weight, s=(height, width), dim=(-2, -1)).permute(2, 3, 0, 1)


def operator_singular_values(weight: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """All singular values of the stride-1, circularly padded convolution operator on ``grid``.

    Returns a 1-D float64 tensor of ``H·W·min(n_out, n_in)`` values (one set per frequency; for a
    1×1 kernel one set, since every frequency holds the same matrix).
    """
    w = weight.detach().to(torch.float64)
    if w.shape[-2:] == (1, 1):
        return torch.linalg.svdvals(w[:, :, 0, 0])
    return torch.linalg.svdvals(conv_spectrum(w, grid)).flatten()


def projection_deviation(
    weight: torch.Tensor, grid: tuple[int, int], target: float | None = None
) -> dict[str, float]:
    """How far a kernel's operator is from norm-preserving: its singular values against ``target``.

    Args:
        weight: Conv weight ``[out, in, kh, kw]``.
        grid: Feature-map size the operator acts on.
        target: The wanted singular value (default ``sqrt(out/in)``).

    Returns:
        ``target``, ``min`` and ``max`` singular value, and ``max_rel_dev`` = max |σ − target| / target.
    """
    c = norm_preserving_target(weight) if target is None else float(target)
    sigma = operator_singular_values(weight, grid)
    return {
        "target": c,
        "min": float(sigma.min()),
        "max": float(sigma.max()),
        "max_rel_dev": float((sigma - c).abs().max() / c),
    }


# --------------------------------------------------------------------------------------- exact mode


def _polar(matrices: torch.Tensor, target: float) -> torch.Tensor:
    """``target·U·Vᴴ`` of every matrix in the batch (all non-zero singular values set to ``target``)."""
    u, _, vh = torch.linalg.svd(matrices, full_matrices=False)
    return target * (u @ vh)


def project_exact(weight: torch.Tensor, grid: tuple[int, int], target: float | None = None) -> torch.Tensor:
    """The exact projection: per-frequency SVD with all singular values set to ``target``, then crop.

    Computed in float64 and returned in the weight's dtype. A 1×1 kernel is projected as one
    matrix (its spectrum is constant over frequencies, so this *is* the per-frequency projection).
    """
    height, width = _check(weight, grid)
    c = norm_preserving_target(weight) if target is None else float(target)
    w = weight.detach().to(torch.float64)
    kh, kw = w.shape[-2:]
    if (kh, kw) == (1, 1):
        return _polar(w[:, :, 0, 0], c)[:, :, None, None].to(weight.dtype)
    projected = _polar(conv_spectrum(w, (height, width)), c)  # [H, W, out, in]
    kernel = torch.fft.ifft2(projected.permute(2, 3, 0, 1), dim=(-2, -1)).real
    return kernel[:, :, :kh, :kw].contiguous().to(weight.dtype)


# ----------------------------------------------------------------------------------- reference mode


def batch_sqrtm(
    gram: torch.Tensor, iterations: int = REFERENCE_ITERATIONS, reg: float = REFERENCE_REG
) -> tuple[torch.Tensor, torch.Tensor]:
    """Square root and inverse square root of a batch of Gram matrices by coupled Newton–Schulz.

    The reference's ``batch_sqrtm``: ``ρ = reg·‖G‖_F``, ``κ = ρ`` if ``ρ > 1`` else 1,
    ``Y₀ = G/κ``, ``Z₀ = I``; then ``iterations`` times ``T = ½(3I − ZY)``, ``Y ← YT``,
    ``Z ← TZ``. Returns ``(Y·√κ, Z/√κ)`` ≈ ``(G^{1/2}, G^{-1/2})``. Weak eigenvalues (below ~5e-3
    of the Frobenius norm) are not fully converged after ten iterations — reproduced, not fixed.
    """
    n = gram.shape[-1]
    rho = reg * torch.linalg.matrix_norm(gram, ord="fro")
    kappa = torch.where(rho > 1, rho, torch.ones_like(rho))[..., None, None]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device).expand_as(gram)
    y = gram / kappa
    z = eye.clone()
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y = y @ t
        z = t @ z
    return y * kappa.sqrt(), z / kappa.sqrt()


def project_reference(
    weight: torch.Tensor,
    grid: tuple[int, int],
    target: float | None = None,
    *,
    collapse_pointwise: bool = True,
    small_gram: bool = True,
) -> torch.Tensor:
    """The original ``regularize_conv``, step by step as ProcResNet_PyTorch runs it, in float32.

    Args:
        weight: Conv weight ``[out, in, kh, kw]``.
        grid: The FFT grid the reference hard-codes for this layer (32×32, 16×16, 8×8 for ProcResNet).
        target: Singular value to set (default ``sqrt(out/in)``).
        collapse_pointwise: For a 1×1 kernel every frequency holds the same matrix, so the
            reference's batch of ``H·W`` identical problems gives ``H·W`` identical answers and
            its inverse DFT returns that answer (up to float rounding of the average). Solving
            it once gives the same weight at ``1/(H·W)`` of the cost (the full 16×16 batch of
            ``trans_conv1`` alone is ~90 GFLOP of Newton–Schulz). ``False`` runs the full batch.
        small_gram: The Newton–Schulz iterates are fixed polynomials of their input, ``Z = q(G)``,
            and ``M·q(MᵀM) = q(MMᵀ)·M`` with ``‖MᵀM‖_F = ‖MMᵀ‖_F``. So when ``in < out`` the
            iteration runs on the smaller Gram matrix ``MMᵀ`` (6×6 instead of 128×128 for the
            stem) and is applied from the left: the same algorithm, equal up to float rounding,
            without the null-space directions the reference lets grow and then annihilates.
            ``False`` runs it literally on ``MᵀM``.

    Returns:
        The projected weight, float32 (as in the reference), same shape.
    """
    height, width = _check(weight, grid)
    c = norm_preserving_target(weight) if target is None else float(target)
    kh, kw = weight.shape[-2:]
    if collapse_pointwise and (kh, kw) == (1, 1):
        height = width = 1
    n_out, n_in = weight.shape[:2]
    # 1. (out, in, kh, kw) -> (kw, kh, in, out).
    kernel = weight.detach().to(torch.float32).permute(3, 2, 1, 0)
    # 2. Zero-pad axes 0, 1 to the grid; 2-D DFT over them; one batch of in×out matrices.
    spectrum = torch.fft.fft2(kernel, s=(height, width), dim=(0, 1)).reshape(-1, n_in, n_out)
    # 3. Real embedding [[R, I], [-I, R]] (2·in × 2·out).
    real, imag = spectrum.real, spectrum.imag
    m = torch.cat([torch.cat([real, imag], dim=2), torch.cat([-imag, real], dim=2)], dim=1)
    # 4.-6. Gram matrix G = MᵀM, G^{-1/2} by Newton–Schulz, then c·M·G^{-1/2} ≈ c·U·Vᵀ.
    if small_gram and n_in < n_out:
        _, inv_sqrt = batch_sqrtm(m @ m.transpose(1, 2))
        projected = c * (inv_sqrt @ m)
    else:
        _, inv_sqrt = batch_sqrtm(m.transpose(1, 2) @ m)
        projected = c * (m @ inv_sqrt)
    # 7. Back to complex with the reference's sign: TL − i·TR is the conjugate of the projected matrix.
    top_left = projected[:, :n_in, :n_out]
    top_right = projected[:, :n_in, n_out:]
    conj = torch.complex(top_left, -top_right).to(torch.complex64)
    # 8. Inverse DFT, real part, crop to the kernel's support, undo the axis reorder.
    back = torch.fft.ifft2(conj.reshape(height, width, n_in, n_out), dim=(0, 1)).real
    return back[:kw, :kh].permute(3, 2, 1, 0).contiguous()


def project_conv(
    weight: torch.Tensor,
    grid: tuple[int, int],
    *,
    mode: ProjectionMode = "exact",
    target: float | None = None,
) -> torch.Tensor:
    """Project a conv weight onto (approximately) norm-preserving operators; see the module docstring.

    Returns a new tensor with the weight's shape, dtype and device.

    Raises:
        InputError: Unknown ``mode``, a non-conv weight, or a grid smaller than the kernel.
    """
    if mode == "exact":
        out = project_exact(weight, grid, target)
    elif mode == "reference":
        out = project_reference(weight, grid, target)
    else:
        raise InputError(f"unknown Procrustes mode {mode!r}; expected one of {', '.join(PROJECTION_MODES)}")
    return out.to(device=weight.device, dtype=weight.dtype)
