"""Forward inputs for a Module: from config, or sized from the first layer that consumes them.

Worker only (imports torch). A candidate is (args, description); the prober tries them in
order until the forward pass stops failing with a shape error (LeNet needs 32x32 images,
a ResNet 224x224).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

BATCH = 2
SEQ = 8
SPATIAL = (32, 64, 224)
SPATIAL_3D = (16, 32)  # (2, C, 224, 224, 224) would be hundreds of MB; 3-d nets rarely need it


@dataclass
class Candidate:
    """Positional forward arguments and how to describe them in a detail."""

    args: tuple[Any, ...]
    description: str


class NoInput(Exception):
    """No input could be synthesised; the message says why."""


def describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        shape = "(" + ", ".join(str(s) for s in value.shape) + ("," if value.dim() == 1 else "") + ")"
        return shape if value.is_floating_point() else f"{str(value.dtype).replace('torch.', '')} {shape}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return type(value).__name__


def from_expression(expression: str, namespace: dict[str, Any]) -> Candidate:
    """Evaluate a configured inputs expression; a tuple gives several positional arguments."""
    scope = dict(namespace)
    scope.setdefault("torch", torch)
    scope.setdefault("nn", nn)
    value = eval(expression, scope)  # noqa: S307 - the user's own config, run in the user's code's process
    args = value if isinstance(value, tuple) else (value,)
    return Candidate(args, ", ".join(describe(a) for a in args))


def required_positional(module: nn.Module) -> list[str]:
    """Names of forward's positional parameters without defaults."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def _float(*shape: int) -> Candidate:
    tensor = torch.randn(*shape)
    return Candidate((tensor,), describe(tensor))


def _for_layer(layer: nn.Module) -> list[Candidate]:
    """Inputs that fit `layer` when it is the first to see the Module's input."""
    if isinstance(layer, nn.Linear) and layer.in_features > 0:
        return [_float(BATCH, layer.in_features), _float(BATCH, SEQ, layer.in_features)]
    conv_dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3, nn.ConvTranspose1d: 1,
                 nn.ConvTranspose2d: 2, nn.ConvTranspose3d: 3}
    for kind, dims in conv_dims.items():
        if type(layer) is kind or isinstance(layer, kind):
            channels = layer.in_channels  # type: ignore[attr-defined]
            sizes = SPATIAL_3D if dims == 3 else SPATIAL
            return [_float(BATCH, channels, *([size] * dims)) for size in sizes]
    if isinstance(layer, (nn.Embedding, nn.EmbeddingBag)):
        ids = torch.randint(0, layer.num_embeddings, (BATCH, SEQ))
        return [Candidate((ids,), f"int ids {describe(ids)} < {layer.num_embeddings}")]
    if isinstance(layer, nn.LayerNorm):
        shape = tuple(layer.normalized_shape)
        return [_float(BATCH, *shape), _float(BATCH, SEQ, *shape)]
    if isinstance(layer, nn.BatchNorm1d):
        return [_float(BATCH, layer.num_features), _float(BATCH, layer.num_features, 16)]
    if isinstance(layer, nn.BatchNorm2d):
        return [_float(BATCH, layer.num_features, s, s) for s in SPATIAL]
    if isinstance(layer, nn.BatchNorm3d):
        return [_float(BATCH, layer.num_features, s, s, s) for s in SPATIAL_3D]
    if isinstance(layer, nn.GroupNorm):
        return [_float(BATCH, layer.num_channels, s, s) for s in SPATIAL] + [_float(BATCH, layer.num_channels)]
    if isinstance(layer, nn.RNNBase):
        if layer.batch_first:
            return [_float(BATCH, SEQ, layer.input_size)]
        return [_float(SEQ, BATCH, layer.input_size)]
    if isinstance(layer, nn.MultiheadAttention):
        return [_float(BATCH, SEQ, layer.embed_dim)]
    return []


def first_consumer(module: nn.Module, extra: list[nn.Module]) -> nn.Module | None:
    """The first layer, in registration order, whose type tells the input's shape.

    `extra` are Modules the instance holds without registering them (a plain list of layers
    is still the model's first layer, just not in `modules()`).
    """
    for layer in [*module.modules(), *extra]:
        if _for_layer(layer):
            return layer
    return None


def synthesise(module: nn.Module, extra: list[nn.Module]) -> list[Candidate]:
    """Candidate inputs for a one-argument forward, most likely first."""
    required = required_positional(module)
    if len(required) > 1:
        raise NoInput(f"forward needs {len(required)} arguments ({', '.join(required)}); "
                      "give them in [tool.torchlint.runtime.inputs]")
    if not required:
        return [Candidate((), "no arguments")]
    layer = first_consumer(module, extra)
    if layer is None:
        raise NoInput("no input: no Linear, Conv, Embedding, LayerNorm, BatchNorm or RNN layer "
                      "tells the input's shape; give it in [tool.torchlint.runtime.inputs]")
    return _for_layer(layer)
