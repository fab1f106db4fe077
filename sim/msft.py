"""Wide-angle scattering with absorption: the multislice Fourier transform (MSFT) of seed 001 (appendix B;
Barke et al., Nat. Commun. 6, 6187 (2015); docs/PHYSICS.md "MSFT").

The field at a pixel is the phase-coherent sum over depth of each layer's transverse Fourier transform,
each layer's density attenuated by the material in front of it (intensity absorption length ``a``):

    E(q) = Σ_n e^{-i q_z z_n} FT₂[ρ_n A_n](q_x, q_y),   A_n = exp(-(1/2a) ∫_{z<z_n} ρ dz)

with the pixel's full wide-angle ``q`` (curved Ewald sphere). Two implementations:

- :func:`msft_amplitude` (the simulator): for a convex particle each beam-parallel column ``(x, y)`` crosses
  it in one interval ``[z_in, z_out]``, so the depth sum is exact in closed form (the limit of infinitely
  many slices): ``∫ e^{-α(z - z_in)} e^{-i q_z z} dz = [e^{-i q_z z_in} - e^{-αL} e^{-i q_z z_out}] / β`` with
  ``α = 1/(2a)``, ``β = α + i q_z``, ``L = z_out - z_in``. The transverse sum over ``columns²`` columns then
  is a type-3 NUFFT from the columns' entry and exit points to the pixels' q, evaluated exactly at each
  pixel (no padded grids): the work each pixel needs and no more.
- :func:`msft_slices` (the reference): the literal multislice sum over ``slices`` layers, each layer's
  transform by a zero-padded 2D FFT with bilinear interpolation (the paper's discretisation) or exactly.

With ``a → ∞`` both reduce to the 3D Born amplitude of the shape (:func:`spizoo.sim.scattering_amplitude`).
Amplitudes are in nm³ (unit density); multiply by the electron density for electrons.
"""

from __future__ import annotations

import finufft
import numpy as np
import scipy.ndimage

from spizoo.sim import quaternion, shapes

CONVEX_SHAPES = ("sphere", *shapes.POLYHEDRA)


def _check(shape: str, circumradius_nm: float, absorption_length_nm: float, columns: int) -> None:
    if shape not in CONVEX_SHAPES:
        raise ValueError(f"MSFT needs a convex shape, one of {', '.join(CONVEX_SHAPES)}; got {shape!r}")
    if not circumradius_nm > 0:
        raise ValueError(f"circumradius_nm must be > 0, got {circumradius_nm}")
    if not absorption_length_nm > 0:
        raise ValueError(f"absorption_length_nm must be > 0 (inf: no absorption), got {absorption_length_nm}")
    if columns < 8:
        raise ValueError(f"columns must be >= 8, got {columns}")


def column_intervals(
    shape: str, *, circumradius_nm: float, quaternion_wxyz: np.ndarray, columns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Where beam-parallel columns cross the rotated particle.

    The columns sit on a ``columns × columns`` grid of spacing ``h = 2 R / columns`` covering the particle's
    circumscribed disc. Returns ``(xy (C, 2), z_in (C,), z_out (C,), h)`` for the ``C`` columns that hit it.
    """
    r_mat = quaternion.to_matrix(quaternion_wxyz)
    h = 2 * circumradius_nm / columns
    axis = (np.arange(columns) - (columns - 1) / 2) * h
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    x, y = xx.ravel(), yy.ravel()
    if shape == "sphere":
        half = np.sqrt(np.maximum(circumradius_nm**2 - x * x - y * y, 0.0))
        z_in, z_out = -half, half
    else:
        normals, offsets = shapes.polyhedron_planes(shape)
        n = normals @ r_mat.T  # rotated face normals (F, 3)
        rhs = offsets * circumradius_nm - np.outer(x, n[:, 0]) - np.outer(y, n[:, 1])  # n_z z <= rhs
        nz = n[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = rhs / nz
        parallel = np.abs(nz) < 1e-12
        upper = np.where(nz > 1e-12, bound, np.inf).min(axis=1)
        lower = np.where(nz < -1e-12, bound, -np.inf).max(axis=1)
        outside = (parallel & (rhs < 0)).any(axis=1)
        z_in, z_out = lower, np.where(outside, lower, upper)
    hit = z_out > z_in
    return np.stack([x[hit], y[hit]], axis=1), z_in[hit], z_out[hit], h


def msft_amplitude(
    shape: str,
    *,
    circumradius_nm: float,
    quaternion_wxyz: np.ndarray,
    q_inv_nm: np.ndarray,
    absorption_length_nm: float = 12.5,
    columns: int = 192,
    eps: float = 1e-6,
) -> np.ndarray:
    """MSFT far-field amplitude (nm³, complex128) of a convex particle at pixel momentum transfers.

    Args:
        shape: one of :data:`CONVEX_SHAPES`.
        circumradius_nm: circumscribed radius.
        quaternion_wxyz: orientation (the particle frame rotated into the lab frame; beam along lab +z).
        q_inv_nm: lab-frame ``q = k_out - k_in`` (..., 3), e.g. ``Detector.q_inv_nm(λ)``.
        absorption_length_nm: intensity absorption length ``a`` (``np.inf``: none; silver at 13.5 nm: 12.5).
        columns: transverse samples across the particle's diameter (seed 001 used a 192-voxel grid).
        eps: NUFFT tolerance. Without absorption the forward pixels divide by a tiny ``q_z``: use ``eps`` ≤ 1e-12.

    Returns:
        complex128 array of shape ``q_inv_nm.shape[:-1]``.
    """
    _check(shape, circumradius_nm, absorption_length_nm, columns)
    q = np.asarray(q_inv_nm, dtype=np.float64)
    flat = q.reshape(-1, 3)
    xy, z_in, z_out, h = column_intervals(
        shape, circumradius_nm=circumradius_nm, quaternion_wxyz=quaternion_wxyz, columns=columns
    )
    alpha = 0.0 if np.isinf(absorption_length_nm) else 1 / (2 * absorption_length_nm)
    x = np.concatenate([xy[:, 0], xy[:, 0]])
    y = np.concatenate([xy[:, 1], xy[:, 1]])
    z = np.concatenate([z_in, z_out])
    weights = np.concatenate([np.ones_like(z_in), -np.exp(-alpha * (z_out - z_in))]).astype(np.complex128) * h * h
    if len(x) == 0:
        return np.zeros(q.shape[:-1], dtype=np.complex128)
    qx, qy, qz = (np.ascontiguousarray(c) for c in flat.T)
    total = finufft.nufft3d3(x, y, z, weights, qx, qy, qz, isign=-1, eps=eps)
    return (total / (alpha + 1j * flat[:, 2])).reshape(q.shape[:-1])


def msft_slices(
    shape: str,
    *,
    circumradius_nm: float,
    quaternion_wxyz: np.ndarray,
    q_inv_nm: np.ndarray,
    absorption_length_nm: float = 12.5,
    slices: int = 192,
    padding: int | None = 512,
) -> np.ndarray:
    """The literal multislice sum (reference implementation; seed 001 appendix B).

    The particle is cut into ``slices`` layers of thickness ``Δz = 2R/slices`` on a ``slices²`` transverse
    grid; each layer's partial occupancy and its attenuation by the material in front of it (to the layer's
    centre) come from the exact column intervals. Each layer's transform is the ``padding``-point zero-padded
    2D FFT interpolated bilinearly at the pixel's ``(q_x, q_y)`` (the paper's method), or, with
    ``padding=None``, evaluated exactly (2D NUFFT). Layers are summed with the phase ``e^{-i q_z z_n}``.
    """
    _check(shape, circumradius_nm, absorption_length_nm, slices)
    if padding is not None and padding < slices:
        raise ValueError(f"padding must be >= slices ({slices}), got {padding}")
    shape_out = np.shape(q_inv_nm)[:-1]
    q = np.asarray(q_inv_nm, dtype=np.float64).reshape(-1, 3)
    n = slices
    xy, z_in, z_out, h = column_intervals(
        shape, circumradius_nm=circumradius_nm, quaternion_wxyz=quaternion_wxyz, columns=n
    )
    alpha = 0.0 if np.isinf(absorption_length_nm) else 1 / (2 * absorption_length_nm)
    ix = np.rint(xy / h + (n - 1) / 2).astype(int)
    dz = 2 * circumradius_nm / n
    z_centres = (np.arange(n) - (n - 1) / 2) * dz
    lo, hi = z_centres - dz / 2, z_centres + dz / 2
    occ = np.clip(np.minimum(z_out[:, None], hi) - np.maximum(z_in[:, None], lo), 0, None) / dz  # (C, n)
    depth = np.clip(z_centres - z_in[:, None], 0, (z_out - z_in)[:, None])  # material in front of each centre
    layers = np.zeros((n, n, n), dtype=np.complex128)  # (slice, x, y)
    layers[:, ix[:, 0], ix[:, 1]] = (occ * np.exp(-alpha * depth)).T * (h * h * dz)
    axis = (np.arange(n) - (n - 1) / 2) * h
    out = np.zeros(len(q), dtype=np.complex128)
    if padding is None:
        for k in range(n):
            if layers[k].any():
                ft = finufft.nufft2d2(
                    np.ascontiguousarray(q[:, 0] * h), np.ascontiguousarray(q[:, 1] * h), layers[k], isign=-1, eps=1e-9
                )
                shift = axis[0] + (n // 2) * h  # position of the NUFFT's mode 0
                out += ft * np.exp(-1j * (q[:, 0] + q[:, 1]) * shift) * np.exp(-1j * q[:, 2] * z_centres[k])
        return out.reshape(shape_out)
    grid = np.zeros((n, padding, padding), dtype=np.complex128)
    grid[:, :n, :n] = layers
    spectra = np.fft.fft2(grid)  # value at index m: Σ w e^{-i 2π m j / padding}, j the grid index
    coords = np.mod(q[:, :2] * h * padding / (2 * np.pi), padding).T
    origin = np.exp(-1j * (q[:, 0] + q[:, 1]) * axis[0])  # grid index 0 sits at axis[0]
    for k in range(n):
        if not layers[k].any():
            continue
        re = scipy.ndimage.map_coordinates(spectra[k].real, coords, order=1, mode="grid-wrap")
        im = scipy.ndimage.map_coordinates(spectra[k].imag, coords, order=1, mode="grid-wrap")
        out += (re + 1j * im) * origin * np.exp(-1j * q[:, 2] * z_centres[k])
    return out.reshape(shape_out)
