"""Check many files: the cheap project-wide class index first, then the full checks in
worker processes, so that a parser crash costs one file and never the run."""

from __future__ import annotations

import difflib
import multiprocessing
import os
import stat
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from torchlint.cache import Cache, summary_from_json, summary_to_json
from torchlint.diagnostic import Diagnostic
from torchlint.engine import (
    CannotCheck, FileResult, Options, cannot_check, check_file, check_notebook, check_source, decode,
    notebook_code_too_large, notebook_json_limit, notebook_source, to_cells,
)
from torchlint.fix import fix_source
from torchlint.project import ModuleSummary, ProjectIndex, module_name_for, summarize

CHUNK = 8


@dataclass(frozen=True)
class FixMode:
    unsafe: bool = False
    write: bool = True  # False: --diff


@dataclass
class FileOutcome:
    """What a worker sends back for one file."""

    result: FileResult
    applied: int = 0
    diff: str = ""
    dropped: list[Diagnostic] = field(default_factory=list)


def summarize_file(path: str, max_size: int) -> ModuleSummary | None:
    """The cheap scan of one file for the index (None when unreadable or too large)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        limit = notebook_json_limit(max_size) if path.endswith(".ipynb") else max_size
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    try:
        text, _ = decode(data)
        if path.endswith(".ipynb"):
            joined = notebook_source(text, path)
            if notebook_code_too_large(joined, max_size):
                return None
            text = joined.source
    except CannotCheck:
        return None
    return summarize(text, module_name_for(path), path.endswith("__init__.py"))


def build_index(files: list[str], module_bases: tuple[str, ...], max_size: int,
                cache: Cache | None = None) -> ProjectIndex:
    """Index every file of the project (cheap: regular expressions, no parse); summaries of
    files whose mtime and size did not change come from the cache."""
    index = ProjectIndex(module_bases=module_bases)
    stored = cache.load_summaries() if cache is not None else {}
    fresh: dict[str, list] = {}
    for path in files:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        key = [stat.st_mtime_ns, stat.st_size]
        entry = stored.get(path)
        summary = None
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key:
            try:
                summary = summary_from_json(entry[1])
            except (KeyError, TypeError, ValueError, IndexError):
                summary = None
        if summary is None:
            summary = summarize_file(path, max_size)
        if summary is not None:
            index.add(summary)
            fresh[path] = [key, summary_to_json(summary)]
    if cache is not None and fresh != stored:
        cache.save_summaries(fresh)
    # installed packages' bases, read once here rather than once per worker
    index.prefetch_external()
    return index


# ---- worker side -----------------------------------------------------------------------------
_WORKER: dict[str, object] = {}


def _init_worker(options: Options, index: ProjectIndex, fix_mode: FixMode | None) -> None:
    if sys.getrecursionlimit() < 6000:
        sys.setrecursionlimit(6000)
    _WORKER["options"] = options
    _WORKER["index"] = index
    _WORKER["fix"] = fix_mode


def _strip(result: FileResult) -> FileResult:
    result.source = None  # do not pickle sources back
    return result


def process_file(path: str, options: Options, index: ProjectIndex, fix_mode: FixMode | None) -> FileOutcome:
    """Check one file, and fix it when asked."""
    if fix_mode is None:
        return FileOutcome(_strip(check_file(path, options, index)))
    first = check_file(path, options, index)
    if first.source is None or not any(d.fix is not None for d in first.diagnostics):
        return FileOutcome(_strip(first))
    module_name = module_name_for(path)
    joined = None
    if path.endswith(".ipynb"):
        joined = notebook_source(first.source, path)
        original = joined.source
    else:
        original = first.source

    def check(text: str) -> list[Diagnostic]:
        return check_source(text, path, options, index, module_name, False if joined else None).diagnostics

    outcome = fix_source(original, check, fix_mode.unsafe)
    if outcome.source == original:
        return FileOutcome(_strip(first), dropped=outcome.dropped)
    if joined is not None:
        from torchlint import notebook

        new_text = notebook.write_back(first.source, joined, outcome.source)
        final = check_notebook(new_text, path, options, index, module_name)
        outcome.dropped = to_cells(outcome.dropped, joined)
        original, outcome.source = first.source, new_text
    else:
        final = check_source(outcome.source, path, options, index, module_name)
    final.encoding = first.encoding
    diff = "".join(difflib.unified_diff(
        original.splitlines(keepends=True), outcome.source.splitlines(keepends=True),
        fromfile=f"a/{path}", tofile=f"b/{path}",
    ))
    if fix_mode.write:
        try:
            write_atomically(path, outcome.source, first.encoding)
        except OSError as exc:
            final.errors.append(f"{path}: cannot write fixes: {exc}")
            return FileOutcome(_strip(first), diff="")
    else:
        # --diff: nothing is written, so the findings are those of the original
        final = first
    return FileOutcome(_strip(final), outcome.applied, diff, outcome.dropped)


def write_atomically(path: str, text: str, encoding: str) -> None:
    """Replace a file's content in one step, keeping its permissions."""
    data = text.encode(encoding)
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".torchlint-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _run_chunk(paths: list[str]) -> list[FileOutcome]:
    options = _WORKER["options"]
    index = _WORKER["index"]
    fix_mode = _WORKER["fix"]
    out = []
    for path in paths:
        try:
            out.append(process_file(path, options, index, fix_mode))  # type: ignore[arg-type]
        except RecursionError:
            result = FileResult(path)
            result.diagnostics.append(cannot_check(path, CannotCheck("nested too deeply to check")))
            out.append(FileOutcome(result))
        except Exception as exc:  # an engine bug: report it, keep going
            result = FileResult(path)
            result.errors.append(f"{path}: internal error: {type(exc).__name__}: {exc}")
            out.append(FileOutcome(result))
    return out


# ---- main side -------------------------------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def run(files: list[str], options: Options, index: ProjectIndex, jobs: int,
        fix_mode: FixMode | None = None, cache: Cache | None = None) -> list[FileOutcome]:
    """Check (and fix) files in worker processes; results in the order of `files`.

    With a cache (check mode only), unchanged files are answered from it and only the
    others are sent to the workers; their results are stored for the next run.
    """
    if not files:
        return []
    if cache is not None and fix_mode is None:
        done: dict[str, FileOutcome] = {}
        for path in files:
            hit = cache.get(path, index)
            if hit is not None:
                done[path] = FileOutcome(hit)
        todo = [p for p in files if p not in done]
        for outcome in _run_pool(todo, options, index, jobs, None):
            done[outcome.result.path] = outcome
            cache.put(outcome.result, index)
        return [done[p] for p in files]
    return _run_pool(files, options, index, jobs, fix_mode)


def _run_pool(files: list[str], options: Options, index: ProjectIndex, jobs: int,
              fix_mode: FixMode | None) -> list[FileOutcome]:
    if not files:
        return []
    def size(p: str) -> int:
        try:
            return os.path.getsize(p)
        except OSError:
            return 0
    ordered = sorted(files, key=size, reverse=True)  # big files first: better balance
    chunk = max(1, min(CHUNK, len(ordered) // (jobs * 4) or 1))
    chunks = [ordered[i:i + chunk] for i in range(0, len(ordered), chunk)]
    outcomes: dict[str, FileOutcome] = {}
    crashed: list[list[str]] = []
    init_args = (options, index, fix_mode)
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=_context(),
                             initializer=_init_worker, initargs=init_args) as pool:
        futures = {pool.submit(_run_chunk, c): c for c in chunks}
        for future in as_completed(futures):
            try:
                for outcome in future.result():
                    outcomes[outcome.result.path] = outcome
            except BrokenProcessPool:
                crashed.append(futures[future])
    # A worker died (the native parser can crash the process): retry those files one by
    # one, each in a fresh process, and report the one that kills it.
    for path in [p for c in crashed for p in c if p not in outcomes]:
        outcomes[path] = _isolated(path, init_args)
    return [outcomes[p] for p in files]


def _isolated(path: str, init_args: tuple) -> FileOutcome:
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=_context(),
                                 initializer=_init_worker, initargs=init_args) as pool:
            return pool.submit(_run_chunk, [path]).result()[0]
    except BrokenProcessPool:
        result = FileResult(path)
        result.diagnostics.append(cannot_check(path, CannotCheck("cannot parse: the parser crashed on this file")))
        return FileOutcome(result)


def relative_display(path: str) -> str:
    """Paths as the user gave them (relative stays relative)."""
    return path if not os.path.isabs(path) else os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else path
