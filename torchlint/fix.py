"""Apply fixes: text edits on the source, re-parsed after every round, to a fixed point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from torchlint.diagnostic import Diagnostic, Fix

MAX_ROUNDS = 10


@dataclass
class FixOutcome:
    """The fixed source, how many fixes were applied, and fixes dropped for breaking the code."""

    source: str
    applied: int = 0
    dropped: list[Diagnostic] = field(default_factory=list)


def applicable(diagnostic: Diagnostic, unsafe: bool) -> bool:
    fix = diagnostic.fix
    return fix is not None and (fix.applicability == "safe" or unsafe)


def apply_edits(source: str, fixes: list[Fix]) -> tuple[str, int]:
    """Apply non-overlapping fixes (the first wins on overlap); returns (text, fixes applied)."""
    chosen: list[Fix] = []
    taken: list[tuple[int, int]] = []
    for fix in sorted(fixes, key=lambda f: (f.edits[0].start, f.edits[0].end) if f.edits else (0, 0)):
        spans = [(e.start, e.end) for e in fix.edits]
        overlaps = any(
            s < te and ts < e or (s == e == ts == te) or (s == e and ts < s < te) or (ts == te and s < ts < e)
            for s, e in spans for ts, te in taken
        )
        if overlaps:
            continue
        chosen.append(fix)
        taken.extend(spans)
    edits = sorted((e for f in chosen for e in f.edits), key=lambda e: (e.start, e.end), reverse=True)
    text = source
    for edit in edits:
        text = text[: edit.start] + edit.content + text[edit.end :]
    return text, len(chosen)


def parses(source: str) -> bool:
    try:
        cst.parse_module(source)
    except Exception:  # noqa: BLE001 - any failure means the fix is not kept
        return False
    return True


def fix_source(source: str, check: Callable[[str], list[Diagnostic]], unsafe: bool) -> FixOutcome:
    """Check, apply every applicable fix, re-check; repeat until nothing changes.

    A round whose combined result does not parse falls back to applying its fixes one at
    a time, keeping only those that leave parseable code; those that break it are dropped.
    """
    outcome = FixOutcome(source)
    dropped_keys: set[tuple[str, int, int]] = set()
    for _ in range(MAX_ROUNDS):
        diagnostics = [
            d for d in check(outcome.source)
            if applicable(d, unsafe) and (d.code, d.line, d.col) not in dropped_keys
        ]
        if not diagnostics:
            break
        fixes = [d.fix for d in diagnostics if d.fix is not None]
        text, count = apply_edits(outcome.source, fixes)
        if text != outcome.source and parses(text):
            outcome.source = text
            outcome.applied += count
            continue
        progressed = False
        for diagnostic in diagnostics:
            assert diagnostic.fix is not None
            single, _ = apply_edits(outcome.source, [diagnostic.fix])
            if single != outcome.source and parses(single):
                outcome.source = single
                outcome.applied += 1
                progressed = True
                break
            dropped_keys.add((diagnostic.code, diagnostic.line, diagnostic.col))
            outcome.dropped.append(diagnostic)
        if not progressed:
            break
    return outcome
