"""The one currency of the linter: findings, their fixes and the text edits of a fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Edit:
    """Replace source[start:end] (code-point offsets into the decoded source) with `content`."""

    start: int
    end: int
    content: str


@dataclass(frozen=True)
class Fix:
    """A set of edits applied together; `applicability` is "safe" or "unsafe"."""

    applicability: str
    edits: tuple[Edit, ...]
    description: str = ""


@dataclass(frozen=True)
class Diagnostic:
    """A finding with its resolved position (1-based line and column, end exclusive)."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    code: str
    name: str
    message: str
    fix: Fix | None = None
    runtime: dict[str, Any] | None = field(default=None, compare=False)
    # extra facts for the runtime checker (e.g. the Module class a finding is about)
    context: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def fixable(self) -> bool:
        return self.fix is not None

    def sort_key(self) -> tuple[str, int, int, int, str]:
        cell = self.context.get("cell", 0) if self.context else 0
        return (self.path, cell or 0, self.line, self.col, self.code)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a finding."""
        out: dict[str, Any] = {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "end_line": self.end_line,
            "end_col": self.end_col,
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "fixable": self.fixable,
            "fix": None,
        }
        if self.fix is not None:
            out["fix"] = {
                "applicability": self.fix.applicability,
                "description": self.fix.description,
                "edits": [
                    {"start": e.start, "end": e.end, "content": e.content} for e in self.fix.edits
                ],
            }
        for key in ("class", "cell"):
            if self.context and key in self.context:
                out[key] = self.context[key]
        if self.runtime is not None:
            out["runtime"] = self.runtime
        return out
