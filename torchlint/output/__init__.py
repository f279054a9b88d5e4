"""Emitters: one function per format over the same list of Diagnostics."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from torchlint.diagnostic import Diagnostic

Emitter = Callable[[list[Diagnostic], IO[str]], None]


def emitters() -> dict[str, Emitter]:
    """Format name -> emitter (imported lazily: a text run never loads the SARIF code)."""
    from torchlint.output import json_out, text

    table: dict[str, Emitter] = {"text": text.emit, "json": json_out.emit}
    try:
        from torchlint.output import github, gitlab, sarif

        table.update({"sarif": sarif.emit, "github": github.emit, "gitlab": gitlab.emit})
    except ImportError:  # pragma: no cover - formats not built yet
        pass
    return table


FORMATS = ("text", "json", "sarif", "github", "gitlab")
