"""A hand-written walk over libcst trees: no CSTVisitor, no metadata.

libcst's visitor protocol costs about half a parse by itself; reading the dataclass fields
of each node directly costs a small fraction of that. Whitespace, comments and punctuation
tokens are never descended into: no rule looks inside them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import libcst as cst

# Fields that only ever hold whitespace, comments or punctuation.
_SKIP_FIELDS = frozenset(
    {
        "lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer",
        "semicolon", "comma", "dot", "colon", "equal", "star", "star_tok", "lbracket",
        "rbracket", "lbrace", "rbrace", "whitespace_before", "whitespace_after",
        "trailing_whitespace", "newline", "asynchronous", "operator", "whitespace_after_at",
        "whitespace_after_star", "whitespace_after_colon", "whitespace_before_colon",
        "whitespace_after_arg", "whitespace_after_param", "whitespace_before_params",
        "whitespace_after_def", "whitespace_after_name", "whitespace_after_class",
        "whitespace_before_colon", "whitespace_after_kwds", "whitespace_after_import",
        "whitespace_after_from", "whitespace_before_import", "whitespace_before_in",
        "whitespace_after_in", "whitespace_after_for", "whitespace_before_for",
        "whitespace_after_if", "whitespace_before_if", "whitespace_before_else",
        "whitespace_after_else", "whitespace_after_return", "whitespace_after_del",
        "whitespace_after_assert", "whitespace_after_global", "whitespace_after_nonlocal",
        "whitespace_after_raise", "whitespace_after_yield", "whitespace_after_await",
        "whitespace_after_lambda", "whitespace_before_as", "whitespace_after_as",
        "whitespace_after_with", "whitespace_before_expression", "whitespace_after_while",
        "whitespace_after_case", "whitespace_after_match", "whitespace_before_indicator",
        "whitespace_after_indicator", "whitespace_after_type_parameters",
        "whitespace_before_value", "whitespace_after_value", "whitespace_after_expression",
        "whitespace_before_walrus", "whitespace_after_walrus", "whitespace_before_args",
        "whitespace_after_func", "whitespace_before_params",
        "whitespace_before_type_parameters", "whitespace_after_type",
        "whitespace_after_except", "whitespace_after_else",
        "whitespace_after_try", "whitespace_after_finally", "whitespace_after_elif",
        "relative", "quote", "prefix", "string_start", "string_end",
    }
)

_FIELDS_CACHE: dict[type, tuple[str, ...]] = {}


def child_fields(node_type: type) -> tuple[str, ...]:
    """The names of the fields of a node class that may hold meaningful child nodes."""
    names = _FIELDS_CACHE.get(node_type)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if f.name not in _SKIP_FIELDS and not f.name.startswith("whitespace")
        )
        _FIELDS_CACHE[node_type] = names
    return names


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The meaningful direct children of a node, in source order."""
    for name in child_fields(type(node)):
        value: Any = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, cst.CSTNode):
                    yield item


def descendants(node: cst.CSTNode, skip_scopes: bool = False) -> Iterator[cst.CSTNode]:
    """Every meaningful node below `node` (pre-order), `node` excluded.

    With `skip_scopes`, nested function, lambda and class bodies are not entered (the
    nested `FunctionDef`/`ClassDef`/`Lambda` node itself is still yielded).
    """
    stack = list(children(node))
    stack.reverse()
    scope_types = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
    while stack:
        current = stack.pop()
        yield current
        if skip_scopes and isinstance(current, scope_types):
            continue
        kids = list(children(current))
        kids.reverse()
        stack.extend(kids)


def find_all(node: cst.CSTNode, node_type: type | tuple[type, ...], skip_scopes: bool = False) -> list[Any]:
    """All descendants of `node` that are instances of `node_type`."""
    return [n for n in descendants(node, skip_scopes) if isinstance(n, node_type)]
