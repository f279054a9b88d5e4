"""Tier 5: the pre-commit hooks of `.pre-commit-hooks.yaml`, run by the real `pre-commit`.

Both `pre-commit try-repo` and a `.pre-commit-config.yaml` install a hook from a commit, so
the hooks come from a clone of this repository's HEAD. pre-commit builds an environment with
torchlint and its dependencies from PyPI. `try-repo` builds it afresh in a temporary store on
every call (about 10 s with pip's cache warm, a minute the first time), so it is used once,
for the failing run; the other tests use a config file and a store kept in a cache
folder, which later runs reuse. Without network the install fails and the tests are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torchlint-tests"
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]
NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|"
    r"No matching distribution found|Could not find a version that satisfies|ConnectTimeout|ReadTimeout|"
    r"Max retries exceeded|ProxyError|SSLError", re.IGNORECASE)

BAD = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.Linear(2, 2)]
"""
CLEAN = BAD.replace("[nn.Linear(2, 2), nn.Linear(2, 2)]", "nn.ModuleList([nn.Linear(2, 2)])")
SAFE_FIX = """\
import torch.nn as nn

seq = nn.Sequential()
seq.add_moudle("fc", nn.Linear(2, 2))
"""


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


@pytest.fixture(scope="module")
def hooks_repo() -> Path:
    """A clone of this repository at HEAD, in a folder named by the commit (so reruns reuse
    pre-commit's environment for it)."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    head = git("rev-parse", "HEAD", cwd=ROOT).strip()
    clone = CACHE / f"hooks-{head[:12]}"
    if not (clone / ".pre-commit-hooks.yaml").is_file():
        for stale in CACHE.glob("hooks-*"):  # clones of older commits, and their environments
            shutil.rmtree(stale, ignore_errors=True)
        if (CACHE / "pre-commit").is_dir():
            pre_commit(CACHE, "gc")
        shutil.rmtree(clone, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        git("clone", "--quiet", str(ROOT), str(clone), cwd=CACHE)
        git("checkout", "--quiet", head, cwd=clone)
    return clone


@pytest.fixture
def project(tmp_path: Path) -> Path:
    git("init", "--quiet", cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    return tmp_path


def pre_commit(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(CACHE / "pre-commit"), "PRE_COMMIT_COLOR": "never"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([*PRE_COMMIT, *args], cwd=project, env=env, check=False, capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, 1) or "hook id:" not in done.stdout and "Passed" not in done.stdout:
        log = CACHE / "pre-commit" / "pre-commit.log"
        details = done.stdout + done.stderr + (log.read_text("utf-8", "replace") if log.is_file() else "")
        if NETWORK_TROUBLE.search(details):
            pytest.skip("pre-commit could not install the hook's environment from PyPI (no network?)")
    return done


def try_repo(hooks_repo: Path, project: Path, hook: str, *args: str) -> subprocess.CompletedProcess[str]:
    return pre_commit(project, "try-repo", str(hooks_repo), hook, *args)


def run_hook(hooks_repo: Path, project: Path, hook: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pre-commit run` with a config naming the clone at its commit (the environment is cached)."""
    head = git("rev-parse", "HEAD", cwd=hooks_repo).strip()
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n-   repo: {hooks_repo}\n    rev: {head}\n    hooks:\n    -   id: torchlint\n"
        "    -   id: torchlint-fix\n")
    git("add", ".pre-commit-config.yaml", cwd=project)
    return pre_commit(project, "run", hook, *args)


def test_try_repo_fails_with_the_finding(hooks_repo: Path, project: Path) -> None:
    (project / "model.py").write_text(BAD)
    git("add", ".", cwd=project)
    failed = try_repo(hooks_repo, project, "torchlint", "--all-files")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "model.py:7:9: TL104 self.layers keeps Modules in a plain Python list" in failed.stdout


def test_hook_passes_once_the_file_is_clean(hooks_repo: Path, project: Path) -> None:
    """The same hook from a config file: its environment is cached, unlike try-repo's."""
    (project / "model.py").write_text(BAD)
    git("add", ".", cwd=project)
    assert run_hook(hooks_repo, project, "torchlint", "--all-files").returncode == 1
    (project / "model.py").write_text(CLEAN)
    git("add", ".", cwd=project)
    passed = run_hook(hooks_repo, project, "torchlint", "--all-files")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"^torchlint\.+Passed$", passed.stdout, re.MULTILINE)


def test_staged_files_see_the_whole_project(hooks_repo: Path, project: Path) -> None:
    """Only child.py is staged, but its base class lives in base.py: the finding is the same
    as a full run's."""
    (project / "base.py").write_text("import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    git("add", ".", cwd=project)
    git("commit", "--quiet", "-m", "base", cwd=project)
    (project / "child.py").write_text(
        "import torch.nn as nn\nfrom base import Base\n\n\nclass Child(Base):\n"
        "    def __init__(self):\n        self.fc = nn.Linear(2, 2)\n")
    git("add", "child.py", cwd=project)
    done = run_hook(hooks_repo, project, "torchlint")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "child.py:6:5: TL101" in done.stdout


def test_fix_hook_applies_safe_fixes_and_exclude_is_forced(hooks_repo: Path, project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n\n[tool.torchlint]\nexclude = [\"generated\"]\n")
    (project / "model.py").write_text(SAFE_FIX)
    (project / "generated").mkdir()
    (project / "generated" / "bad.py").write_text(BAD)  # named by pre-commit, excluded by the config
    git("add", ".", cwd=project)
    fixed = run_hook(hooks_repo, project, "torchlint-fix", "--all-files")
    assert fixed.returncode == 1, fixed.stdout + fixed.stderr  # pre-commit fails a hook that changed files
    assert "files were modified by this hook" in fixed.stdout
    assert (project / "model.py").read_text() == SAFE_FIX.replace("add_moudle", "add_module")  # TL109, safe
    assert "generated" not in fixed.stdout
    git("add", ".", cwd=project)
    again = run_hook(hooks_repo, project, "torchlint-fix", "--all-files")
    assert again.returncode == 0, again.stdout + again.stderr
