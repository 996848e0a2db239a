"""Pure-torch networks (no I/O, no Lightning) and the model registry.

``build_model(name, **kwargs)`` builds a network by name; ``count_parameters(model)`` counts its
trainable parameters. Names: ``dncnn``, ``unet`` (the chapter's modified U-Net "Autoencoder"),
``unet_coil_wide`` (16 -> 16 with the widened encoder), ``scalable_unet`` (the grid study's).
Other areas add names with ``register_model``. The registry lives in :mod:`models.registry`.
"""
from models.registry import build_model, count_parameters, model_names, register_model

__all__ = ["build_model", "count_parameters", "model_names", "register_model"]
