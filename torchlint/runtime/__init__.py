"""The runtime checker: import the flagged files, build their Modules with torch, confirm findings.

This package's `__init__` must stay importable without torch (the CLI imports it to say how
to install torch); torch is imported only by `torchlint.runtime.worker` subprocesses.

    confirm(diagnostics, paths=[...]) -> diagnostics with `runtime={"status", "detail"}`

Statuses: "confirmed" (the bug happened: `detail` is the evidence), "not-reproduced" (the
check ran and showed nothing), "skipped" (could not check: `detail` says why), "error"
(the user's code failed to import, raised, crashed or timed out).
"""

from __future__ import annotations

import importlib.util

from torchlint.diagnostic import Diagnostic

INSTALL_HINT = "the runtime checker needs torch: pip install 'torchlint[runtime]'"

STATUSES = ("confirmed", "not-reproduced", "skipped", "error")


def runtime_available() -> bool:
    """Whether torch can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def confirm(diagnostics: list[Diagnostic], *, paths: list[str], scope: str = "flagged",
            timeout: float = 60.0, construct: dict[str, str] | None = None,
            inputs: dict[str, str] | None = None, jobs: int = 2, progress: bool = False,
            project_root: str | None = None) -> list[Diagnostic]:
    """Check the findings about Module classes by running the code.

    Returns the diagnostics in the given order, each finding about a Module class with
    `runtime={"status": ..., "detail": ...}` (others unchanged, `runtime` None). With
    `scope == "all"`, new diagnostics follow: problems found only at runtime in the Module
    classes of `paths` that have no static finding, each with
    `runtime={"status": "confirmed", "detail": ..., "found_by": "runtime"}`.

    `timeout` applies to each step (importing a file, checking one class); `construct` and
    `inputs` map `Class` or `package.module:Class` to a Python expression evaluated in the
    class's module; `jobs` files are checked in parallel; `progress` draws a progress line
    on stderr. Never raises for anything the user's code does.
    """
    from torchlint.runtime.runner import run

    return run(diagnostics, paths=paths, scope=scope, timeout=timeout, construct=construct,
               inputs=inputs, jobs=jobs, progress=progress, project_root=project_root)


__all__ = ["INSTALL_HINT", "STATUSES", "confirm", "runtime_available"]
