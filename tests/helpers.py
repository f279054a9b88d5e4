"""Shared test helpers: lint a snippet, fix a snippet, read `# expect:` markers."""

from __future__ import annotations

import re
import textwrap

from torchlint.diagnostic import Diagnostic
from torchlint.engine import Options, check_source
from torchlint.fix import fix_source
from torchlint.project import ProjectIndex
from torchlint.registry import all_codes, select_codes

ALL = select_codes(None, None)
_EXPECT = re.compile(r"#\s*expect:\s*((?:TL\d{3}[,\s]*)+)")


def lint(code: str, select: str | list[str] | None = None, path: str = "example.py",
         index: ProjectIndex | None = None, module_bases: tuple[str, ...] = (),
         also: str | None = None) -> list[Diagnostic]:
    """Lint a snippet (dedented) with the given codes enabled (default: the default set, plus
    `also`, an opt-in rule under test)."""
    if isinstance(select, str):
        select = [select]
    enabled = select_codes(select, None) if select else select_codes(None, None, [also]) if also else ALL
    options = Options(enabled=enabled, module_bases=module_bases)
    return check_source(textwrap.dedent(code), path, options, index).diagnostics


def codes_lines(diagnostics: list[Diagnostic]) -> list[tuple[str, int]]:
    return sorted((d.code, d.line) for d in diagnostics)


def fix(code: str, select: str | list[str] | None = None, unsafe: bool = False) -> str:
    """Apply fixes to a snippet to a fixed point, as `--fix` does."""
    return fix_source(code, lambda s: lint(s, select), unsafe).source


def expected_markers(source: str) -> list[tuple[str, int]]:
    """(code, line) for every `# expect: TL101` marker in a fixture."""
    out = []
    for number, line in enumerate(source.splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            for code in re.findall(r"TL\d{3}", match.group(1)):
                out.append((code, number))
    return sorted(out)


__all__ = ["ALL", "all_codes", "codes_lines", "expected_markers", "fix", "lint"]
