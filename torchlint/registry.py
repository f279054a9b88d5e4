"""The code -> rule table, and selection by code or prefix (`--select TL1`, `--ignore TL104`)."""

from __future__ import annotations

from collections.abc import Iterable

from torchlint.rule import Rule

# TL000 is not a Rule class: the engine reports it for files that cannot be checked.
TL000 = ("TL000", "cannot-check", "a file that cannot be checked: syntax error, undecodable, unreadable, too large, nested too deeply")


def all_rules() -> list[type[Rule]]:
    """Every rule class, sorted by code."""
    from torchlint.rules import RULES

    return sorted(RULES, key=lambda r: r.code)


def rule_by_code() -> dict[str, type[Rule]]:
    return {r.code: r for r in all_rules()}


def all_codes() -> list[str]:
    return ["TL000", *[r.code for r in all_rules()]]


def matches(code: str, patterns: Iterable[str]) -> bool:
    """Whether a code is named by one of the patterns (a full code or a prefix; ALL matches all)."""
    return any(p == "ALL" or code.startswith(p) for p in patterns)


def is_valid_pattern(pattern: str) -> bool:
    """A pattern is valid when it is ALL or a prefix of at least one known code."""
    return pattern == "ALL" or any(c.startswith(pattern) for c in all_codes())


def select_codes(select: Iterable[str] | None, ignore: Iterable[str] | None,
                 extend_select: Iterable[str] | None = None) -> frozenset[str]:
    """The enabled codes: `select` (default all) plus `extend_select`, minus `ignore`.

    As in ruff, a more specific pattern wins: `--select TL1 --ignore TL104` drops TL104,
    `--ignore TL1 --select TL104` keeps it.
    """
    codes = all_codes()
    opt_in = {r.code for r in all_rules() if not r.default_enabled}
    select = list(select) if select else ["TL"]
    select += list(extend_select or [])
    ignore = list(ignore or [])
    enabled = set()
    for code in codes:
        best_sel = max((len(p) if p != "ALL" else 0 for p in select if matches(code, [p])), default=-1)
        if code in opt_in and not (best_sel > len("TL") or "ALL" in select):
            continue  # opt-in rules need a selection that names them (TL507, TL5, ALL)
        best_ign = max((len(p) if p != "ALL" else 0 for p in ignore if matches(code, [p])), default=-1)
        if best_sel >= 0 and best_sel > best_ign:
            enabled.add(code)
    if "TL000" not in enabled and best_ign_for("TL000", ignore) < 0:
        enabled.add("TL000")  # a file that cannot be checked is always said, unless ignored
    return frozenset(enabled)


def best_ign_for(code: str, ignore: list[str]) -> int:
    return max((len(p) for p in ignore if matches(code, [p])), default=-1)
