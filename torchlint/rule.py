"""The Rule base class: a code, a name, its examples, visit hooks, and `report()`.

A rule is instantiated once per checked file with that file's `FileContext`. The engine
walks the tree once and calls `visit_<NodeType>(node)` before a node's children and
`leave_<NodeType>(node)` after them, for every rule that defines the hook.

Rules report findings against libcst nodes; positions and text edits are computed later,
only for files that have findings (see `positions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Union

import libcst as cst

if TYPE_CHECKING:
    from torchlint.context import FileContext


@dataclass(frozen=True)
class Case:
    """An invalid example: `code` must produce exactly the finding `line` (and `col` if given)."""

    code: str
    line: int
    col: int | None = None
    fixed: str | None = None  # the source after applying every fix of this rule (if any)
    unsafe: bool = False  # whether `fixed` needs --unsafe-fixes


# Text operations a fix may ask for, expressed on nodes; positions are resolved later.
@dataclass(frozen=True)
class Replace:
    """Replace the node's syntactic text with `text`."""

    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class InsertBefore:
    """Insert `text` just before the node's first character."""

    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class InsertAfter:
    """Insert `text` just after the node's last character."""

    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class InsertLineBefore:
    """Insert a new line holding `text` before the statement, at the statement's indentation."""

    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class InsertLineAfter:
    """Insert a new line holding `text` after the statement's line, at its indentation."""

    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class DeleteLine:
    """Delete the whole line of a statement that is alone on its line."""

    node: cst.CSTNode


FixOp = Union[Replace, InsertBefore, InsertAfter, InsertLineBefore, InsertLineAfter, DeleteLine]


@dataclass(frozen=True)
class PendingFix:
    """A fix as a rule states it: node-anchored operations, resolved into text edits later."""

    applicability: str  # "safe" | "unsafe"
    ops: tuple[FixOp, ...]
    description: str = ""


@dataclass
class PendingFinding:
    """A finding before positions are known."""

    code: str
    name: str
    anchor: cst.CSTNode
    message: str
    fix: PendingFix | None = None
    context: dict[str, Any] | None = field(default=None)


class Rule:
    """Base class of every rule. Subclasses set the class attributes and define visit hooks."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # "safe" / "unsafe" / None: the kind of fix the rule offers (for `torchlint rules`)
    fix_safety: ClassVar[str | None] = None
    # False: an opt-in rule, enabled only when selected by its code, a prefix longer than "TL",
    # or ALL (the default selection, "TL", leaves it out)
    default_enabled: ClassVar[bool] = True
    valid: ClassVar[list[str]] = []
    invalid: ClassVar[list[Case]] = []

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx

    def report(
        self,
        anchor: cst.CSTNode,
        message: str,
        fix: PendingFix | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        """Record a finding anchored on `anchor` (for a def/class/loop: its header)."""
        self.ctx.findings.append(
            PendingFinding(self.code, self.name, anchor, message, fix, context)
        )

    @classmethod
    def hooks(cls) -> dict[str, list[str]]:
        """Map libcst node class names to this rule's visit_/leave_ method names (once per class)."""
        cached = cls.__dict__.get("_hooks")
        if cached is None:
            cached = {}
            for attr in dir(cls):
                if attr.startswith(("visit_", "leave_")):
                    cached.setdefault(attr.split("_", 1)[1], []).append(attr)
            cls._hooks = cached
        return cached
