"""What rules may ask about a file: imports and aliases, qualified names, scopes, Modules.

Everything here is computed once per file (lazily, and cached) and shared by all rules:
two rules that need the same fact ask the context instead of working it out twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import libcst as cst

from torchlint.project import BUILTIN_NON_MODULE_BASES, ProjectIndex, at_line_start, resolve_relative
from torchlint.rule import PendingFinding
from torchlint.torchnames import TorchNames, torch_names

_COMPOUND_WITH_BODIES = (cst.If, cst.Try, cst.TryStar, cst.With, cst.For, cst.While, cst.FunctionDef, cst.ClassDef)

_UNSET = object()

CONTAINER_CLASSES = frozenset(
    {"torch.nn.ModuleList", "torch.nn.ModuleDict", "torch.nn.ParameterList", "torch.nn.ParameterDict",
     "torch.nn.Sequential"}
)


def dotted_name(expr: cst.BaseExpression) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def imports_package(ctx: FileContext, packages: tuple[str, ...]) -> bool:
    """Whether an `import`/`from` statement of the file names one of `packages` (its text,
    cached per file): `import torch`, `from torch.nn import Linear`, `import torchvision as tv`."""
    cache: dict[tuple[str, ...], bool] = ctx.__dict__.setdefault("_imports_package", {})
    found = cache.get(packages)
    if found is None:
        pattern = re.compile(rf"(?:import|from)\s+(?:{'|'.join(map(re.escape, packages))})\b")
        found = cache[packages] = next(at_line_start(pattern, ctx.source, blanks=None), None) is not None
    return found


def is_self_attr(expr: cst.BaseExpression, self_name: str = "self") -> str | None:
    """The attribute name for `self.<attr>`, else None."""
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == self_name:
        return expr.attr.value
    return None


def statement_body(node: cst.CSTNode) -> list[cst.BaseStatement]:
    """The statements of a compound statement's (indented or one-line) body."""
    body = getattr(node, "body", None)
    if isinstance(body, cst.IndentedBlock):
        return list(body.body)
    if isinstance(body, cst.SimpleStatementSuite):
        return [cst.SimpleStatementLine(body=body.body)]
    if isinstance(body, (list, tuple)):
        return list(body)
    return []


def iter_statements(stmts: list[cst.BaseStatement], into_defs: bool = True) -> Any:
    """All statements below a list of statements, entering compound statements' bodies."""
    stack = list(reversed(stmts))
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and not into_defs:
            continue
        inner: list[cst.BaseStatement] = []
        if isinstance(stmt, _COMPOUND_WITH_BODIES) or isinstance(stmt, cst.Match):
            inner.extend(statement_body(stmt))
            orelse = getattr(stmt, "orelse", None)
            while orelse is not None:
                inner.extend(statement_body(orelse))
                orelse = getattr(orelse, "orelse", None) if isinstance(orelse, cst.If) else None
            for handler in getattr(stmt, "handlers", ()) or ():
                inner.extend(statement_body(handler))
            final = getattr(stmt, "finalbody", None)
            if final is not None:
                inner.extend(statement_body(final))
            if isinstance(stmt, cst.Match):
                for case in stmt.cases:
                    inner.extend(statement_body(case))
        stack.extend(reversed(inner))


def small_statements(stmts: list[cst.BaseStatement], into_defs: bool = False) -> Any:
    """Every simple statement (Assign, Expr, Return, ...) below a list of statements."""
    for stmt in iter_statements(stmts, into_defs):
        if isinstance(stmt, cst.SimpleStatementLine):
            yield from stmt.body


def call_name(call: cst.Call) -> str | None:
    """The last attribute or name of what is called: `x.y.to(...)` -> "to"."""
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    """The `name=` argument of a call, if given."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def has_star_kwargs(call: cst.Call) -> bool:
    return any(arg.star == "**" for arg in call.args)


def positional_args(call: cst.Call) -> list[cst.Arg]:
    return [a for a in call.args if a.keyword is None and a.star == ""]


# the modules transformers generates per model, which its modular templates import from
_GENERATED_MODULE_PREFIXES = ("modeling_", "configuration_", "processing_", "image_processing_", "tokenization_",
                              "feature_extraction_", "video_processing_")


@dataclass
class ClassFacts:
    """Facts about one class, computed once: is it a Module, what its `self.<attr>` hold."""

    node: cst.ClassDef
    qualname: str
    is_module: bool | None
    methods: dict[str, cst.FunctionDef] = field(default_factory=dict)
    # self.<attr> -> qualified name of the class it was assigned from (a constructor call)
    attr_classes: dict[str, str] = field(default_factory=dict)


class FileContext:
    """Per-file facts shared by every rule. Built by the engine; rules only read it."""

    def __init__(self, path: str, source: str, module: cst.Module, module_name: str,
                 index: ProjectIndex, is_package: bool = False,
                 options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.source = source
        self.module = module
        self.module_name = module_name
        self.is_package = is_package
        self.index = index
        self.options = options or {}
        self.findings: list[PendingFinding] = []
        # the flat tree and the position of the node whose hook is running (engine-set)
        self.tree: Any = None
        self._position = -1
        self._stack: tuple[int, list[cst.CSTNode]] = (-1, [])
        self._class_facts: dict[int, ClassFacts] = {}
        self._qualnames: dict[int, str | None] = {}  # id(expr) -> its qualname (rules ask again and again)

    # ---- names -------------------------------------------------------------------------
    @cached_property
    def names(self) -> TorchNames:
        return torch_names()

    @cached_property
    def _bindings(self) -> tuple[dict[str, str], dict[str, cst.ClassDef], dict[str, cst.FunctionDef]]:
        imports: dict[str, str] = {}
        classes: dict[str, cst.ClassDef] = {}
        functions: dict[str, cst.FunctionDef] = {}
        for stmt in iter_statements(list(self.module.body)):
            if isinstance(stmt, cst.ClassDef):
                classes.setdefault(stmt.name.value, stmt)
            elif isinstance(stmt, cst.FunctionDef):
                functions.setdefault(stmt.name.value, stmt)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Import):
                        for alias in small.names:
                            full = dotted_name(alias.name)
                            if full is None:
                                continue
                            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                                imports[alias.asname.name.value] = full
                            else:
                                head = full.split(".")[0]
                                imports.setdefault(head, head)
                    elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                        target = "." * len(small.relative) + (dotted_name(small.module) or "" if small.module else "")
                        base = resolve_relative(self.module_name, self.is_package, target)
                        for alias in small.names:
                            name = dotted_name(alias.name)
                            if name is None:
                                continue
                            local = name
                            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                                local = alias.asname.name.value
                            imports[local] = f"{base}.{name}" if base else name
        return imports, classes, functions

    @property
    def imports(self) -> dict[str, str]:
        """Local name -> qualified name, for every import in the file."""
        return self._bindings[0]

    @property
    def local_classes(self) -> dict[str, cst.ClassDef]:
        """Classes defined anywhere in the file, by name (first definition wins)."""
        return self._bindings[1]

    @property
    def local_functions(self) -> dict[str, cst.FunctionDef]:
        """Functions defined anywhere in the file (including methods), by name."""
        return self._bindings[2]

    def qualname(self, expr: cst.BaseExpression) -> str | None:
        """The qualified name of a Name/Attribute chain: `nn.Linear` -> `torch.nn.Linear`."""
        key = id(expr)
        known = self._qualnames.get(key, _UNSET)
        if known is not _UNSET:
            return known  # type: ignore[return-value]
        found = self._qualname(expr)
        if self.tree is not None and key in self.tree.index:  # a node of this file's tree: its id is stable
            self._qualnames[key] = found
        return found

    def _qualname(self, expr: cst.BaseExpression) -> str | None:
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        imports, classes, functions = self._bindings
        if head in imports:
            full = imports[head]
        elif head in classes or head in functions:
            full = f"{self.module_name}.{head}"
        elif dotted in BUILTIN_NON_MODULE_BASES or head in BUILTIN_NON_MODULE_BASES:
            return f"builtins.{dotted}"
        else:
            return None
        return f"{full}.{rest}" if rest else full

    def is_torch_name(self, expr: cst.BaseExpression, *qualnames: str) -> bool:
        """Whether the expression names one of the given qualified names."""
        return self.qualname(expr) in qualnames

    def torch_nn_name(self, expr: cst.BaseExpression) -> str | None:
        """`X` when the expression names `torch.nn.X` (however imported), else None."""
        q = self.qualname(expr)
        if q is not None and q.startswith("torch.nn.") and q.count(".") == 2:
            return q[len("torch.nn."):]
        return None

    @cached_property
    def is_generator_template(self) -> bool:
        """A Hugging Face `modular_<model>.py` file: a template that transformers' code
        generator expands into `modeling_<model>.py`; it is never imported or run, and its
        odd shapes (`super().forward(...)` as a statement, layers assigned before
        `super().__init__(config)`) are directives to the generator. Recognised by its name
        and its imports from other models' generated modules (`modeling_*`, `configuration_*`,
        `image_processing_*`, ...)."""
        name = self.path.replace("\\", "/").rsplit("/", 1)[-1]
        if not name.startswith("modular_"):
            return False
        return any(part.startswith(_GENERATED_MODULE_PREFIXES) for full in self.imports.values() for part in full.split("."))

    # ---- Module classes ----------------------------------------------------------------
    def class_facts(self, node: cst.ClassDef) -> ClassFacts:
        """Facts about a class of this file (cached)."""
        facts = self._class_facts.get(id(node))
        if facts is None:
            qualname = f"{self.module_name}.{node.name.value}"
            facts = ClassFacts(node, qualname, self._class_is_module(node))
            for stmt in statement_body(node):
                if isinstance(stmt, cst.FunctionDef):
                    facts.methods.setdefault(stmt.name.value, stmt)
            init = facts.methods.get("__init__")
            if init is not None:
                for small in small_statements(statement_body(init)):
                    if isinstance(small, (cst.Assign, cst.AnnAssign)) and isinstance(small.value, cst.Call):
                        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                        cls_name = self.qualname(small.value.func)
                        for target in targets:
                            attr = is_self_attr(target)
                            if attr and cls_name:
                                facts.attr_classes.setdefault(attr, cls_name)
            self._class_facts[id(node)] = facts
        return facts

    def _class_is_module(self, node: cst.ClassDef) -> bool | None:
        answers = []
        for arg in node.bases:
            if arg.keyword is not None or arg.star:
                continue
            value = arg.value
            if isinstance(value, cst.Subscript):
                value = value.value
            answers.append(self.expr_is_module_class(value))
        if any(a is True for a in answers):
            return True
        if all(a is False for a in answers):
            return False
        return None

    def expr_is_module_class(self, expr: cst.BaseExpression) -> bool | None:
        """Whether an expression names a Module class (True/False/None for unknown)."""
        if isinstance(expr, cst.Name) and expr.value in self.local_classes and expr.value not in self.imports:
            local = self.local_classes[expr.value]
            if local is not None and local is not getattr(self, "_computing", None):
                self._computing = local
                try:
                    return self.class_facts(local).is_module
                finally:
                    self._computing = None
        answer = self.index.is_module(self.qualname(expr))
        return answer

    def is_module_class(self, node: cst.ClassDef) -> bool:
        """True only when the class is known to be a Module."""
        return self.class_facts(node).is_module is True

    def class_defines(self, node: cst.ClassDef, method: str) -> bool | None:
        """Whether a class (or its bases) defines a method; None when a base is unknown."""
        facts = self.class_facts(node)
        if method in facts.methods:
            return True
        unknown = False
        for arg in node.bases:
            if arg.keyword is not None or arg.star:
                continue
            value = arg.value.value if isinstance(arg.value, cst.Subscript) else arg.value
            if isinstance(value, cst.Name) and value.value in self.local_classes and value.value not in self.imports:
                local = self.local_classes[value.value]
                if local is node:
                    unknown = True
                    continue
                answer = self.class_defines(local, method)
            else:
                q = self.qualname(value)
                if q is None:
                    unknown = True
                    continue
                if q == "torch.nn.Module" or q.startswith("builtins."):
                    continue
                if q.startswith("torch."):
                    last = q.rsplit(".", 1)[-1]
                    if last in ("ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Module"):
                        continue
                    if method == "forward" and last in self.names.nn_module_classes:
                        return True
                    unknown = True
                    continue
                answer = self.index.defines(q, method)
            if answer:
                return True
            if answer is None:
                unknown = True
        return None if unknown else False

    def reachable_methods(self, cls: cst.ClassDef, start: cst.FunctionDef) -> list[cst.FunctionDef]:
        """`start` and the methods of `cls` it calls as `self.<m>(...)`, transitively
        (`__init__` is never entered as a callee)."""
        from torchlint.walk import find_all

        methods = {s.name.value: s for s in statement_body(cls) if isinstance(s, cst.FunctionDef)}
        out: list[cst.FunctionDef] = []
        todo, seen = [start], set()
        while todo:
            func = todo.pop()
            if id(func) in seen:
                continue
            seen.add(id(func))
            out.append(func)
            params = func.params.posonly_params or func.params.params
            me = params[0].name.value if params else "self"
            for call in find_all(func.body, cst.Call, skip_scopes=True):
                target = call.func
                if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == me:
                    callee = methods.get(target.attr.value)
                    if callee is not None and callee.name.value != "__init__":
                        todo.append(callee)
        return out

    # ---- scopes ------------------------------------------------------------------------
    def set_position(self, position: int) -> None:
        """The engine tells which node's hook runs (the stack is derived from it on demand)."""
        self._position = position

    @property
    def stack(self) -> list[cst.CSTNode]:
        """The ancestors of the node whose hook is running, outermost first."""
        if self.tree is None or self._position < 0:
            return []
        if self._stack[0] != self._position:
            self._stack = (self._position, self.tree.ancestors(self._position))
        return self._stack[1]

    def enclosing(self, node_type: type | tuple[type, ...]) -> Any:
        """The innermost ancestor of the current node of the given type, or None."""
        for node in reversed(self.stack):
            if isinstance(node, node_type):
                return node
        return None

    def enclosing_class(self) -> cst.ClassDef | None:
        """The class whose body (directly, or through its methods) holds the current node."""
        return self.enclosing(cst.ClassDef)

    def enclosing_function(self) -> cst.FunctionDef | None:
        return self.enclosing(cst.FunctionDef)

    def enclosing_method(self) -> tuple[cst.ClassDef, cst.FunctionDef] | None:
        """(class, method) when the current node is inside a method of a class."""
        method = None
        for node in reversed(self.stack):
            if isinstance(node, cst.FunctionDef):
                method = node
            elif isinstance(node, cst.ClassDef):
                if method is not None and any(s is method for s in statement_body(node)):
                    return node, method
                return None
        return None

    def code_for(self, node: cst.CSTNode) -> str:
        """The source text of a node."""
        return self.module.code_for_node(node)
