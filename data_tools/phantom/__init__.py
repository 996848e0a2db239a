"""Deterministic synthetic 3-D multi-coil knee phantom with bone and cartilage labels.

The project's embedded default data (no real knee data can be shipped). See docs/phantom.md for
what it is and is not, the axis order, the label table and the HDF5 layout.

- :func:`generate_subject` -> :class:`data_tools.subject.Subject` (one knee, in memory)
- :func:`ensure_demo_phantom` -> folder of subject files in the cache, generated once
"""
from .cache import DEMO_SNR, ensure_demo_phantom, subject_name, write_phantom_set
from .generate import GENERATOR, GENERATOR_VERSION, ORIENTATION, birdcage, generate_subject
from .presets import FOV_MM, PRESETS, Preset, get_preset

__all__ = ["generate_subject", "ensure_demo_phantom", "write_phantom_set", "subject_name", "birdcage", "DEMO_SNR",
           "GENERATOR", "GENERATOR_VERSION", "ORIENTATION", "FOV_MM", "PRESETS", "Preset", "get_preset"]
