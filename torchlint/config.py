"""`[tool.torchlint]` in the nearest pyproject.toml, validated with clear errors."""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from torchlint.engine import DEFAULT_MAX_FILE_SIZE
from torchlint.registry import is_valid_pattern, matches


class ConfigError(Exception):
    """A configuration problem: one clear line, exit code 2."""


@dataclass
class RuntimeConfig:
    timeout: float = 60.0
    construct: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    """The effective settings (file values; the CLI overrides them)."""

    root: Path | None = None  # the directory of the pyproject.toml it came from
    source: Path | None = None
    select: list[str] | None = None
    extend_select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    extend_exclude: list[str] = field(default_factory=list)
    module_bases: list[str] = field(default_factory=list)
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    torch_version: str | None = None  # "2.1": the torch the project targets (TL5xx follow it)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def findings_key(self) -> str:
        """The settings that change findings, for cache keys (per-file ignores apply later)."""
        return repr((self.module_bases, self.max_file_size, self.torch_version))


_LIST_OF_STR = {"select", "extend-select", "ignore", "exclude", "extend-exclude", "module-bases"}
_KNOWN = _LIST_OF_STR | {"per-file-ignores", "max-file-size", "runtime", "torch-version"}


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start` that has a [tool.torchlint] table,
    else the nearest pyproject.toml at all (it still marks the project root)."""
    # realpath, not resolve(): it does not raise on a symlink loop
    start = Path(os.path.realpath(start))
    if start.is_file():
        start = start.parent
    first = None
    for directory in [start, *start.parents]:
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            if first is None:
                first = candidate
            try:
                if "[tool.torchlint" in candidate.read_text("utf-8", errors="replace"):
                    return candidate
            except OSError:
                continue
    return first


def _codes(value: Any, key: str, where: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: [tool.torchlint] {key} must be a list of strings")
    for code in value:
        if key in ("select", "extend-select", "ignore") and not is_valid_pattern(code.strip()):
            raise ConfigError(f"{where}: [tool.torchlint] {key}: unknown rule code {code!r}")
    return [v.strip() for v in value]


def load_config(pyproject: Path | None) -> Config:
    """Read and validate [tool.torchlint]; a missing file or table gives the defaults."""
    config = Config()
    if pyproject is None:
        return config
    config.root = pyproject.parent
    config.source = pyproject
    try:
        data = tomllib.loads(pyproject.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("torchlint")
    if table is None:
        return config
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.torchlint] must be a table")
    for key, value in table.items():
        if key not in _KNOWN:
            raise ConfigError(f"{pyproject}: [tool.torchlint] unknown key {key!r} (known: {', '.join(sorted(_KNOWN))})")
        if key in _LIST_OF_STR:
            values = _codes(value, key, pyproject)
            setattr(config, key.replace("-", "_"), values)
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{pyproject}: [tool.torchlint] per-file-ignores must be a table of glob = [codes]")
            config.per_file_ignores = {
                str(glob): _codes(codes, f"per-file-ignores.{glob!r}", pyproject) for glob, codes in value.items()
            }
            for glob, codes in config.per_file_ignores.items():
                for code in codes:
                    if not is_valid_pattern(code):
                        raise ConfigError(f"{pyproject}: [tool.torchlint] per-file-ignores.{glob!r}: unknown rule code {code!r}")
        elif key == "max-file-size":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{pyproject}: [tool.torchlint] max-file-size must be a positive integer (bytes)")
            config.max_file_size = value
        elif key == "runtime":
            config.runtime = _runtime(value, pyproject)
        elif key == "torch-version":
            config.torch_version = _torch_version(value, pyproject)
    return config


def _torch_version(value: Any, where: Path) -> str:
    """`torch-version = "2.1"`: a released torch version, MAJOR.MINOR (a patch part is ignored)."""
    import re

    from torchlint.torchnames import torch_names

    table = torch_names().version
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+(\.\d+)?", value.strip()):
        raise ConfigError(f"{where}: [tool.torchlint] torch-version must be a version string such as \"2.1\" (got {value!r})")
    major, minor = (int(p) for p in value.strip().split(".")[:2])
    if (major, minor) < (1, 0):
        raise ConfigError(f"{where}: [tool.torchlint] torch-version {value!r}: torchlint knows torch 1.0 to {table}")
    return f"{major}.{minor}"


def _runtime(value: Any, where: Path) -> RuntimeConfig:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [tool.torchlint.runtime] must be a table")
    runtime = RuntimeConfig()
    for key, item in value.items():
        if key == "timeout":
            if not isinstance(item, (int, float)) or isinstance(item, bool) or item <= 0:
                raise ConfigError(f"{where}: [tool.torchlint.runtime] timeout must be a positive number of seconds")
            runtime.timeout = float(item)
        elif key in ("construct", "inputs"):
            if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
                raise ConfigError(f"{where}: [tool.torchlint.runtime] {key} must map class names to Python expressions (strings)")
            setattr(runtime, key, dict(item))
        else:
            raise ConfigError(f"{where}: [tool.torchlint.runtime] unknown key {key!r} (known: construct, inputs, timeout)")
    return runtime


def per_file_ignored(path: str, code: str, config: Config) -> bool:
    """Whether `per-file-ignores` hides `code` in `path` (globs match the path relative to the
    project root, the file name, or the path as given)."""
    if not config.per_file_ignores:
        return False
    given = Path(path)
    try:
        rel = (Path(os.path.realpath(given)).relative_to(os.path.realpath(config.root)).as_posix()
               if config.root else given.as_posix())
    except ValueError:
        rel = given.as_posix()
    return any(
        (fnmatch.fnmatch(rel, glob) or fnmatch.fnmatch(given.name, glob) or fnmatch.fnmatch(given.as_posix(), glob))
        and matches(code, codes)
        for glob, codes in config.per_file_ignores.items()
    )
