"""Model registry: ``build_model(name, **kwargs)``, ``count_parameters(model)``, ``register_model``.

Names: ``dncnn``, ``unet`` (the chapter's modified U-Net "Autoencoder"), ``unet_coil_wide``
(16 -> 16 with the widened encoder), ``scalable_unet`` (the grid study's). Re-exported by
``models/__init__.py``; importable as ``models.registry`` too.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from data_tools.errors import PipelineInputError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``build_model(name, **kwargs)`` call ``factory(**kwargs)``."""
    _REGISTRY[name] = factory


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the network registered as ``name`` with constructor keyword ``kwargs``.

    Raises :class:`PipelineInputError` for an unknown name or an unknown/invalid keyword.
    """
    if name not in _REGISTRY:
        raise PipelineInputError(f"unknown model {name!r}", field="model",
                                 expected=" | ".join(model_names()))
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:  # unknown keyword: say which model and which keyword
        raise PipelineInputError(f"bad arguments for model {name!r}: {exc}",
                                 field="model arguments") from exc


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, BatchNorm gamma/beta included, buffers excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _unet_coil_wide(in_ch: int = 16, out_ch: int = 16, **kwargs) -> nn.Module:
    from models.unet import COIL_WIDE_ENCODER, ModifiedUNet
    kwargs.setdefault("encoder", COIL_WIDE_ENCODER)
    return ModifiedUNet(in_ch=in_ch, out_ch=out_ch, **kwargs)


def _register_builtin() -> None:
    from models.dncnn import DnCNN
    from models.scalable_unet import ScalableUNet
    from models.unet import ModifiedUNet
    register_model("dncnn", DnCNN)
    register_model("unet", ModifiedUNet)
    register_model("unet_coil_wide", _unet_coil_wide)
    register_model("scalable_unet", ScalableUNet)


_register_builtin()
