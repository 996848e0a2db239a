"""Readers/writers, knee phantom, masks, trajectories, NUFFT operators, N4 and datasets.

Never imports Lightning (see DEVELOPERS.md: data tools stay usable without it).
"""
__version__ = "0.1.0"
