"""Which files to check: recursive discovery honouring .gitignore, defaults and `exclude`."""

from __future__ import annotations

import fnmatch
import os
import stat
import subprocess
from pathlib import Path

DEFAULT_EXCLUDES = (".git", ".venv", "venv", "__pycache__", "build", "dist", ".tox", "node_modules",
                    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".torchlint_cache", ".eggs", ".hg", ".nox")
SUFFIXES = (".py", ".ipynb")


def is_excluded(path: Path, patterns: list[str], root: Path | None) -> bool:
    """Whether a path (or one of its parent folders) matches an exclude glob."""
    if not patterns:
        return False
    try:
        rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(root)) if root else path
    except ValueError:
        rel = path
    rel_posix = rel.as_posix()
    parts = rel.parts
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(rel_posix, pattern) or fnmatch.fnmatch(path.name, pattern):
            return True
        if any(fnmatch.fnmatch(part, pattern) for part in parts[:-1]):
            return True
        if rel_posix.startswith(pattern + "/"):
            return True
    return False


def _git_listing(directory: Path) -> list[Path] | None:
    """Files under a directory that git does not ignore (tracked or not), or None outside git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=directory, capture_output=True, timeout=60, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    names = [n for n in out.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return [directory / n for n in names]


def _walk(directory: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in DEFAULT_EXCLUDES and not d.endswith(".egg-info"))
        for name in filenames:
            found.append(Path(dirpath) / name)
    return found


def discover(paths: list[str], exclude: list[str], root: Path | None, force_exclude: bool = False,
             suffixes: tuple[str, ...] = SUFFIXES) -> tuple[list[str], list[str]]:
    """(files to check, missing paths). Directories are searched; named files are always kept
    unless `force_exclude` and they match `exclude`."""
    files: list[str] = []
    missing: list[str] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = str(p)
        if key not in seen:
            seen.add(key)
            files.append(key)

    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            missing.append(raw)
            continue
        if path.is_dir():
            listing = _git_listing(path)
            candidates = listing if listing is not None else _walk(path)
            for candidate in sorted(candidates):
                if candidate.suffix not in suffixes:
                    continue
                rel_parts = candidate.relative_to(path).parts
                if any(part in DEFAULT_EXCLUDES or part.endswith(".egg-info") for part in rel_parts[:-1]):
                    continue
                if is_excluded(candidate, exclude, root):
                    continue
                if not candidate.exists() and not candidate.is_symlink():
                    continue  # deleted but still tracked
                try:
                    if not stat.S_ISREG(os.stat(candidate).st_mode):
                        continue  # a FIFO or device named *.py: opening it could block forever
                except OSError:
                    pass  # a symlink loop or a dangling link: reported as TL000 when read
                add(_clean(candidate))
        else:
            if force_exclude and is_excluded(path, exclude, root):
                continue
            add(_clean(path))
    return files, missing


def _clean(path: Path) -> Path:
    text = os.path.normpath(str(path))
    return Path(text)


def project_root(paths: list[str]) -> Path:
    """The directory of the nearest pyproject.toml, else the git root, else the common folder."""
    start = Path(os.path.realpath(paths[0] if paths else "."))
    if start.is_file() or not start.exists():
        start = start.parent
    for directory in [start, *start.parents]:
        if (directory / "pyproject.toml").is_file():
            return directory
    for directory in [start, *start.parents]:
        if (directory / ".git").exists():
            return directory
    existing = [os.path.realpath(p) for p in paths if Path(p).exists()] or [str(start)]
    common = Path(os.path.commonpath(existing))
    return common if common.is_dir() else common.parent
