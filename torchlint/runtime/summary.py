"""The one-line summary at the end of a `--runtime` run (no torch).

    runtime: 118 findings in Modules: 105 confirmed, 0 not-reproduced, 13 skipped, 0 error;
    13 skipped: 8 need constructor arguments (add [tool.torchlint.runtime.construct] entries:
    Head, Decoder), 3 stopped by an earlier error, ...

Skip reasons are grouped by what would fix them; the groups a config entry fixes name the
key and the classes to add.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable

from torchlint.diagnostic import Diagnostic
from torchlint.runtime.loader import class_at, list_classes

STATUSES = ("confirmed", "not-reproduced", "skipped", "error")
MAX_REASONS = 3
MAX_CLASSES = 4

# (pattern on the detail, reason, config key that fixes it or "")
_REASONS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"stopped earlier|before this line ran|not traced to this line|stopped at a device error"),
     "stopped by an earlier error in the same class (fix that one first)", ""),
    (re.compile(r"^needs constructor arguments"), "need constructor arguments",
     "[tool.torchlint.runtime.construct]"),
    # no arguments needed, yet `Class()` raised: the class's own code failed (see the detail)
    (re.compile(r"^construction failed|^could not build"), "raised while being built", ""),
    (re.compile(r"no synthesised input fits|^no input|forward needs \d+ arguments|^forward failed on cpu"),
     "need forward inputs", "[tool.torchlint.runtime.inputs]"),
    (re.compile(r"not checkable on|\.to\('\w+'\) failed"), "cannot run on the probe device", ""),
    (re.compile(r"defined inside a function"), "are in classes defined inside functions", ""),
    (re.compile(r"no runtime check"), "have no runtime check", ""),
    (re.compile(r"is a parameter: its caller|cannot tell how the model is built|built from values known"),
     "call a model built elsewhere", ""),
)


def _reason(detail: str) -> tuple[str, str]:
    for pattern, reason, key in _REASONS:
        if pattern.search(detail):
            return reason, key
    return "other reasons", ""


class _Classes:
    """The class each finding is in (its context, else the class spanning its line)."""

    def __init__(self) -> None:
        self._files: dict[str, list] = {}  # type: ignore[type-arg]

    def of(self, d: Diagnostic) -> str | None:
        name = (d.context or {}).get("class")
        if name:
            return str(name).rsplit(".", 1)[-1]
        if d.path not in self._files:
            try:
                with open(d.path, "rb") as handle:
                    self._files[d.path] = list_classes(ast.parse(handle.read().decode("utf-8-sig")))
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
                self._files[d.path] = []
        info = class_at(self._files[d.path], d.line)
        return info.name if info else None


def summarize(diagnostics: Iterable[Diagnostic]) -> str:
    """The summary line, or "" when no finding was checked at runtime."""
    checked = [d for d in diagnostics if d.runtime and d.runtime.get("found_by") != "runtime"]
    found = [d for d in diagnostics if d.runtime and d.runtime.get("found_by") == "runtime"]
    if not checked and not found:
        return "runtime: no finding to check (the runtime checks findings about Module classes and models)"
    counts = Counter(str(d.runtime.get("status")) for d in checked if d.runtime)
    text = (f"runtime: {len(checked)} finding{'s' if len(checked) != 1 else ''} checked: "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))
    if found:
        text += f"; {len(found)} more found only at runtime"
    skipped = [d for d in checked if d.runtime and d.runtime.get("status") == "skipped"]
    if skipped:
        classes = _Classes()
        reasons: Counter[tuple[str, str]] = Counter()
        names: dict[tuple[str, str], list[str]] = {}
        for d in skipped:
            key = _reason(str((d.runtime or {}).get("detail", "")))
            reasons[key] += 1
            name = classes.of(d)
            if name and name not in names.setdefault(key, []):
                names[key].append(name)
        parts = []
        for (reason, config), count in reasons.most_common(MAX_REASONS):
            part = f"{count} {reason}"
            if config:
                listed = names.get((reason, config), [])
                shown = ", ".join(listed[:MAX_CLASSES]) + (", ..." if len(listed) > MAX_CLASSES else "")
                part += f" (add {config} entries: {shown})" if shown else f" (add {config} entries)"
            parts.append(part)
        rest = len(skipped) - sum(c for _, c in reasons.most_common(MAX_REASONS))
        if rest:
            parts.append(f"{rest} for other reasons")
        text += f"; {len(skipped)} skipped: " + ", ".join(parts)
    return text


__all__ = ["summarize"]
