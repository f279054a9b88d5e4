"""TL501-TL504 beyond their fixtures: the `torch-version` setting and the shipped table."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from torchlint.config import ConfigError, load_config
from torchlint.engine import Options, check_source
from torchlint.registry import select_codes
from torchlint.rules.apis import torch_apis
from torchlint.torchnames import torch_names


def lint_for(code: str, version: str | None) -> list[tuple[str, int]]:
    options = Options(enabled=select_codes(["TL5"], None), torch_version=version)
    return sorted((d.code, d.line) for d in check_source(textwrap.dedent(code), "x.py", options).diagnostics)


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.torchlint]\n{body}\n")
    return path


def test_table_is_pinned_to_the_name_table_version() -> None:
    assert torch_apis().version == torch_names().version


@pytest.mark.parametrize(("value", "expected"), [('"2.1"', "2.1"), ('"1.12.1"', "1.12"), ('"2.13"', "2.13")])
def test_torch_version_is_read(tmp_path: Path, value: str, expected: str) -> None:
    assert load_config(write_config(tmp_path, f"torch-version = {value}")).torch_version == expected


@pytest.mark.parametrize("value", ["2.1", '"two"', '"2"', '"0.4"', '["2.1"]'])
def test_torch_version_is_validated(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="torch-version"):
        load_config(write_config(tmp_path, f"torch-version = {value}"))


AMP = """\
import torch
scaler = torch.cuda.amp.GradScaler()
with torch.cuda.amp.autocast():
    pass
"""


def test_deprecations_after_the_target_are_not_reported() -> None:
    assert lint_for(AMP, None) == [("TL502", 2), ("TL502", 3)]
    assert lint_for(AMP, "2.3") == []  # deprecated in 2.4


def test_replacement_missing_in_the_target_is_not_suggested() -> None:
    code = "import torch\nfrom torch import nn\nm = nn.utils.weight_norm(nn.Linear(2, 2))\n"
    assert lint_for(code, "2.1") == [("TL502", 3)]
    assert lint_for(code, "2.0") == []  # parametrizations.weight_norm came in 2.1


def test_removed_after_the_target_is_a_deprecation() -> None:
    code = "import torch\nX = torch.solve(B, A)\n"
    assert lint_for(code, None) == [("TL501", 2)]
    assert lint_for(code, "2.0") == [("TL501", 2)]
    assert lint_for(code, "1.12") == [("TL502", 2)]  # still there, deprecated since 1.9
    assert lint_for(code, "1.8") == []


def test_public_alias_missing_in_the_target() -> None:
    code = "from torch.utils.data._utils.collate import default_collate\n"
    assert lint_for(code, "1.11") == [("TL503", 1)]
    assert lint_for(code, "1.10") == []


def test_no_torch_import_no_findings() -> None:
    assert lint_for("X = torch.solve(B, A)\nfrom functorch_like import vmap\n", None) == []


def test_require_grad_read_elsewhere_gets_no_fix() -> None:
    code = "for p in ps:\n    p.require_grad = False\nkeep = [p for p in ps if p.require_grad]\n"
    found = check_source(code, "x.py", Options(enabled=select_codes(["TL504"], None))).diagnostics
    assert [(d.code, d.line, d.fix) for d in found] == [("TL504", 2, None)]


def test_fix_needs_an_import_to_spell_the_replacement() -> None:
    code = "from torch.nn.utils import weight_norm\nm = weight_norm(layer)\n"
    found = check_source(code, "x.py", Options(enabled=select_codes(["TL502"], None))).diagnostics
    assert [(d.line, d.fix) for d in found] == [(1, None), (2, None)]
