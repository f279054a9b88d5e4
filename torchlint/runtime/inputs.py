"""Forward inputs for a Module: from config, or sized from the first layer that consumes them.

Worker only (imports torch). A candidate is (args, description); the prober tries them in
order until the forward pass stops failing with a shape error (LeNet needs 32x32 images,
a ResNet 224x224).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
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


def _takes_varargs(module: nn.Module) -> bool:
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())


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
    is still the model's first layer, just not in `modules()`), then those its forward
    builds (`nn.Linear(self.dim, ...)` made in forward tells the input width).
    """
    for layer in [*module.modules(), *extra]:
        if _for_layer(layer):
            return layer
    for layer in built_in_forward(module):
        if _for_layer(layer):
            return layer
    return None


_LAYER_CALL = re.compile(r"\b(?:nn|torch\.nn)\.(Linear|Conv[123]d|Embedding|LayerNorm|BatchNorm[123]d|GroupNorm|"
                         r"LSTM|GRU|RNN|MultiheadAttention)\s*\(")


def built_in_forward(module: nn.Module) -> list[nn.Module]:
    """The layers forward's own source builds, evaluated with `self` bound to the instance
    (only those whose arguments do not depend on forward's locals)."""
    forward = getattr(type(module), "forward", None)
    try:
        source = textwrap.dedent(inspect.getsource(forward))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return []
    namespace = dict(getattr(forward, "__globals__", {}))
    namespace.setdefault("nn", nn)
    namespace.setdefault("torch", torch)
    namespace["self"] = module
    layers = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _LAYER_CALL.match(ast.unparse(node)):
            try:
                layer = eval(compile(ast.Expression(node), "<forward>", "eval"), namespace)  # noqa: S307 - the user's forward
            except Exception:
                continue
            if isinstance(layer, nn.Module):
                layers.append(layer)
        if len(layers) >= 3:
            break
    return layers


_MASK = re.compile(r"mask|padding|pad_|attn_bias|bias")
_INT_ARG = re.compile(r"^(num|n)_|_(dim|size|count)$|^(k|n|steps|dim|size|top_k)$")
_LENGTHS = re.compile(r"^(lengths?|lens|seq_lens?|seq_lengths?|x_lens?)$")
# when nothing tells the shape: the common ones, most likely first
FALLBACK_SHAPES = ((BATCH, SEQ), (BATCH, SEQ, SEQ), (BATCH, 3, 32, 32), (BATCH, 1, 28, 28), (BATCH, 16),
                   (BATCH, 3, 64, 64))


def _fill(names: list[str], base: Candidate) -> list[Candidate]:
    """Arguments for several tensor parameters: one shape for each, masks as None first."""
    if len(names) <= 1:
        return [base]
    first = base.args[0]
    if not isinstance(first, torch.Tensor):
        return [base]
    out = []
    for mask_as_none in (True, False):
        args: list[Any] = [first]
        for name in names[1:]:
            lower = name.lower()
            if _INT_ARG.search(lower):
                args.append(SEQ)
            elif _MASK.search(lower):
                args.append(None if mask_as_none else torch.ones(first.shape[:2], dtype=torch.bool))
            elif _LENGTHS.match(lower) and first.dim() >= 2:
                args.append(torch.full((first.shape[0],), first.shape[1], dtype=torch.long))
            elif first.is_floating_point():
                args.append(torch.randn_like(first))
            else:
                args.append(first.clone())
        if not mask_as_none and not any(_MASK.search(n.lower()) for n in names[1:]):
            break
        shown = ", ".join(f"{n}={a if isinstance(a, (int, type(None))) else describe(a)}" for n, a in zip(names, args))
        out.append(Candidate(tuple(args), shown))
    return out


def synthesise(module: nn.Module, extra: list[nn.Module]) -> list[Candidate]:
    """Candidate inputs for forward, most likely first."""
    required = required_positional(module)
    inner = getattr(module, "module", None)
    if not required and isinstance(inner, nn.Module) and _takes_varargs(module):
        return synthesise(inner, extra)  # nn.DataParallel(Net()): the wrapped model's inputs
    if not required:
        return [Candidate((), "no arguments")]
    layer = first_consumer(module, extra)
    bases = _for_layer(layer) if layer is not None else []
    told = {tuple(b.args[0].shape) for b in bases if isinstance(b.args[0], torch.Tensor)}
    for shape in FALLBACK_SHAPES:
        if shape not in told:
            base = _float(*shape)
            base.description += " (a common shape)"
            bases.append(base)
    out = []
    for base in bases:
        out += _fill(required, base)
    return out
