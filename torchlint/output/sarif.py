"""SARIF 2.1.0, as GitHub code scanning and other CI dashboards read it.

Every rule is listed in `tool.driver.rules` (so a dashboard can show a rule that found
nothing this run), each result points at its rule by id and index, and columns are counted
in Unicode code points (`columnKind`), as torchlint counts them. Fix edits are code-point
offsets into the decoded source, so their regions use `charOffset`/`charLength`. In a
notebook, a finding's line is the line within its cell: the cell is named in the message and
in `properties.cell`, and fixes are left out (their offsets are not into the .ipynb file).
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from torchlint import __version__
from torchlint.diagnostic import Diagnostic
from torchlint.registry import TL000, all_rules

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/torchlint/torchlint"
HELP_URI = "https://github.com/torchlint/torchlint/blob/main/rules/{code}.md"
SRCROOT = "%SRCROOT%"


def rule_descriptors() -> list[dict[str, Any]]:
    """One reportingDescriptor per code, TL000 first, in code order."""
    rows = [(TL000[0], TL000[1], TL000[2], TL000[2][:1].upper() + TL000[2][1:] + ".", None)]
    for rule in all_rules():
        doc = inspect.cleandoc(rule.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        rows.append((rule.code, rule.name, rule.summary, doc or rule.summary, rule.fix_safety))
    descriptors = []
    for code, name, summary, full, fix_safety in rows:
        descriptor: dict[str, Any] = {
            "id": code,
            "name": name,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": full},
            "helpUri": HELP_URI.format(code=code),
            "defaultConfiguration": {"level": "error"},
        }
        if fix_safety:
            descriptor["properties"] = {"fixSafety": fix_safety}
        descriptors.append(descriptor)
    return descriptors


def artifact_location(path: str) -> dict[str, Any]:
    """A relative URI under %SRCROOT% (the working directory), else an absolute file URI."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.relative_to(Path.cwd())
        except ValueError:
            return {"uri": candidate.as_uri()}
    return {"uri": quote(candidate.as_posix(), safe="/"), "uriBaseId": SRCROOT}


def _region(d: Diagnostic) -> dict[str, int]:
    line = max(d.line, 1)
    col = max(d.col, 1)
    end_line = max(d.end_line, line)
    end_col = max(d.end_col, 1)
    if end_line == line and end_col < col:
        end_col = col
    return {"startLine": line, "startColumn": col, "endLine": end_line, "endColumn": end_col}


def _cell(d: Diagnostic) -> int | None:
    """The notebook cell of a finding (its line and column are then within that cell)."""
    return d.context.get("cell") if d.context else None


def _fix(d: Diagnostic) -> dict[str, Any] | None:
    if d.fix is None or not d.fix.edits or _cell(d) is not None:
        return None  # a notebook fix's offsets are into the joined cells, not into the .ipynb
    replacements = [
        {
            "deletedRegion": {"charOffset": edit.start, "charLength": edit.end - edit.start},
            "insertedContent": {"text": edit.content},
        }
        for edit in d.fix.edits
    ]
    return {
        "description": {"text": d.fix.description or f"fix {d.code}"},
        "artifactChanges": [{"artifactLocation": artifact_location(d.path), "replacements": replacements}],
        "properties": {"applicability": d.fix.applicability},
    }


def _result(d: Diagnostic, rule_index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": d.code,
        "level": "error",
        "message": {"text": d.message if _cell(d) is None else f"{d.message} (cell {_cell(d)}, line {d.line})"},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(d.path), "region": _region(d)}}],
    }
    if d.code in rule_index:
        result["ruleIndex"] = rule_index[d.code]
    fix = _fix(d)
    if fix is not None:
        result["fixes"] = [fix]
    properties: dict[str, Any] = {}
    if d.context:
        # notebooks: the cell a finding is in (set by the notebook support), and the class
        for key in ("cell", "cell_line", "class"):
            if key in d.context:
                properties[key] = d.context[key]
    if d.runtime is not None:
        properties["runtime"] = d.runtime
    if properties:
        result["properties"] = properties
    return result


def to_sarif(diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict."""
    rules = rule_descriptors()
    rule_index = {rule["id"]: i for i, rule in enumerate(rules)}
    cwd = Path(os.getcwd()).as_uri().rstrip("/") + "/"
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "torchlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": cwd}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(d, rule_index) for d in diagnostics],
            }
        ],
    }


def emit(diagnostics: list[Diagnostic], stream: IO[str]) -> None:
    json.dump(to_sarif(diagnostics), stream, indent=2, ensure_ascii=False)
    stream.write("\n")
