"""Tier 5: the CLI door: exit codes, formats, selection, suppression, config, fixes, cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BAD = textwrap.dedent(
    """\
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 2) for _ in range(3)]
            self.head = nn.Conv(1, 2, 3)

        def forward(self, x):
            return x
    """
)
CLEAN = "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n"


def torchlint(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (as users and CI do)."""
    return subprocess.run(
        [sys.executable, "-m", "torchlint.cli", *args], cwd=cwd, capture_output=True, text=True,
        input=stdin, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_text_output_and_exit_code(project: Path) -> None:
    run = torchlint("check", "--no-cache", cwd=project)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines == [
        "bad.py:7:9: TL104 self.layers keeps Modules in a plain Python list; they are invisible to "
        "parameters(), .to(), state_dict(); use nn.ModuleList",
        "bad.py:8:24: TL109 `nn.Conv` does not exist in torch 2.13.0 (torch.nn); did you mean `nn.Conv2d`?",
    ]
    assert "Found 2 problems in 1 file" in run.stderr
    assert "Traceback" not in run.stderr


def test_clean_file_exits_zero(project: Path) -> None:
    run = torchlint("check", "--no-cache", "clean.py", cwd=project)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert "All checks passed" in run.stderr


def test_exit_zero(project: Path) -> None:
    assert torchlint("check", "--no-cache", "--exit-zero", cwd=project).returncode == 0


def test_json_output(project: Path) -> None:
    run = torchlint("check", "--no-cache", "--format", "json", "bad.py", cwd=project)
    data = json.loads(run.stdout)
    first = data[0]
    assert {"path", "line", "col", "end_line", "end_col", "code", "name", "message", "fixable", "fix"} <= set(first)
    assert (first["code"], first["line"], first["col"], first["end_line"]) == ("TL104", 7, 9, 7)
    assert first["fixable"] is True and first["fix"]["applicability"] == "unsafe"
    assert data[1]["fix"] is None  # nn.Conv has three close matches: no fix


def test_select_and_ignore(project: Path) -> None:
    only = torchlint("check", "--no-cache", "--select", "TL109", cwd=project)
    assert [line.split()[1] for line in only.stdout.splitlines()] == ["TL109"]
    ignored = torchlint("check", "--no-cache", "--select", "TL1", "--ignore", "TL104", cwd=project)
    assert [line.split()[1] for line in ignored.stdout.splitlines()] == ["TL109"]
    bad = torchlint("check", "--no-cache", "--select", "TL999", cwd=project)
    assert bad.returncode == 2 and "unknown rule code" in bad.stderr


def test_noqa_and_skip_file(project: Path) -> None:
    text = BAD.replace("for _ in range(3)]", "for _ in range(3)]  # noqa: TL104")
    (project / "bad.py").write_text(text.replace("nn.Conv(1, 2, 3)", "nn.Conv(1, 2, 3)  # noqa"))
    assert torchlint("check", "--no-cache", cwd=project).returncode == 0
    (project / "bad.py").write_text("# torchlint: skip-file\n" + BAD)
    assert torchlint("check", "--no-cache", cwd=project).returncode == 0
    (project / "bad.py").write_text(BAD.replace("for _ in range(3)]", "for _ in range(3)]  # noqa: TL109"))
    assert [line.split()[1] for line in torchlint("check", "--no-cache", cwd=project).stdout.splitlines()] == [
        "TL104", "TL109"]


def test_config_select_per_file_ignores_and_exclude(project: Path) -> None:
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.torchlint]
        ignore = ["TL109"]
        per-file-ignores = {"legacy/*.py" = ["TL104"]}
        exclude = ["generated"]
    """))
    (project / "legacy").mkdir()
    (project / "legacy" / "old.py").write_text(BAD)
    (project / "generated").mkdir()
    (project / "generated" / "gen.py").write_text(BAD)
    run = torchlint("check", "--no-cache", cwd=project)
    assert [(line.split(":")[0], line.split()[1]) for line in run.stdout.splitlines()] == [("bad.py", "TL104")]
    # a CLI --select names codes more specifically than the file's ignore
    run = torchlint("check", "--no-cache", "--select", "TL109", "bad.py", cwd=project)
    assert run.stdout == ""  # the file's ignore still holds for the same code


@pytest.mark.parametrize(
    "content, needle",
    [
        ("[tool.torchlint]\nselect = 'TL1'\n", "select must be a list of strings"),
        ("[tool.torchlint]\nbogus = 1\n", "unknown key 'bogus'"),
        ("[tool.torchlint]\nignore = ['TL999']\n", "unknown rule code 'TL999'"),
        ("[tool.torchlint\n", "invalid TOML"),
        ("[tool.torchlint]\nmax-file-size = -3\n", "max-file-size must be a positive integer"),
    ],
)
def test_bad_config_is_exit_2_with_one_line(project: Path, content: str, needle: str) -> None:
    (project / "pyproject.toml").write_text(content)
    run = torchlint("check", "--no-cache", cwd=project)
    assert run.returncode == 2
    assert needle in run.stderr and "pyproject.toml" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_path_is_exit_2(project: Path) -> None:
    run = torchlint("check", "nope.py", cwd=project)
    assert run.returncode == 2 and "nope.py: no such file or directory" in run.stderr


def test_syntax_error_is_tl000_and_the_run_goes_on(project: Path) -> None:
    (project / "broken.py").write_text("def f(:\n")
    run = torchlint("check", "--no-cache", cwd=project)
    assert run.returncode == 1
    assert any(line.startswith("broken.py:1:") and "TL000 cannot parse" in line for line in run.stdout.splitlines())
    assert any("TL104" in line for line in run.stdout.splitlines())


def test_fix_safe_unsafe_and_diff(project: Path) -> None:
    (project / "names.py").write_text("import torch.nn.functional as F\ny = F.rleu(1)\n")
    diff = torchlint("check", "--no-cache", "--diff", "names.py", cwd=project)
    assert diff.returncode == 1 and "-y = F.rleu(1)" in diff.stdout and "+y = F.relu(1)" in diff.stdout
    assert "rleu" in (project / "names.py").read_text()  # --diff writes nothing
    fixed = torchlint("check", "--no-cache", "--fix", "names.py", cwd=project)
    assert fixed.returncode == 0 and (project / "names.py").read_text() == "import torch.nn.functional as F\ny = F.relu(1)\n"
    # unsafe fixes need the opt-in
    safe_only = torchlint("check", "--no-cache", "--fix", "bad.py", cwd=project)
    assert safe_only.returncode == 1 and (project / "bad.py").read_text() == BAD
    unsafe = torchlint("check", "--no-cache", "--fix", "--unsafe-fixes", "--select", "TL104", "bad.py", cwd=project)
    assert unsafe.returncode == 0
    assert "self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])" in (project / "bad.py").read_text()
    again = torchlint("check", "--no-cache", "--fix", "--unsafe-fixes", "--select", "TL104", "bad.py", cwd=project)
    assert again.returncode == 0 and "Fixed" not in again.stderr


def test_rules_and_rule_pages(project: Path) -> None:
    listing = torchlint("rules", cwd=project)
    assert listing.returncode == 0 and "TL104  module-in-plain-container" in listing.stdout
    page = torchlint("rule", "TL104", cwd=project)
    assert page.returncode == 0 and page.stdout.startswith("# TL104")
    assert torchlint("rule", "TL999", cwd=project).returncode == 2


def test_jobs_one_and_two_agree(project: Path) -> None:
    for i in range(6):
        (project / f"m{i}.py").write_text(BAD)
    one = torchlint("check", "--no-cache", "-j", "1", cwd=project)
    two = torchlint("check", "--no-cache", "-j", "2", cwd=project)
    assert one.stdout == two.stdout and one.stdout.count("TL104") == 7


def test_warm_cache_gives_the_same_output(project: Path) -> None:
    cold = torchlint("check", cwd=project)
    assert (project / ".torchlint_cache").is_dir()
    warm = torchlint("check", cwd=project)
    assert cold.stdout == warm.stdout and cold.returncode == warm.returncode == 1


def test_editing_a_base_class_rechecks_its_subclasses(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("class Block:\n    pass\n")
    (pkg / "blocks.py").write_text(
        "from .base import Block\n\n\nclass Conv(Block):\n    def __init__(self):\n        self.k = 3\n"
    )
    first = torchlint("check", "pkg", cwd=tmp_path)
    assert first.returncode == 0, first.stdout
    (pkg / "base.py").write_text("import torch.nn as nn\n\n\nclass Block(nn.Module):\n    pass\n")
    second = torchlint("check", "pkg", cwd=tmp_path)
    assert second.returncode == 1
    assert "pkg/blocks.py:5:5: TL101" in second.stdout


def test_corrupt_cache_is_recovered(project: Path) -> None:
    cold = torchlint("check", cwd=project)
    for entry in (project / ".torchlint_cache").rglob("*.json"):
        entry.write_text("{not json")
    warm = torchlint("check", cwd=project)
    assert warm.stdout == cold.stdout and warm.returncode == 1
    assert "Traceback" not in warm.stderr


def test_output_file(project: Path) -> None:
    run = torchlint("check", "--no-cache", "--output-file", "report.txt", cwd=project)
    assert run.returncode == 1 and run.stdout == ""
    assert "TL104" in (project / "report.txt").read_text()


def test_named_file_is_checked_even_if_excluded_unless_forced(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.torchlint]\nexclude = ['bad.py']\n")
    assert torchlint("check", "--no-cache", cwd=project).returncode == 0
    assert torchlint("check", "--no-cache", "bad.py", cwd=project).returncode == 1
    assert torchlint("check", "--no-cache", "--force-exclude", "bad.py", cwd=project).returncode == 0


def test_gitignored_files_are_skipped(project: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / ".gitignore").write_text("ignored/\n")
    (project / "ignored").mkdir()
    (project / "ignored" / "x.py").write_text(BAD)
    run = torchlint("check", "--no-cache", cwd=project)
    assert "ignored/x.py" not in run.stdout and "bad.py" in run.stdout
