"""Positions of a chosen set of nodes, computed with one code generation pass.

Only files with findings pay for this. The state below follows libcst's own code
generation (which reproduces the source exactly) and records, for the wanted nodes only,
the syntactic start and end as (line, column, offset), all in code points. For compound
statements (def, class, for, while, with, if, try) the end is the end of the header,
just before the body, so that an anchor on a `def` covers `def name(...):` and not the
whole function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import libcst as cst
from libcst._nodes.internal import CodegenState


@dataclass(frozen=True)
class Span:
    """1-based line/col of start and (exclusive) end, plus 0-based code-point offsets."""

    line: int
    col: int
    end_line: int
    end_col: int
    start: int
    end: int


_HEADER_TYPES = (
    cst.FunctionDef, cst.ClassDef, cst.For, cst.While, cst.With, cst.If, cst.Try,
    cst.TryStar, cst.Match,
)


class _TrackingState(CodegenState):
    """A CodegenState that counts lines, columns and offsets as tokens are emitted."""

    __slots__ = ("wanted", "header_owner", "spans", "line", "column", "offset", "pending")

    def __init__(self, module: cst.Module, wanted: set[int], header_owner: dict[int, cst.CSTNode]):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.wanted = wanted
        self.header_owner = header_owner
        self.spans: dict[int, list[int]] = {}
        self.line = 1
        self.column = 0
        self.offset = 0

    def _advance(self, value: str) -> None:
        self.offset += len(value)
        newlines = value.count("\n")
        if newlines == 0 and "\r" not in value:
            self.column += len(value)
            return
        # "\r\n" and lone "\r" are line breaks too
        normalised = value.replace("\r\n", "\n").replace("\r", "\n")
        self.line += normalised.count("\n")
        self.column = len(normalised) - normalised.rfind("\n") - 1

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.tokens.append(token)
            self._advance(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._advance(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        owner = self.header_owner.get(id(node))
        if owner is not None:
            span = self.spans.get(id(owner))
            if span is not None and len(span) == 3:
                span.extend((self.line, self.column, self.offset))

    @contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        key = id(node)
        if key not in self.wanted:
            yield
            return
        start = [self.line, self.column, self.offset]
        if start_node is not None and id(start_node) in self.spans:
            start = self.spans[id(start_node)][:3]
        self.spans[key] = list(start)
        try:
            yield
        finally:
            span = self.spans[key]
            if len(span) == 3:  # no header end recorded: the end is where the node ends
                if end_node is not None and id(end_node) in self.spans and len(self.spans[id(end_node)]) == 6:
                    span.extend(self.spans[id(end_node)][3:])
                else:
                    span.extend((self.line, self.column, self.offset))


def _fallback_wanted(node: cst.CSTNode) -> cst.CSTNode:
    """Nodes that libcst does not record syntactically are located through a child."""
    return node


def compute_spans(module: cst.Module, nodes: list[cst.CSTNode]) -> dict[int, Span]:
    """Spans for `nodes` (keyed by id(node)); every node must belong to `module`."""
    wanted: set[int] = set()
    header_owner: dict[int, cst.CSTNode] = {}
    for node in nodes:
        wanted.add(id(node))
        if isinstance(node, _HEADER_TYPES):
            header_owner[id(node.body)] = node
    state = _TrackingState(module, wanted, header_owner)
    module._codegen(state)
    out: dict[int, Span] = {}
    for node in nodes:
        raw = state.spans.get(id(node))
        if raw is None or len(raw) != 6:
            continue
        line, col, start, end_line, end_col, end = raw
        if isinstance(node, _HEADER_TYPES):
            # the header ends with ':' right before the body; drop trailing spaces
            pass
        out[id(node)] = Span(line, col + 1, end_line, end_col + 1, start, end)
    return out
