"""The subprocess that imports one user file and probes its Module classes.

Run as `python -m torchlint.runtime.worker REQUEST.json EVENTS.jsonl`. User code may print,
raise, call `sys.exit`, hang or crash the interpreter, so nothing is reported on stdout:
each step appends one JSON line to the events file, written with a single `os.write` so a
crash can cut the stream only between events. The parent reads the events as they come;
the last `*-start` event without its result tells it where a crash or hang happened.

Each step (the import, then each class) runs under an alarm of `timeout` seconds; the
parent also kills the process when no event arrives for longer than that.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import Any

from torchlint.runtime.loader import TopLevelPlan, plan_import


class Channel:
    """Append-only JSON-lines events, one atomic write each."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, default=str) + "\n"
        os.write(self.fd, line.encode("utf-8"))


@contextmanager
def step_timeout(seconds: float, error: type[BaseException]) -> Iterator[None]:
    """Raise `error` in the main thread after `seconds` (POSIX; elsewhere the parent kills)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise error(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_plan(path: str) -> TopLevelPlan:
    """How to import the file: as is, or only its definitions (see `loader.plan_import`)."""
    with open(path, "rb") as handle:
        source = handle.read().decode("utf-8-sig", errors="replace")
    return plan_import(source, path)


def load_module(path: str, module_name: str, sys_path: list[str], plan: TopLevelPlan) -> ModuleType:
    """Import the user's file under its dotted name (parents first, so relative imports work)."""
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    package, _, _ = module_name.rpartition(".")
    if package:
        importlib.import_module(package)  # parents first, so relative imports resolve
        if module_name in sys.modules and not plan.definitions_only:
            return sys.modules[module_name]  # the package already imported it
    search = [os.path.dirname(path)] if os.path.basename(path) == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(module_name, path, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        if plan.definitions_only:
            assert plan.tree is not None
            exec(compile(plan.tree, path, "exec"), module.__dict__)  # noqa: S102 - the user's own definitions
        else:
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def find_class(module: ModuleType, qualname: str) -> Any:
    value: Any = module
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def probe_classes(request: dict[str, Any], module: ModuleType, channel: Channel) -> None:
    """Probe each requested class; one `class` event each (after a `class-start`)."""
    from torch import nn

    from torchlint.runtime.probes import ERROR, ClassProber, StepTimeout, short_error

    timeout = float(request["timeout"])
    for item in request["classes"]:
        qualname = item["qualname"]
        channel.emit("class-start", qualname=qualname)
        results: dict[str, list[str]] = {}
        extra: list[dict[str, str]] = []
        not_module = False
        try:
            with step_timeout(timeout, StepTimeout):
                try:
                    cls = find_class(module, qualname)
                except AttributeError:
                    cls = None
                if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                    not_module = cls is not None or not item["findings"]
                    if cls is None:
                        for finding in item["findings"]:
                            results[str(finding["id"])] = [ERROR, f"class {qualname} not found after import"]
                else:
                    prober = ClassProber(cls, vars(module), path_of(request), item.get("construct"),
                                         item.get("inputs"), recipes=item.get("recipes"),
                                         input_recipes=item.get("input_recipes"),
                                         # tests: meta checked only by the kernels, as CUDA is
                                         mix_mode=os.environ.get("TORCHLINT_RUNTIME_META_AS_CUDA") != "1")
                    codes = {f["code"] for f in item["findings"]}
                    prober.run(codes, discover=bool(item.get("discover")))
                    for finding in item["findings"]:
                        status, detail = prober.verdict(finding["code"], finding["anchor"],
                                                        finding["line"], finding["end_line"])
                        results[str(finding["id"])] = [status, detail + notes(prober, finding["code"])]
                    if item.get("discover"):
                        extra = prober.discover()
        except StepTimeout:
            for finding in item["findings"]:
                results.setdefault(str(finding["id"]), [ERROR, f"timed out after {timeout:g} s"])
        except BaseException as exc:  # user code killed the probe itself (e.g. sys.exit in a hook)
            for finding in item["findings"]:
                results.setdefault(str(finding["id"]), [ERROR, short_error(exc)])
        channel.emit("class", qualname=qualname, results=results, extra=extra, not_module=not_module)


def probe_models(request: dict[str, Any], module: ModuleType, channel: Channel) -> None:
    """TL301: build each model the findings call and compare its train and eval outputs."""
    from torchlint.runtime.probes import ERROR, StepTimeout, short_error, train_eval_difference

    timeout = float(request["timeout"])
    for item in request.get("models") or []:
        channel.emit("model-start", id=item["id"])
        try:
            with step_timeout(timeout, StepTimeout):
                status, detail = train_eval_difference(item, vars(module))
        except StepTimeout:
            status, detail = ERROR, f"timed out after {timeout:g} s"
        except BaseException as exc:
            status, detail = ERROR, short_error(exc)
        channel.emit("model", id=item["id"], status=status, detail=detail)


def cuda_hidden() -> bool:
    """Whether this worker was started with CUDA hidden (`CUDA_VISIBLE_DEVICES=""`)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES") == ""


def notes(prober: Any, code: str) -> str:
    """How the instance was built, and for TL403 that the worker could not see CUDA."""
    text = ""
    if prober.built_with:
        text += f"; built with {prober.built_with}"
    if code == "TL403" and cuda_hidden():
        text += "; checked in a worker without CUDA (CUDA_VISIBLE_DEVICES='')"
    return text


def path_of(request: dict[str, Any]) -> str:
    return str(request["path"])


def main(argv: list[str]) -> int:
    request_path, events_path = argv[0], argv[1]
    channel = Channel(events_path)
    channel.emit("started", pid=os.getpid(), cuda_hidden=cuda_hidden())
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    # `-m` put the working directory first on sys.path: the user's paths come from the request
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    warnings.simplefilter("ignore")
    started = time.monotonic()
    import torch

    torch.set_num_threads(1)  # files run in parallel; one thread each avoids oversubscription
    from torchlint.runtime.devices import warm_up
    from torchlint.runtime.probes import DEVICE_CODES, StepTimeout, short_error

    if any(c.get("discover") or any(f["code"] in DEVICE_CODES for f in c["findings"])
           for c in request["classes"]):
        warm_up()

    channel.emit("import-start", torch_seconds=round(time.monotonic() - started, 2))
    loaded_as = ""
    try:
        plan = read_plan(request["path"])
        if plan.definitions_only:
            loaded_as = f"loaded definitions only (the top level runs code, {plan.reason})"
        if request["sys_path"]:
            os.chdir(request["sys_path"][0])  # user code may open files relative to its project
        with step_timeout(float(request["timeout"]), StepTimeout):
            module = load_module(request["path"], request["module"], request["sys_path"], plan)
    except StepTimeout:
        channel.emit("import", ok=False, error=f"timed out after {float(request['timeout']):g} s",
                     loaded_as=loaded_as)
        return 0
    except BaseException as exc:
        channel.emit("import", ok=False, error=short_error(exc), error_type=type(exc).__name__,
                     loaded_as=loaded_as)
        return 0
    channel.emit("import", ok=True, loaded_as=loaded_as)
    probe_models(request, module, channel)
    probe_classes(request, module, channel)
    channel.emit("done")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # skip interpreter shutdown: user atexit handlers and non-daemon threads must not hang us
    os._exit(code)
