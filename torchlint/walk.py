"""A hand-written walk over libcst trees: no CSTVisitor, no metadata.

libcst's visitor protocol costs about half a parse by itself; reading the dataclass fields
of each node directly costs a small fraction of that. Whitespace, comments and punctuation
tokens are never descended into: no rule looks inside them.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections import defaultdict
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


_IS_NODE: dict[type, bool] = {}
_SCOPE_TYPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


def _is_node_type(kind: type) -> bool:
    """Whether a type is a libcst node class (cached: abc isinstance checks are slow)."""
    answer = _IS_NODE.get(kind)
    if answer is None:
        answer = _IS_NODE[kind] = issubclass(kind, cst.CSTNode)
    return answer


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The meaningful direct children of a node, in source order."""
    for name in child_fields(type(node)):
        value: Any = getattr(node, name)
        kind = type(value)
        if kind is tuple or kind is list:
            for item in value:
                if _is_node_type(type(item)):
                    yield item
        elif _is_node_type(kind):
            yield value


class FlatTree:
    """The whole tree in pre-order, built by one walk: every subtree is a slice.

    `nodes[i]`'s descendants are `nodes[i + 1 : ends[i]]`. Rules ask for the nodes of a
    function or class body many times; slicing is what makes that nearly free.
    """

    __slots__ = ("nodes", "ends", "parents", "index", "_by_type")

    def __init__(self, root: cst.CSTNode) -> None:
        nodes: list[cst.CSTNode] = []
        ends: list[int] = []
        parents: list[int] = []
        fields_of = child_fields
        is_node = _IS_NODE

        def visit(node: cst.CSTNode, parent: int) -> None:
            position = len(nodes)
            nodes.append(node)
            ends.append(0)
            parents.append(parent)
            for name in fields_of(type(node)):
                value = getattr(node, name)
                kind = type(value)
                if kind is tuple or kind is list:
                    for item in value:
                        item_kind = type(item)
                        flag = is_node.get(item_kind)
                        if flag is None:
                            flag = _is_node_type(item_kind)
                        if flag:
                            visit(item, position)
                else:
                    flag = is_node.get(kind)
                    if flag is None:
                        flag = _is_node_type(kind)
                    if flag:
                        visit(value, position)
            ends[position] = len(nodes)

        visit(root, -1)
        # `visit` refers to itself through its closure: a cycle that would hold the whole tree
        # (through `nodes`) until the cyclic GC traverses it; clearing the cell frees the tree
        # by reference counting as soon as the check drops it
        del visit
        self.nodes = nodes
        self.ends = ends
        self.parents = parents
        self.index = {id(node): position for position, node in enumerate(nodes)}
        self._by_type: dict[type, list[int]] | None = None

    def parent_of(self, node: cst.CSTNode) -> cst.CSTNode | None:
        """The node's parent (None for the root or a node not in this tree)."""
        position = self.index.get(id(node))
        if position is None or self.parents[position] < 0:
            return None
        return self.nodes[self.parents[position]]

    def ancestors(self, position: int) -> list[cst.CSTNode]:
        """The nodes enclosing the one at `position`, outermost first."""
        out = []
        nodes, parents = self.nodes, self.parents
        up = parents[position]
        while up >= 0:
            out.append(nodes[up])
            up = parents[up]
        out.reverse()
        return out

    def types(self) -> list[type]:
        """The node types present in the tree."""
        self.positions_of(type(self.nodes[0]))
        assert self._by_type is not None
        return list(self._by_type)

    def positions_of(self, kind: type) -> list[int]:
        """Pre-order positions of the nodes of exactly this type (index built on first use)."""
        if self._by_type is None:
            by_type: defaultdict[type, list[int]] = defaultdict(list)
            for position, node in enumerate(self.nodes):
                by_type[type(node)].append(position)  # (setdefault would make a list per node)
            self._by_type = dict(by_type)
        return self._by_type.get(kind, [])

    def find_all(self, node: cst.CSTNode, kinds: tuple[type, ...], skip_scopes: bool) -> list[Any] | None:
        """Descendants of exactly the given concrete types, in pre-order, or None if unknown node."""
        position = self.index.get(id(node))
        if position is None:
            return None
        end = self.ends[position]
        found: list[int] = []
        for kind in kinds:
            positions = self.positions_of(kind)
            found.extend(positions[bisect_right(positions, position):bisect_left(positions, end)])
        if len(kinds) > 1:
            found.sort()
        if skip_scopes:
            # drop what lies inside nested scopes below `node`
            scopes = [p for p in self._scope_positions() if position < p < end]
            if scopes:
                ends = self.ends
                found = [p for p in found if not any(s < p < ends[s] for s in scopes)]
        nodes = self.nodes
        return [nodes[p] for p in found]

    def _scope_positions(self) -> list[int]:
        out: list[int] = []
        for kind in _SCOPE_TYPES:
            out.extend(self.positions_of(kind))
        out.sort()
        return out

    def descendants(self, node: cst.CSTNode, skip_scopes: bool = False) -> list[cst.CSTNode] | None:
        position = self.index.get(id(node))
        if position is None:
            return None
        end = self.ends[position]
        if not skip_scopes:
            return self.nodes[position + 1 : end]
        out = []
        nodes, ends = self.nodes, self.ends
        j = position + 1
        while j < end:
            current = nodes[j]
            out.append(current)
            j = ends[j] if isinstance(current, _SCOPE_TYPES) else j + 1
        return out


# The flat tree of the file being checked. The engine sets it for the duration of one
# file's check (one file at a time per process) so that every subtree query below is a
# slice instead of a walk; outside a check, queries walk the tree.
_current: list[FlatTree | None] = [None]


def set_current_tree(tree: FlatTree | None) -> None:
    _current[0] = tree


def descendants(node: cst.CSTNode, skip_scopes: bool = False) -> list[cst.CSTNode]:
    """Every meaningful node below `node` (pre-order), `node` excluded.

    With `skip_scopes`, nested function, lambda and class bodies are not entered (the
    nested `FunctionDef`/`ClassDef`/`Lambda` node itself is still included).
    """
    tree = _current[0]
    if tree is not None:
        found = tree.descendants(node, skip_scopes)
        if found is not None:
            return found
    out: list[cst.CSTNode] = []
    stack = list(children(node))
    stack.reverse()
    while stack:
        current = stack.pop()
        out.append(current)
        if skip_scopes and isinstance(current, _SCOPE_TYPES):
            continue
        kids = list(children(current))
        kids.reverse()
        stack.extend(kids)
    return out


def _concrete(node_type: type | tuple[type, ...]) -> tuple[type, ...] | None:
    """The given types when all are concrete libcst node classes (no subclasses), else None."""
    kinds = node_type if isinstance(node_type, tuple) else (node_type,)
    for kind in kinds:
        if kind.__subclasses__():
            return None
    return kinds


def find_all(node: cst.CSTNode, node_type: type | tuple[type, ...], skip_scopes: bool = False) -> list[Any]:
    """All descendants of `node` that are instances of `node_type`."""
    tree = _current[0]
    if tree is not None:
        kinds = _concrete(node_type)
        if kinds is not None:
            found = tree.find_all(node, kinds, skip_scopes)
            if found is not None:
                return found
    return [n for n in descendants(node, skip_scopes) if isinstance(n, node_type)]


_NODE_META = type(cst.CSTNode)


class _PlainNodeMeta(_NODE_META):  # type: ignore[misc,valid-type]
    """ABCMeta without the slow path: libcst registers no virtual subclasses, so the plain
    type checks give the same answers. Bound as C slot wrappers (no Python frame per call),
    they make isinstance() about a third cheaper, and rules make millions of them."""

    __instancecheck__ = type.__instancecheck__
    __subclasscheck__ = type.__subclasscheck__


def speed_up_node_checks() -> None:
    """Make isinstance() against libcst node classes cheap (rules do millions of them)."""
    pending = [cst.CSTNode]
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if type(kind) is _NODE_META:
            try:
                kind.__class__ = _PlainNodeMeta
            except TypeError:
                pass
