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


# ---- installed third-party packages ------------------------------------------------------------

FAKELIB = {
    # importing the package would fail: its source is read, never executed
    "fakelib/__init__.py": "raise RuntimeError('torchlint imported fakelib')\nfrom .nets import Backbone, Settings\n",
    "fakelib/nets/__init__.py": "from .core import *\nfrom .dummy_objects import *\n",
    "fakelib/nets/dummy_objects.py": "class Backbone(metaclass=type):\n    pass\n",
    "fakelib/nets/core.py": textwrap.dedent("""\
        import torch.nn as nn


        class _Mixin:
            def summary(self):
                return repr(self)


        class Backbone(_Mixin, nn.Module):
            def forward(self, x):
                return x


        class Settings:
            pass
        """),
}

USER_CODE = """\
import torch.nn as nn
from fakelib import Backbone, Settings


class Net(Backbone):
    def __init__(self, dim):
        self.fc = nn.Linear(dim, dim)


class Options(Settings):
    def __init__(self):
        self.fc = nn.Linear(2, 2)
"""


def make_installed(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A site directory holding fakelib, and an environment that puts it on sys.path."""
    import os

    site = tmp_path / "site"
    for rel, text in FAKELIB.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "user"\nversion = "0"\n')
    (project / "net.py").write_text(USER_CODE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return project, env


def run_cli(project: Path, env: dict[str, str], *args: str) -> list[tuple[str, int]]:
    proc = subprocess.run(
        [sys.executable, "-m", "torchlint.cli", "check", "--format", "json", "--quiet", *args, "net.py"],
        cwd=project, capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return [(f["code"], f["line"]) for f in json.loads(proc.stdout or "[]")]


def test_installed_package_base_is_read_from_its_source(tmp_path: Path) -> None:
    """fakelib.Backbone derives from nn.Module through a re-export and a star import (the
    dummy placeholder of the same name is skipped); fakelib.Settings does not. The CLI and
    the flake8 plugin give the same answer."""
    project, env = make_installed(tmp_path)
    assert run_cli(project, env, "--no-cache") == [("TL101", 6)]
    proc = subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "TL", "net.py"],
        cwd=project, capture_output=True, text=True, timeout=120, env=env,
    )
    assert [line.split(":")[1] + " " + line.split()[1] for line in proc.stdout.splitlines()] == ["6 TL101"], (
        proc.stdout + proc.stderr
    )


def test_cached_findings_follow_an_edited_installed_package(tmp_path: Path) -> None:
    project, env = make_installed(tmp_path)
    assert run_cli(project, env) == [("TL101", 6)]
    core = tmp_path / "site" / "fakelib" / "nets" / "core.py"
    core.write_text(core.read_text().replace("class Backbone(_Mixin, nn.Module):", "class Backbone(_Mixin):"))
    assert run_cli(project, env) == []


def test_packages_that_are_not_installed_use_the_table_of_well_known_bases(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("pytorch_lightning") is not None:
        pytest.skip("pytorch_lightning is installed: its source answers, not the table")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "user"\nversion = "0"\n')
    (tmp_path / "lit.py").write_text(textwrap.dedent("""\
        import torch.nn as nn
        import pytorch_lightning as pl


        class LitModel(pl.LightningModule):
            def __init__(self):
                self.net = nn.Linear(2, 2)


        class LitData(pl.LightningDataModule):
            def __init__(self):
                self.net = nn.Linear(2, 2)
        """))
    _, findings = check(tmp_path, "--no-cache", "lit.py")
    assert [(f["code"], f["line"]) for f in findings] == [("TL101", 6)]


def test_the_index_answers_for_installed_packages_without_importing_them(tmp_path: Path) -> None:
    from torchlint.packages import InstalledPackages
    from torchlint.project import ProjectIndex

    _, _ = make_installed(tmp_path)
    index = ProjectIndex()
    index._packages = InstalledPackages((str(tmp_path / "site"),))
    assert index.is_module("fakelib.Backbone") is True
    assert index.is_module("fakelib.nets.core.Backbone") is True
    assert index.is_module("fakelib.Settings") is False
    assert index.is_module("fakelib.Missing") is None
    assert index.defines("fakelib.Backbone", "forward") is True
    assert index.fingerprint("fakelib.nets.core").startswith("pkg:")
    assert "fakelib" not in sys.modules
    # not installed: the table; a project package of the same name is never looked up outside
    assert index.is_module("transformers.models.bert.modeling_bert.BertPreTrainedModel") in (True,)
    assert ProjectIndex().is_module("lightning.pytorch.LightningModule") in (True,)


def test_plain_list_of_a_module_class_from_another_file(tmp_path: Path) -> None:
    """TL104 knows the items are Modules from the project index, also through a local name."""
    make_project(tmp_path, BASE_MODULE)
    (tmp_path / "pkg" / "stack.py").write_text(textwrap.dedent("""\
        import torch.nn as nn

        from pkg.base import BaseBlock


        class Stack(nn.Module):
            def __init__(self, channels, depth):
                super().__init__()
                self.blocks = []
                for _ in range(depth):
                    block = BaseBlock(channels)
                    self.blocks.append(block)

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x
        """))
    _, findings = check(tmp_path, "--no-cache", "--select", "TL104", "pkg/stack.py")
    assert [(f["code"], f["line"]) for f in findings] == [("TL104", 9)]


def test_flake8_cache_follows_an_edited_installed_package(tmp_path: Path) -> None:
    """The flake8 door's content cache keeps the fingerprints of the installed modules its
    answers rested on: editing the package invalidates the cached finding."""
    project, env = make_installed(tmp_path)
    env = {key: value for key, value in env.items() if key != "TORCHLINT_NO_CACHE"}

    def flake8() -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "flake8", "--select", "TL", "net.py"],
                              cwd=project, capture_output=True, text=True, timeout=120, env=env)
        return [line.split(":")[1] + " " + line.split()[1] for line in proc.stdout.splitlines()]

    assert flake8() == ["6 TL101"]
    assert flake8() == ["6 TL101"]  # from the cache
    assert list(project.glob(".torchlint_cache/v1/*-src/*.json"))
    core = tmp_path / "site" / "fakelib" / "nets" / "core.py"
    core.write_text(core.read_text().replace("class Backbone(_Mixin, nn.Module):", "class Backbone(_Mixin):"))
    assert flake8() == []
