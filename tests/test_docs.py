"""Tier 4: every rule has a page; its Example blocks flag the rule, its Use instead blocks do not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import lint
from torchlint.registry import all_codes

PAGES = Path(__file__).resolve().parent.parent / "rules"
SECTIONS = ["What it does", "Why is this bad?", "Example", "Use instead", "Fix", "Runtime confirmation", "References"]


def blocks(text: str, heading: str) -> list[str]:
    """The ```python blocks of one `## heading` section."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not match:
        return []
    return re.findall(r"```python\n(.*?)```", match.group(1), re.S)


@pytest.mark.parametrize("code", all_codes())
def test_page_has_every_section(code: str) -> None:
    page = PAGES / f"{code}.md"
    assert page.exists(), f"missing rules/{code}.md"
    text = page.read_text()
    assert text.startswith(f"# {code}"), "the page starts with '# TLxxx name'"
    for section in SECTIONS:
        assert re.search(rf"^## {re.escape(section)}", text, re.M), f"{code}: no '## {section}'"


@pytest.mark.parametrize("code", [c for c in all_codes() if c != "TL000"])
def test_examples_flag_and_use_instead_is_clean(code: str) -> None:
    text = (PAGES / f"{code}.md").read_text()
    examples, fixed = blocks(text, "Example"), blocks(text, "Use instead")
    assert examples and fixed
    for block in examples:
        assert any(d.code == code for d in lint(block, also=code)), f"{code}: Example does not flag:\n{block}"
    for block in fixed:
        assert not any(d.code == code for d in lint(block, also=code)), f"{code}: Use instead flags:\n{block}"
