"""Parse once, walk once, dispatch to every enabled rule, and resolve positions and fixes.

`check_source()` is a function of (source, path, options, index): no global state. The
CLI runs it in worker processes (see `runner.py`); the flake8 plugin calls it directly.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import io
import os
import stat
import sys
import tokenize
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint import precheck as shapes
from torchlint.context import FileContext
from torchlint.diagnostic import Diagnostic, Edit, Fix
from torchlint.positions import Span, compute_spans
from torchlint.project import ProjectIndex, module_name_for, summarize
from torchlint.registry import TL000, all_rules
from torchlint.rule import (
    DeleteLine,
    InsertAfter,
    InsertBefore,
    InsertLineAfter,
    InsertLineBefore,
    PendingFinding,
    PendingFix,
    Replace,
    Rule,
)
from torchlint.suppress import is_suppressed, skip_file
from torchlint.walk import FlatTree, set_current_tree, speed_up_node_checks

speed_up_node_checks()

DEFAULT_MAX_FILE_SIZE = 1_000_000


@dataclass(frozen=True)
class Options:
    """What a check needs to know besides the file (picklable, sent to worker processes)."""

    enabled: frozenset[str]
    honour_noqa: bool = True
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    module_bases: tuple[str, ...] = ()
    torch_version: str | None = None  # the torch the project targets (None: the name table's)


@dataclass
class FileResult:
    """The outcome of checking one file."""

    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # internal errors (a rule crashed)
    source: str | None = None
    encoding: str = "utf-8"
    digest: str = ""  # content hash of the file's bytes (for the cache)
    deps: list[str] = field(default_factory=list)  # index modules the answers depended on


class CannotCheck(Exception):
    """The file cannot be checked; the message becomes a TL000 finding."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


def decode(data: bytes) -> tuple[str, str]:
    """Decode Python source bytes as Python does (BOM, coding cookie, else UTF-8)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        raise CannotCheck(f"cannot decode: {exc}") from None
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise CannotCheck(f"cannot decode as {encoding}: {exc}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
        encoding = "utf-8-sig"
    return text, encoding


def precheck(source: str, path: str) -> None:
    """Refuse, cheaply, input that would crash or stall the native parser (see precheck.py)."""
    try:
        shapes.precheck(source, path)
    except shapes.Refused as exc:
        raise CannotCheck(str(exc), exc.line) from None


_VALIDATE = cst.CSTNode.__post_init__
# Bound as a C method (no Python frame per node): accepts the node, does nothing.
_NO_VALIDATION = object.__sizeof__


def parse(source: str) -> cst.Module:
    """libcst's parse without its per-node validation: every node libcst builds runs
    `_validate()` (about 15% of the parse), which checks invariants the grammar already
    guarantees for parsed code; it exists for trees built by hand. Restored right after."""
    cst.CSTNode.__post_init__ = _NO_VALIDATION  # type: ignore[method-assign,assignment]
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        # CPython's own message is clearer ("'(' was never closed") where it has one
        try:
            ast.parse(source)
        except SyntaxError as py_exc:
            if py_exc.lineno:
                raise CannotCheck(f"cannot parse: {py_exc.msg}", py_exc.lineno, py_exc.offset or 1) from None
        except (RecursionError, MemoryError, ValueError):
            pass
        message = str(exc).split("\n")[0].strip() or "syntax error"
        raise CannotCheck(f"cannot parse: {message}", exc.raw_line, exc.raw_column + 1) from None
    except RecursionError:
        raise CannotCheck("nested too deeply for the parser") from None
    finally:
        cst.CSTNode.__post_init__ = _VALIDATE  # type: ignore[method-assign]


class _Dispatcher:
    """The single traversal: one walk, every enabled rule's hooks called by node type."""

    def __init__(self, rules: list[Rule], ctx: FileContext) -> None:
        self.ctx = ctx
        self.visit: dict[str, list[Any]] = {}
        self.leave: dict[str, list[Any]] = {}
        self.failed: dict[str, str] = {}
        for rule in rules:
            for node_name, methods in type(rule).hooks().items():
                for method in methods:
                    table = self.visit if method.startswith("visit_") else self.leave
                    table.setdefault(node_name, []).append((rule, getattr(rule, method)))

    def _call(self, hooks: list[Any], node: cst.CSTNode) -> None:
        for pair in hooks:
            try:
                pair[1](node)
            except RecursionError:
                raise
            except Exception as exc:  # a rule bug must not cost the other rules or files
                rest = hooks[hooks.index(pair) + 1:]  # this node's other hooks, before the tables change
                self._disable(pair[0], f"{type(exc).__name__}: {exc}")
                self._call(rest, node)
                return

    def _disable(self, rule: Rule, error: str) -> None:
        """A rule that raised is not called again for this file: its hooks leave every table."""
        self.failed[rule.code] = error
        for table in (self.visit, self.leave):
            for hooks in table.values():
                hooks[:] = [pair for pair in hooks if pair[0] is not rule]

    def run(self, tree: FlatTree) -> None:
        """Call visit hooks in pre-order and leave hooks in post-order, on hooked nodes only.

        Most nodes have no hook at all; the typed index of the flat tree gives the hooked
        ones directly, and `ctx.stack` (the ancestors) is derived from parent links only
        when a rule asks for it.
        """
        ctx = self.ctx
        visit, leave = self.visit, self.leave
        call = self._call
        ends = tree.ends
        hooked: list[int] = []
        hooks_at: dict[type, tuple[list[Any], list[Any]]] = {}
        for kind in tree.types():
            pair = (visit.get(kind.__name__, []), leave.get(kind.__name__, []))
            if pair[0] or pair[1]:
                hooks_at[kind] = pair
                hooked.extend(tree.positions_of(kind))
        hooked.sort()
        nodes = tree.nodes
        open_leaves: list[int] = []  # positions whose leave hooks are due, innermost last
        for position in hooked:
            while open_leaves and ends[open_leaves[-1]] <= position:
                done = open_leaves.pop()
                ctx.set_position(done)
                call(hooks_at[type(nodes[done])][1], nodes[done])
            node = nodes[position]
            on_visit, on_leave = hooks_at[type(node)]
            if on_visit:
                ctx.set_position(position)
                call(on_visit, node)
            if on_leave:
                open_leaves.append(position)
        while open_leaves:
            done = open_leaves.pop()
            ctx.set_position(done)
            call(hooks_at[type(nodes[done])][1], nodes[done])


def _line_bounds(source: str, offset: int) -> tuple[int, int]:
    """(start of line, end of line before its newline) around an offset."""
    start = source.rfind("\n", 0, offset) + 1
    end = source.find("\n", offset)
    if end == -1:
        end = len(source)
    if end > start and source[end - 1] == "\r":
        end -= 1
    return start, end


def _resolve_fix(fix: PendingFix, spans: dict[int, Span], source: str, newline: str) -> Fix | None:
    edits: list[Edit] = []
    for op in fix.ops:
        span = spans.get(id(op.node))
        if span is None:
            return None
        if isinstance(op, Replace):
            edits.append(Edit(span.start, span.end, op.text))
        elif isinstance(op, InsertBefore):
            edits.append(Edit(span.start, span.start, op.text))
        elif isinstance(op, InsertAfter):
            edits.append(Edit(span.end, span.end, op.text))
        elif isinstance(op, InsertLineBefore):
            line_start, _ = _line_bounds(source, span.start)
            indent = source[line_start:span.start]
            if indent.strip():
                return None
            edits.append(Edit(span.start, span.start, op.text + newline + indent))
        elif isinstance(op, InsertLineAfter):
            line_start, line_end = _line_bounds(source, span.start)
            indent = source[line_start:span.start]
            _, end_line_end = _line_bounds(source, span.end)
            if indent.strip():
                return None
            edits.append(Edit(end_line_end, end_line_end, newline + indent + op.text))
        elif isinstance(op, DeleteLine):
            line_start, _ = _line_bounds(source, span.start)
            _, line_end = _line_bounds(source, span.end)
            if source[line_start:span.start].strip() or source[span.end:line_end].strip(" \t;"):
                return None
            after = line_end
            if source.startswith("\r\n", after):
                after += 2
            elif source.startswith("\n", after):
                after += 1
            edits.append(Edit(line_start, after, ""))
    edits.sort(key=lambda e: (e.start, e.end))
    for a, b in zip(edits, edits[1:]):
        if b.start < a.end:
            return None
    return Fix(fix.applicability, tuple(edits), fix.description)


def resolve(pending: list[PendingFinding], module: cst.Module, source: str, path: str) -> list[Diagnostic]:
    """Turn node-anchored findings into positioned diagnostics (one codegen pass)."""
    nodes: list[cst.CSTNode] = []
    for finding in pending:
        nodes.append(finding.anchor)
        if finding.fix is not None:
            nodes.extend(op.node for op in finding.fix.ops)
    spans = compute_spans(module, nodes)
    out = []
    for finding in pending:
        span = spans.get(id(finding.anchor))
        if span is None:
            span = Span(1, 1, 1, 1, 0, 0)
        fix = None
        if finding.fix is not None:
            fix = _resolve_fix(finding.fix, spans, source, module.default_newline)
        out.append(Diagnostic(path, span.line, span.col, span.end_line, span.end_col, finding.code,
                              finding.name, finding.message, fix, context=finding.context))
    return out


def cannot_check(path: str, exc: CannotCheck) -> Diagnostic:
    return Diagnostic(path, exc.line, exc.col, exc.line, exc.col, TL000[0], TL000[1], str(exc))


def rule_classes(enabled: frozenset[str]) -> list[type[Rule]]:
    return [r for r in all_rules() if r.code in enabled]


def check_source(source: str, path: str, options: Options, index: ProjectIndex | None = None,
                 module_name: str | None = None, is_package: bool | None = None) -> FileResult:
    """Check one file's decoded source. Never raises for bad input: it becomes TL000.

    The cyclic garbage collector is paused for the check: a parse allocates hundreds of
    thousands of nodes, which set off collections that find nothing (a tree holds no cycles)
    and cost about 8% of the run. What a check leaves behind is collected after it."""
    if not gc.isenabled():
        return _check_source(source, path, options, index, module_name, is_package)
    gc.disable()
    try:
        return _check_source(source, path, options, index, module_name, is_package)
    finally:
        gc.enable()


def _check_source(source: str, path: str, options: Options, index: ProjectIndex | None,
                  module_name: str | None, is_package: bool | None) -> FileResult:
    _raise_recursion_limit()  # what the precheck lets through must also be walked (flake8 too)
    result = FileResult(path, source=source)
    if skip_file(source):
        return result
    if module_name is None:
        module_name = module_name_for(path)
    if is_package is None:
        is_package = path.endswith("__init__.py")
    try:
        precheck(source, path)
        module = parse(source)
    except CannotCheck as exc:
        if "TL000" in options.enabled:
            result.diagnostics.append(cannot_check(path, exc))
        return result
    if index is None:
        # flake8 mode and single-source checks: the index is this file plus configured bases
        index = ProjectIndex(module_bases=options.module_bases)
        index.add(summarize(source, module_name, is_package))
    index.touched = set()
    try:
        _run_rules(result, module, source, path, module_name, is_package, options, index)
    finally:
        result.deps = sorted(index.touched - {module_name})
    return result


def _run_rules(result: FileResult, module: cst.Module, source: str, path: str, module_name: str,
               is_package: bool, options: Options, index: ProjectIndex) -> None:
    ctx = FileContext(path, source, module, module_name, index, is_package,
                      {"torch_version": options.torch_version} if options.torch_version else None)
    rules = [cls(ctx) for cls in rule_classes(options.enabled)]
    dispatcher = _Dispatcher(rules, ctx)
    try:
        tree = FlatTree(module)
        set_current_tree(tree)
        ctx.tree = tree
        dispatcher.run(tree)
    except RecursionError:
        if "TL000" in options.enabled:
            result.diagnostics.append(cannot_check(path, CannotCheck("nested too deeply to check")))
        return
    finally:
        set_current_tree(None)
    for code, error in dispatcher.failed.items():
        result.errors.append(f"{path}: internal error in rule {code}: {error}")
    pending = [f for f in ctx.findings if f.code not in dispatcher.failed]
    if not pending:
        return
    try:
        diagnostics = resolve(pending, module, source, path)
    except RecursionError:
        result.errors.append(f"{path}: nested too deeply to compute positions")
        return
    if options.honour_noqa:
        lines = source.splitlines()
        diagnostics = [
            d for d in diagnostics
            if not (0 < d.line <= len(lines) and is_suppressed(lines[d.line - 1], d.code))
        ]
    # one finding per (code, position): two paths to the same fact report it once
    unique: dict[tuple[str, int, int], Diagnostic] = {}
    for d in diagnostics:
        unique.setdefault((d.code, d.line, d.col), d)
    result.diagnostics = sorted(unique.values(), key=Diagnostic.sort_key)


def check_file(path: str, options: Options, index: ProjectIndex | None = None,
               module_name: str | None = None) -> FileResult:
    """Read, decode and check one file; unreadable and undecodable files are TL000."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            result = FileResult(path)
            result.diagnostics.append(cannot_check(path, CannotCheck("cannot read: not a regular file")))
            return result
        # a notebook's JSON is mostly outputs (embedded images): max-file-size applies to
        # the code of its cells (checked in check_notebook), the JSON only has a hard cap
        limit = notebook_json_limit(options.max_file_size) if path.endswith(".ipynb") else options.max_file_size
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        result = FileResult(path)
        result.diagnostics.append(cannot_check(path, CannotCheck(f"cannot read: {exc.strerror or exc}")))
        return result
    if len(data) > limit:
        result = FileResult(path)
        result.diagnostics.append(cannot_check(
            path, CannotCheck(f"file is larger than max-file-size ({limit:,} bytes); not checked")))
        return result
    try:
        source, encoding = decode(data)
    except CannotCheck as exc:
        result = FileResult(path)
        result.diagnostics.append(cannot_check(path, exc))
        return result
    if path.endswith(".ipynb"):
        result = check_notebook(source, path, options, index, module_name)
        result.digest = content_digest(data)
        return result
    result = check_source(source, path, options, index, module_name)
    result.encoding = encoding
    result.digest = content_digest(data)
    return result


def notebook_json_limit(max_file_size: int) -> int:
    """How much notebook JSON is read at most: far more than the code it may hold."""
    return max(max_file_size * 64, 256 * 1024 * 1024)


def notebook_code_too_large(joined: Any, max_file_size: int) -> bool:
    """Whether the code taken from a notebook's cells is over max-file-size."""
    return len(joined.source.encode("utf-8", "surrogatepass")) > max_file_size


def notebook_source(text: str, path: str) -> Any:
    """The code cells of a notebook joined into one source (TL000 when it is not readable)."""
    from torchlint import notebook

    try:
        return notebook.extract(text)
    except notebook.NotebookError as exc:
        raise CannotCheck(f"cannot read notebook: {exc}") from None


def to_cells(diagnostics: list[Diagnostic], joined: Any) -> list[Diagnostic]:
    """Positions in the joined source -> (cell, line in cell); the cell goes into context."""
    from dataclasses import replace

    from torchlint import notebook

    out = []
    for d in diagnostics:
        cell, line = notebook.locate(joined, d.line)
        end_cell, end_line = notebook.locate(joined, d.end_line)
        if end_cell != cell:
            end_line = line
        context = dict(d.context or {})
        context["cell"] = cell
        context["cell_line"] = line
        out.append(replace(d, line=line, end_line=end_line, context=context))
    return out


def check_notebook(text: str, path: str, options: Options, index: ProjectIndex | None,
                   module_name: str | None = None) -> FileResult:
    """Check the code cells of a notebook as one program; positions are per cell."""
    try:
        joined = notebook_source(text, path)
    except CannotCheck as exc:
        result = FileResult(path, source=None)
        result.diagnostics.append(cannot_check(path, exc))
        return result
    if notebook_code_too_large(joined, options.max_file_size):
        result = FileResult(path, source=None)
        result.diagnostics.append(cannot_check(path, CannotCheck(
            f"the code of the notebook's cells is larger than max-file-size ({options.max_file_size:,} bytes); "
            "not checked")))
        return result
    result = check_source(joined.source, path, options, index, module_name, False)
    result.diagnostics = to_cells(result.diagnostics, joined)
    result.source = text
    return result


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _raise_recursion_limit() -> None:
    """Room for the deepest trees the precheck accepts (libcst's codegen recurses)."""
    if sys.getrecursionlimit() < 6000:
        sys.setrecursionlimit(6000)
