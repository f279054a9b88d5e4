"""`# noqa` / `# noqa: TL104,TL201` on a finding's line, and `# torchlint: skip-file`."""

from __future__ import annotations

import re

# flake8's own pattern, in spirit: "# noqa", "# NOQA", "# noqa: TL104, TL2", "#noqa:TL104"
_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
_CODE = re.compile(r"[A-Z]+[0-9]+", re.I)
_SKIP_FILE = re.compile(r"#\s*torchlint\s*:\s*skip-file\b")


def skip_file(source: str) -> bool:
    """Whether the file asks not to be checked at all."""
    return "skip-file" in source and _SKIP_FILE.search(source) is not None


def is_suppressed(line_text: str, code: str) -> bool:
    """flake8's semantics: a bare `# noqa` silences every code; a list silences those (prefixes)."""
    if "noqa" not in line_text.lower():
        return False
    match = _NOQA.search(line_text)
    if match is None:
        return False
    codes = match.group("codes")
    if not codes:
        return True
    listed = [c.upper() for c in _CODE.findall(codes)]
    return any(code == c or code.startswith(c) for c in listed)
