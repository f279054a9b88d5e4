"""Helpers of TL403 and TL405 (no rules here): GPU queries, early-exit guards, and the
structural identity of checkpoint paths.

Everything works on the node in front of it and the flat tree of the file (for parents and
source order); nothing walks the whole file more than once per question and rule instance.
"""

from __future__ import annotations

import re

import libcst as cst

from torchlint.context import dotted_name, keyword_arg, positional_args

# torch.cuda functions that take a device only to ask about it (or about its memory).
CUDA_QUERIES = frozenset({
    "get_device_properties", "get_device_capability", "get_device_name", "mem_get_info",
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
    "memory_cached", "max_memory_cached", "memory_stats", "memory_stats_as_nested_dict",
    "memory_summary", "memory_snapshot", "reset_peak_memory_stats", "reset_max_memory_allocated",
    "reset_max_memory_cached", "reset_accumulated_memory_stats", "list_gpu_processes",
    "utilization", "temperature", "power_draw", "clock_rate", "synchronize", "can_device_access_peer",
})


def is_cuda_query(ctx, call: cst.CSTNode) -> bool:
    """`torch.cuda.get_device_properties(...)`, `torch.cuda.memory.mem_get_info(...)`, ..."""
    if not isinstance(call, cst.Call):
        return False
    name = ctx.qualname(call.func) or ""
    return name.startswith("torch.cuda.") and name.rsplit(".", 1)[-1] in CUDA_QUERIES


def parent_of(ctx, node: cst.CSTNode) -> cst.CSTNode | None:
    """The parent of a node, from the flat tree of the file (None outside a check)."""
    tree = ctx.tree
    return None if tree is None else tree.parent_of(node)


def source_position(ctx, node: cst.CSTNode) -> int | None:
    """The pre-order position of a node (source order), or None outside a check."""
    tree = ctx.tree
    return None if tree is None else tree.index.get(id(node))


def ancestors_of(ctx, node: cst.CSTNode) -> list[cst.CSTNode]:
    tree = ctx.tree
    if tree is None:
        return []
    position = tree.index.get(id(node))
    return [] if position is None else tree.ancestors(position)


_EXITS = (cst.Return, cst.Raise, cst.Continue, cst.Break)


def _ends_in_exit(ctx, block: cst.BaseSuite) -> bool:
    body = block.body
    if not body:
        return False
    last = body[-1]
    if isinstance(last, cst.SimpleStatementLine):
        small = last.body[-1] if last.body else None
    elif isinstance(block, cst.SimpleStatementSuite):
        small = last
    else:
        return False
    if isinstance(small, _EXITS):
        return True
    # sys.exit(...) / exit(...)
    return (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)
            and (ctx.qualname(small.value.func) in ("sys.exit", "exit", "quit", "os._exit")
                 or dotted_name(small.value.func) in ("exit", "quit")))


def early_exit_guarded(ctx, chain: list[cst.CSTNode], is_guard) -> bool:
    """Whether the last node of `chain` (ancestors, outermost first, then the node) comes after
    an `if <guard>: return/raise/continue/break` or an `assert <guard>` in its function: code
    that only runs once the guard has passed, as if it were inside the `if`."""
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i - 1], chain[i]
        if isinstance(parent, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        if not isinstance(parent, (cst.IndentedBlock, cst.Module)):
            continue
        for stmt in parent.body:
            if stmt is child:
                break
            if isinstance(stmt, cst.If) and stmt.orelse is None and is_guard(stmt.test) \
                    and _ends_in_exit(ctx, stmt.body):
                return True
            if isinstance(stmt, cst.SimpleStatementLine) and any(
                    isinstance(s, cst.Assert) and is_guard(s.test) for s in stmt.body):
                return True
    return False


# --- checkpoint paths (TL405) -------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_TO_PATH = ("str", "builtins.str", "os.fspath", "pathlib.Path", "Path", "pathlib.PurePath", "os.path.abspath",
            "os.path.expanduser", "os.path.normpath")


def _strip_path_wrappers(ctx, expr: cst.BaseExpression) -> cst.BaseExpression:
    """`str(p)`, `os.fspath(p)`, `Path(p)`, `p.as_posix()`, `p.name` of a file handle -> `p`."""
    while True:
        if isinstance(expr, cst.Call):
            args = positional_args(expr)
            if len(args) == 1 and len(expr.args) == 1 and (
                    (ctx.qualname(expr.func) or dotted_name(expr.func)) in _TO_PATH):
                expr = args[0].value
                continue
            if not expr.args and isinstance(expr.func, cst.Attribute) and \
                    expr.func.attr.value in ("as_posix", "resolve", "absolute", "expanduser"):
                expr = expr.func.value
                continue
        if isinstance(expr, cst.Attribute) and expr.attr.value == "name" and isinstance(expr.value, cst.Name):
            expr = expr.value  # a NamedTemporaryFile handle and its .name
            continue
        return expr


def join_parts(ctx, expr: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    """The parts of `os.path.join(a, b)`, `a / b`, `"/".join([a, b])`, else None."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Divide):
        left = join_parts(ctx, expr.left) or [expr.left]
        return [*left, expr.right]
    if isinstance(expr, cst.Call):
        name = ctx.qualname(expr.func) or dotted_name(expr.func) or ""
        if name in ("os.path.join", "posixpath.join", "ntpath.join") and expr.args and \
                all(a.keyword is None and not a.star for a in expr.args):
            return [a.value for a in expr.args]
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("joinpath",) and \
                all(a.keyword is None and not a.star for a in expr.args):
            return [expr.func.value, *(a.value for a in expr.args)]
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "join" and \
                isinstance(expr.func.value, cst.SimpleString) and len(expr.args) == 1 and \
                isinstance(expr.args[0].value, (cst.List, cst.Tuple)):
            return [e.value for e in expr.args[0].value.elements if not isinstance(e, cst.StarredElement)]
    return None


def path_key(ctx, expr: cst.BaseExpression) -> object:
    """A structural key of a path expression: equal keys name the same file in one run.
    `os.path.join(d, "m.pt")` and `d / "m.pt"` share a key; so do `p`, `str(p)`,
    `os.fspath(p)` and `p.as_posix()`; f-strings and `%`/`.format` by their pieces."""
    expr = _strip_path_wrappers(ctx, expr)
    parts = join_parts(ctx, expr)
    if parts is not None:
        return ("join", *(path_key(ctx, p) for p in parts))
    if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString)):
        value = expr.evaluated_value
        if isinstance(value, str):
            return ("str", value)
    if isinstance(expr, cst.FormattedString):
        pieces: list[object] = []
        for part in expr.parts:
            if isinstance(part, cst.FormattedStringText):
                pieces.append(part.value)
            elif isinstance(part, cst.FormattedStringExpression):
                pieces.append(path_key(ctx, part.expression))
        return ("f", *pieces)
    return ("code", _SPACE.sub("", ctx.code_for(expr)))


def leading_part(ctx, expr: cst.BaseExpression) -> cst.BaseExpression | None:
    """The directory-like first piece of a built path: `d` of `os.path.join(d, ...)`,
    `d / ...`, `"/".join([d, ...])`, `f"{d}/..."`, `d + "..."`."""
    expr = _strip_path_wrappers(ctx, expr)
    parts = join_parts(ctx, expr)
    if parts:
        return parts[0]
    if isinstance(expr, cst.FormattedString) and expr.parts and \
            isinstance(expr.parts[0], cst.FormattedStringExpression):
        return expr.parts[0].expression
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
        return leading_part(ctx, expr.left) or expr.left
    return None


def literal_text(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString)):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None


def call_path_args(call: cst.Call) -> list[cst.BaseExpression]:
    """Every argument of a call that may name where it writes (positional and keyword)."""
    return [a.value for a in call.args if not a.star]


def saved_path(call: cst.Call) -> cst.BaseExpression | None:
    """The file argument of `torch.save(obj, f)`."""
    args = positional_args(call)
    if len(args) >= 2:
        return args[1].value
    arg = keyword_arg(call, "f")
    return arg.value if arg is not None else None
