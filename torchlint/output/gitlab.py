"""GitLab code quality reports: a JSON array in the Code Climate issue format.

The fingerprint identifies a finding across pipelines, so it hashes what survives unrelated
edits (path, code, message) and not the line number; identical findings in one file are told
apart by their order.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

from torchlint.diagnostic import Diagnostic
from torchlint.registry import TL000


def _path(path: str) -> str:
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return candidate.as_posix()
    return candidate.as_posix()


def fingerprint(d: Diagnostic, occurrence: int) -> str:
    """A stable hash of (path, code, message, n-th such finding in the file)."""
    key = "\0".join((_path(d.path), d.code, d.message, str(occurrence)))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def to_codeclimate(diagnostics: list[Diagnostic]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], int] = {}
    issues = []
    for d in diagnostics:
        key = (_path(d.path), d.code, d.message)
        cell = d.context.get("cell") if d.context else None  # notebooks: lines are within the cell
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        issues.append({
            "type": "issue",
            "check_name": d.code,
            "description": f"{d.code} {d.message}" + (f" (cell {cell}, line {d.line})" if cell else ""),
            "categories": ["Bug Risk"],
            "severity": "critical" if d.code == TL000[0] else "major",
            "fingerprint": fingerprint(d, occurrence),
            "engine_name": "torchlint",
            "location": {
                "path": _path(d.path),
                "lines": {"begin": max(d.line, 1), "end": max(d.end_line, d.line, 1)},
            },
        })
    return issues


def emit(diagnostics: list[Diagnostic], stream: IO[str]) -> None:
    json.dump(to_codeclimate(diagnostics), stream, indent=2, ensure_ascii=False)
    stream.write("\n")
