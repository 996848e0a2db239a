"""The embedded default data set: the demo phantom, generated once into the cache and reused."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..atomic import check_writable, make_dir
from ..config_io import require_seed_run
from ..paths import cache_dir
from ..subject import write_subject
from .generate import GENERATOR_VERSION, check_args, generate_subject
from .presets import get_preset

# Thermal noise of the cached default data: real scans are noisy (../shared/reference/000_deepmri.md
# §1.1 uses fully sampled scanner data), so the default set is too; `pipeline data phantom` can make
# noise-free or other-SNR sets.
DEMO_SNR = 40.0
MANIFEST = "manifest.json"


def subject_name(index: int) -> str:
    return f"knee_{index:03d}.h5"


def write_phantom_set(out: str | Path, n_subjects: int, seed: int = 0, preset: str = "demo", side: str = "right",
                      snr: float | None = DEMO_SNR, bias: bool = True, progress: bool = True) -> list[Path]:
    """Write ``n_subjects`` subjects ``knee_000.h5 ...`` into ``out``; subject ``i`` has seed ``seed + i``."""
    from tqdm import tqdm

    check_args(seed, side, snr)  # before the progress bar starts
    get_preset(preset)
    require_seed_run(seed, n_subjects, f"with {n_subjects} subjects", "seed")  # before the first file is written
    check_writable(out)
    out = Path(out)
    paths = []
    for i in tqdm(range(n_subjects), desc=f"phantom ({preset})", unit="subject", disable=not progress):
        subj = generate_subject(preset=preset, seed=seed + i, side=side, snr=snr, bias=bias)
        paths.append(write_subject(out / subject_name(i), subj))
    return paths


def ensure_demo_phantom(n_subjects: int = 4, seed: int = 0, preset: str = "demo") -> Path:
    """Folder of ``n_subjects`` phantom subject files in the cache, generated on first use.

    Keyed by preset, seed, count and generator version. Generation happens in a temporary sibling
    folder that is renamed into place only when every file and the manifest are written, so a
    crashed run is never reused (and a concurrent run that finishes first simply wins).
    """
    get_preset(preset)
    root = cache_dir() / "phantom"
    final = root / f"{preset}_seed{seed}_n{n_subjects}_v{GENERATOR_VERSION}"
    if (final / MANIFEST).is_file():
        return final
    make_dir(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        files = write_phantom_set(tmp, n_subjects, seed=seed, preset=preset, snr=DEMO_SNR)
        manifest = {"preset": preset, "seed": seed, "n_subjects": n_subjects, "snr": DEMO_SNR, "bias": True,
                    "side": "right", "generator_version": GENERATOR_VERSION, "files": [p.name for p in files]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if final.exists() and not (final / MANIFEST).is_file():
            shutil.rmtree(final)  # an incomplete folder from an older, non-atomic layout
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return final
