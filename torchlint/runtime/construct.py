"""Building a Module class the way its project does, else from its signature (worker only).

`attempts()` yields, in order, (description, thunk) pairs; the prober calls each thunk until
one returns a Module:

1. the configured expression (`[tool.torchlint.runtime.construct]`);
2. no arguments;
3. zero-argument factory functions of the project (`def resnet18(): return ResNet(...)`);
4. the project's own calls of the class with literal or module-constant arguments;
5. arguments synthesised from the signature: defaults, then annotations, then names
   (`*_dim` -> 8, `*drop*` -> 0.1, `device` -> the probe's device), in a few variants.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

Thunk = Callable[[], Any]

SMALL = 8
_INT_NAME = re.compile(
    r"(^|_)(dim|dims|size|channels|chans|features|hidden|width|depth|heads|layers|classes|tokens|"
    r"vocab|len|length|rank|embed|emb|units|planes|filters|k|n|d|h|w|c|num|count|blocks|groups|"
    r"experts|patch|stride|kernel|order|steps|seq)(_|$)|^(n|num|nb)_|_(dim|size|channels)$|"
    r"^(dim|d_model|in_features|out_features|in_channels|out_channels|ninp|nhid|nhead|nlayers|ntoken)$")
_FLOAT_NAME = re.compile(r"drop|(^|_)rate$|^p$|^eps$|epsilon|alpha|beta|gamma|temperature|scale|momentum|"
                         r"(^|_)lr$|ratio|prob")
_BOOL_NAME = re.compile(r"^(use|is|has|with|enable|return)_|^(bias|bidirectional|batch_first|affine|"
                        r"residual|causal|pretrained|inplace)$")
_MODULE_NAME = re.compile(r"encoder|decoder|backbone|model|net|block|layer|module|head|body|stem|"
                          r"embedding|embedder|activation|act|norm|fn|base|trunk|network|generator|"
                          r"discriminator|critic|actor|policy|classifier|extractor|featurizer|inner|wrapped")
_LIST_NAME = re.compile(r"s$")  # `tasks`, `layers_sizes`: a plural may want a list


class Anything(dict):  # type: ignore[type-arg]
    """A stand-in for a config object or mapping: every attribute or key is filled by the
    same name rules as a parameter (`cfg.hidden_dim` -> 8, `cfg["dropout"]` -> 0.1), and it
    iterates as two entries (`for task, n in tasks.items()`)."""

    def __init__(self) -> None:
        super().__init__(a=SMALL, b=SMALL)

    def __missing__(self, key: Any) -> Any:
        return _by_name(str(key), 0, "cpu", nested=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _by_name(name, 0, "cpu", nested=True)

    def get(self, key: Any, default: Any = None) -> Any:
        return default if default is not None else self[key]

    def __repr__(self) -> str:
        return "<config>"


class _Unfillable(Exception):
    """A parameter no rule knows how to fill."""


def _annotation(param: inspect.Parameter, hints: dict[str, Any]) -> Any:
    hint = hints.get(param.name, param.annotation)
    if hint is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if args else None
    return hint


def _by_annotation(hint: Any, variant: int, device: str) -> Any:
    if hint is None:
        raise _Unfillable
    origin = typing.get_origin(hint) or hint
    if hint is bool:
        return False
    if hint is int:
        return SMALL * (2 if variant == 2 else 1)
    if hint is float:
        return 0.1
    if hint is str:
        raise _Unfillable
    if isinstance(hint, type) and issubclass(hint, torch.Tensor):
        return torch.randn(SMALL, SMALL)
    if isinstance(hint, type) and issubclass(hint, nn.Module):
        if hint in (nn.Module,):
            return nn.Identity() if variant != 1 else nn.Linear(SMALL, SMALL)
        return hint()  # a concrete layer type with no required arguments, or fails
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        inner = typing.get_args(hint)
        if inner and inner[0] is int:
            return [SMALL, SMALL] if origin is list else (SMALL, SMALL)
    if isinstance(hint, type) and hint.__name__ == "device" or hint is torch.device:
        return torch.device(device)
    raise _Unfillable


def _by_name(name: str, variant: int, device: str, nested: bool = False) -> Any:
    lower = name.lower()
    if lower == "device":
        return device
    if lower == "dtype":
        return torch.float32
    if _FLOAT_NAME.search(lower):
        return 0.1
    if _BOOL_NAME.search(lower):
        return lower in ("bias", "affine")
    if _INT_NAME.search(lower):
        return SMALL * (2 if variant == 2 else 1)
    if _MODULE_NAME.search(lower):
        return nn.Identity() if variant != 1 else nn.Linear(SMALL, SMALL)
    if nested:
        return SMALL  # an unknown config entry: most are sizes
    if lower.endswith("s") and variant == 1:
        return ["a", "b"]
    if variant == 1:
        return SMALL
    return Anything()


def synthesise(cls: type, device: str, variant: int) -> tuple[dict[str, Any], str] | None:
    """Keyword arguments for `cls` (and how to describe them), or None when one is unknown.

    Variant 0 fills only what has no default; variant 1 tries Modules as small `Linear`
    layers and plural names as lists; variant 2 doubles the small sizes."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:
        hints = {}
    kwargs: dict[str, Any] = {}
    shown: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not param.empty:
            continue
        if param.kind is param.POSITIONAL_ONLY:
            return None
        try:
            try:
                value = _by_annotation(_annotation(param, hints), variant, device)
            except _Unfillable:
                value = _by_name(param.name, variant, device)
        except _Unfillable:
            return None
        except Exception:
            return None
        kwargs[param.name] = value
        shown.append(f"{param.name}={_show(value)}")
    return kwargs, ", ".join(shown)


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "tensor(" + "x".join(str(s) for s in value.shape) + ")"
    if isinstance(value, Anything):
        return "a config stand-in"
    if isinstance(value, nn.Module):
        return f"nn.{type(value).__name__}" + ("(8, 8)" if isinstance(value, nn.Linear) else "()")
    return repr(value)


def needs_arguments(cls: type) -> list[str]:
    """The constructor's parameters without defaults (empty when `cls()` binds)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def attempts(cls: type, namespace: dict[str, Any], recipes: list[dict[str, str]],
             device: str) -> Iterator[tuple[str, str, Thunk]]:
    """(source, description, thunk) for each way to build `cls`, in order.

    `source` is one of "no arguments", "factory", "project call", "synthesised"."""
    def scope() -> dict[str, Any]:
        values = dict(namespace)
        values.setdefault("torch", torch)
        values.setdefault("nn", nn)
        return values

    if not needs_arguments(cls):
        yield "no arguments", "no arguments", cls
    for recipe in recipes:
        if recipe["kind"] == "factory":
            def run_factory(recipe: dict[str, str] = recipe) -> Any:
                values = scope()
                exec(compile(recipe["code"], f"<factory {recipe['where']}>", "exec"), values)  # noqa: S102
                return values[recipe["name"]]()
            yield "factory", f"factory {recipe['name']}() at {recipe['where']}", run_factory
        elif recipe["kind"] == "call":
            def run_call(recipe: dict[str, str] = recipe) -> Any:
                return eval(recipe["code"], scope())  # noqa: S307 - the project's own call
            yield "project call", f"{recipe['code']} at {recipe['where']}", run_call
    tried: set[str] = set()
    for variant in range(3):
        found = synthesise(cls, device, variant)
        if found is None:
            continue
        kwargs, shown = found
        if shown in tried:
            continue
        tried.add(shown)
        yield "synthesised", f"synthesised arguments ({shown})", lambda kwargs=kwargs: cls(**kwargs)


__all__ = ["attempts", "needs_arguments", "synthesise"]
