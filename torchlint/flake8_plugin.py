"""The flake8 door: the same engine, findings yielded as flake8 wants them (0-based column).

flake8 hands us `lines` (also how editors pass an unsaved buffer on stdin) and `filename`;
its `ast` tree is of no use to a libcst engine. `# noqa` is left to flake8 so that
`--disable-noqa` keeps working. Syntax errors never reach us: flake8 reports E999 itself.

Editors re-run flake8 on every save, so findings are cached by (path, content) in the project's
`.torchlint_cache/` (when the file belongs to a project with a pyproject.toml): an unchanged
file costs a hash and a read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from torchlint import __version__
from torchlint.cache import SourceCache, settings_key
from torchlint.config import Config, ConfigError, find_pyproject, load_config, per_file_ignored
from torchlint.diagnostic import Diagnostic
from torchlint.engine import Options, check_source
from torchlint.project import ProjectIndex
from torchlint.registry import select_codes


@lru_cache(maxsize=64)
def _config_for(directory: str) -> Config:
    try:
        return load_config(find_pyproject(Path(directory)))
    except ConfigError:
        return Config()  # flake8 has no channel for config errors; the CLI reports them


class TorchlintChecker:
    """flake8 plugin entry point (registered under the `TL` code prefix)."""

    name = "torchlint"
    version = __version__

    def __init__(self, tree: Any, lines: list[str], filename: str) -> None:
        self.lines = lines
        self.filename = filename

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        filename = self.filename
        directory = os.path.dirname(os.path.abspath(filename)) if filename not in ("stdin", "-", "") else os.getcwd()
        config = _config_for(directory)
        enabled = select_codes(config.select, config.ignore, config.extend_select)
        options = Options(enabled=enabled, honour_noqa=False, max_file_size=config.max_file_size,
                          module_bases=tuple(config.module_bases), torch_version=config.torch_version)
        source = "".join(self.lines)
        if source.startswith("\ufeff"):
            source = source[1:]
        if len(source.encode("utf-8", "surrogatepass")) > config.max_file_size:
            yield (1, 0, f"TL000 file is larger than max-file-size ({config.max_file_size:,} bytes); not checked", type(self))
            return
        diagnostics = _check(source, filename, options, config)
        rel = filename
        for d in diagnostics:
            if per_file_ignored(rel, d.code, config):
                continue
            yield (d.line, d.col - 1, f"{d.code} {d.message}", type(self))


def _check(source: str, filename: str, options: Options, config: Config) -> list[Diagnostic]:
    cache = _cache_for(config.root, settings_key(options, config.findings_key()))
    # the flake8-mode index (this file plus configured and installed bases) is enough to tell
    # whether an installed package a cached answer rested on has changed
    index = ProjectIndex(module_bases=options.module_bases)
    if cache is not None:
        hit = cache.get(filename, source, index)
        if hit is not None:
            return hit
    result = check_source(source, filename, options)
    if cache is not None and not result.errors:
        cache.put(filename, source, result, index)
    return result.diagnostics


@lru_cache(maxsize=16)
def _cache_for(root: Path | None, key: str) -> SourceCache | None:
    if root is None or os.environ.get("TORCHLINT_NO_CACHE"):
        return None
    return SourceCache(root / ".torchlint_cache", key)
