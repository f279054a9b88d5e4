"""The class index covers the whole project: a Module base defined in another file counts.

These tests run the real CLI in a subprocess on a small package in a temporary project, the
way a pre-commit hook runs it on one staged file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BASE_MODULE = """\
import torch.nn as nn


class BaseBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.channels = channels
"""

BASE_NOT_MODULE = """\
class BaseBlock:
    def __init__(self, channels):
        self.channels = channels
"""

BLOCKS = """\
import torch.nn as nn

from {import_from} import BaseBlock


class ConvBlock(BaseBlock):
    def __init__(self, channels):
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
"""


def make_project(root: Path, base: str, import_from: str = ".base") -> Path:
    """pyproject.toml + pkg/{__init__,base,blocks}.py under root; returns blocks.py."""
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n')
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(base)
    blocks = pkg / "blocks.py"
    blocks.write_text(BLOCKS.format(import_from=import_from))
    return blocks


def check(root: Path, *args: str) -> tuple[int, list[dict]]:
    """Run `torchlint check --format json` in root; (exit code, findings)."""
    proc = subprocess.run(
        [sys.executable, "-m", "torchlint.cli", "check", "--format", "json", "--quiet", *args],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout or "[]")


@pytest.mark.parametrize("import_from", [".base", "pkg.base"])
@pytest.mark.parametrize("target", ["pkg/blocks.py", "."])
def test_base_module_in_another_file(tmp_path: Path, import_from: str, target: str) -> None:
    make_project(tmp_path, BASE_MODULE, import_from)
    code, findings = check(tmp_path, "--no-cache", target)
    assert code == 1
    assert [(f["path"].replace("\\", "/").removeprefix("./"), f["code"], f["line"]) for f in findings] == [
        ("pkg/blocks.py", "TL101", 7)
    ]
    # the base is a subclass of nn.Module, not nn.Module itself: it may need arguments
    assert findings[0]["fix"] is None


@pytest.mark.parametrize("target", ["pkg/blocks.py", "."])
def test_base_not_a_module_is_silent(tmp_path: Path, target: str) -> None:
    make_project(tmp_path, BASE_NOT_MODULE)
    code, findings = check(tmp_path, "--no-cache", target)
    assert (code, findings) == (0, [])


def test_chain_across_three_files(tmp_path: Path) -> None:
    blocks = make_project(tmp_path, BASE_MODULE)
    (tmp_path / "pkg" / "mid.py").write_text(textwrap.dedent("""\
        from pkg.base import BaseBlock


        class MidBlock(BaseBlock):
            pass
        """))
    blocks.write_text(BLOCKS.format(import_from=".mid").replace("BaseBlock", "MidBlock"))
    code, findings = check(tmp_path, "--no-cache", "pkg/blocks.py")
    assert [(f["code"], f["line"]) for f in findings] == [("TL101", 7)]


def test_cached_index_follows_an_edited_base(tmp_path: Path) -> None:
    """With the cache on, turning the base into a plain class must silence the subclass."""
    make_project(tmp_path, BASE_MODULE)
    _, findings = check(tmp_path, "pkg/blocks.py")
    assert [f["code"] for f in findings] == ["TL101"]
    (tmp_path / "pkg" / "base.py").write_text(BASE_NOT_MODULE)
    _, findings = check(tmp_path, "pkg/blocks.py")
    assert findings == []
