"""One JSON array; each finding an object (path, line, col, end_line, end_col, code, ...)."""

from __future__ import annotations

import json
from typing import IO

from torchlint.diagnostic import Diagnostic


def emit(diagnostics: list[Diagnostic], stream: IO[str]) -> None:
    json.dump([d.to_dict() for d in diagnostics], stream, indent=2, ensure_ascii=False)
    stream.write("\n")
