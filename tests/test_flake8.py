"""Tier 5: the flake8 door, through a real `flake8` in a subprocess, as editors run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchlint import __version__

BAD = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.Linear(2, 2)]  # é 😀
        self.säule = [nn.Linear(2, 2)]

    def forward(self, x):
        return F.dropout(x, 0.5)
"""


def flake8(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flake8", "--isolated", *args], cwd=cwd, input=stdin,
                          check=False, capture_output=True, text=True, timeout=120)


def torchlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "torchlint.cli", "check", "--no-cache", *args], cwd=cwd,
                          check=False, capture_output=True, text=True, timeout=120)


def codes(output: str) -> list[str]:
    return [line.split(": ", 1)[1].split()[0] for line in output.splitlines() if ": " in line]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "model.py").write_text(BAD, encoding="utf-8")
    return tmp_path


def test_flake8_prints_the_same_positions_as_torchlint(project: Path) -> None:
    ours = torchlint("model.py", cwd=project)
    theirs = flake8("--select", "TL", "model.py", cwd=project)
    assert ours.returncode == theirs.returncode == 1, theirs.stderr
    assert len(codes(ours.stdout)) >= 3
    assert theirs.stdout == ours.stdout  # line and 1-based code-point column, message and all


def test_stdin_with_a_display_name_as_editors_call_it(project: Path) -> None:
    ours = torchlint("model.py", cwd=project)
    done = flake8("--select", "TL", "--stdin-display-name", "src/model.py", "-", cwd=project, stdin=BAD)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ours.stdout.replace("model.py:", "src/model.py:")


def test_select_and_extend_select(project: Path) -> None:
    only = flake8("--select", "TL104", "model.py", cwd=project)
    assert codes(only.stdout) == ["TL104", "TL104"]
    extended = flake8("--select", "E501", "--extend-select", "TL303", "model.py", cwd=project)
    assert codes(extended.stdout) == ["TL303"]


def test_ignore_and_per_file_ignores(project: Path) -> None:
    ignored = flake8("--select", "TL", "--ignore", "TL104", "model.py", cwd=project)
    assert "TL104" not in codes(ignored.stdout) and "TL303" in codes(ignored.stdout)
    per_file = flake8("--select", "TL", "--per-file-ignores", "model.py:TL104,TL303", "model.py", cwd=project)
    assert per_file.returncode == 0 and per_file.stdout == ""
    other_file = flake8("--select", "TL", "--per-file-ignores", "other.py:TL104", "model.py", cwd=project)
    assert "TL104" in codes(other_file.stdout)


def test_by_default_flake8_runs_the_plugin_beside_its_own_checks(project: Path) -> None:
    (project / "model.py").write_text("import os\n" + BAD, encoding="utf-8")
    done = flake8("model.py", cwd=project)
    found = set(codes(done.stdout))
    assert {"TL104", "TL303", "F401"} <= found


def test_noqa_is_flake8s_and_disable_noqa_turns_it_off(project: Path) -> None:
    (project / "model.py").write_text(BAD.replace("# é 😀", "# noqa: TL104"), encoding="utf-8")
    quiet = flake8("--select", "TL", "model.py", cwd=project)
    assert codes(quiet.stdout) == ["TL104", "TL303"]  # only the other list is left
    loud = flake8("--select", "TL", "--disable-noqa", "model.py", cwd=project)
    assert codes(loud.stdout) == ["TL104", "TL104", "TL303"]


def test_version_lists_torchlint(project: Path) -> None:
    done = flake8("--version", cwd=project)
    assert done.returncode == 0
    assert f"torchlint: {__version__}" in done.stdout


def test_syntax_errors_are_flake8s_e999(project: Path) -> None:
    (project / "broken.py").write_text("class M(nn.Module:\n    pass\n")
    done = flake8("--select", "TL,E999", "broken.py", cwd=project)
    assert codes(done.stdout) == ["E999"]
    assert "Traceback" not in done.stderr


def test_pyproject_selection_applies_under_flake8(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["TL303"]\n')
    done = flake8("--select", "TL", "model.py", cwd=project)
    assert codes(done.stdout) == ["TL104", "TL104"]


def test_plugin_answers_an_unchanged_file_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editors re-lint on every save: an unchanged buffer costs a hash and a read; a changed
    one is checked again."""
    from torchlint import flake8_plugin

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    path = str(tmp_path / "model.py")
    lines = BAD.splitlines(keepends=True)
    monkeypatch.delenv("TORCHLINT_NO_CACHE", raising=False)
    first = list(flake8_plugin.TorchlintChecker(None, lines, path).run())
    assert len(first) >= 3
    assert list((tmp_path / ".torchlint_cache").glob("v1/*-src/*.json"))

    def no_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged file was checked again")

    monkeypatch.setattr(flake8_plugin, "check_source", no_check)
    assert list(flake8_plugin.TorchlintChecker(None, lines, path).run()) == first
    monkeypatch.undo()
    edited = [*lines, "\n\nclass Other(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)\n"]
    again = list(flake8_plugin.TorchlintChecker(None, edited, path).run())
    assert len(again) == len(first) + 1
