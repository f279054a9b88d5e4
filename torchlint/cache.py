"""A content-hash cache: files that did not change (nor the index entries they depend on)
are not checked again.

Layout under the cache directory (default `.torchlint_cache/` in the project root):
`v1/<settings key>/<hash of path>.json`, one small JSON file per checked file, written
atomically, so that concurrent runs never see a half-written entry; a corrupt or
unreadable entry is treated as a miss and rewritten. JSON, not pickle: a cache directory
is not trusted input. The index summaries are cached too, keyed by (mtime, size).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from torchlint import __version__
from torchlint.diagnostic import Diagnostic, Edit, Fix
from torchlint.engine import FileResult, Options
from torchlint.project import ClassSummary, ModuleSummary, ProjectIndex

FORMAT = "v1"


def settings_key(options: Options, extra: str = "") -> str:
    """Everything besides file content that changes findings: version, rules, config."""
    raw = json.dumps([__version__, sorted(options.enabled), options.honour_noqa, options.max_file_size,
                      sorted(options.module_bases), extra])
    return hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


def _diag_to_json(d: Diagnostic) -> dict[str, Any]:
    out = d.to_dict()
    out["context"] = d.context
    out.pop("runtime", None)
    return out


def _diag_from_json(raw: dict[str, Any]) -> Diagnostic:
    fix = None
    if raw.get("fix"):
        f = raw["fix"]
        fix = Fix(f["applicability"], tuple(Edit(e["start"], e["end"], e["content"]) for e in f["edits"]),
                  f.get("description", ""))
    return Diagnostic(raw["path"], raw["line"], raw["col"], raw["end_line"], raw["end_col"], raw["code"],
                      raw["name"], raw["message"], fix, context=raw.get("context"))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, separators=(",", ":")))  # dumps: the C encoder
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class Cache:
    """Per-file results keyed by content digest and the fingerprints of their dependencies."""

    def __init__(self, directory: Path, key: str) -> None:
        self.root = directory / FORMAT
        self.results = self.root / key
        self.enabled = True
        try:
            self.results.mkdir(parents=True, exist_ok=True)
            gitignore = directory / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# created by torchlint\n*\n")
        except OSError:
            self.enabled = False  # read-only tree: run without a cache

    def _entry_path(self, path: str) -> Path:
        name = hashlib.blake2b(os.path.abspath(path).encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()
        return self.results / f"{name}.json"

    def get(self, path: str, index: ProjectIndex) -> FileResult | None:
        """The stored result when the file's bytes and its dependencies are unchanged."""
        if not self.enabled:
            return None
        entry = _read_json(self._entry_path(path))
        if not isinstance(entry, dict) or entry.get("path") != path:
            return None
        try:
            stat = os.stat(path)
            if entry.get("mtime") != stat.st_mtime_ns or entry.get("size") != stat.st_size:
                from torchlint.engine import content_digest

                with open(path, "rb") as handle:
                    if content_digest(handle.read()) != entry.get("digest"):
                        return None
            for module, fingerprint in entry.get("deps", {}).items():
                if index.fingerprint(module) != fingerprint:
                    return None
            diagnostics = [_diag_from_json(d) for d in entry.get("diagnostics", [])]
        except (OSError, KeyError, TypeError, ValueError):
            return None
        return FileResult(path, diagnostics, digest=entry.get("digest", ""), deps=list(entry.get("deps", {})))

    def put(self, result: FileResult, index: ProjectIndex) -> None:
        if not self.enabled or not result.digest or result.errors:
            return
        try:
            stat = os.stat(result.path)
            entry = {
                "path": result.path,
                "mtime": stat.st_mtime_ns,
                "size": stat.st_size,
                "digest": result.digest,
                "deps": {m: index.fingerprint(m) for m in result.deps},
                "diagnostics": [_diag_to_json(d) for d in result.diagnostics],
            }
            _write_json(self._entry_path(result.path), entry)
        except (OSError, TypeError, ValueError):
            pass

    # ---- the index summaries, keyed by (path, mtime, size) -------------------------------
    def load_summaries(self) -> dict[str, Any]:
        data = _read_json(self.root / "index.json") if self.enabled else None
        return data if isinstance(data, dict) else {}

    def save_summaries(self, data: dict[str, Any]) -> None:
        if self.enabled:
            try:
                _write_json(self.root / "index.json", data)
            except OSError:
                pass


def summary_to_json(summary: ModuleSummary) -> dict[str, Any]:
    return {
        "module": summary.module,
        "imports": summary.imports,
        "is_package": summary.is_package,
        "classes": {n: [c.bases, sorted(c.methods)] for n, c in summary.classes.items()},
    }


def summary_from_json(raw: dict[str, Any]) -> ModuleSummary:
    classes = {n: ClassSummary(n, list(v[0]), set(v[1])) for n, v in raw["classes"].items()}
    return ModuleSummary(raw["module"], dict(raw["imports"]), classes, bool(raw.get("is_package")))


class SourceCache:
    """Findings keyed by (path, content): the flake8 door's cache, where the file's text comes
    from flake8 (maybe an unsaved editor buffer) and the findings depend on nothing else.

    An unchanged file costs a hash and one small read; entries live beside the CLI's, under
    `v1/<settings key>-src/`.
    """

    def __init__(self, directory: Path, key: str) -> None:
        self.results = directory / FORMAT / f"{key}-src"
        self.enabled = True
        try:
            self.results.mkdir(parents=True, exist_ok=True)
            gitignore = directory / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# created by torchlint\n*\n")
        except OSError:
            self.enabled = False

    def _entry_path(self, path: str, source: str) -> Path:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(os.path.abspath(path).encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(source.encode("utf-8", "surrogatepass"))
        return self.results / f"{digest.hexdigest()}.json"

    def get(self, path: str, source: str, index: ProjectIndex) -> list[Diagnostic] | None:
        """The stored findings, when the modules they depended on (installed packages whose
        classes answered "is this a Module?") are unchanged too."""
        if not self.enabled:
            return None
        entry = _read_json(self._entry_path(path, source))
        if not isinstance(entry, dict):
            return None
        try:
            for module, fingerprint in entry.get("deps", {}).items():
                if index.fingerprint(module) != fingerprint:
                    return None
            return [_diag_from_json(d) for d in entry["diagnostics"]]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return None

    def put(self, path: str, source: str, result: FileResult, index: ProjectIndex) -> None:
        if not self.enabled:
            return
        try:
            entry = {"deps": {m: index.fingerprint(m) for m in result.deps},
                     "diagnostics": [_diag_to_json(d) for d in result.diagnostics]}
            _write_json(self._entry_path(path, source), entry)
        except (OSError, TypeError, ValueError):
            pass
