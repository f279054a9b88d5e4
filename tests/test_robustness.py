"""Tier 6: whatever a user feeds the CLI, the answer is an exit code and one clear line per
problem, never a traceback, a hang or a dead process. Each input runs the real CLI in a
subprocess."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from torchlint import precheck as shapes
from torchlint.engine import Options, check_source

MODULE = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.Linear(2, 2)]
"""


def cli(*args: str, cwd: Path, timeout: float = 60, user: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torchlint.cli", "check", "--no-cache", *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, cwd=cwd, check=False, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TORCHLINT_DEBUG": ""})


def findings(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    return done.stdout.splitlines()


def only_tl000(done: subprocess.CompletedProcess[str], name: str, words: str, line: int = 1) -> None:
    """Exit 1 and exactly one TL000 line naming the file and saying why."""
    lines = findings(done)
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{name}:{line}:") and " TL000 " in lines[0], lines
    assert words in lines[0], lines


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    return tmp_path


# ---- inputs that must become TL000 ------------------------------------------------------------

@pytest.mark.parametrize("depth, opener, closer", [(1200, "[", "]"), (1000, "(", ")"), (1200, "{", "}")])
def test_deep_nesting_is_tl000_not_a_parser_crash(tree: Path, depth: int, opener: str, closer: str) -> None:
    (tree / "deep.py").write_text("x = " + opener * depth + closer * depth + "\n")
    only_tl000(cli("deep.py", cwd=tree), "deep.py", "nested too deeply")


def test_long_operator_chain(tree: Path) -> None:
    (tree / "chain.py").write_text("x = " + " + ".join(["1"] * 20_000) + "\n")
    done = cli("chain.py", cwd=tree)
    assert done.returncode in (0, 1) and "error" not in done.stderr.lower(), done.stderr
    findings(done)


def test_invalid_utf8(tree: Path) -> None:
    (tree / "bad.py").write_bytes(b'x = "\xff\xfe"\n')
    only_tl000(cli("bad.py", cwd=tree), "bad.py", "cannot decode")


def test_binary_file_named_py(tree: Path) -> None:
    (tree / "blob.py").write_bytes(bytes(range(256)) * 16)
    only_tl000(cli("blob.py", cwd=tree), "blob.py", "cannot decode")
    (tree / "blob.py").write_bytes(b"x = 1\n\x00\x00\x00\n")  # valid UTF-8, but NUL bytes
    only_tl000(cli("blob.py", cwd=tree), "blob.py", "NUL")


def test_syntax_error(tree: Path) -> None:
    (tree / "broken.py").write_text("class M(nn.Module:\n    pass\n")
    only_tl000(cli("broken.py", cwd=tree), "broken.py", "cannot parse", line=1)  # where CPython points


def test_file_over_max_file_size_is_tl000_and_fast(tree: Path) -> None:
    (tree / "huge.py").write_text("x = 1  # some padding\n" * 100_000)  # 100,000 lines, 2.2 MB
    started = time.monotonic()
    done = cli("huge.py", cwd=tree)
    assert time.monotonic() - started < 10
    only_tl000(done, "huge.py", "max-file-size")
    smaller = cli("--max-file-size", "1000", "huge.py", cwd=tree)
    only_tl000(smaller, "huge.py", "1,000 bytes")


def test_symlink_loop_inside_a_tree(tree: Path) -> None:
    (tree / "a.py").symlink_to("b.py")
    (tree / "b.py").symlink_to("a.py")
    done = cli(".", cwd=tree)
    lines = findings(done)
    assert done.returncode == 1
    assert [line.split(":")[0] for line in lines] == ["a.py", "b.py"]
    assert all("TL000 cannot read: Too many levels of symbolic links" in line for line in lines)


def test_symlink_loop_named_on_the_command_line(tree: Path) -> None:
    (tree / "a.py").symlink_to("b.py")
    (tree / "b.py").symlink_to("a.py")
    only_tl000(cli("a.py", cwd=tree), "a.py", "symbolic links")


def test_dangling_symlink(tree: Path) -> None:
    (tree / "gone.py").symlink_to("nowhere.py")
    only_tl000(cli("gone.py", cwd=tree), "gone.py", "cannot read")


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    # pytest's tmp_path is private to its owner: use a folder another user can enter
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"torchlint-unreadable-{os.getpid()}"
    folder.mkdir()
    try:
        folder.chmod(0o755)
        (folder / "secret.py").write_text(MODULE)
        (folder / "secret.py").chmod(0o000)
        (folder / "ok.py").write_text("x = 1\n")
        # root reads anything: then run the CLI as `nobody`, if `nobody` can run it at all
        # (a checkout in a private folder cannot be imported by another user)
        user = 65534 if os.geteuid() == 0 else None
        if user is not None and "TL000" not in cli("ok.py", "secret.py", cwd=folder, user=user).stdout:
            pytest.skip("the user `nobody` cannot import torchlint from this checkout")
        done = cli("secret.py", "ok.py", cwd=folder, user=user)
        only_tl000(done, "secret.py", "cannot read: Permission denied")
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_file_that_opens_but_cannot_be_read(tree: Path) -> None:
    (tree / "mem.py").symlink_to("/proc/self/mem")  # reading offset 0 fails with EIO, even as root
    only_tl000(cli("mem.py", cwd=tree), "mem.py", "cannot read")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_named_py_does_not_hang(tree: Path) -> None:
    os.mkfifo(tree / "pipe.py")
    (tree / "ok.py").write_text("x = 1\n")
    done = cli(".", cwd=tree, timeout=4)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr


# ---- inputs that must be checked normally -----------------------------------------------------

def test_empty_file(tree: Path) -> None:
    (tree / "empty.py").write_text("")
    done = cli("empty.py", cwd=tree)
    assert done.returncode == 0 and findings(done) == []


def test_directory_named_like_a_python_file(tree: Path) -> None:
    (tree / "x.py").mkdir()
    (tree / "x.py" / "inner.py").write_text(MODULE)
    done = cli("x.py", cwd=tree)
    assert done.returncode == 1 and [line.split(":")[:3] for line in findings(done)] == [["x.py/inner.py", "7", "9"]]
    (tree / "x.py" / "inner.py").unlink()
    done = cli(".", cwd=tree)
    assert done.returncode == 0 and findings(done) == []


def test_nonexistent_path_is_a_usage_error(tree: Path) -> None:
    done = cli("nope.py", cwd=tree)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "torchlint: error: nope.py: no such file or directory"


@pytest.mark.parametrize("name, data, position", [
    ("latin1.py", ("# -*- coding: latin-1 -*-\n" + MODULE.replace("super().__init__()", "self.s = 'café'\n"
                   "        super().__init__()")).encode("latin-1"), "9:9"),
    ("bom.py", b"\xef\xbb\xbf" + MODULE.encode(), "7:9"),
    ("crlf.py", MODULE.replace("\n", "\r\n").encode(), "7:9"),
    ("tabs.py", MODULE.replace("        ", "\t\t").replace("    ", "\t").encode(), "7:3"),
])
def test_encodings_and_whitespace_are_checked_and_fixed_in_place(tree: Path, name: str, data: bytes,
                                                                 position: str) -> None:
    path = tree / name
    path.write_bytes(data)
    done = cli(name, cwd=tree)
    assert done.returncode == 1
    assert [line.split(" ")[0:2] for line in findings(done)] == [[f"{name}:{position}:", "TL104"]]
    fixed = cli("--fix", "--unsafe-fixes", name, cwd=tree)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    after = path.read_bytes()
    expected = data.replace(b"[nn.Linear(2, 2), nn.Linear(2, 2)]", b"nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])")
    assert after == expected  # encoding, BOM, CRLF and tabs kept; nothing else touched


# ---- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    ("[tool.torchlint\nselect = [", "invalid TOML"),
    ('[tool.torchlint]\nselect = "TL1"\n', "select must be a list of strings"),
    ('[tool.torchlint]\nmax-file-size = "big"\n', "max-file-size must be a positive integer"),
    ('[tool.torchlint]\nmax-file-size = true\n', "max-file-size must be a positive integer"),
    ('[tool.torchlint]\nselct = ["TL1"]\n', "unknown key 'selct'"),
    ('[tool.torchlint]\nignore = ["TL999"]\n', "unknown rule code 'TL999'"),
    ('[tool.torchlint]\nper-file-ignores = {"a.py" = "TL104"}\n', "per-file-ignores"),
    ('[tool.torchlint.runtime]\ntimeout = -1\n', "timeout must be a positive number"),
    ("[tool]\ntorchlint = 3\n", "must be a table"),
])
def test_bad_pyproject_is_one_line_exit_2(tmp_path: Path, content: str, words: str) -> None:
    (tmp_path / "pyproject.toml").write_text(content)
    (tmp_path / "ok.py").write_text("x = 1\n")
    done = cli("ok.py", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("torchlint: error: ") and "pyproject.toml" in line and words in line


def test_undecodable_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"\xff\xfe[tool]")
    (tmp_path / "ok.py").write_text("x = 1\n")
    done = cli("ok.py", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "pyproject.toml" in line and "cannot read" in line


# ---- concurrency ------------------------------------------------------------------------------

def test_two_concurrent_runs_on_one_tree_agree(tree: Path) -> None:
    package = tree / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    for n in range(12):
        (package / f"m{n}.py").write_text(
            "from pkg.base import Base\nimport torch.nn as nn\n\n\nclass M(Base):\n    def __init__(self):\n"
            f"        self.fc{n} = [nn.Linear({n + 1}, 2)]\n")
    expected = subprocess.run([sys.executable, "-m", "torchlint.cli", "check", "--no-cache", "."], cwd=tree,
                              check=False, capture_output=True, text=True, timeout=60)
    assert expected.stdout.count("TL104") == 12 and expected.stdout.count("TL101") == 12

    def cached_run(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "torchlint.cli", "check", "-j", "2", "."], cwd=tree,
                              check=False, capture_output=True, text=True, timeout=60)

    for _round in ("cold cache", "warm cache"):
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(cached_run, range(2)))
        for done in runs:
            assert done.returncode == 1 and "error" not in done.stderr, done.stderr
            assert done.stdout == expected.stdout


# ---- shapes that stall libcst's native parser: refused fast, never refused too early ----------

SLOW_SHAPES = {
    # name: (source for n, the limit it must respect)
    "operator chain": (lambda n: "x = " + " + ".join(["a"] * n) + "\n", shapes.OPERATOR_CHAIN),
    "operator chain over lines": (lambda n: "x = (\n    " + " +\n    ".join(["a"] * n) + "\n)\n",
                                  shapes.OPERATOR_CHAIN),
    "attribute chain": (lambda n: "x = a" + ".b" * n + "\n", shapes.TRAILER_CHAIN),
    "method chain over lines": (lambda n: "x = (\n    a" + "\n    .b" * n + "\n)\n", shapes.TRAILER_CHAIN),
    "subscript chain": (lambda n: "x = a" + "[0]" * n + "\n", shapes.TRAILER_CHAIN),
    "and chain": (lambda n: "x = " + " and ".join(["a"] * n) + "\n", shapes.BOOLEAN_CHAIN),
    "comparison chain": (lambda n: "x = " + " < ".join(["a"] * n) + "\n", shapes.COMPARISON_CHAIN),
    "list literal": (lambda n: "x = [" + ", ".join(["1"] * n) + "]\n", shapes.LITERAL_SIZE),
    "call arguments": (lambda n: "f(" + ", ".join(["a"] * n) + ")\n", shapes.LITERAL_SIZE),
}
ALL = Options(enabled=frozenset({"TL000", "TL101"}))


@pytest.mark.parametrize("name", sorted(SLOW_SHAPES))
def test_slow_shape_just_over_the_limit_is_tl000(name: str) -> None:
    make, limit = SLOW_SHAPES[name]
    result = check_source(make(limit.threshold), "gen.py", ALL)
    assert [d.code for d in result.diagnostics] == ["TL000"], result.diagnostics
    message = result.diagnostics[0].message
    assert "too slow to parse" in message and "exclude" in message, message


@pytest.mark.parametrize("name", sorted(SLOW_SHAPES))
def test_slow_shape_just_under_the_limit_is_checked(name: str) -> None:
    make, limit = SLOW_SHAPES[name]
    source = ("import torch.nn as nn\n\nclass M(nn.Module):\n    def __init__(self):\n"
              "        self.fc = nn.Linear(2, 2)\n" + make(limit.threshold - 1))
    result = check_source(source, "gen.py", ALL)
    assert [(d.code, d.line) for d in result.diagnostics] == [("TL101", 4)], result.diagnostics


def test_ordinary_long_lines_and_docstrings_are_not_measured() -> None:
    """The screen sends only files that could hold a long chain to `ast` (cheap for the rest)."""
    prose = '"""' + "\n".join(f"* item {i}. See https://example.org/{i}." for i in range(500)) + '"""\n'
    table = "URLS = {\n" + "".join(f"    'k{i}': 'https://example.org/a/b/c.d',\n" for i in range(300)) + "}\n"
    for source in (prose, table):
        data = source.encode()
        assert not shapes._worth_measuring(source, data, data.translate(None, shapes._NON_BRACKETS), 1)
    # a long line full of dots is measured, and a string is not a chain
    assert shapes.measure(ast.parse("x = '" + "a.b " * 2000 + "'\n")) is None


def test_a_file_that_stalls_the_parser_meets_the_deadline(tree: Path) -> None:
    """A shape the precheck does not know (subscripts on their own lines) hits the per-file
    deadline: TL000 for that file, and the other files are still checked."""
    (tree / "stall.py").write_text("x = (a" + "\n    [0]" * 2500 + ")\n")
    (tree / "model.py").write_text(MODULE)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "torchlint.cli", "check", "--no-cache", "-j", "2", "stall.py", "model.py"],
        cwd=tree, check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TORCHLINT_FILE_DEADLINE": "1"},
    )
    elapsed = time.monotonic() - start
    lines = findings(done)
    assert done.returncode == 1, done.stderr
    assert any(line.startswith("stall.py:1:1: TL000 took longer than 1 s") for line in lines), lines
    assert any(line.startswith("model.py:") and " TL104 " in line for line in lines), lines
    assert elapsed < 60  # generous: the parse alone would take minutes


def test_a_rule_that_raises_is_reported_and_the_other_rules_still_run(monkeypatch) -> None:
    """A bug in one rule costs that rule, for that file: an internal-error line, and every
    other rule's hooks (on the same node too) still run."""
    from torchlint import engine
    from torchlint.registry import all_rules

    broken = next(r for r in all_rules() if r.code == "TL202")
    calls = []

    def boom(self, node):
        calls.append(node)
        raise ValueError("boom")

    monkeypatch.setattr(broken, "visit_Call", boom)
    source = ("import torch.nn as nn\n\nclass M(nn.Module):\n    def forward(self, x):\n"
              "        y = self.fc.forward(x)\n        return self.fc.forward(y)\n")
    enabled = frozenset(r.code for r in all_rules() if r.default_enabled)
    result = engine.check_source(source, "m.py", engine.Options(enabled=enabled))
    assert result.errors == ["m.py: internal error in rule TL202: ValueError: boom"]
    assert len(calls) == 1  # not called again after it failed
    assert [(d.code, d.line) for d in result.diagnostics] == [("TL201", 5), ("TL201", 6)]
