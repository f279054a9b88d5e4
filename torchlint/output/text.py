"""`path:LINE:COL: TL101 message`, the shape flake8 prints (1-based line and column)."""

from __future__ import annotations

from typing import IO

from torchlint.diagnostic import Diagnostic


def format_line(d: Diagnostic) -> str:
    cell = d.context.get("cell") if d.context else None
    where = f"{d.path}:cell {cell}:{d.line}:{d.col}" if cell is not None else f"{d.path}:{d.line}:{d.col}"
    line = f"{where}: {d.code} {d.message}"
    if d.runtime:
        detail = d.runtime.get("detail")
        line += f" [runtime: {d.runtime.get('status')}{': ' + detail if detail else ''}]"
    return line


def emit(diagnostics: list[Diagnostic], stream: IO[str]) -> None:
    for d in diagnostics:
        stream.write(format_line(d) + "\n")
