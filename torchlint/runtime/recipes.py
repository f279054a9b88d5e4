"""How the project itself builds a Module and calls it (pure `ast`, no torch; parent side).

For a class that needs constructor arguments the runtime checker looks, in order, for

* a zero-argument factory function that returns an instance (`def resnet18(): return
  ResNet(BasicBlock, [2, 2, 2, 2])`), in the class's file, then in the project files that
  import the class;
* a call of the class with literal or module-constant arguments (`Net(10, 5)`,
  `Net(num_classes=NUM_CLASSES)`), anywhere in those files: functions, tests and
  `if __name__ == "__main__":` blocks included;

and for forward inputs, the project's own calls of an instance with tensors from torch
factories (`net = resnet18(); y = net(torch.randn(2, 3, 32, 32))`).

Module constants are inlined as their literal values, so an expression found in another
file can be evaluated in the class's own module. The worker evaluates the recipes in order
and uses the first that builds the Module.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

MAX_RECIPES = 4  # of each kind, per class
MAX_PROJECT_FILES = 3000
MAX_FILE_BYTES = 1_000_000
_TENSOR_FACTORIES = frozenset({"randn", "rand", "zeros", "ones", "randint", "empty", "full", "arange",
                               "tensor", "randperm", "eye", "linspace", "rand_like", "randn_like"})


@dataclass(frozen=True)
class Recipe:
    """One way to build the class (kind "factory" or "call") or to feed it (kind "inputs")."""

    kind: str
    code: str  # "call"/"inputs": an expression; "factory": the function's source
    name: str  # "factory": the function's name; else ""
    where: str  # "file.py:12", for the detail

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "code": self.code, "name": self.name, "where": self.where}


@dataclass
class _Scan:
    """What one project file offers: its constants, imports, functions and calls."""

    path: str
    module: str
    tree: ast.Module
    constants: dict[str, ast.expr] = field(default_factory=dict)  # literal top-level values
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local -> (module, attr)
    definitions: set[str] = field(default_factory=set)  # top-level def/class/import names


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _top_statements(tree: ast.Module) -> list[ast.stmt]:
    """Top-level statements, with the bodies of `if` blocks (the `__main__` guard) flattened."""
    out: list[ast.stmt] = []
    stack = list(reversed(tree.body))
    while stack:
        stmt = stack.pop()
        out.append(stmt)
        if isinstance(stmt, ast.If):
            stack.extend(reversed(stmt.body + stmt.orelse))
    return out


def scan_file(path: str, module: str, text: str | None = None) -> _Scan | None:
    try:
        if text is None:
            if os.path.getsize(path) > MAX_FILE_BYTES:
                return None
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8-sig")
        tree = ast.parse(text, path)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    scan = _Scan(path, module, tree)
    is_package = path.endswith("__init__.py")
    for stmt in _top_statements(tree):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            if _is_literal(stmt.value):
                scan.constants[stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            if _is_literal(stmt.value):
                scan.constants[stmt.target.id] = stmt.value
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scan.definitions.add(stmt.name)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                local = alias.asname or alias.name.split(".")[0]
                scan.imports[local] = (alias.name if alias.asname else alias.name.split(".")[0], None)
                scan.definitions.add(local)
        elif isinstance(stmt, ast.ImportFrom):
            source = _resolve_relative(module, is_package, stmt.level, stmt.module)
            for alias in stmt.names:
                local = alias.asname or alias.name
                scan.imports[local] = (source, alias.name)
                scan.definitions.add(local)
    return scan


class _Inline(ast.NodeTransformer):
    """Module constants replaced by their literal values."""

    def __init__(self, constants: dict[str, ast.expr]) -> None:
        self.constants = constants

    def visit_Name(self, node: ast.Name) -> ast.expr:
        value = self.constants.get(node.id)
        return ast.copy_location(value, node) if value is not None and isinstance(node.ctx, ast.Load) else node


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return list(reversed(parts))
    return None


class _Target:
    """Recognises references to one class (or its factories) in one scanned file."""

    def __init__(self, scan: _Scan, class_module: str, class_name: str, same_file: bool) -> None:
        self.scan = scan
        self.same_file = same_file
        self.names: set[str] = set()  # local names bound to the class
        self.module_aliases: set[str] = set()  # local names bound to the class's module
        if same_file:
            self.names.add(class_name)
        for local, (module, attr) in scan.imports.items():
            if attr is None and module == class_module:
                self.module_aliases.add(local)
            elif attr == class_name and module == class_module:
                self.names.add(local)
            elif attr is None and class_module.startswith(module + "."):
                # `import pkg` then `pkg.models.Net(...)`
                self.module_aliases.add(local + class_module[len(module):])

    def useful(self) -> bool:
        return bool(self.names or self.module_aliases)

    def refers(self, func: ast.expr, class_name: str) -> bool:
        parts = _dotted(func)
        if parts is None:
            return False
        if len(parts) == 1:
            return parts[0] in self.names
        return parts[-1] == class_name and ".".join(parts[:-1]) in self.module_aliases


def _simple(node: ast.expr, scan: _Scan, allow_names: bool) -> bool:
    """Whether an argument only uses literals, module constants and module-level names."""
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom,
                            ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Starred)):
            return False
        if isinstance(sub, ast.Name):
            if sub.id in scan.constants:
                continue
            if not allow_names or sub.id not in scan.definitions:
                return False
    return True


def _call_expression(call: ast.Call, scan: _Scan, func_text: str) -> str | None:
    """`Class(args)` with constants inlined, or None when an argument is not simple."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    values = [*call.args, *(k.value for k in call.keywords)]
    if not all(_simple(v, scan, allow_names=True) for v in values):
        return None
    inline = _Inline(scan.constants)
    args = [ast.unparse(inline.visit(_copy(a))) for a in call.args]
    args += [f"{k.arg}={ast.unparse(inline.visit(_copy(k.value)))}" for k in call.keywords]
    return f"{func_text}({', '.join(args)})"


def _copy(node: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(node), mode="eval").body


def _factories(scan: _Scan, target: _Target, class_name: str) -> list[tuple[ast.FunctionDef, int]]:
    """Top-level zero-argument functions that return an instance of the class."""
    found = []
    for stmt in scan.tree.body:
        if not isinstance(stmt, ast.FunctionDef) or stmt.decorator_list:
            continue
        args = stmt.args
        positional = [*args.posonlyargs, *args.args]
        if len(positional) > len(args.defaults) or any(d is None for d in args.kw_defaults):
            continue
        for node in ast.walk(stmt):
            if (isinstance(node, ast.Return) and isinstance(node.value, ast.Call)
                    and target.refers(node.value.func, class_name)):
                found.append((stmt, stmt.lineno))
                break
    return found


def _is_tensor_factory(node: ast.expr, scan: _Scan) -> bool:
    if not isinstance(node, ast.Call):
        return False
    parts = _dotted(node.func)
    if not parts or len(parts) != 2 or parts[1] not in _TENSOR_FACTORIES:
        return False
    module = scan.imports.get(parts[0])
    if module is None or module[0] != "torch" or module[1] is not None:
        return False
    values = [*node.args, *(k.value for k in node.keywords)]
    return all(_simple(v, scan, allow_names=False) or _dotted(v) in (["torch", "long"], ["torch", "float"],
                                                                    ["torch", "bool"], ["torch", "int64"])
               for v in values) and not any(k.arg is None for k in node.keywords)


class _Scope(ast.NodeVisitor):
    """Within one function (or the module level): which names hold an instance, and calls."""

    def __init__(self, scan: _Scan, target: _Target, class_name: str, factories: set[str]) -> None:
        self.scan = scan
        self.target = target
        self.class_name = class_name
        self.factories = factories
        self.instances: set[str] = set()
        self.calls: list[tuple[ast.Call, str]] = []  # (class call, as written)
        self.inputs: list[tuple[str, int]] = []

    def _makes_instance(self, node: ast.expr) -> bool:
        if not isinstance(node, ast.Call):
            return False
        if self.target.refers(node.func, self.class_name):
            return True
        parts = _dotted(node.func)
        return parts is not None and len(parts) == 1 and parts[0] in self.factories

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass  # a nested scope: visited on its own

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        pass

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if self._makes_instance(node.value):
                self.instances.add(name)
                # `.to(device)` / `.eval()` chains are method calls on the instance, not new ones
            else:
                self.instances.discard(name)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if self.target.refers(node.func, self.class_name):
            self.calls.append((node, ast.unparse(node.func)))
        callee = node.func
        if isinstance(callee, ast.Attribute) and callee.attr == "forward":
            callee = callee.value
        is_instance = (isinstance(callee, ast.Name) and callee.id in self.instances) or self._makes_instance(callee)
        if is_instance and node.args and not node.keywords and all(_is_tensor_factory(a, self.scan) for a in node.args):
            inline = _Inline(self.scan.constants)
            args = ", ".join(ast.unparse(inline.visit(_copy(a))) for a in node.args)
            self.inputs.append((f"({args},)", node.lineno))


def _scopes(tree: ast.Module) -> list[list[ast.stmt]]:
    bodies: list[list[ast.stmt]] = [tree.body]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bodies.append(node.body)
    return bodies


def recipes_in(scan: _Scan, class_module: str, class_name: str, same_file: bool,
               rel: str) -> tuple[list[Recipe], list[Recipe], list[Recipe]]:
    """(factories, calls, inputs) that one file offers for the class."""
    target = _Target(scan, class_module, class_name, same_file)
    if not target.useful():
        return [], [], []
    factories: list[Recipe] = []
    names = set()
    for func, line in _factories(scan, target, class_name):
        names.add(func.name)
        inline = _Inline(scan.constants)
        source = ast.unparse(inline.visit(ast.parse(ast.unparse(func)).body[0]))
        factories.append(Recipe("factory", source, func.name, f"{rel}:{line}"))
    calls: list[Recipe] = []
    inputs: list[Recipe] = []
    for body in _scopes(scan.tree):
        scope = _Scope(scan, target, class_name, names)
        for stmt in body:
            scope.visit(stmt)
        for call, func_text in scope.calls:
            expression = _call_expression(call, scan, func_text if same_file else class_name)
            if expression is not None:
                calls.append(Recipe("call", expression, "", f"{rel}:{call.lineno}"))
        inputs += [Recipe("inputs", code, "", f"{rel}:{line}") for code, line in scope.inputs]
    return factories, calls, inputs


def _dedupe(recipes: list[Recipe]) -> list[Recipe]:
    seen: set[str] = set()
    out = []
    for recipe in recipes:
        if recipe.code not in seen:
            seen.add(recipe.code)
            out.append(recipe)
    return out[:MAX_RECIPES]


@dataclass
class RecipeBook:
    """Recipes for the classes of a run; project files are scanned once, lazily."""

    project_files: list[tuple[str, str]]  # (path, module)
    root: str
    _scans: dict[str, _Scan | None] = field(default_factory=dict)
    _texts: dict[str, str] = field(default_factory=dict)

    def _scan(self, path: str, module: str) -> _Scan | None:
        if path not in self._scans:
            self._scans[path] = scan_file(path, module)
        return self._scans[path]

    def _mentions(self, path: str, word: str) -> bool:
        if path not in self._texts:
            try:
                if os.path.getsize(path) > MAX_FILE_BYTES:
                    self._texts[path] = ""
                else:
                    with open(path, "rb") as handle:
                        self._texts[path] = handle.read().decode("utf-8-sig", errors="replace")
            except OSError:
                self._texts[path] = ""
        return word in self._texts[path]

    def find(self, class_path: str, class_module: str, class_name: str) -> tuple[list[Recipe], list[Recipe], list[Recipe]]:
        """(factories, calls, inputs) for a top-level class, its own file first."""
        factories: list[Recipe] = []
        calls: list[Recipe] = []
        inputs: list[Recipe] = []
        own = os.path.abspath(class_path)
        files = [(own, class_module)] + [(p, m) for p, m in self.project_files[:MAX_PROJECT_FILES]
                                         if os.path.abspath(p) != own]
        for path, module in files:
            if not self._mentions(path, class_name):
                continue
            scan = self._scan(path, module)
            if scan is None:
                continue
            rel = os.path.relpath(path, self.root) if self.root else os.path.basename(path)
            if rel.startswith(".."):
                rel = os.path.basename(path)
            f, c, i = recipes_in(scan, class_module, class_name, os.path.abspath(path) == own, rel)
            factories += f
            calls += c
            inputs += i
        return _dedupe(factories), _dedupe(calls), _dedupe(inputs)





def _enclosing(tree: ast.Module, line: int) -> tuple[ast.AST, list[ast.stmt]]:
    """The innermost function spanning `line` (or the module) and its body."""
    best: ast.AST = tree
    body = tree.body
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= (node.end_lineno or 0):
            if best is tree or node.lineno >= getattr(best, "lineno", 0):
                best, body = node, node.body
    return best, body


def _span(scope: ast.AST, body: list[ast.stmt], line: int) -> list[ast.AST]:
    """What the finding covers: the `with` block at `line`, the function whose `def` is
    there, else the statements that start at `line`."""
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) and scope.lineno == line:
        return list(scope.body)
    for node in ast.walk(scope):
        if isinstance(node, (ast.With, ast.AsyncWith)) and node.lineno == line:
            return list(node.body)
    return [n for n in ast.walk(scope) if isinstance(n, ast.stmt) and n.lineno == line
            and not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def model_recipe(scan: _Scan, line: int, rel: str) -> tuple[Recipe | None, Recipe | None, str]:
    """How to build the model a TL301 finding is about, and an input the code gives it.

    Returns (model, inputs, why-not): the model is the first called name in the finding's
    span that the enclosing scope (or the module) assigned from a call of literals and
    module-level names before the finding (`model = Net()`, `q_net = QNet()`)."""
    scope, body = _enclosing(scan.tree, line)
    called: list[tuple[str, ast.Call]] = []
    for node in _span(scope, body, line):
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                func = sub.func
                if isinstance(func, ast.Attribute) and func.attr == "forward":
                    func = func.value
                if isinstance(func, ast.Name):
                    called.append((func.id, sub))
    if not called:
        return None, None, "no model call found in the finding's code"
    statements = _flat(scan.tree.body) + ([] if scope is scan.tree else _flat(body))

    def assigned(name: str, before: int) -> ast.Call | None:
        found = None
        for stmt in statements:
            if (stmt.lineno < before and isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == name):
                found = stmt.value if isinstance(stmt.value, ast.Call) else None
        return found

    parameters = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parameters = {a.arg for a in [*scope.args.posonlyargs, *scope.args.args, *scope.args.kwonlyargs]}
    for name, call in called:
        value = assigned(name, call.lineno)
        if value is None:
            continue
        expression = _call_expression(value, scan, ast.unparse(value.func))
        if expression is None or not _simple(value.func, scan, allow_names=True):
            return None, None, f"{name} is built from values known only when the code runs"
        inputs = None
        if call.args and not call.keywords and all(_is_tensor_factory(a, scan) for a in call.args):
            inline = _Inline(scan.constants)
            text = ", ".join(ast.unparse(inline.visit(_copy(a))) for a in call.args)
            inputs = Recipe("inputs", f"({text},)", "", f"{rel}:{call.lineno}")
        return Recipe("model", expression, name, f"{rel}:{value.lineno}"), inputs, ""
    names = [n for n, _ in called if n in parameters]
    if names:
        return None, None, f"the model ({names[0]}) is a parameter: its caller decides how it is built"
    return None, None, "cannot tell how the model is built"


def _flat(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """Statements of a block with the bodies of if/with/for/try inside it (not functions)."""
    out: list[ast.stmt] = []
    for stmt in stmts:
        out.append(stmt)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for attr in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, attr, None)
            if isinstance(inner, list):
                out += _flat([s for s in inner if isinstance(s, ast.stmt)])
        for handler in getattr(stmt, "handlers", []) or []:
            out += _flat(handler.body)
    return out
__all__ = ["Recipe", "RecipeBook", "model_recipe", "recipes_in", "scan_file"]
