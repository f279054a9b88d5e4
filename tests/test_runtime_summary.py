"""The summary line of a `--runtime` run, and `python -m torchlint`.

Device: CPU/meta (the CLI runs pin the CUDA-hidden path with TORCHLINT_RUNTIME_GPU=0).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchlint.diagnostic import Diagnostic
from torchlint.runtime.summary import summarize

REPO = Path(__file__).resolve().parent.parent


def _d(path: str, line: int, status: str, detail: str, cls: str | None = None) -> Diagnostic:
    return Diagnostic(path, line, 1, line, 2, "TL104", "x", "m", runtime={"status": status, "detail": detail},
                      context={"class": cls} if cls else None)


def test_summary_counts_and_names_the_config_key() -> None:
    diagnostics = [
        _d("a.py", 1, "confirmed", "2 Linear layers"),
        _d("a.py", 2, "not-reproduced", "registered"),
        _d("a.py", 3, "skipped", "needs constructor arguments: dim (tried ...)", "Head"),
        _d("a.py", 4, "skipped", "needs constructor arguments: dim (tried ...)", "Head"),
        _d("a.py", 5, "skipped", "construction failed: no arguments: OSError: no file", "Decoder"),
        _d("a.py", 6, "skipped", "no synthesised input fits (tried (2, 8)): RuntimeError: x", "Mixer"),
        _d("a.py", 7, "skipped", "forward on meta stopped earlier: aten.add mixes ...", "Mixer"),
        _d("a.py", 8, "error", "timed out after 60 s"),
        Diagnostic("a.py", 9, 1, 9, 2, "TL304", "x", "m"),
    ]
    text = summarize(diagnostics)
    assert text.startswith("runtime: 8 findings checked: 1 confirmed, 1 not-reproduced, 5 skipped, 1 error")
    assert "5 skipped: 2 need constructor arguments (add [tool.torchlint.runtime.construct] entries: Head)" in text
    assert "1 need forward inputs (add [tool.torchlint.runtime.inputs] entries: Mixer)" in text
    assert "1 raised while being built," in text
    assert "1 for other reasons" in text  # only the top three reasons are named
    assert "\n" not in text


def test_summary_without_checked_findings() -> None:
    assert summarize([Diagnostic("a.py", 1, 1, 1, 2, "TL304", "x", "m")]).startswith("runtime: no finding")


CODE = '''
import torch.nn as nn


class Head(nn.Module):
    def __init__(self, path):
        super().__init__()
        self.text = open(path).read()
        self.layers = [nn.Linear(2, 2)]


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2)]
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    directory = tmp_path_factory.mktemp("summary")
    (directory / "model.py").write_text(textwrap.dedent(CODE).lstrip("\n"), encoding="utf-8")
    return directory


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TORCHLINT_RUNTIME_GPU": "0", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "torchlint", "check", "--no-cache", "--runtime",
                           "--select", "TL104", *args, "model.py"],
                          capture_output=True, text=True, cwd=project, env=env, timeout=300)


def test_text_output_ends_with_the_summary(project: Path) -> None:
    """Also `python -m torchlint` works like `torchlint`."""
    done = _run(project)
    assert done.returncode == 1, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("runtime: 2 findings checked: 1 confirmed, 0 not-reproduced, 1 skipped, 0 error"), done.stdout
    assert "1 need constructor arguments (add [tool.torchlint.runtime.construct] entries: Head)" in last

