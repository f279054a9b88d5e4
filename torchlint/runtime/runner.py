"""The parent side of the runtime checker: plan, run workers in parallel, map results back.

Never imports torch: everything torch-related happens in `torchlint.runtime.worker`
subprocesses, one per user file (independent files run in parallel, `jobs` at a time).
The worker reports on an events file, not stdout; this side watches that file, kills a
worker that makes no progress for `timeout` seconds (plus a little grace), and restarts it
for the classes it had not reached when one class hung or crashed the interpreter.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import keyword
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from torchlint.diagnostic import Diagnostic
from torchlint.project import ProjectIndex, module_name_for, summarize
from torchlint.runtime.loader import ClassInfo, class_at, class_named, list_classes
from torchlint.runtime.recipes import Recipe, RecipeBook, model_recipe, scan_file

CONFIRMED, NOT_REPRODUCED, SKIPPED, ERROR = "confirmed", "not-reproduced", "skipped", "error"

# names of the codes the runtime can report on its own (scope "all"); the catalog's names
CODE_NAMES = {
    "TL101": "missing-super-init", "TL102": "assign-before-super-init",
    "TL104": "module-in-plain-container", "TL105": "parameter-in-plain-container",
    "TL106": "tensor-attribute-not-buffer", "TL107": "layer-created-in-forward",
    "TL201": "direct-forward-call", "TL202": "container-called",
    "TL402": "tensor-created-without-device", "TL403": "hardcoded-device-in-module",
}
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".tox",
                        ".mypy_cache", ".pytest_cache", "build", "dist"})
_POLL_SECONDS = 0.05
TORCH_IMPORT_SECONDS = 120.0


@dataclass
class FindingRequest:
    """One static finding to check, as the worker needs it."""

    id: int
    code: str
    anchor: str  # the source text of the finding's anchor
    line: int
    end_line: int


@dataclass
class ClassRequest:
    qualname: str
    info: ClassInfo
    construct: str | None = None
    inputs: str | None = None
    findings: list[FindingRequest] = field(default_factory=list)
    discover: bool = False
    recipes: list[Recipe] = field(default_factory=list)  # factories and project calls
    input_recipes: list[Recipe] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"qualname": self.qualname, "construct": self.construct, "inputs": self.inputs,
                "discover": self.discover, "findings": [dataclasses.asdict(f) for f in self.findings],
                "recipes": [r.to_json() for r in self.recipes],
                "input_recipes": [r.to_json() for r in self.input_recipes]}


@dataclass
class FileJob:
    """One user file: how to import it and which classes to probe."""

    path: str  # as the caller named it (used in new diagnostics)
    abs_path: str
    module: str
    sys_path: list[str]
    classes: dict[str, ClassRequest] = field(default_factory=dict)
    hide_cuda: bool = True  # start the worker with CUDA_VISIBLE_DEVICES=""
    models: list[dict[str, Any]] = field(default_factory=list)  # TL301: models built in the file


@dataclass
class FileOutcome:
    results: dict[int, tuple[str, str]] = field(default_factory=dict)
    extras: list[Diagnostic] = field(default_factory=list)
    not_module: set[int] = field(default_factory=set)


@dataclass
class _Source:
    text: str
    lines: list[str]
    classes: list[ClassInfo]
    module: str
    index: ProjectIndex


class _Progress:
    """`files done/total  current class` on one stderr line (only when asked for)."""

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.stream = stream or sys.stderr
        self.done = 0
        self.lock = threading.Lock()

    def show(self, current: str = "") -> None:
        if not self.enabled:
            return
        with self.lock:
            text = f"torchlint runtime: {self.done}/{self.total} files"
            if current:
                text += f"  {current}"
            self.stream.write("\r\x1b[K" + text[:120])
            self.stream.flush()

    def file_done(self) -> None:
        with self.lock:
            self.done += 1
        self.show()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _lookup(table: dict[str, str] | None, module: str, qualname: str, extra_modules: list[str]) -> str | None:
    """A construct/inputs entry: `pkg.mod:Class` first, then `Class` (qualified, then simple)."""
    if not table:
        return None
    for mod in [module, *extra_modules]:
        key = f"{mod}:{qualname}"
        if key in table:
            return table[key]
    if qualname in table:
        return table[qualname]
    return table.get(qualname.rsplit(".", 1)[-1])


def _anchor_text(lines: list[str], d: Diagnostic) -> str:
    """The source of the finding's anchor (1-based columns, end exclusive)."""
    if not 0 < d.line <= len(lines):
        return ""
    if d.end_line == d.line:
        return lines[d.line - 1][d.col - 1:max(d.end_col - 1, d.col - 1)] or lines[d.line - 1][d.col - 1:]
    parts = [lines[d.line - 1][d.col - 1:]]
    parts += lines[d.line:d.end_line - 1]
    if d.end_line <= len(lines):
        parts.append(lines[d.end_line - 1][:max(d.end_col - 1, 0)])
    return "\n".join(parts)


def _python_files(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
                out += [os.path.normpath(os.path.join(root, f)) for f in sorted(files) if f.endswith(".py")]
        elif path.endswith(".py"):
            out.append(path)  # notebooks are checked statically only: cells cannot be imported
    return out


def _import_location(abs_path: str) -> tuple[str, str]:
    """(dotted module name, the sys.path entry it is imported from)."""
    module = module_name_for(abs_path)
    stem = Path(abs_path).stem
    if not all(part.isidentifier() and not keyword.iskeyword(part) for part in [*module.split("."), stem]):
        # `fix.in.py`, `my-model.py`: not importable by name; load the file on its own
        return "_torchlint_user_" + re.sub(r"\W", "_", stem), str(Path(abs_path).parent)
    root = Path(abs_path).parent
    for _ in range(module.count(".") + (1 if abs_path.endswith("__init__.py") else 0)):
        root = root.parent
    if "." not in module and not abs_path.endswith("__init__.py") and (
            module in sys.stdlib_module_names or module in ("torch", "torchlint")):
        # a script named `random.py` must not replace the real module in the worker
        module = f"_torchlint_user_{module}"
    return module, str(root)


class _Planner:
    """Turns diagnostics and paths into file jobs."""

    def __init__(self, construct: dict[str, str] | None, inputs: dict[str, str] | None,
                 project_root: str | None) -> None:
        self.construct = construct
        self.inputs = inputs
        self.project_root = os.path.abspath(project_root) if project_root else None
        self.sources: dict[str, _Source | None] = {}
        # (file, cuda hidden) -> job: on a machine that may have a GPU, TL402 findings go to
        # a worker that sees it, the others (TL403 first) to one that cannot
        self.jobs: dict[tuple[str, bool], FileJob] = {}
        self.split_cuda = gpu_possible()
        self._book: RecipeBook | None = None
        self.preset: dict[int, tuple[str, str]] = {}  # decided without running anything

    def source(self, abs_path: str) -> _Source | None:
        if abs_path not in self.sources:
            try:
                with open(abs_path, "rb") as handle:
                    text = handle.read().decode("utf-8-sig")
                tree = ast.parse(text, abs_path)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
                self.sources[abs_path] = None
                return None
            module = module_name_for(abs_path)
            index = ProjectIndex()
            index.add(summarize(text, module, abs_path.endswith("__init__.py")))
            self.sources[abs_path] = _Source(text, text.splitlines(), list_classes(tree), module, index)
        return self.sources[abs_path]

    def job(self, path: str, abs_path: str, hide_cuda: bool = True) -> FileJob:
        hide_cuda = hide_cuda or not self.split_cuda  # no GPU: one worker, CUDA hidden (a no-op)
        key = (abs_path, hide_cuda)
        if key not in self.jobs:
            module, root = _import_location(abs_path)
            sys_path = [root]
            if self.project_root and self.project_root != root:
                sys_path.append(self.project_root)
            self.jobs[key] = FileJob(path, abs_path, module, sys_path, hide_cuda=hide_cuda)
        return self.jobs[key]

    def book(self) -> RecipeBook:
        if self._book is None:
            files = _python_files([self.project_root]) if self.project_root else []
            self._book = RecipeBook([(os.path.abspath(f), module_name_for(os.path.abspath(f))) for f in files],
                                    self.project_root or "")
        return self._book

    def class_request(self, job: FileJob, info: ClassInfo) -> ClassRequest:
        if info.qualname not in job.classes:
            same = next((j.classes[info.qualname] for j in self.jobs.values()
                         if j.abs_path == job.abs_path and info.qualname in j.classes), None)
            if same is not None:
                job.classes[info.qualname] = dataclasses.replace(same, findings=[], discover=False)
                return job.classes[info.qualname]
            extra = []
            if self.project_root:
                rel = os.path.relpath(job.abs_path, self.project_root)
                if not rel.startswith(".."):
                    extra.append(rel[:-3].replace(os.sep, ".") if rel.endswith(".py") else rel)
            module = job.module.removeprefix("_torchlint_user_")
            request = ClassRequest(
                info.qualname, info, _lookup(self.construct, module, info.qualname, extra),
                _lookup(self.inputs, module, info.qualname, extra))
            if "." not in info.qualname and (request.construct is None or request.inputs is None):
                factories, calls, inputs = self.book().find(job.abs_path, module_name_for(job.abs_path), info.name)
                if request.construct is None:
                    request.recipes = factories + calls
                if request.inputs is None:
                    request.input_recipes = inputs
            job.classes[info.qualname] = request
        return job.classes[info.qualname]

    @staticmethod
    def known_not_module(source: _Source, info: ClassInfo) -> bool:
        if not info.bases or all(b in ("object", "ABC", "abc.ABC") for b in info.bases):
            return True
        if "." in info.qualname:
            return False  # the cheap index knows top-level classes only: let the worker tell
        return source.index.is_module(f"{source.module}.{info.qualname}") is False

    def add_diagnostic(self, index: int, d: Diagnostic) -> None:
        if d.code == "TL000" or not d.path.endswith(".py"):
            return  # unparseable files, and notebooks: nothing to import
        abs_path = os.path.abspath(d.path)
        source = self.source(abs_path)
        if source is None:
            return
        if d.code == "TL301":
            self.add_model(index, d, abs_path, source)
            return
        name = (d.context or {}).get("class")
        info = (class_named(source.classes, name, d.line) if name else None) or class_at(source.classes, d.line)
        if info is None:
            return
        if not name and self.known_not_module(source, info):
            return
        if info.in_function:
            self.preset[index] = (SKIPPED, "the class is defined inside a function: it cannot be imported")
            return
        # only TL402 runs where CUDA is visible (its check moves the Module to the GPU);
        # everything else, TL403 first, is answered as on a machine without CUDA
        job = self.job(d.path, abs_path, hide_cuda=d.code != "TL402")
        request = self.class_request(job, info)
        request.findings.append(FindingRequest(index, d.code, _anchor_text(source.lines, d), d.line,
                                               max(d.end_line, d.line)))

    def add_model(self, index: int, d: Diagnostic, abs_path: str, source: _Source) -> None:
        """TL301: build the model the finding calls, to compare its train and eval outputs."""
        scan = scan_file(abs_path, source.module, source.text)
        if scan is None:
            return
        rel = os.path.basename(abs_path)
        model, inputs, why = model_recipe(scan, d.line, rel)
        if model is None:
            self.preset[index] = (SKIPPED, why)
            return
        job = self.job(d.path, abs_path)
        job.models.append({"id": index, "construct": model.code, "name": model.name, "where": model.where,
                           "inputs": inputs.code if inputs else None,
                           "inputs_where": inputs.where if inputs else None})

    def add_discovery(self, path: str) -> None:
        abs_path = os.path.abspath(path)
        source = self.source(abs_path)
        if source is None:
            return
        flagged = {q for (p, _), j in self.jobs.items() if p == abs_path for q in j.classes}
        for info in source.classes:
            if info.in_function or info.qualname in flagged or self.known_not_module(source, info):
                continue
            request = self.class_request(self.job(path, abs_path), info)
            if not request.findings:
                request.discover = True


def gpu_possible() -> bool:
    """Whether this machine may have a GPU that torch could see (checked without torch).

    When it may, TL402 findings are checked in a worker that sees the GPU (forward on CUDA),
    and all others, TL403 first, in one with CUDA hidden, so they get the answers a machine
    without CUDA gives; when not, one worker (CUDA hidden, a no-op) does all. `TORCHLINT_RUNTIME_GPU=1`/`0` overrides the guess (the tests force both paths)."""
    forced = os.environ.get("TORCHLINT_RUNTIME_GPU")
    if forced in ("0", "1"):
        return forced == "1"
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd"))


def _crash_text(returncode: int | None, killed: bool, timeout: float) -> str:
    if killed:
        return f"timed out after {timeout:g} s"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the process crashed ({name})"
    return f"the process exited with code {returncode}"


def _read_events(path: str, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines after `offset`, and the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    events = []
    end = data.rfind(b"\n") + 1
    for raw in data[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue
    return events, offset + end


class _Runner:
    def __init__(self, timeout: float, progress: _Progress, workdir: str) -> None:
        self.timeout = timeout
        self.grace = max(2.0, timeout * 0.25)
        self.progress = progress
        self.workdir = workdir
        package_parent = str(Path(__file__).resolve().parent.parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in the user's tree
        env["PYTHONIOENCODING"] = "utf-8"
        self.env = env

    def launch(self, job: FileJob, classes: list[ClassRequest], attempt: int) -> tuple[list[dict[str, Any]], str]:
        """Run one worker over `classes`; its events, and why it ended early ("" when it finished)."""
        stem = os.path.join(self.workdir, f"{abs(hash(job.abs_path))}-{int(job.hide_cuda)}-{attempt}")
        env = dict(self.env)
        if job.hide_cuda:
            env["CUDA_VISIBLE_DEVICES"] = ""  # set before the worker imports torch
        request = {"path": job.abs_path, "module": job.module, "sys_path": job.sys_path,
                   "timeout": self.timeout, "classes": [c.to_json() for c in classes],
                   "models": job.models if attempt == 1 else []}
        with open(stem + ".request.json", "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        events_path = stem + ".events.jsonl"
        open(events_path, "wb").close()
        with open(stem + ".stderr", "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "torchlint.runtime.worker", stem + ".request.json", events_path],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                # start in our own empty directory: the worker's own imports must not pick
                # up a user's `json.py`; it changes to the user's directory before importing
                cwd=self.workdir, env=env, start_new_session=(os.name == "posix"))
            events: list[dict[str, Any]] = []
            offset = 0
            # importing torch is not user code: a loaded machine may take long, and the
            # user's timeout only starts once the worker is ready to import the user's file
            deadline = time.monotonic() + max(TORCH_IMPORT_SECONDS, self.timeout + self.grace)
            killed = False
            while True:
                new, offset = _read_events(events_path, offset)
                if new:
                    events += new
                    if new[-1].get("event") == "started":
                        deadline = time.monotonic() + max(TORCH_IMPORT_SECONDS, self.timeout + self.grace)
                    else:
                        deadline = time.monotonic() + self.timeout + self.grace
                    for event in new:
                        if event.get("event") == "class-start":
                            self.progress.show(f"{job.module}.{event.get('qualname')}")
                if process.poll() is not None:
                    new, offset = _read_events(events_path, offset)
                    events += new
                    break
                if time.monotonic() > deadline:
                    self._kill(process)
                    killed = True
                    new, offset = _read_events(events_path, offset)
                    events += new
                    break
                time.sleep(_POLL_SECONDS)
        finished = any(e.get("event") == "done" for e in events)
        import_failed = any(e.get("event") == "import" and not e.get("ok") for e in events)
        if finished or import_failed:
            return events, ""
        return events, _crash_text(process.returncode, killed, self.timeout)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        """Kill the worker and whatever user code it started (its own process group)."""
        try:
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()

    def run(self, job: FileJob) -> FileOutcome:
        outcome = FileOutcome()
        remaining = list(job.classes.values())
        attempt = 0
        loaded_as = ""
        stopped = "the worker stopped before checking the model"
        while (remaining or (attempt == 0 and job.models)) and attempt <= len(job.classes):
            attempt += 1
            events, early_end = self.launch(job, remaining, attempt)
            imported = [e for e in events if e.get("event") == "import"]
            if not imported:
                reason = early_end or "the worker stopped before importing the file"
                self._fail_all(outcome, remaining, f"{reason} while importing the file")
                stopped = f"{reason} while importing the file"
                break
            loaded_as = imported[0].get("loaded_as") or loaded_as
            if not imported[0].get("ok"):
                self._import_failed(outcome, remaining, imported[0])
                stopped = f"import failed: {imported[0].get('error', 'unknown error')}"
                break
            if early_end:
                stopped = f"{early_end} while checking the model"
            started: str | None = None
            by_name = {c.qualname: c for c in remaining}
            for event in events:
                if event.get("event") == "class-start":
                    started = event.get("qualname")
                elif event.get("event") == "model":
                    outcome.results[int(event["id"])] = (str(event["status"]), str(event["detail"]))
                elif event.get("event") == "class":
                    request = by_name.pop(event["qualname"], None)
                    started = None
                    if request is not None:
                        self._record(outcome, job, request, event)
            if not early_end:
                break
            if started is not None and started in by_name:
                self._fail_all(outcome, [by_name.pop(started)], f"{early_end} while checking {started}")
            remaining = list(by_name.values())
        for model in job.models:
            outcome.results.setdefault(int(model["id"]), (ERROR, stopped))
        if loaded_as:
            for key, (status, detail) in list(outcome.results.items()):
                outcome.results[key] = (status, f"{detail}; {loaded_as}")
            outcome.extras = [dataclasses.replace(d, runtime={**(d.runtime or {}),
                                                              "detail": f"{(d.runtime or {}).get('detail')}; {loaded_as}"})
                              for d in outcome.extras]
        self.progress.file_done()
        return outcome

    @staticmethod
    def _fail_all(outcome: FileOutcome, classes: list[ClassRequest], detail: str) -> None:
        for request in classes:
            for finding in request.findings:
                outcome.results[finding.id] = (ERROR, detail)

    @staticmethod
    def _import_failed(outcome: FileOutcome, classes: list[ClassRequest], event: dict[str, Any]) -> None:
        error = str(event.get("error", "unknown error"))
        for request in classes:
            for finding in request.findings:
                names = re.findall(r"\w+", finding.anchor)
                if (finding.code == "TL109" and event.get("error_type") == "AttributeError"
                        and names and f"'{names[-1]}'" in error):
                    outcome.results[finding.id] = (CONFIRMED, f"import failed: {error}")
                elif error.startswith("timed out"):
                    outcome.results[finding.id] = (ERROR, f"{error} while importing the file")
                else:
                    outcome.results[finding.id] = (ERROR, f"import failed: {error}")

    @staticmethod
    def _record(outcome: FileOutcome, job: FileJob, request: ClassRequest, event: dict[str, Any]) -> None:
        results = event.get("results") or {}
        for finding in request.findings:
            if str(finding.id) in results:
                status, detail = results[str(finding.id)]
                outcome.results[finding.id] = (status, detail)
            elif event.get("not_module"):
                outcome.not_module.add(finding.id)
        info = request.info
        for item in event.get("extra") or []:
            code = item["code"]
            outcome.extras.append(Diagnostic(
                job.path, info.line, info.col, info.line, info.col + len(f"class {info.name}"), code,
                CODE_NAMES.get(code, code.lower()), item["message"],
                runtime={"status": CONFIRMED, "detail": item["detail"], "found_by": "runtime"},
                context={"class": info.qualname}))


def run(diagnostics: list[Diagnostic], *, paths: list[str], scope: str, timeout: float,
        construct: dict[str, str] | None, inputs: dict[str, str] | None, jobs: int,
        progress: bool, project_root: str | None) -> list[Diagnostic]:
    """The implementation of `torchlint.runtime.confirm` (see there)."""
    if scope not in ("flagged", "all"):
        raise ValueError(f"unknown runtime scope {scope!r} (expected 'flagged' or 'all')")
    planner = _Planner(construct, inputs, project_root)
    for index, d in enumerate(diagnostics):
        planner.add_diagnostic(index, d)
    if scope == "all":
        for path in _python_files(paths):
            planner.add_discovery(path)
    for job in planner.jobs.values():
        job.classes = {q: c for q, c in job.classes.items() if c.findings or c.discover}
    file_jobs = [j for j in planner.jobs.values() if j.classes or j.models]
    bar = _Progress(len(file_jobs), progress)
    bar.show()
    outcomes: list[FileOutcome] = []
    with tempfile.TemporaryDirectory(prefix="torchlint-runtime-") as workdir:
        runner = _Runner(timeout, bar, workdir)
        if file_jobs:
            with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(file_jobs)))) as pool:
                outcomes = list(pool.map(runner.run, file_jobs))
    bar.close()
    results = dict(planner.preset)
    extras: list[Diagnostic] = []
    for outcome in outcomes:
        results.update(outcome.results)
        extras += outcome.extras
    out = []
    for index, d in enumerate(diagnostics):
        if index in results:
            status, detail = results[index]
            d = dataclasses.replace(d, runtime={"status": status, "detail": detail})
        out.append(d)
    return out + sorted(extras, key=Diagnostic.sort_key)
