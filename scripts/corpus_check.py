"""Apply every fix (safe and unsafe) to copies of timm and transformers and check the result.

    python scripts/corpus_check.py [--work DIR]

For each package: count the fixable findings per code, run `torchlint check --fix
--unsafe-fixes` on a fresh copy, then check that every file still parses (libcst) and
byte-compiles (CPython), that a second `--fix` changes nothing (`--diff` is empty), and
keep the unified diff in DIR/<package>.diff for reading. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import collections
import json
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from run import PINS, ROOT, fetch  # noqa: E402

import libcst  # noqa: E402


def torchlint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "torchlint.cli", "check", "--no-cache", *args],
                          capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    # outside the repository: its .gitignore would hide the corpus from torchlint
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "torchlint-bench"))
    args = parser.parse_args()
    work = Path(args.work)
    failures = 0
    for name in sorted(PINS):
        source = fetch(work, name)
        copy = work / f"fixed-{name}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy)
        report = json.loads(torchlint("--format", "json", "--exit-zero", str(copy)).stdout or "[]")
        fixable = collections.Counter(d["code"] for d in report if d["fix"])
        diff = torchlint("--diff", "--unsafe-fixes", str(copy)).stdout
        (work / f"{name}.diff").write_text(diff)
        torchlint("--fix", "--unsafe-fixes", str(copy))
        broken = []
        for path in sorted(copy.rglob("*.py")):
            try:
                libcst.parse_module(path.read_bytes())
                py_compile.compile(str(path), doraise=True, cfile=str(work / "tmp.pyc"))
            except Exception as exc:  # noqa: BLE001 - report every kind of breakage
                broken.append(f"{path}: {type(exc).__name__}: {exc}")
        second = torchlint("--diff", "--unsafe-fixes", str(copy)).stdout
        print(f"{name}: fixable findings by code {dict(sorted(fixable.items()))}; "
              f"diff {diff.count(chr(10))} lines -> {work / f'{name}.diff'}")
        print(f"{name}: files that no longer parse/compile: {len(broken)}; second --fix would change: "
              f"{'nothing' if not second else second.count(chr(10)) + ' diff lines'}")
        for line in broken[:20]:
            print("  ", line)
        failures += len(broken) + bool(second)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
