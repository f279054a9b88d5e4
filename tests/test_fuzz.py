"""Tier 6: generated programs never crash a rule or the fixer, and fixed code still parses.

Three sources of programs: hypothesmith's grammar-based and libcst-based generators (any
Python at all), and PyTorch-shaped programs stitched from the rules' own examples and the
fixtures, then cut or shuffled, which reach deep into the rules. The default run is small and
derandomized (the same examples every time); `TORCHLINT_FUZZ_EXAMPLES=2000 pytest
tests/test_fuzz.py` (`make fuzz`) runs a large, random one.
"""

from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

import hypothesmith
import pytest
from helpers import ALL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchlint.diagnostic import Diagnostic
from torchlint.engine import Options, check_source
from torchlint.fix import fix_source, parses
from torchlint.registry import all_rules

# generated code is full of `1()` and `...()`: CPython's SyntaxWarnings say so, harmlessly
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")
BUDGET = os.environ.get("TORCHLINT_FUZZ_EXAMPLES")
OPTIONS = Options(enabled=ALL)
FUZZ = settings(
    max_examples=int(BUDGET) if BUDGET else 30,
    deadline=None,
    derandomize=not BUDGET,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _fragments() -> list[str]:
    """Every rule's examples, their fixed forms, and the fixture files."""
    found: list[str] = []
    for rule in all_rules():
        found.extend(textwrap.dedent(code) for code in rule.valid)
        for case in rule.invalid:
            found.append(textwrap.dedent(case.code))
            if case.fixed:
                found.append(textwrap.dedent(case.fixed))
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    found.extend(p.read_text("utf-8") for p in sorted(fixtures.rglob("*.py")))
    return found


FRAGMENTS = _fragments()


@st.composite
def torch_programs(draw: st.DrawFn) -> str:
    """A few rule examples stitched together, then maybe cut, shuffled or re-indented."""
    parts = draw(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4))
    source = "\n".join(parts)
    lines = source.splitlines(keepends=True)
    mutation = draw(st.sampled_from(["none", "truncate", "drop-line", "swap-lines", "tabs", "crlf"]))
    if mutation == "truncate":
        source = source[: draw(st.integers(0, len(source)))]
    elif mutation == "drop-line" and lines:
        del lines[draw(st.integers(0, len(lines) - 1))]
        source = "".join(lines)
    elif mutation == "swap-lines" and len(lines) > 1:
        i = draw(st.integers(0, len(lines) - 2))
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        source = "".join(lines)
    elif mutation == "tabs":
        source = source.replace("    ", "\t")
    elif mutation == "crlf":
        source = source.replace("\n", "\r\n")
    return source


def lint(source: str) -> list[Diagnostic]:
    result = check_source(source, "fuzz.py", OPTIONS)
    assert result.errors == [], result.errors  # a rule that raised is recorded here
    return result.diagnostics


def assert_sound(source: str) -> None:
    """No exception anywhere; positions and fix edits inside the file; fixes keep it parsing."""
    diagnostics = lint(source)
    lines = max(1, len(source.splitlines()) + 1)
    for d in diagnostics:
        assert 1 <= d.line <= d.end_line <= lines, d
        assert d.col >= 1 and d.end_col >= 1, d
        if d.fix is not None:
            assert d.fix.applicability in ("safe", "unsafe")
            assert all(0 <= e.start <= e.end <= len(source) for e in d.fix.edits), d
    if not parses(source):
        assert {d.code for d in diagnostics} <= {"TL000"}
        return
    outcome = fix_source(source, lint, unsafe=True)
    assert parses(outcome.source), outcome.source
    if outcome.source != source:
        try:
            ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return
        ast.parse(outcome.source)  # what CPython accepted before, it accepts after
        if not outcome.dropped:
            again = fix_source(outcome.source, lint, unsafe=True)
            assert again.source == outcome.source  # --fix reached its fixed point


@FUZZ
@given(hypothesmith.from_grammar())
def test_grammar_generated_programs(source: str) -> None:
    assert_sound(source)


@FUZZ
@given(hypothesmith.from_node())
def test_libcst_generated_programs(source: str) -> None:
    assert_sound(source)


@FUZZ
@given(torch_programs())
def test_torch_shaped_programs(source: str) -> None:
    assert_sound(source)
