"""Tier 1: every rule's own `valid` / `invalid` examples, walked from the registry."""

from __future__ import annotations

import textwrap

import pytest

from helpers import fix, lint
from torchlint.fix import parses
from torchlint.registry import all_rules

RULES = all_rules()


def test_every_rule_has_examples() -> None:
    for rule in RULES:
        assert rule.valid, f"{rule.code} has no valid examples"
        assert rule.invalid, f"{rule.code} has no invalid examples"
        assert rule.name and rule.summary, rule.code


def test_codes_are_unique_and_well_formed() -> None:
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    assert all(len(c) == 5 and c.startswith("TL") and c[2:].isdigit() for c in codes)


@pytest.mark.parametrize(
    "rule,code", [(r, c) for r in RULES for c in r.valid], ids=lambda v: getattr(v, "code", "")
)
def test_valid_examples_are_silent(rule, code) -> None:
    found = [d for d in lint(code, also=rule.code) if d.code == rule.code]
    assert found == [], f"{rule.code} flagged a valid example:\n{textwrap.dedent(code)}\n{found}"


@pytest.mark.parametrize(
    "rule,case", [(r, c) for r in RULES for c in r.invalid], ids=lambda v: getattr(v, "code", "")
)
def test_invalid_examples_flag_exactly(rule, case) -> None:
    found = [(d.code, d.line) for d in lint(case.code, also=rule.code) if d.code == rule.code]
    assert found == [(rule.code, case.line)], textwrap.dedent(case.code)
    if case.col is not None:
        cols = [d.col for d in lint(case.code, also=rule.code) if d.code == rule.code]
        assert cols == [case.col]


@pytest.mark.parametrize(
    "rule,case", [(r, c) for r in RULES for c in r.invalid if c.fixed is not None],
    ids=lambda v: getattr(v, "code", ""),
)
def test_invalid_examples_fix(rule, case) -> None:
    source = textwrap.dedent(case.code)
    expected = textwrap.dedent(case.fixed)
    if case.unsafe:
        assert fix(source, rule.code, unsafe=False) == source, "an unsafe fix was applied without opt-in"
    fixed = fix(source, rule.code, unsafe=case.unsafe)
    assert fixed == expected
    assert parses(fixed)
    assert fix(fixed, rule.code, unsafe=True) == fixed, "fixing twice changed the code again"
