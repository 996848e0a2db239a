"""One synthetic multi-coil 3-D knee: anatomy -> contrast, bias, phase -> coils -> k-space.

Array frame (every array, coil-first ``(coil, x, y, z)`` for multi-coil ones), as a sagittal 3-D
FSE: ``x`` = readout = superior-inferior (index 0 superior), ``y`` = anterior-posterior (index 0
anterior), ``z`` = left-right, the partition axis (index 0 = patient's right, so a right knee has
its lateral side, the fibula, at low ``z``). A left knee is the right knee mirrored along ``z``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..config_io import require_seed
from ..errors import PipelineInputError
from ..fft import fft3c
from ..subject import Subject
from .anatomy import paint, place
from .params import sample_params, smooth_field
from .presets import FOV_MM, get_preset

GENERATOR = "data_tools.phantom"
GENERATOR_VERSION = "1.0"
ORIENTATION = "x=SI (x[0] superior, readout), y=AP (y[0] anterior), z=LR (z[0] patient right, partitions)"
_SLAB_VOXELS = 1_000_000


def _axes_mm(matrix, voxel):
    """Voxel-centre positions (mm); position 0 is index n//2, the FFT centre."""
    return [((np.arange(n) - n // 2) * v).astype(np.float32) for n, v in zip(matrix, voxel)]


def _textures(rng: np.random.Generator, matrix, voxel):
    """Trabecular network in [0, 1] (thin sheets at zero crossings of band-passed noise, ~1-2 mm
    spacing) and muscle striation (noise smoothed 4 mm along the fibres, i.e. along x)."""
    white = rng.standard_normal(matrix, dtype=np.float32)
    v = np.asarray(voxel)
    band = ndimage.gaussian_filter(white, 0.6 / v) - ndimage.gaussian_filter(white, 1.6 / v)
    trab = np.exp(-(band / (0.45 * band.std() + 1e-12)) ** 2).astype(np.float32)
    musc = ndimage.gaussian_filter(white, np.array([4.0, 0.8, 0.8]) / v)
    musc /= musc.std() + 1e-12
    return trab, musc.astype(np.float32)


def birdcage(n_coils: int, matrix, ring_radius: float = 1.5):
    """Birdcage coil sensitivities, one ring of ``n_coils`` around the x (leg) axis.

    The formula of ``sigpy.mri.birdcage_maps`` (4-D case, one ring: ``1/r`` magnitude and the
    azimuthal phase of each element), evaluated with broadcasting in float32 instead of sigpy's
    ``mgrid`` (GBs on the full grid; importing sigpy also costs seconds). sigpy's last two axes are
    our (y, z); it is checked against sigpy in tests. Returns (coil, x, y, z) complex64, not normalised.
    """
    nx, ny, nz = matrix
    xg = ((np.arange(nx, dtype=np.float32) - nx / 2.0) / (nx / 2.0))[:, None, None]
    yg = ((np.arange(ny, dtype=np.float32) - ny / 2.0) / (ny / 2.0))[None, :, None]
    zg = ((np.arange(nz, dtype=np.float32) - nz / 2.0) / (nz / 2.0))[None, None, :]
    out = np.empty((n_coils, nx, ny, nz), dtype=np.complex64)
    for c in range(n_coils):
        ang = c * 2 * np.pi / n_coils
        z_co = zg - np.float32(ring_radius * np.cos(ang))
        y_co = yg - np.float32(ring_radius * np.sin(ang))
        rho2 = z_co ** 2 + y_co ** 2
        # exp(i * (arctan2(z_co, -y_co) - ang)) without trigonometry on the full grid
        e = ((-y_co + 1j * z_co) / np.sqrt(rho2) * np.complex64(np.exp(-1j * ang))).astype(np.complex64)
        out[c] = e / np.sqrt(rho2 + xg ** 2)
    return out


def _coil_maps(n_coils: int, matrix, ring_radius: float, d_body, voxel_mm: float):
    """Birdcage maps normalised so that sum_c |S_c|^2 = 1 inside the body (and up to one voxel
    outside it, where partial volume puts signal), tapered to zero in the air around it."""
    maps = birdcage(n_coils, matrix, ring_radius)
    power = np.zeros(matrix, dtype=np.float32)
    for m in maps:  # per coil: no (coil, x, y, z) float temporaries on the full grid
        power += m.real ** 2 + m.imag ** 2
    taper = np.where(d_body <= voxel_mm, 1.0, np.exp(-((d_body - voxel_mm) / 12.0) ** 2)).astype(np.float32)
    scale = taper / np.maximum(np.sqrt(power), 1e-12)
    for m in maps:
        m *= scale
    return maps


def build_volumes(preset: str, seed: int):
    """Right-knee image-domain volumes: magnitude (without bias), labels, body SDF, bias, phase,
    texture-independent params. Arrays are (x, y, z)."""
    pr = get_preset(preset)
    P = place(sample_params(np.random.default_rng(seed)))
    voxel = pr.voxel_size_mm
    vmean = float(np.mean(voxel))
    trab, musc = _textures(np.random.default_rng([seed, 1]), pr.matrix, voxel)
    X, Y, Z = _axes_mm(pr.matrix, voxel)
    R, t = P["pose"]["R"], P["pose"]["t"]
    nx, ny, nz = pr.matrix
    mag = np.empty(pr.matrix, np.float32)
    labels = np.empty(pr.matrix, np.uint8)
    d_body = np.empty(pr.matrix, np.float32)
    bias = np.empty(pr.matrix, np.float32)
    phase = np.empty(pr.matrix, np.float32)
    step = max(1, _SLAB_VOXELS // (ny * nz))
    for i0 in range(0, nx, step):
        sl = slice(i0, min(nx, i0 + step))
        xs, ys, zs = np.meshgrid(X[sl], Y, Z, indexing="ij")
        u = (-xs - t[0], -ys - t[1], -zs - t[2])  # scanner (sup, ant, lat) minus the pose shift
        s, a, l = (sum(float(R[j, i]) * u[j] for j in range(3)) for i in range(3))  # R^T u
        mag[sl], labels[sl], d_body[sl] = paint(s, a, l, P, vmean, trab[sl], musc[sl])
        bias[sl] = np.exp(P["bias_strength"] * smooth_field(P["bias_waves"], xs, ys, zs))
        ramp = sum(float(P["phase_ramp"][j]) * g for j, g in enumerate((xs, ys, zs)))
        phase[sl] = 1.5 * smooth_field(P["phase_waves"], xs, ys, zs) + ramp
    return P, mag, labels, d_body, bias, phase


def check_args(seed: int, side: str = "right", snr: float | None = None) -> None:
    """Refuse a negative or non-integer seed, an unknown side, a non-positive SNR (PipelineInputError)."""
    if side not in ("right", "left"):
        raise PipelineInputError(f"unknown side '{side}'", field="side", expected="right or left")
    if snr is not None and not snr > 0:
        raise PipelineInputError(f"snr must be positive, got {snr}", field="snr", expected="a number > 0 or none")
    require_seed(seed)


def generate_subject(preset: str = "demo", seed: int = 0, side: str = "right", snr: float | None = None,
                     bias: bool = True) -> Subject:
    """Generate one synthetic knee as a :class:`~data_tools.subject.Subject`.

    ``kspace`` (8, x, y, z) complex64 = ``fft3c(S_c * m * b * exp(i*phi) + noise_c)`` with the
    centred orthonormal FFT of :mod:`data_tools.fft`; ``rss`` = RSS of ``ifft3c(kspace)``;
    ``labels`` (x, y, z) uint8 (:data:`data_tools.subject.LABELS`); ``coil_maps`` S;
    ``bias_field`` b (``None`` when ``bias`` is false). ``snr``: mean body magnitude / per-coil
    complex noise standard deviation (``None``: noise-free). Same seed -> identical arrays.
    """
    check_args(seed, side, snr)
    pr = get_preset(preset)
    P, mag, labels, d_body, b, phase = build_volumes(preset, seed)
    maps = _coil_maps(pr.n_coils, pr.matrix, P["coil_r"], d_body, float(np.mean(pr.voxel_size_mm)))
    if side == "left":
        mag, labels, d_body, b, phase = (np.ascontiguousarray(v[..., ::-1]) for v in (mag, labels, d_body, b, phase))
        maps = np.ascontiguousarray(maps[..., ::-1])
    obj = mag * b if bias else mag
    sigma = 0.0
    if snr is not None:
        sigma = float(obj[d_body < 0].mean()) / float(snr)
    obj = (obj * np.exp(1j * phase)).astype(np.complex64)
    noise_rng = np.random.default_rng([seed, 2])
    kspace = np.empty((pr.n_coils, *pr.matrix), dtype=np.complex64)
    power = np.zeros(pr.matrix, dtype=np.float32)
    for c in range(pr.n_coils):
        img = maps[c] * obj
        if sigma > 0:
            n = noise_rng.standard_normal((2, *pr.matrix), dtype=np.float32) * np.float32(sigma / np.sqrt(2))
            if side == "left":  # mirror the right knee's noise too, so left == mirrored right exactly
                n = n[..., ::-1]
            img = img + (n[0] + 1j * n[1])
        img = img.astype(np.complex64)
        kspace[c] = fft3c(img)
        # RSS of the coil images: equals rss(ifft3c(kspace)) up to float32 round-off (tested), 8 FFTs cheaper
        power += img.real ** 2 + img.imag ** 2
    attrs = {
        "matrix": list(pr.matrix), "voxel_size_mm": list(pr.voxel_size_mm), "fov_mm": list(FOV_MM),
        "n_coils": pr.n_coils, "seed": int(seed), "preset": pr.name, "side": side, "source": "phantom",
        "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "orientation": ORIENTATION,
        "fft": "centred orthonormal: fftshift(fftn(ifftshift(x), norm='ortho')) over (x, y, z)",
        "bias": bool(bias), "snr": float(snr) if snr is not None else 0.0, "noise_sigma": sigma,
        "subject": f"phantom_{pr.name}_s{seed}_{side}",
    }
    return Subject(kspace=kspace, rss=np.sqrt(power).astype(np.float32), labels=labels, coil_maps=maps,
                   bias_field=b.astype(np.float32) if bias else None, attrs=attrs)
