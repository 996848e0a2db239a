"""Matrix presets. All share the Stanford 3-D FSE knee field of view (160 x 160 x 153.6 mm).

``full`` is the mridata.org "Stanford Fullysampled 3D FSE Knees" geometry (k-space 320x320x256,
8 coils; ../shared/reference/000_deepmri.md §1.1); ``demo`` halves every axis, ``tiny`` is for tests.
"""
from __future__ import annotations

import dataclasses

from ..errors import PipelineInputError

FOV_MM = (160.0, 160.0, 153.6)


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    matrix: tuple[int, int, int]
    n_coils: int = 8

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        return tuple(round(f / n, 6) for f, n in zip(FOV_MM, self.matrix))  # type: ignore[return-value]


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", (64, 64, 48)),
    "demo": Preset("demo", (160, 160, 128)),
    "full": Preset("full", (320, 320, 256)),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise PipelineInputError(f"unknown phantom preset '{name}'", field="preset", expected=" | ".join(PRESETS))
    return PRESETS[name]
