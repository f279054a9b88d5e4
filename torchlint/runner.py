"""Check many files: the cheap project-wide class index first, then the full checks in
worker processes, so that a parser crash costs one file and never the run."""

from __future__ import annotations

import difflib
import faulthandler
import gc
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
    CannotCheck,
    FileResult,
    Options,
    cannot_check,
    check_file,
    check_notebook,
    check_source,
    decode,
    notebook_code_too_large,
    notebook_json_limit,
    notebook_source,
    to_cells,
)
from torchlint.fix import fix_source
from torchlint.project import ModuleSummary, ProjectIndex, module_name_for, summarize

CHUNK = 8
# No file may keep a run busy for longer than this (seconds): the precheck refuses the shapes
# known to stall the parser, and this deadline catches whatever it misses.
DEFAULT_FILE_DEADLINE = 5.0
_TIMEOUT_MARK = "Timeout ("  # what faulthandler writes when the deadline expires


def file_deadline() -> float:
    """The per-file deadline; TORCHLINT_FILE_DEADLINE (seconds) overrides it."""
    try:
        value = float(os.environ.get("TORCHLINT_FILE_DEADLINE", DEFAULT_FILE_DEADLINE))
    except ValueError:
        return DEFAULT_FILE_DEADLINE
    return value if value > 0 else DEFAULT_FILE_DEADLINE


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
                cache: Cache | None = None, jobs: int = 1) -> ProjectIndex:
    """Index every file of the project (cheap: regular expressions, no parse); summaries of
    files whose mtime and size did not change come from the cache, the rest are scanned in
    `jobs` processes when there are many."""
    index = ProjectIndex(module_bases=module_bases)
    stored = cache.load_summaries() if cache is not None else {}
    fresh: dict[str, list] = {}
    keys: dict[str, list[int]] = {}
    summaries: dict[str, ModuleSummary | None] = {}
    for path in files:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        key = keys[path] = [stat.st_mtime_ns, stat.st_size]
        entry = stored.get(path)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key:
            try:
                summaries[path] = summary_from_json(entry[1])
            except (KeyError, TypeError, ValueError, IndexError):
                pass
    todo = [p for p in keys if p not in summaries]
    summaries.update(_summarize_all(todo, max_size, jobs))
    for path in keys:
        summary = summaries.get(path)
        if summary is not None:
            index.add(summary)
            fresh[path] = [keys[path], summary_to_json(summary)]
    if cache is not None and fresh != stored:
        cache.save_summaries(fresh)
    # installed packages' bases, read once here rather than once per worker
    index.prefetch_external()
    return index


PARALLEL_INDEX_MIN = 500  # below this many files, forking workers costs more than the scan (0.3 ms a file)


def _summarize_all(paths: list[str], max_size: int, jobs: int) -> dict[str, ModuleSummary | None]:
    if jobs <= 1 or len(paths) < PARALLEL_INDEX_MIN:
        return {p: summarize_file(p, max_size) for p in paths}
    size = max(16, len(paths) // (jobs * 4))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    out: dict[str, ModuleSummary | None] = {}
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_context()) as pool:
            for part in pool.map(_summarize_chunk, chunks, [max_size] * len(chunks)):
                out.update(part)
    except BrokenProcessPool:
        return {p: summarize_file(p, max_size) for p in paths}
    return out


def _summarize_chunk(paths: list[str], max_size: int) -> dict[str, ModuleSummary | None]:
    return {p: summarize_file(p, max_size) for p in paths}


# ---- worker side -----------------------------------------------------------------------------
_WORKER: dict[str, object] = {}


def _init_worker(options: Options, index: ProjectIndex, fix_mode: FixMode | None,
                 watch_dir: str | None = None, deadline: float = DEFAULT_FILE_DEADLINE,
                 cache: Cache | None = None) -> None:
    _WORKER["options"] = options
    _WORKER["index"] = index
    _WORKER["fix"] = fix_mode
    _WORKER["cache"] = cache  # results are stored by the worker that made them
    _WORKER["watch"] = _Watch(watch_dir, deadline) if watch_dir else None
    # what the worker inherited (modules, the index) lives as long as it does: later
    # collections need not scan it again
    gc.freeze()


class _Watch:
    """The worker's deadline for one file at a time.

    Before each file, its path goes to this worker's file in the run's watch directory and a
    watchdog is armed; faulthandler's watchdog is a C thread that needs no GIL, so it fires even
    while the native parser holds it: it appends a traceback to the watch file and ends the
    process. The main process then reads which file was being checked, and why it died.
    """

    def __init__(self, directory: str, deadline: float) -> None:
        self.handle = open(os.path.join(directory, f"{os.getpid()}.watch"), "w", encoding="utf-8")
        self.deadline = deadline

    def start(self, path: str) -> None:
        data = (path + "\n").encode("utf-8", "surrogateescape")
        fd = self.handle.fileno()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        self.handle.seek(len(data))
        faulthandler.dump_traceback_later(self.deadline, exit=True, file=self.handle)

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        os.ftruncate(self.handle.fileno(), 0)


def _take_in_flight(watch_dir: str) -> dict[str, bool]:
    """The files the workers of a broken pool were checking -> whether the deadline killed it.
    The watch files are removed: the next pool's workers start afresh."""
    found: dict[str, bool] = {}
    for name in os.listdir(watch_dir):
        watch = os.path.join(watch_dir, name)
        try:
            with open(watch, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
            os.unlink(watch)
        except OSError:
            continue
        path, _, rest = text.partition("\n")
        if path:
            found[path] = found.get(path, False) or _TIMEOUT_MARK in rest
    return found


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
    watch = _WORKER.get("watch")
    cache = _WORKER.get("cache")
    out = []
    for path in paths:
        if isinstance(watch, _Watch):
            watch.start(path)
        try:
            outcome = process_file(path, options, index, fix_mode)  # type: ignore[arg-type]
            if isinstance(cache, Cache):
                cache.put(outcome.result, index)  # type: ignore[arg-type]
            out.append(outcome)
        except RecursionError:
            result = FileResult(path)
            result.diagnostics.append(cannot_check(path, CannotCheck("nested too deeply to check")))
            out.append(FileOutcome(result))
        except Exception as exc:  # an engine bug: report it, keep going
            result = FileResult(path)
            result.errors.append(f"{path}: internal error: {type(exc).__name__}: {exc}")
            out.append(FileOutcome(result))
        finally:
            if isinstance(watch, _Watch):
                watch.stop()
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
        # the workers store what they check (in parallel, while the others still run)
        for outcome in _run_pool(todo, options, index, jobs, None, cache):
            done[outcome.result.path] = outcome
        return [done[p] for p in files]
    return _run_pool(files, options, index, jobs, fix_mode)


def _run_pool(files: list[str], options: Options, index: ProjectIndex, jobs: int,
              fix_mode: FixMode | None, cache: Cache | None = None) -> list[FileOutcome]:
    if not files:
        return []
    def size(p: str) -> int:
        try:
            return os.path.getsize(p)
        except OSError:
            return 0
    outcomes: dict[str, FileOutcome] = {}
    deadline = file_deadline()
    with tempfile.TemporaryDirectory(prefix="torchlint-watch-") as watch_dir:
        init_args = (options, index, fix_mode, watch_dir, deadline, cache)
        todo = sorted(files, key=size, reverse=True)  # big files first: better balance
        while todo:
            suspects = _pool_pass(todo, jobs, init_args, outcomes)
            if not suspects:
                break
            # A worker died: the deadline expired (the watch file says so), or the native
            # parser crashed the process. Files that were in flight are suspects: each is
            # retried alone in a fresh process; the rest go to a new pool.
            for path, timed_out in suspects.items():
                if path in outcomes:
                    continue
                outcomes[path] = _too_slow(path, deadline) if timed_out else _isolated(path, init_args, deadline)
            todo = [p for p in todo if p not in outcomes]
    return [outcomes[p] for p in files]


def _pool_pass(todo: list[str], jobs: int, init_args: tuple, outcomes: dict[str, FileOutcome]) -> dict[str, bool]:
    """Check files in one pool; on a worker's death, the files that were in flight."""
    chunk = max(1, min(CHUNK, len(todo) // (jobs * 4) or 1))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    broken = False
    watch_dir = init_args[3]
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=_context(),
                             initializer=_init_worker, initargs=init_args) as pool:
        futures = [pool.submit(_run_chunk, c) for c in chunks]
        for future in as_completed(futures):
            try:
                for outcome in future.result():
                    outcomes[outcome.result.path] = outcome
            except BrokenProcessPool:
                broken = True
    if not broken:
        return {}
    suspects = {p: t for p, t in _take_in_flight(watch_dir).items() if p not in outcomes}
    if not suspects:
        # nothing recorded (a worker died before its first file): isolate the rest one by one
        suspects = {p: False for p in todo if p not in outcomes}
    return suspects


def _too_slow(path: str, deadline: float) -> FileOutcome:
    result = FileResult(path)
    result.diagnostics.append(cannot_check(path, CannotCheck(
        f"took longer than {deadline:g} s to check (the parser stalls on some shape in this file); "
        "exclude it (extend-exclude in [tool.torchlint]) if it is generated"
    )))
    return FileOutcome(result)


def _isolated(path: str, init_args: tuple, deadline: float) -> FileOutcome:
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=_context(),
                                 initializer=_init_worker, initargs=init_args) as pool:
            return pool.submit(_run_chunk, [path]).result()[0]
    except BrokenProcessPool:
        timed_out = _take_in_flight(init_args[3]).get(path, False)
        if timed_out:
            return _too_slow(path, deadline)
        result = FileResult(path)
        result.diagnostics.append(cannot_check(path, CannotCheck("cannot parse: the parser crashed on this file")))
        return FileOutcome(result)


def relative_display(path: str) -> str:
    """Paths as the user gave them (relative stays relative)."""
    return path if not os.path.isabs(path) else os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else path
