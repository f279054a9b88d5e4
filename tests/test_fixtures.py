"""Tier 2 and 3: fixtures/TLxxx/bad_*.py (`# expect:` markers), good_*.py (silence),
fix_*.in.py -> fix_*.out.py pairs (fix_unsafe_* need --unsafe-fixes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import codes_lines, expected_markers, fix, lint
from torchlint.fix import parses
from torchlint.registry import all_rules

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BAD = sorted(FIXTURES.glob("TL*/bad_*.py"))
GOOD = sorted(FIXTURES.glob("TL*/good_*.py"))
FIX_IN = sorted(FIXTURES.glob("TL*/fix_*.in.py"))


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_rule_has_bad_and_good_fixtures() -> None:
    for rule in all_rules():
        folder = FIXTURES / rule.code
        assert list(folder.glob("bad_*.py")), f"{rule.code}: no bad fixture"
        assert list(folder.glob("good_*.py")), f"{rule.code}: no good fixture"


@pytest.mark.parametrize("path", BAD, ids=_id)
def test_bad_fixture(path: Path) -> None:
    source = path.read_text()
    expected = expected_markers(source)
    assert any(code == path.parent.name for code, _ in expected), "a bad fixture must expect its rule"
    assert codes_lines(lint(source, path=str(path), also=path.parent.name)) == expected


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_good_fixture(path: Path) -> None:
    source = path.read_text()
    assert codes_lines(lint(source, path=str(path), also=path.parent.name)) == expected_markers(source)
    assert not any(code == path.parent.name for code, _ in expected_markers(source))


@pytest.mark.parametrize("path", FIX_IN, ids=_id)
def test_fix_pair(path: Path) -> None:
    code = path.parent.name
    unsafe = path.name.startswith("fix_unsafe_")
    source = path.read_text()
    expected = path.with_name(path.name.replace(".in.py", ".out.py")).read_text()
    fixed = fix(source, code, unsafe=unsafe)
    assert fixed == expected
    assert parses(fixed)
    assert fix(fixed, code, unsafe=unsafe) == fixed
    if unsafe:
        assert fix(source, code, unsafe=False) == source
