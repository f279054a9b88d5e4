"""What the runtime checker needs to know about a file before running it (pure `ast`, no torch).

Two jobs:

* find the class a finding is about (the innermost class whose body spans its line), and
  the classes a file defines (for `--runtime-scope all`);
* decide whether importing the file would run more than definitions (a training script
  without a `__main__` guard) and, if so, build a definitions-only version of it: imports,
  class and function definitions, assignments of constants, `if TYPE_CHECKING` blocks and
  import guards. The filtered tree keeps the original line numbers, so tracebacks, class
  line numbers and `inspect.getsource` still point into the real file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

# Calls that only define or configure, allowed at a module's top level: running them does
# not train, download or print anything.
_SAFE_CALLS = frozenset({
    "TypeVar", "typing.TypeVar", "NewType", "typing.NewType", "namedtuple",
    "collections.namedtuple", "NamedTuple", "typing.NamedTuple", "getLogger", "logging.getLogger",
    "re.compile", "frozenset", "set", "dict", "list", "tuple", "int", "float", "str", "bool",
    "range", "object", "len", "min", "max", "getattr", "hasattr", "isinstance", "type",
    "partial", "functools.partial", "field", "dataclasses.field", "dataclass",
    "dataclasses.dataclass", "os.environ.get", "os.getenv", "os.path.join", "os.path.dirname",
    "os.path.abspath", "os.path.realpath", "os.path.basename", "os.path.expanduser",
    "os.path.exists", "Path", "pathlib.Path", "torch.device", "torch.finfo", "torch.iinfo",
    "torch.cuda.is_available", "torch.backends.mps.is_available", "math.sqrt", "math.log",
    "math.exp", "sys.path.insert", "sys.path.append", "warnings.filterwarnings",
    "warnings.simplefilter", "logging.basicConfig", "torch.manual_seed", "random.seed",
    "torch.set_default_dtype", "torch.set_printoptions", "np.random.seed", "numpy.random.seed",
    "torch.jit.unused", "torch.no_grad", "torch.fx.wrap",
})
# Constructing a torch layer at the top level (`ACT = nn.GELU()`) is cheap and definitional.
_SAFE_CALL_PREFIXES = ("nn.", "torch.nn.", "F.")


@dataclass(frozen=True)
class ClassInfo:
    """A class statement of the file."""

    qualname: str  # `Outer.Inner` for classes nested in classes
    name: str
    line: int  # the `class` keyword's line (decorators are above it)
    col: int  # 1-based column of the `class` keyword
    end_line: int
    in_function: bool  # defined inside a function: cannot be reached by import
    bases: tuple[str, ...]  # base expressions as written
    # parameters of the class's own __init__ without defaults (None: no __init__ in the body)
    required_args: tuple[str, ...] | None = None


@dataclass
class TopLevelPlan:
    """How to import a file: as is, or as a definitions-only version."""

    definitions_only: bool
    reason: str = ""  # the first statement that runs code, e.g. "line 40: train(model)"
    tree: ast.Module | None = None  # the filtered tree when definitions_only
    dropped: list[int] = field(default_factory=list)  # lines of the statements left out


def dotted_name(node: ast.expr) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def list_classes(tree: ast.Module) -> list[ClassInfo]:
    """Every class statement, with its qualified name, in source order."""
    out: list[ClassInfo] = []

    def visit(node: ast.AST, prefix: str, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                qualname = f"{prefix}{child.name}"
                bases = tuple(ast.unparse(b) for b in child.bases)
                out.append(ClassInfo(qualname, child.name, child.lineno, child.col_offset + 1,
                                     child.end_lineno or child.lineno, in_function, bases,
                                     _required_init_args(child)))
                visit(child, qualname + ".", in_function)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = getattr(child, "name", "<lambda>")
                visit(child, f"{prefix}{name}.<locals>.", True)
            else:
                visit(child, prefix, in_function)

    visit(tree, "", False)
    return sorted(out, key=lambda c: (c.line, c.col))


def _required_init_args(node: ast.ClassDef) -> tuple[str, ...] | None:
    """The names `Class()` would be missing, read from the class's own `def __init__`."""
    inits = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    if not inits or inits[-1].decorator_list:
        return None
    args = inits[-1].args
    positional = [*args.posonlyargs, *args.args][1:]  # without self
    with_defaults = len(args.defaults)
    required = positional[:len(positional) - with_defaults] if with_defaults else positional
    required += [a for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return tuple(a.arg for a in required)


def class_at(classes: list[ClassInfo], line: int) -> ClassInfo | None:
    """The innermost class whose statement spans `line`."""
    spanning = [c for c in classes if c.line <= line <= c.end_line]
    return max(spanning, key=lambda c: c.line, default=None)


def class_named(classes: list[ClassInfo], name: str, line: int) -> ClassInfo | None:
    """A class by (qualified or simple) name; the one spanning `line` first, else the first."""
    matching = [c for c in classes if name in (c.qualname, c.name)]
    spanning = [c for c in matching if c.line <= line <= c.end_line]
    if spanning:
        return max(spanning, key=lambda c: c.line)
    return matching[0] if matching else None


def _call_is_safe(call: ast.Call) -> bool:
    name = dotted_name(call.func)
    if name is None:
        # `Path(__file__).resolve().parent`: a method of a safe call's result
        inner = call.func
        while isinstance(inner, ast.Attribute):
            inner = inner.value
        return isinstance(inner, ast.Call) and _call_is_safe(inner)
    return name in _SAFE_CALLS or name.startswith(_SAFE_CALL_PREFIXES)


def _runs_code(node: ast.AST) -> bool:
    """Whether evaluating `node` may call something that is not a known definitional call."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Lambda):
            continue  # a lambda's body does not run when it is defined
        if isinstance(current, ast.Call) and not _call_is_safe(current):
            return True
        if isinstance(current, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            pass  # comprehensions of constants are fine; their calls are checked below
        stack.extend(ast.iter_child_nodes(current))
    return False


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, *test.comparators]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and mains)


def _is_type_checking(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If):
        return False
    name = dotted_name(stmt.test)
    return name is not None and name.split(".")[-1] == "TYPE_CHECKING"


def _bound_names(stmt: ast.stmt) -> set[str]:
    names: set[str] = set()
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                names.add(node.id)
    return names


def _uses(node: ast.AST, names: set[str]) -> bool:
    return bool(names) and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


class _Filter:
    """Keeps the definitional statements of a module body, recording what it drops."""

    def __init__(self, source_lines: list[str]) -> None:
        self.source_lines = source_lines
        self.dropped_lines: list[int] = []
        self.first_reason = ""
        self.dropped_names: set[str] = set()

    def _drop(self, stmt: ast.stmt) -> None:
        self.dropped_lines.append(stmt.lineno)
        self.dropped_names |= _bound_names(stmt)
        if not self.first_reason:
            text = self.source_lines[stmt.lineno - 1].strip() if stmt.lineno <= len(self.source_lines) else ""
            if len(text) > 60:
                text = text[:57] + "..."
            self.first_reason = f"line {stmt.lineno}: {text}"

    def body(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        kept: list[ast.stmt] = []
        for stmt in stmts:
            new = self.statement(stmt)
            if new is not None:
                kept.append(new)
        return kept

    def statement(self, stmt: ast.stmt) -> ast.stmt | None:
        """The statement as kept (possibly with a filtered body), or None when dropped."""
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass, ast.Global, ast.Nonlocal)):
            return stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # decorators, defaults and bases run at definition time: rarely more than naming
            header = [*stmt.decorator_list]
            if isinstance(stmt, ast.ClassDef):
                header += [*stmt.bases, *(k.value for k in stmt.keywords)]
                # a class body runs at import time, but only to define things
            if any(_uses(h, self.dropped_names) for h in header):
                self._drop(stmt)
                return None
            return stmt
        if _is_main_guard(stmt):
            return None  # never runs on import; leaving it out changes nothing
        if _is_type_checking(stmt):
            return stmt
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant):
                return stmt  # docstring, `...`
            if not _runs_code(stmt.value) and not _uses(stmt.value, self.dropped_names):
                return stmt
            self._drop(stmt)
            return None
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete, ast.Assert, ast.Raise)):
            if not _runs_code(stmt) and not _uses(stmt, self.dropped_names):
                return stmt
            self._drop(stmt)
            return None
        if isinstance(stmt, ast.If):
            if _runs_code(stmt.test) or _uses(stmt.test, self.dropped_names):
                self._drop(stmt)
                return None
            stmt.body = self.body(stmt.body) or [_pass(stmt)]
            stmt.orelse = self.body(stmt.orelse)
            return stmt
        if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            stmt.body = self.body(stmt.body) or [_pass(stmt)]  # type: ignore[attr-defined]
            for handler in stmt.handlers:  # type: ignore[attr-defined]
                handler.body = self.body(handler.body) or [_pass(handler)]
            stmt.orelse = self.body(stmt.orelse)  # type: ignore[attr-defined]
            stmt.finalbody = self.body(stmt.finalbody)  # type: ignore[attr-defined]
            return stmt
        # loops, with blocks, match statements: code that does work
        self._drop(stmt)
        return None


def _pass(node: ast.AST) -> ast.Pass:
    return ast.copy_location(ast.Pass(), node)


def plan_import(source: str, path: str = "<file>") -> TopLevelPlan:
    """Whether `source` can be imported as is, or needs a definitions-only version (built here)."""
    tree = ast.parse(source, path)
    checker = _Filter(source.splitlines())
    filtered = checker.body(list(tree.body))
    if not checker.dropped_lines:
        return TopLevelPlan(definitions_only=False)
    module = ast.Module(body=filtered, type_ignores=[])
    ast.fix_missing_locations(module)
    return TopLevelPlan(True, checker.first_reason, module, checker.dropped_lines)
