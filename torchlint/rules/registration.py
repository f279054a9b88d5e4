"""TL101-TL108: building a Module and registering its parts."""

from __future__ import annotations

import keyword

import libcst as cst

from torchlint.context import (
    CONTAINER_CLASSES, FileContext, dotted_name, is_self_attr, iter_statements, small_statements, statement_body,
)
from torchlint.rule import (
    Case, DeleteLine, InsertLineAfter, InsertLineBefore, PendingFix, Replace, Rule,
)
from torchlint.walk import descendants, find_all

# --- shared helpers for this family -------------------------------------------------------


def self_name(func: cst.FunctionDef) -> str | None:
    """The name of a method's first parameter (usually `self`)."""
    params = func.params.posonly_params or func.params.params
    return params[0].name.value if params else None


def is_trivial_body(func: cst.FunctionDef) -> bool:
    """A body of only a docstring, `pass`, `...` or `raise`: a stub, not an implementation."""
    for stmt in statement_body(func):
        if not isinstance(stmt, cst.SimpleStatementLine):
            return False
        for small in stmt.body:
            if isinstance(small, (cst.Pass, cst.Raise)):
                continue
            if isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString, cst.Ellipsis)):
                continue
            return False
    return True


def is_overload(func: cst.FunctionDef) -> bool:
    return any(
        (dotted_name(d.decorator) or "").split(".")[-1] in ("overload", "abstractmethod")
        for d in func.decorators
    )


def last_method(cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    """The last definition of a method directly in the class body (later ones win)."""
    found = None
    for stmt in statement_body(cls):
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name and not is_overload(stmt):
            found = stmt
    return found


def super_init_kind(call: cst.Call, self_param: str | None, class_name: str) -> str | None:
    """Classify a call as a parent-init call.

    Returns "super" for `super().__init__()` / `super(Cls, self).__init__()`, "explicit" for
    `Base.__init__(self, ...)`, "unbound" for the one-argument `super(Cls).__init__()` (which
    initialises nothing), else None.
    """
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "__init__"):
        return None
    target = func.value
    if isinstance(target, cst.Call) and isinstance(target.func, cst.Name) and target.func.value == "super":
        return "unbound" if len(target.args) == 1 else "super"
    # `Base.__init__(self, ...)`; also `nn.Module.__init__()` as transformers' modular files
    # write it: an explicit (if odd) parent init, not a missing one
    head = dotted_name(target)
    if head is not None and head.split(".")[0] != self_param:
        return "explicit"
    return None


def find_parent_init(func: cst.FunctionDef, class_name: str) -> cst.Call | None:
    """The first call in `__init__` (nested defs excluded) that initialises the parent."""
    me = self_name(func)
    for node in find_all(func.body, cst.Call, skip_scopes=True):
        if super_init_kind(node, me, class_name) in ("super", "explicit"):
            return node
    return None


def nn_prefix(ctx) -> str | None:
    """How this file spells `torch.nn` (`nn`, `torch.nn`), or None when it cannot."""
    for local, full in ctx.imports.items():
        if full == "torch.nn":
            return local
    if ctx.imports.get("torch") == "torch":
        return "torch.nn"
    return None


def is_module_ctor(ctx, expr: cst.BaseExpression) -> bool:
    """A call that constructs a Module (torch layer or a project Module class)."""
    return isinstance(expr, cst.Call) and ctx.expr_is_module_class(expr.func) is True


def is_parameter_ctor(ctx, expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Call) and ctx.qualname(expr.func) in (
        "torch.nn.Parameter", "torch.nn.parameter.Parameter",
    )


# --- TL101 ----------------------------------------------------------------------------------


class MissingSuperInit(Rule):
    """A Module subclass defines __init__ without calling super().__init__()."""

    code = "TL101"
    name = "missing-super-init"
    summary = "a Module's __init__ never calls super().__init__()"
    fix_safety = "unsafe"
    valid = [
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super(M, self).__init__()\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        nn.Module.__init__(self)\n",
        "import torch.nn as nn\nclass M(nn.Linear):\n    def __init__(self, a, b):\n        nn.Linear.__init__(self, a, b)\n",
        "from dataclasses import dataclass\n@dataclass\nclass Config:\n    def __init__(self):\n        self.x = 1\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        raise NotImplementedError\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    pass\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        \"\"\"Doc.\"\"\"\n        self.fc = nn.Linear(2, 2)\n",
            line=3, col=5,
            fixed="import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        \"\"\"Doc.\"\"\"\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n",
            unsafe=True,
        ),
        Case(
            "from torch.nn import Module as M\nclass Net(M):\n    def __init__(self):\n        super(Net).__init__()\n",
            line=3,
        ),
        Case(
            "import torch\nclass Base(torch.nn.Module):\n    pass\nclass Net(Base):\n    def __init__(self, n):\n        self.n = n\n",
            line=5,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.ctx.is_module_class(node):
            return
        init = last_method(node, "__init__")
        if init is None or is_trivial_body(init):
            return
        if find_parent_init(init, node.name.value) is not None:
            return
        cls = node.name.value
        self.report(
            init,
            f"{cls}.__init__ never calls super().__init__(); nn.Module will not be initialised "
            "(assigning a layer raises \"cannot assign module before Module.__init__() call\")",
            fix=self._fix(node, init),
            context={"class": cls},
        )

    def _fix(self, cls: cst.ClassDef, init: cst.FunctionDef) -> PendingFix | None:
        # Only a plain nn.Module base takes no arguments for sure.
        bases = [a for a in cls.bases if a.keyword is None]
        if not bases or any(self.ctx.qualname(a.value) != "torch.nn.Module" for a in bases):
            return None
        if not isinstance(init.body, cst.IndentedBlock):
            return None
        body = list(init.body.body)
        first = body[0]
        is_doc = (
            isinstance(first, cst.SimpleStatementLine)
            and len(first.body) == 1
            and isinstance(first.body[0], cst.Expr)
            and isinstance(first.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
        )
        if not is_doc and isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr) and isinstance(
            first.body[0].value, (cst.SimpleString, cst.ConcatenatedString)
        ):
            return None  # `"""doc"""; self.x = ...`: inserting before it would demote the docstring
        text = "super().__init__()"
        if is_doc and len(body) == 1:
            op = InsertLineAfter(first, text)
        elif is_doc:
            op = InsertLineBefore(body[1], text)
        else:
            op = InsertLineBefore(first, text)
        return PendingFix("unsafe", (op,), "call super().__init__() first")


# --- TL102 ----------------------------------------------------------------------------------

_REGISTERING_METHODS = frozenset({"register_buffer", "register_parameter", "add_module", "register_module"})


# methods only a Module has (a tensor, a function or an optimizer has none of these)
_MODULE_ONLY_METHODS = frozenset(
    {"parameters", "named_parameters", "apply", "modules", "named_modules", "children",
     "named_children", "eval", "train", "requires_grad_", "zero_grad", "buffers", "named_buffers",
     "register_forward_hook", "register_forward_pre_hook", "load_state_dict"}
)
# parameter names that read as plain callables (`self.act_fn(x)` with `act_fn=F.relu`)
_FUNCTION_WORDS = frozenset(
    {"fn", "func", "function", "act", "activation", "nonlinearity", "loss", "criterion", "transform",
     "transforms", "callback", "hook", "lambda", "lambd", "metric", "op", "f", "callable", "sampler",
     "collate", "init", "initializer", "reduce", "reduction", "score", "distance", "kernel",
     "tokenizer", "tokenize", "processor", "preprocess", "postprocess", "preprocessor", "fun",
     "scheduler", "logger", "log", "writer", "env", "augment", "augmentation", "aug", "cb", "handler"}
)


def _reads_as_function(name: str) -> bool:
    return any(word in _FUNCTION_WORDS for word in name.lower().split("_"))


# names of parameters that hold a class or a factory that builds layers (`norm_layer=nn.BatchNorm2d`,
# `block_cls`): storing a class before super().__init__() is legal, and calling it builds a Module
_FACTORY_SUFFIXES = ("_cls", "_class", "_layer", "_factory", "_builder", "_type", "_fn", "_ctor")


def _reads_as_factory(ctx, name: str, param: cst.Param) -> bool:
    if name.lower().endswith(_FACTORY_SUFFIXES) or name.lower() in ("cls", "klass", "block", "layer_cls"):
        return True
    default = param.default
    return isinstance(default, (cst.Name, cst.Attribute)) and ctx.expr_is_module_class(default) is True


def _annotation_is_module(ctx, annotation: cst.BaseExpression) -> bool:
    """`nn.Module`, `Optional[nn.Module]`, `nn.Module | None`, a project Module class."""
    if isinstance(annotation, cst.Subscript) and (dotted_name(annotation.value) or "").split(".")[-1] == "Optional":
        inner = [e.slice.value for e in annotation.slice if isinstance(e.slice, cst.Index)]
        return len(inner) == 1 and _annotation_is_module(ctx, inner[0])
    if isinstance(annotation, cst.BinaryOperation) and isinstance(annotation.operator, cst.BitOr):
        sides = [annotation.left, annotation.right]
        sides = [e for e in sides if not (isinstance(e, cst.Name) and e.value == "None")]
        return len(sides) == 1 and _annotation_is_module(ctx, sides[0])
    if isinstance(annotation, (cst.Name, cst.Attribute)):
        return ctx.expr_is_module_class(annotation) is True
    return False


class AssignBeforeSuperInit(Rule):
    """A submodule, parameter or buffer is put on self before super().__init__() runs."""

    code = "TL102"
    name = "assign-before-super-init"
    summary = "a submodule/parameter/buffer is assigned before super().__init__()"
    fix_safety = "unsafe"
    valid = [
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, dim):\n        self.dim = dim\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.register_buffer('b', None)\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, dim):\n        self.dim = dim\n        self.fc = nn.Linear(dim, dim)\n        super().__init__()\n",
            line=5,
            fixed="import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, dim):\n        self.dim = dim\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n",
            unsafe=True,
        ),
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        self.register_buffer('mask', torch.ones(3))\n        super(M, self).__init__()\n",
            line=5,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if self.ctx.is_generator_template or not self.ctx.is_module_class(node):
            return  # a transformers modular template is never run: its init order is a directive
        init = last_method(node, "__init__")
        if init is None or not isinstance(init.body, cst.IndentedBlock):
            return
        super_call = find_parent_init(init, node.name.value)
        if super_call is None:
            return
        me = self_name(init)
        body = list(init.body.body)
        super_index = next(
            (i for i, stmt in enumerate(body) if any(n is super_call for n in descendants(stmt))), None
        )
        if super_index is None:
            return
        self._module_params = None
        self._cls, self._init = node, init
        for index, stmt in enumerate(body[:super_index]):
            for small in small_statements([stmt]):
                if self._registers(small, me):
                    self.report(
                        small,
                        f"{node.name.value}.__init__ puts a submodule, parameter or buffer on self before "
                        "super().__init__(); this raises \"cannot assign module before Module.__init__() call\"",
                        fix=self._fix(body, index, super_index),
                        context={"class": node.name.value},
                    )
                    return

    def _registers(self, small: cst.BaseSmallStatement, me: str | None) -> bool:
        ctx = self.ctx
        if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            if not any(is_self_attr(t, me or "self") for t in targets):
                return False
            value = small.value
            if isinstance(value, cst.Name):
                return value.value in self._params_used_as_modules()
            return is_module_ctor(ctx, value) or is_parameter_ctor(ctx, value) or (
                isinstance(value, cst.Call) and ctx.qualname(value.func) in ("torch.nn.Buffer", "torch.nn.parameter.Buffer")
            )
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            func = small.value.func
            return (
                isinstance(func, cst.Attribute)
                and func.attr.value in _REGISTERING_METHODS
                and isinstance(func.value, cst.Name)
                and func.value.value == me
            )
        return False

    def _params_used_as_modules(self) -> set[str]:
        """Parameters of __init__ that the class treats as Modules (cached per class): an
        annotation or default that is a Module, a discarded `.to()`, a Module-only method
        (`.parameters()`, `.apply()`, `.eval()`, ...), being put in an nn container, or, for
        names that do not read as plain functions, being called as `self.<attr>(...)`."""
        if self._module_params is not None:
            return self._module_params
        ctx, cls, init = self.ctx, self._cls, self._init
        params = {p.name.value: p for p in (*init.params.posonly_params, *init.params.params, *init.params.kwonly_params)}
        out: set[str] = set()
        for name, param in params.items():
            annotation = param.annotation.annotation if param.annotation is not None else None
            if annotation is not None and _annotation_is_module(ctx, annotation):
                out.add(name)
            elif param.default is not None and is_module_ctor(ctx, param.default):
                out.add(name)
        # self.<attr> = <param> anywhere in __init__: what the attribute holds
        me = self_name(init) or "self"
        attr_param: dict[str, str] = {}
        for small in small_statements(statement_body(init)):
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Name) and small.value.value in params:
                for target in small.targets:
                    attr = is_self_attr(target.target, me)
                    if attr:
                        attr_param.setdefault(attr, small.value.value)
        if not attr_param and not out:
            self._module_params = out
            return out

        def param_of(expr: cst.BaseExpression, owner: str, in_init: bool) -> str | None:
            attr = is_self_attr(expr, owner)
            if attr is not None:
                return attr_param.get(attr)
            if in_init and isinstance(expr, cst.Name) and expr.value in params:
                return expr.value
            return None

        for method in statement_body(cls):
            if not isinstance(method, cst.FunctionDef):
                continue
            owner = self_name(method) or "self"
            in_init = method is init
            discarded = {
                id(small.value) for small in small_statements(statement_body(method))
                if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)
            }
            for call in find_all(method.body, cst.Call, skip_scopes=True):
                func = call.func
                name = param_of(func, owner, in_init)
                if name is not None and not _reads_as_function(name) and not _reads_as_factory(ctx, name, params[name]):
                    out.add(name)  # self.disc(z)
                    continue
                if isinstance(func, cst.Attribute):
                    name = param_of(func.value, owner, in_init)
                    method_name = func.attr.value
                    if name is not None and (
                        method_name in _MODULE_ONLY_METHODS
                        or (method_name in ("to", "cuda") and id(call) in discarded)
                    ):
                        out.add(name)
                        continue
                if ctx.qualname(func) in CONTAINER_CLASSES:
                    # the items themselves (`nn.Sequential(self.backbone, ...)`,
                    # `nn.ModuleList([gen, disc])`), not the arguments of nested calls
                    items: list[cst.BaseExpression] = []
                    for arg in call.args:
                        value = arg.value
                        if isinstance(value, (cst.List, cst.Tuple)):
                            items += [e.value for e in value.elements]
                        elif isinstance(value, cst.Dict):
                            items += [e.value for e in value.elements if isinstance(e, cst.DictElement)]
                        else:
                            items.append(value)
                    for item in items:
                        name = param_of(item, owner, in_init) if isinstance(item, (cst.Name, cst.Attribute)) else None
                        if name is not None:
                            out.add(name)
        self._module_params = out
        return out

    def _fix(self, body: list[cst.BaseStatement], first: int, super_index: int) -> PendingFix | None:
        super_stmt = body[super_index]
        if not (isinstance(super_stmt, cst.SimpleStatementLine) and len(super_stmt.body) == 1):
            return None
        # moving the call up is only right when its arguments do not use names bound in between
        used = {n.value for n in descendants(super_stmt) if isinstance(n, cst.Name)}
        for stmt in body[first:super_index]:
            for node in descendants(stmt):
                if isinstance(node, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.NamedExpr, cst.For)):
                    target = getattr(node, "target", None)
                    if target is not None and {n.value for n in descendants(target) if isinstance(n, cst.Name)} & used:
                        return None
                    if isinstance(target, cst.Name) and target.value in used:
                        return None
        text = self.ctx.code_for(super_stmt.body[0])
        return PendingFix(
            "unsafe",
            (DeleteLine(super_stmt), InsertLineBefore(body[first], text)),
            "move the super().__init__() call up",
        )


# --- TL103 ----------------------------------------------------------------------------------


class SuperWrongClass(Rule):
    """super(Other, self).__init__() names a class other than the enclosing one."""

    code = "TL103"
    name = "super-wrong-class"
    summary = "super(Other, self).__init__() where Other is not the enclosing class"
    fix_safety = "safe"
    valid = [
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super(M, self).__init__()\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nclass Net(nn.Module):\n    pass\nclass Net2(nn.Module):\n    def __init__(self, n):\n        super(Net, self).__init__()\n",
            line=6, col=9,
            fixed="import torch.nn as nn\nclass Net(nn.Module):\n    pass\nclass Net2(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "__init__"):
            return
        target = func.value
        if not (isinstance(target, cst.Call) and isinstance(target.func, cst.Name) and target.func.value == "super"):
            return
        if len(target.args) != 2 or not isinstance(target.args[0].value, cst.Name):
            return
        found = self.ctx.enclosing_method()
        if found is None:
            return
        cls, method = found
        named = target.args[0].value.value
        second = target.args[1].value
        if named == cls.name.value or not (isinstance(second, cst.Name) and second.value == self_name(method)):
            return
        # Naming an ancestor skips the __init__ of the classes before it: often deliberate
        # (diffusers, timm), so only a class outside the chain is flagged: a TypeError.
        if self._is_ancestor(cls, named):
            return
        args = ", ".join(self.ctx.code_for(a).rstrip(", ") for a in node.args)
        new = f"super().__init__({args})"
        self.report(
            node,
            f"super({named}, self) inside class {cls.name.value}: {named} is not a base of "
            f"{cls.name.value} (TypeError at run time, a copy-paste slip); use super().__init__(...)",
            fix=PendingFix("safe", (Replace(node, new),), "use super()"),
            context={"class": cls.name.value},
        )

    def _is_ancestor(self, cls: cst.ClassDef, name: str, depth: int = 0) -> bool:
        if depth > 20:
            return False
        for arg in cls.bases:
            base = dotted_name(arg.value) or ""
            if base.split(".")[-1] == name:
                return True
            local = self.ctx.local_classes.get(base)
            if local is not None and local is not cls and self._is_ancestor(local, name, depth + 1):
                return True
            qual = self.ctx.qualname(arg.value) or ""
            if local is None and base and not qual.startswith(("torch.", "builtins.")):
                return True  # an unresolved base may have it among its ancestors
        return False


# --- TL104 / TL105 --------------------------------------------------------------------------

# Names a ModuleDict/ParameterDict key cannot take besides nn.Module's own attributes: the
# containers' dict methods and the `training` flag (`nn.ModuleDict({"keys": ...})` raises
# KeyError "attribute 'keys' already exists"; checked against torch 2.13).
_CONTAINER_ATTRIBUTE_NAMES = frozenset(
    {"clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault",
     "training", "update", "values"}
)


def _valid_dict_keys(ctx, node: cst.Dict) -> bool:
    """Every key a string literal usable as a ModuleDict/ParameterDict key."""
    for element in node.elements:
        if not isinstance(element, cst.DictElement) or not isinstance(element.key, cst.SimpleString):
            return False
        key = element.key.evaluated_value
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            return False
        if key in ctx.names.module_attributes or key in _CONTAINER_ATTRIBUTE_NAMES:
            return False
    return True


# nn.Module methods that return the Module itself
_MODULE_RETURNING_METHODS = frozenset(
    {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "requires_grad_",
     "to_empty", "type", "xpu", "mtia", "ipu", "share_memory", "apply"}
)


def _grows(value: cst.BaseExpression, holder: cst.BaseExpression) -> cst.BaseExpression | None:
    """`<holder> + [items]` (or `[items] + <holder>`): the added part, else None."""
    if not (isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add)):
        return None
    same = lambda e: isinstance(e, (cst.Name, cst.Attribute)) and dotted_name(e) is not None and dotted_name(e) == dotted_name(holder)  # noqa: E731
    if same(value.left):
        return value.right
    if same(value.right):
        return value.left
    return None


# the container expressions TL104 follows (`_items_of`)
_LITERAL_CONTAINERS = (cst.List, cst.Tuple, cst.Set, cst.ListComp, cst.GeneratorExp, cst.Dict, cst.DictComp)


def _may_keep_container(ctx: FileContext, cls: cst.ClassDef) -> bool:
    """Whether the class assigns an attribute a literal container, or a local name that is
    bound to one somewhere in the class: every container TL104/TL105 follow starts so (one
    answer per class for both rules)."""
    answers: dict[int, bool] = ctx.__dict__.setdefault("_may_keep_container", {})
    found = answers.get(id(cls))
    if found is None:
        found = answers[id(cls)] = _assigns_literal_container(cls)
    return found


def _assigns_literal_container(cls: cst.ClassDef) -> bool:
    literal_names: set[str] = set()
    attr_values: list[cst.BaseExpression] = []
    for assign in find_all(cls, (cst.Assign, cst.AnnAssign)):
        value = assign.value
        if value is None:
            continue
        targets = [t.target for t in assign.targets] if isinstance(assign, cst.Assign) else [assign.target]
        for target in targets:
            if isinstance(target, cst.Name):
                if isinstance(value, _LITERAL_CONTAINERS):
                    literal_names.add(target.value)
            elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
                attr_values.append(value)
    return any(isinstance(v, _LITERAL_CONTAINERS) or (isinstance(v, cst.Name) and v.value in literal_names)
               for v in attr_values)


class _PlainContainerRule(Rule):
    """Shared logic of TL104 (Modules) and TL105 (Parameters) in plain lists/tuples/dicts."""

    kind = "module"  # or "parameter"
    list_class = "ModuleList"
    dict_class = "ModuleDict"

    def _is_item(self, expr: cst.BaseExpression, locals_: dict[str, bool]) -> bool:
        if self.kind == "module":
            # `nn.Linear(...).to(device)`, `.cuda()`, `.float()`: a Module's own moves and
            # casts return the Module itself
            while (
                isinstance(expr, cst.Call)
                and isinstance(expr.func, cst.Attribute)
                and expr.func.attr.value in _MODULE_RETURNING_METHODS
            ):
                expr = expr.func.value
            if is_module_ctor(self.ctx, expr) and self._has_state(expr):
                return True
        elif is_parameter_ctor(self.ctx, expr):
            return True
        return isinstance(expr, cst.Name) and locals_.get(expr.value, False)

    def _has_state(self, call: cst.Call) -> bool:
        """Whether losing the Module matters: it has parameters, buffers or a train/eval mode.

        A torch activation, pooling or loss layer without weights holds nothing that
        parameters(), .to() or state_dict() would miss; project classes are assumed to.
        """
        layer = self.ctx.torch_nn_name(call.func)
        if layer is None:
            return True
        names = self.ctx.names
        if layer in names.nn_stateful_layers or layer in names.nn_dropout_layers:
            return True
        if layer in ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"):
            return True
        return any(a.keyword is not None and a.keyword.value in ("weight", "pos_weight") for a in call.args)

    def _items_of(self, value: cst.BaseExpression, locals_: dict[str, bool]) -> bool | None:
        """True when a container expression holds items of our kind; None when empty."""
        if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
            if not value.elements:
                return None
            return any(self._is_item(e.value, locals_) for e in value.elements if isinstance(e, cst.Element))
        if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
            return self._is_item(value.elt, locals_)
        if isinstance(value, cst.Dict):
            if not value.elements:
                return None
            return any(self._is_item(e.value, locals_) for e in value.elements if isinstance(e, cst.DictElement))
        if isinstance(value, cst.DictComp):
            return self._is_item(value.value, locals_)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.ctx.is_module_class(node):
            return
        if not _may_keep_container(self.ctx, node):
            return
        methods = [
            stmt for stmt in statement_body(node)
            if isinstance(stmt, cst.FunctionDef)
            and (not stmt.name.value.startswith("__") or stmt.name.value == "__init__")
            and stmt.name.value != "forward"
        ]
        init = last_method(node, "__init__")
        # __init__ and the helpers it calls build the Module together: a container made in
        # one and filled in another is one container
        group: list[cst.FunctionDef] = []
        if init is not None:
            group = [f for f in self.ctx.reachable_methods(node, init) if f.name.value != "forward"]
        in_group = {id(f) for f in group}
        if group:
            self._check_methods(node, group)
        for stmt in methods:
            if id(stmt) not in in_group:
                self._check_methods(node, [stmt])

    def _check_methods(self, cls: cst.ClassDef, funcs: list[cst.FunctionDef]) -> None:
        ctx = self.ctx
        self_containers: dict[str, tuple[cst.BaseSmallStatement, cst.BaseExpression, bool]] = {}
        wrapped: set[str] = set()  # names / self attrs passed to a torch container or registered
        registered = [False]
        for func in funcs:
            self._scan_method(func, self_containers, wrapped, registered)
        if registered[0]:
            return
        if not any(holds for _, _, holds in self_containers.values()):
            return
        # any later use of the same attribute in the class wrapped into a torch container
        class_wrapped = self._class_wrapped(cls)
        for attr, (small, value, holds) in self_containers.items():
            if not holds or f"self.{attr}" in wrapped or f"self.{attr}" in class_wrapped:
                continue
            if isinstance(value, cst.Name) and value.value in wrapped:
                continue
            if isinstance(value, (cst.List, cst.Tuple, cst.Dict)) and any(
                isinstance(e.value, cst.Name) and e.value.value in wrapped
                for e in value.elements if isinstance(e, (cst.Element, cst.DictElement))
            ):
                continue
            self._report(cls, attr, small, value)

    def _scan_method(self, func: cst.FunctionDef,
                     self_containers: dict[str, tuple[cst.BaseSmallStatement, cst.BaseExpression, bool]],
                     wrapped: set[str], registered: list[bool]) -> None:
        me = self_name(func) or "self"
        ctx = self.ctx
        # local names bound to items, and local containers that receive items
        item_locals: dict[str, bool] = {}
        local_containers: dict[str, bool] = {}  # name -> holds items
        smalls = list(small_statements(statement_body(func), into_defs=False))
        for small in smalls:
            # `self.convs += [nn.Conv2d(...)]` fills a container like `.extend` does
            if isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.AddAssign):
                holder = is_self_attr(small.target, me) or (
                    small.target.value if isinstance(small.target, cst.Name) else None
                )
                if holder and self._items_of(small.value, item_locals) is True:
                    if holder in local_containers:
                        local_containers[holder] = True
                    if holder in self_containers:
                        s, v, _ = self_containers[holder]
                        self_containers[holder] = (s, v, True)
                continue
            if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                value = small.value
                for target in targets:
                    attr = is_self_attr(target, me)
                    # `self.layers = self.layers + [Block(...)]` grows the container in place
                    added = _grows(value, target) if isinstance(target, (cst.Name, cst.Attribute)) else None
                    holder = attr or (target.value if isinstance(target, cst.Name) else None)
                    if added is not None and holder is not None and (
                        holder in local_containers or holder in self_containers
                    ):
                        if self._items_of(added, item_locals) is True or self._is_item(added, item_locals):
                            if holder in local_containers and not attr:
                                local_containers[holder] = True
                            if attr and holder in self_containers:
                                s_, v_, _ = self_containers[holder]
                                self_containers[holder] = (s_, v_, True)
                        continue
                    if isinstance(target, cst.Name):
                        if self._is_item(value, item_locals):
                            item_locals[target.value] = True
                        holds = self._items_of(value, item_locals)
                        if holds is not False:
                            local_containers[target.value] = bool(holds)
                    elif attr is not None:
                        holds = self._items_of(value, item_locals)
                        if holds is not False:
                            self_containers.setdefault(attr, (small, value, bool(holds)))
                        elif isinstance(value, cst.Name) and value.value in local_containers:
                            self_containers.setdefault(attr, (small, value, local_containers[value.value]))
                        elif isinstance(value, cst.Name) and value.value in item_locals:
                            wrapped.add(value.value)  # the item itself is registered on self
                    elif isinstance(target, cst.Subscript):
                        base = target.value
                        holder = is_self_attr(base, me) or (base.value if isinstance(base, cst.Name) else None)
                        if holder and self._is_item(value, item_locals):
                            if holder in local_containers:
                                local_containers[holder] = True
                            if holder in self_containers:
                                s, v, _ = self_containers[holder]
                                self_containers[holder] = (s, v, True)
        for node in find_all(func.body, cst.Call, skip_scopes=True):
            func_expr = node.func
            qual = ctx.qualname(func_expr) or ""
            if isinstance(func_expr, cst.Attribute) and func_expr.attr.value in ("append", "extend", "insert", "add", "update", "setdefault"):
                holder = is_self_attr(func_expr.value, me) or (
                    func_expr.value.value if isinstance(func_expr.value, cst.Name) else None
                )
                if holder is None:
                    continue
                args = [a.value for a in node.args]
                adds = any(
                    self._is_item(a, item_locals) or self._items_of(a, item_locals) is True for a in args
                )
                if adds:
                    if holder in local_containers:
                        local_containers[holder] = True
                    if holder in self_containers:
                        s, v, _ = self_containers[holder]
                        self_containers[holder] = (s, v, True)
                continue
            # nn.init.* / F.* take a layer or tensor without registering it anywhere
            registers = qual.startswith("torch.nn.") and not qual.startswith(
                ("torch.nn.init.", "torch.nn.functional.")
            )
            if registers or (isinstance(func_expr, cst.Name) and func_expr.value == "setattr") or (
                isinstance(func_expr, cst.Attribute) and func_expr.attr.value in _REGISTERING_METHODS
            ) or ctx.expr_is_module_class(func_expr) is True:
                if isinstance(func_expr, cst.Name) and func_expr.value == "setattr" or (
                    isinstance(func_expr, cst.Attribute) and func_expr.attr.value in _REGISTERING_METHODS
                ):
                    registered[0] = True
                for arg in node.args:
                    for sub in [arg.value, *descendants(arg.value)]:
                        if isinstance(sub, cst.Name):
                            wrapped.add(sub.value)
                        attr = is_self_attr(sub, me) if isinstance(sub, cst.Attribute) else None
                        if attr:
                            wrapped.add(f"self.{attr}")

    def _class_wrapped(self, cls: cst.ClassDef) -> set[str]:
        """self.<attr> names passed to nn.ModuleList/Sequential/... anywhere in the class."""
        out: set[str] = set()
        for node in find_all(cls.body, cst.Call):
            if (self.ctx.qualname(node.func) or "").startswith("torch.nn."):
                for arg in node.args:
                    for sub in [arg.value, *descendants(arg.value)]:
                        attr = is_self_attr(sub) if isinstance(sub, cst.Attribute) else None
                        if attr:
                            out.add(f"self.{attr}")
        return out

    def _report(self, cls: cst.ClassDef, attr: str, small: cst.BaseSmallStatement, value: cst.BaseExpression) -> None:
        what = "Modules" if self.kind == "module" else "nn.Parameters"
        is_dict = isinstance(value, (cst.Dict, cst.DictComp))
        container = self.dict_class if is_dict else self.list_class
        hidden = "parameters(), .to(), state_dict()" if self.kind == "module" else "parameters(), the optimizer, state_dict()"
        self.report(
            small,
            f"self.{attr} keeps {what} in a plain Python {'dict' if is_dict else 'list'}; they are invisible to "
            f"{hidden}; use nn.{container}",
            fix=self._fix(small, value, is_dict),
            context={"class": cls.name.value},
        )

    def _fix(self, small: cst.BaseSmallStatement, value: cst.BaseExpression, is_dict: bool) -> PendingFix | None:
        prefix = nn_prefix(self.ctx)
        if prefix is None or not isinstance(small, (cst.Assign, cst.AnnAssign)):
            return None
        code = self.ctx.code_for(value)
        if isinstance(value, cst.Dict):
            if not _valid_dict_keys(self.ctx, value):
                return None
            new = f"{prefix}.{self.dict_class}({code})"
        elif is_dict:
            return None  # comprehension keys cannot be checked
        elif isinstance(value, cst.List):
            new = f"{prefix}.{self.list_class}({code})" if value.elements else f"{prefix}.{self.list_class}()"
        elif isinstance(value, cst.Tuple):
            inner = ", ".join(self.ctx.code_for(e.value) for e in value.elements)
            new = f"{prefix}.{self.list_class}([{inner}])"
        elif isinstance(value, (cst.ListComp, cst.Name)):
            new = f"{prefix}.{self.list_class}({code})"
        elif isinstance(value, cst.GeneratorExp):
            new = f"{prefix}.{self.list_class}({code.strip()[1:-1] and '[' + code.strip()[1:-1] + ']'})"
        else:
            return None
        return PendingFix("unsafe", (Replace(value, new),), f"wrap in nn.{self.dict_class if is_dict else self.list_class}")


class ModuleInPlainContainer(_PlainContainerRule):
    """Modules kept in a plain list/tuple/dict attribute are not registered."""

    code = "TL104"
    name = "module-in-plain-container"
    summary = "self.x is a plain list/tuple/dict of Modules (not registered)"
    fix_safety = "unsafe"
    kind = "module"
    valid = [
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.sizes = [1, 2, 3]\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.layers = []\n        for i in range(3):\n            self.layers.append(nn.Linear(2, 2))\n        self.layers = nn.ModuleList(self.layers)\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        layers = [nn.Linear(2, 2) for _ in range(3)]\n        self.layers = layers\n        self.net = nn.Sequential(*layers)\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, teacher):\n        super().__init__()\n        self.teacher = [teacher]\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.layers = [nn.Linear(2, 2) for _ in range(3)]\n",
            line=5,
            fixed="import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])\n",
            unsafe=True,
        ),
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.heads = {'cls': nn.Linear(2, 2), 'box': nn.Linear(2, 4)}\n",
            line=5,
            fixed="import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.heads = nn.ModuleDict({'cls': nn.Linear(2, 2), 'box': nn.Linear(2, 4)})\n",
            unsafe=True,
        ),
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.layers = []\n        for i in range(3):\n            self.layers.append(nn.Linear(2, 2))\n",
            line=5,
        ),
    ]


class ParameterInPlainContainer(_PlainContainerRule):
    """nn.Parameters kept in a plain list/tuple/dict attribute are not registered."""

    code = "TL105"
    name = "parameter-in-plain-container"
    summary = "self.x is a plain list/tuple/dict of nn.Parameters (not registered)"
    fix_safety = "unsafe"
    kind = "parameter"
    list_class = "ParameterList"
    dict_class = "ParameterDict"
    valid = [
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.ws = nn.ParameterList([nn.Parameter(torch.ones(2)) for _ in range(3)])\n",
    ]
    invalid = [
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.ws = [nn.Parameter(torch.ones(2)) for _ in range(3)]\n",
            line=6,
            fixed="import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.ws = nn.ParameterList([nn.Parameter(torch.ones(2)) for _ in range(3)])\n",
            unsafe=True,
        ),
    ]


# --- TL106 ----------------------------------------------------------------------------------

TENSOR_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "range",
     "linspace", "logspace", "eye", "tensor", "as_tensor", "from_numpy", "zeros_like", "ones_like",
     "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "tril_indices",
     "triu_indices", "FloatTensor", "LongTensor", "Tensor", "BoolTensor", "IntTensor", "meshgrid"}
)


# tensor methods whose result is a Python value, not a tensor
_NON_TENSOR_RESULTS = frozenset(
    {"tolist", "item", "numpy", "size", "dim", "ndimension", "numel", "nelement", "element_size",
     "data_ptr", "stride", "storage_offset", "get_device", "untyped_storage", "storage", "equal",
     "allclose", "__len__", "__repr__"}
)


# what turns a tensor into a plain Python value
_TO_PYTHON_METHODS = frozenset({"tolist", "item", "size", "dim", "ndimension", "numel", "nelement", "__len__"})
_TO_PYTHON_ATTRS = frozenset({"shape", "ndim", "dtype", "is_cuda"})
_TO_PYTHON_BUILTINS = frozenset({"int", "float", "bool", "len", "range", "str"})
# in-place random fills whose bounds are read as Python numbers
_NUMBER_ARG_METHODS = frozenset({"uniform_", "normal_", "random_"})
_MAX_ALIAS_DEPTH = 3


def _parent_map(func: cst.FunctionDef) -> dict[int, cst.CSTNode]:
    """id(node) -> its parent, for every node of a method."""
    from torchlint.walk import children

    out: dict[int, cst.CSTNode] = {}
    for node in (func, *descendants(func)):
        for child in children(node):
            out[id(child)] = node
    return out


def _is_plain_constant(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.UnaryOperation):
        expr = expr.expression
    return isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)) or (
        isinstance(expr, cst.Name) and expr.value in ("None", "True", "False")
    )


def _python_use(node: cst.BaseExpression, parents: dict[int, cst.CSTNode], func: cst.FunctionDef, depth: int) -> bool:
    """Whether the value of `node` (a tensor, or an element/slice of one) only ever becomes a
    Python value or an index where it is used; unknown uses answer False."""
    parent = parents.get(id(node))
    if isinstance(parent, cst.Subscript) and parent.value is node:
        return _python_use(parent, parents, func, depth)  # an element or slice: same question
    if isinstance(parent, cst.Attribute) and parent.value is node:
        if parent.attr.value in _TO_PYTHON_ATTRS:
            return True
        call = parents.get(id(parent))
        return isinstance(call, cst.Call) and call.func is parent and parent.attr.value in _TO_PYTHON_METHODS
    if isinstance(parent, cst.Index):
        return True  # `x[:, self.idx]`: a CPU index tensor indexes a tensor on any device
    if isinstance(parent, cst.Slice):
        return True  # a slice bound is read with __index__
    if isinstance(parent, (cst.If, cst.While, cst.IfExp)) and parent.test is node:
        return True
    if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Not):
        return True
    if isinstance(parent, cst.Comparison):
        if all(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in parent.comparisons):
            return True
        others = [parent.left, *(c.comparator for c in parent.comparisons)]
        if all(e is node or _is_plain_constant(e) for e in others):
            return _python_use(parent, parents, func, depth)  # `t[i] == 1`: a truth test?
        return False
    if isinstance(parent, cst.BooleanOperation):
        return _python_use(parent, parents, func, depth)
    if isinstance(parent, cst.Arg) and parent.keyword is None and not parent.star:
        call = parents.get(id(parent))
        if not isinstance(call, cst.Call):
            return False
        name = dotted_name(call.func)
        if name in _TO_PYTHON_BUILTINS:
            return True
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in _NUMBER_ARG_METHODS:
            return True
        loop = parents.get(id(call))
        if (name == "enumerate" and call.args[0] is parent and isinstance(loop, cst.For) and loop.iter is call
                and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2):
            item = loop.target.elements[1].value  # `for i, flag in enumerate(self.mask)`
            return isinstance(item, cst.Name) and _name_python(item, parents, func, depth)
        return False
    if isinstance(parent, cst.For) and parent.iter is node:
        return isinstance(parent.target, cst.Name) and _name_python(parent.target, parents, func, depth)
    if (isinstance(parent, cst.Assign) and parent.value is node and len(parent.targets) == 1
            and isinstance(parent.targets[0].target, cst.Name)):
        return _name_python(parent.targets[0].target, parents, func, depth)  # `ratio = self.ratio`
    return False


def _name_python(bound: cst.Name, parents: dict[int, cst.CSTNode], func: cst.FunctionDef, depth: int) -> bool:
    """Whether every other occurrence of a local name in the method is a Python-value use."""
    if depth >= _MAX_ALIAS_DEPTH:
        return False
    for node in find_all(func.body, cst.Name):
        if node is bound or node.value != bound.value:
            continue
        parent = parents.get(id(node))
        if (isinstance(parent, cst.Attribute) and parent.attr is node) or (
                isinstance(parent, cst.Arg) and parent.keyword is node):
            continue  # `x.name`, `f(name=...)`: not the local
        if not _python_use(node, parents, func, depth + 1):
            return False
    return True


def _exclusive_branches(a: cst.CSTNode, b: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> bool:
    """Whether two nodes of one function lie in different branches of the same if/elif/else."""
    def branches(node: cst.CSTNode) -> dict[int, cst.CSTNode]:
        out: dict[int, cst.CSTNode] = {}
        child, parent = node, parents.get(id(node))
        while parent is not None:
            if isinstance(parent, cst.If) and child is not parent.test:
                out[id(parent)] = child  # the body block, or the else/elif part
            child, parent = parent, parents.get(id(parent))
        return out

    left, right = branches(a), branches(b)
    return any(key in right and right[key] is not side for key, side in left.items())


def _binding_targets(small: cst.BaseSmallStatement) -> list[cst.BaseExpression]:
    """The targets a simple statement binds or unbinds (`=`, `+=`, annotated, `del`)."""
    if isinstance(small, cst.Assign):
        return [t.target for t in small.targets]
    if isinstance(small, (cst.AugAssign, cst.AnnAssign)):
        return [small.target]
    if isinstance(small, cst.Del):
        return [small.target]
    return []


class TensorAttributeNotBuffer(Rule):
    """A tensor stored as a plain attribute in __init__ does not follow .to(device)."""

    code = "TL106"
    name = "tensor-attribute-not-buffer"
    summary = "self.x = <tensor> in __init__: not a buffer, does not follow .to(device)"
    fix_safety = "safe"
    valid = [
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.register_buffer('mask', torch.ones(3))\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.w = nn.Parameter(torch.ones(3))\n",
        "import torch\nclass Plain:\n    def __init__(self):\n        self.mask = torch.ones(3)\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.register_buffer('mask', None)\n        self.mask = torch.ones(3)\n",
    ]
    invalid = [
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n        self.mask = torch.tril(torch.ones(n, n))\n    def forward(self, x):\n        return x * self.mask\n",
            line=6,
            fixed="import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n        self.register_buffer(\"mask\", torch.tril(torch.ones(n, n)), persistent=False)\n    def forward(self, x):\n        return x * self.mask\n",
        ),
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n        pos = torch.arange(n)\n        self.pos = pos.float()\n    def forward(self, x):\n        return x + self.pos\n",
            line=7,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.ctx.is_module_class(node):
            return
        init = last_method(node, "__init__")
        if init is None:
            return
        registered = self._registered_names(node)
        self._used = self._attributes_read(node, init)
        self._moved: set[str] | None = None  # computed when a finding needs it
        self._init = init
        self._before_init = self._statements_before_parent_init(node, init)
        self._bindings: dict[str, list[tuple[cst.CSTNode, cst.CSTNode]]] | None = None  # when a fix needs it
        self._python_only: dict[str, bool] = {}
        self._init_chain: set[int] | None = None
        for func in self.ctx.reachable_methods(node, init):
            self._check(node, func, self_name(func) or "self", registered)

    @staticmethod
    def _attributes_read(cls: cst.ClassDef, init: cst.FunctionDef) -> set[str]:
        """self.<attr> names that some method other than __init__ uses: a tensor that is
        never used after construction cannot end up on the wrong device."""
        out: set[str] = set()
        for stmt in statement_body(cls):
            if isinstance(stmt, cst.FunctionDef) and stmt is not init:
                me = self_name(stmt) or "self"
                for sub in descendants(stmt.body):
                    if isinstance(sub, cst.Attribute):
                        attr = is_self_attr(sub, me)
                        if attr:
                            out.add(attr)
        return out

    @staticmethod
    def _attributes_moved(cls: cst.ClassDef, init: cst.FunctionDef) -> set[str]:
        """self.<attr> names that another method rebinds from a device move
        (`self.state = self.state.to(self.device)`): the class places that tensor itself."""
        out: set[str] = set()
        for stmt in statement_body(cls):
            if not isinstance(stmt, cst.FunctionDef) or stmt is init:
                continue
            me = self_name(stmt) or "self"
            for small in small_statements(statement_body(stmt)):
                if not isinstance(small, cst.Assign):
                    continue
                moves = any(
                    isinstance(n, cst.Call) and (
                        (isinstance(n.func, cst.Attribute) and n.func.attr.value in ("to", "cuda"))
                        or any(a.keyword is not None and a.keyword.value == "device" for a in n.args)
                    )
                    for n in [small.value, *descendants(small.value)]
                )
                if moves:
                    for target in small.targets:
                        attr = is_self_attr(target.target, me)
                        if attr:
                            out.add(attr)
        return out

    def _read_only_as_python(self, cls: cst.ClassDef, attr: str) -> bool:
        """Whether every read of `self.<attr>` outside __init__ turns it into Python values
        (`.item()`, `.tolist()`, `int(...)`, `len(...)`, a truth test, a loop whose items are
        only used so) or uses it as an index or random-number bound: such a tensor never
        meets an input on another device, so leaving it on the CPU harms no one."""
        answer = self._python_only.get(attr)
        if answer is None:
            answer = True
            for stmt in statement_body(cls):
                if not isinstance(stmt, cst.FunctionDef) or stmt is self._init:
                    continue
                me = self_name(stmt) or "self"
                uses = [n for n in descendants(stmt.body) if isinstance(n, cst.Attribute) and is_self_attr(n, me) == attr]
                if not uses:
                    continue
                parents = _parent_map(stmt)
                for use in uses:
                    parent = parents.get(id(use))
                    if isinstance(parent, cst.AssignTarget):
                        continue  # rebound here, not read
                    if not _python_use(use, parents, stmt, 0):
                        answer = False
                        break
                if not answer:
                    break
            self._python_only[attr] = answer
        return answer

    def _sole_binding(self, cls: cst.ClassDef, attr: str, small: cst.BaseSmallStatement) -> bool:
        """Whether `small` is the only place the class (and its local bases) binds
        `self.<attr>`: `register_buffer` raises KeyError ("attribute already exists") when the
        name is already a plain attribute, a class attribute or a method, and a later
        `self.<attr> = <non-tensor>` raises TypeError on a buffer. Any other binding, or a base
        this file cannot see into, and the fix is not offered."""
        if self._bindings is None:
            self._bindings = self._class_bindings(cls, set())
        if self._bindings is None:
            return False
        others = [(node, owner) for node, owner in self._bindings.get(attr, [])
                  if node is not small and not self._later_tensor_binding(cls, node, owner)]
        if not others:
            return True
        # `if learnable: self.g = nn.Parameter(...)` / `else: self.g = torch.ones(n)`: only one runs
        owner = next((o for n, o in self._bindings[attr] if n is small), None)
        if owner is None or any(o is not owner for _, o in others):
            return False
        parents = _parent_map(owner)
        return all(_exclusive_branches(small, node, parents) for node, _ in others)

    def _later_tensor_binding(self, cls: cst.ClassDef, node: cst.CSTNode, owner: cst.CSTNode) -> bool:
        """`self.state = torch.zeros_like(self.state)` (or `= None`) in a method of this class
        that construction does not run: it assigns a tensor to the buffer, which is allowed."""
        if self._init_chain is None:
            self._init_chain = {id(f) for f in self.ctx.reachable_methods(cls, self._init)}
        if (not isinstance(owner, cst.FunctionDef) or id(owner) in self._init_chain
                or not any(stmt is owner for stmt in statement_body(cls))):
            return False
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0].target, cst.Attribute)):
            return False
        value = node.value
        return (isinstance(value, cst.Name) and value.value == "None") or (
            self.is_tensor_expr(value, set()))

    def _class_bindings(self, cls: cst.ClassDef, seen: set[int]) -> dict[str, list[tuple[cst.CSTNode, cst.CSTNode]]] | None:
        """attr -> (statement binding it, the method or class it is in), over the class and its
        bases; None when a base is neither nn.Module nor a class of this file."""
        if id(cls) in seen:
            return None
        seen.add(id(cls))
        out: dict[str, list[tuple[cst.CSTNode, cst.CSTNode]]] = {}
        for arg in cls.bases:
            if arg.keyword is not None or arg.star:
                return None
            value = arg.value.value if isinstance(arg.value, cst.Subscript) else arg.value
            if self.ctx.qualname(value) == "torch.nn.Module":
                continue
            local = self.ctx.local_classes.get(value.value) if isinstance(value, cst.Name) else None
            if local is None or value.value in self.ctx.imports:
                return None
            inherited = self._class_bindings(local, seen)
            if inherited is None:
                return None
            for name, ids in inherited.items():
                out.setdefault(name, []).extend(ids)
        for stmt in statement_body(cls):
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                out.setdefault(stmt.name.value, []).append((stmt, cls))
            if not isinstance(stmt, cst.FunctionDef):
                for small in small_statements([stmt]):
                    for target in _binding_targets(small):
                        if isinstance(target, cst.Name):
                            out.setdefault(target.value, []).append((small, cls))
                continue
            me = self_name(stmt) or "self"
            for small in small_statements(statement_body(stmt), into_defs=True):
                for target in _binding_targets(small):
                    for node in (target, *descendants(target)):
                        attr = is_self_attr(node, me)
                        if attr and (node is target or isinstance(target, (cst.Tuple, cst.List))):
                            out.setdefault(attr, []).append((small, stmt))
            for node in find_all(stmt.body, (cst.For, cst.With, cst.Call)):
                if isinstance(node, cst.Call):
                    # setattr(self, "x", ...)
                    if (dotted_name(node.func) == "setattr" and len(node.args) >= 2
                            and isinstance(node.args[1].value, cst.SimpleString)):
                        name = node.args[1].value.evaluated_value
                        if isinstance(name, str):
                            out.setdefault(name, []).append((node, stmt))
                    continue
                bound = [node.target] if isinstance(node, cst.For) else [
                    item.asname.name for item in node.items if item.asname is not None
                ]
                for target in bound:
                    for sub in (target, *descendants(target)):
                        attr = is_self_attr(sub, me)
                        if attr:
                            out.setdefault(attr, []).append((node, stmt))
        return out

    @staticmethod
    def _statements_before_parent_init(cls: cst.ClassDef, init: cst.FunctionDef) -> set[int] | None:
        """ids of the simple statements of __init__ that run before the parent init call;
        None when __init__ never calls it (register_buffer would then raise)."""
        call = find_parent_init(init, cls.name.value)
        if call is None:
            return None
        before: set[int] = set()
        for small in small_statements(statement_body(init)):
            if any(n is call for n in descendants(small)):
                return before
            before.add(id(small))
        return before

    @staticmethod
    def _is_scalar(expr: cst.BaseExpression) -> bool:
        """A Python number expression: `1e-6`, `-1`, `dim ** -0.5`, `math.log(10)`, `float(t)`."""
        if isinstance(expr, (cst.Integer, cst.Float)):
            return True
        if isinstance(expr, cst.Name):
            return expr.value in ("True", "False")
        if isinstance(expr, cst.UnaryOperation):
            return TensorAttributeNotBuffer._is_scalar(expr.expression)
        if isinstance(expr, cst.BinaryOperation):
            sides = (expr.left, expr.right)
            if any(isinstance(e, (cst.List, cst.Tuple, cst.ListComp, cst.Subscript)) for e in sides):
                return False
            return any(TensorAttributeNotBuffer._is_scalar(e) for e in sides)
        if isinstance(expr, cst.Call):
            name = dotted_name(expr.func) or ""
            return name in ("float", "int", "bool") or name.startswith("math.")
        return False

    def _is_zero_dim(self, expr: cst.BaseExpression) -> bool:
        """`torch.tensor(<number>)`: a 0-dim CPU tensor mixes with tensors on any device."""
        return (
            isinstance(expr, cst.Call)
            and self.ctx.qualname(expr.func) in ("torch.tensor", "torch.as_tensor")
            and bool(expr.args)
            and expr.args[0].keyword is None
            and self._is_scalar(expr.args[0].value)
        )

    def _registered_names(self, cls: cst.ClassDef) -> set[str]:
        out = set()
        for node in find_all(cls.body, cst.Call):
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in _REGISTERING_METHODS:
                if node.args and isinstance(node.args[0].value, cst.SimpleString):
                    value = node.args[0].value.evaluated_value
                    if isinstance(value, str):
                        out.add(value)
        return out

    def is_tensor_expr(self, expr: cst.BaseExpression, tensor_locals: set[str]) -> bool:
        """A torch factory call, a torch op or tensor method applied to one, or a tensor local."""
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            return expr.value in tensor_locals
        # `torch.tensor(m).view(1, -1, 1, 1) if m else None`: a tensor on one path, None on the other
        if isinstance(expr, cst.IfExp):
            sides = (expr.body, expr.orelse)
            tensors = [self.is_tensor_expr(e, tensor_locals) for e in sides]
            return any(tensors) and all(
                t or (isinstance(e, cst.Name) and e.value == "None") for t, e in zip(tensors, sides)
            )
        # arithmetic on a tensor and indexing into one give tensors too
        if isinstance(expr, cst.BinaryOperation):
            return self.is_tensor_expr(expr.left, tensor_locals) or self.is_tensor_expr(expr.right, tensor_locals)
        if isinstance(expr, cst.UnaryOperation) and not isinstance(expr.operator, cst.Not):
            return self.is_tensor_expr(expr.expression, tensor_locals)
        if isinstance(expr, cst.Subscript):
            return self.is_tensor_expr(expr.value, tensor_locals)
        if not isinstance(expr, cst.Call):
            return False
        qual = ctx.qualname(expr.func) or ""
        if qual.startswith("torch."):
            last = qual.rsplit(".", 1)[-1]
            if qual.count(".") == 1 and last in TENSOR_FACTORIES:
                return True
            if qual.count(".") == 1 and last in ctx.names.torch and last[:1].islower():
                args = [a.value for a in expr.args]
                return any(self.is_tensor_expr(a, tensor_locals) for a in args)
            return False
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ctx.names.tensor_methods:
            if expr.func.attr.value in _NON_TENSOR_RESULTS or expr.func.attr.value.startswith("is_"):
                return False
            return self.is_tensor_expr(expr.func.value, tensor_locals)
        return False

    def _check(self, cls: cst.ClassDef, func: cst.FunctionDef, me: str, registered: set[str]) -> None:
        self._walk(cls, func, me, registered, statement_body(func), {}, set())

    def _walk(self, cls: cst.ClassDef, func: cst.FunctionDef, me: str, registered: set[str],
              stmts: list[cst.BaseStatement], state: dict[str, str], bound: set[str]) -> None:
        """Follow the function's statements in order; `state` says which local names hold a
        tensor ("tensor") or None ("none"); `bound` collects the names assigned."""
        for stmt in stmts:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self._statement(cls, func, me, registered, small, state, bound)
            elif isinstance(stmt, cst.If):
                self._branches(cls, func, me, registered, stmt, state, bound)
            elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                continue
            else:
                # loops, with, try: their blocks in order (a loop body may run or not; as
                # before, its bindings are taken to hold after it)
                blocks = [statement_body(stmt)]
                orelse = getattr(stmt, "orelse", None)
                if orelse is not None:
                    blocks.append(statement_body(orelse))
                blocks += [statement_body(h) for h in getattr(stmt, "handlers", ()) or ()]
                final = getattr(stmt, "finalbody", None)
                if final is not None:
                    blocks.append(statement_body(final))
                if isinstance(stmt, cst.Match):
                    blocks += [statement_body(case) for case in stmt.cases]
                for block in blocks:
                    self._walk(cls, func, me, registered, block, state, bound)

    def _branches(self, cls: cst.ClassDef, func: cst.FunctionDef, me: str, registered: set[str],
                  stmt: cst.If, state: dict[str, str], bound: set[str]) -> None:
        """An if/elif/else: a name holds a tensor after it when every branch that rebinds it
        binds a tensor or None, and one binds a tensor (`if learned: pe = torch.randn(...)
        else: pe = torch.zeros(...)`); a branch that binds anything else clears it."""
        outcomes: list[tuple[dict[str, str], set[str]]] = []
        branch: cst.BaseStatement | None = stmt
        while branch is not None:
            branch_state, branch_bound = dict(state), set()
            self._walk(cls, func, me, registered, statement_body(branch), branch_state, branch_bound)
            outcomes.append((branch_state, branch_bound))
            orelse = getattr(branch, "orelse", None)
            branch = orelse if isinstance(orelse, cst.If) else (orelse if orelse is not None else None)
            if branch is not None and not isinstance(branch, cst.If):
                else_state, else_bound = dict(state), set()
                self._walk(cls, func, me, registered, statement_body(branch), else_state, else_bound)
                outcomes.append((else_state, else_bound))
                branch = None
        names = set().union(*(b for _, b in outcomes))
        for name in names:
            values = [st.get(name) for st, b in outcomes if name in b]
            if name in state:
                values += [state[name] for _, b in outcomes if name not in b]
            if values and all(v in ("tensor", "none") for v in values):
                state[name] = "tensor" if "tensor" in values else "none"
            else:
                state.pop(name, None)
        bound |= names

    def _statement(self, cls: cst.ClassDef, func: cst.FunctionDef, me: str, registered: set[str],
                   small: cst.BaseSmallStatement, state: dict[str, str], bound: set[str]) -> None:
        if not isinstance(small, (cst.Assign, cst.AnnAssign)) or small.value is None:
            return
        tensor_locals = {name for name, kind in state.items() if kind == "tensor"}
        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
        is_tensor = self.is_tensor_expr(small.value, tensor_locals)
        is_none = isinstance(small.value, cst.Name) and small.value.value == "None"
        for target in targets:
            if isinstance(target, cst.Name):
                bound.add(target.value)
                if is_tensor:
                    state[target.value] = "tensor"
                elif is_none:
                    state[target.value] = "none"
                else:
                    state.pop(target.value, None)
        if not is_tensor or self._is_zero_dim(small.value):
            return
        for target in targets:
            attr = is_self_attr(target, me)
            if attr is None or attr in registered or attr not in self._used:
                continue
            if self._moved is None:
                self._moved = self._attributes_moved(cls, self._init)
            if attr in self._moved or self._read_only_as_python(cls, attr):
                continue
            fix = None
            # register_buffer needs nn.Module.__init__ to have run first
            can_register = self._before_init is not None and not (
                func is self._init and id(small) in self._before_init
            )
            if len(targets) == 1 and can_register and self._sole_binding(cls, attr, small):
                value = self.ctx.code_for(small.value)
                fix = PendingFix(
                    "safe",
                    (Replace(small, f'{me}.register_buffer("{attr}", {value}, persistent=False)'),),
                    "register as a non-persistent buffer",
                )
            self.report(
                small,
                f"self.{attr} holds a tensor but is not a buffer: it stays on the CPU when the Module "
                f"moves with .to(device); use self.register_buffer(\"{attr}\", ..., persistent=False)",
                fix=fix,
                context={"class": cls.name.value},
            )


# --- TL107 ----------------------------------------------------------------------------------


class LayerCreatedInForward(Rule):
    """A layer with parameters, or a dropout layer, is built inside forward on every call."""

    code = "TL107"
    name = "layer-created-in-forward"
    summary = "a parameterised or dropout layer is constructed inside forward"
    valid = [
        "import torch.nn as nn\nimport torch.nn.functional as F\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n    def forward(self, x):\n        return F.relu(self.fc(x))\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.proj = None\n    def forward(self, x):\n        if self.proj is None:\n            self.proj = nn.Linear(x.shape[-1], 2)\n        return self.proj(x)\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return nn.ReLU()(x)\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        fc = nn.Linear(x.shape[-1], 2)\n        return fc(x)\n",
            line=4,
        ),
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return self.block(x)\n    def block(self, x):\n        return nn.Dropout(0.5)(x)\n",
            line=6,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.ctx.is_module_class(node):
            return
        forward = last_method(node, "forward")
        if forward is None:
            return
        for func in self.ctx.reachable_methods(node, forward):
            self._check(node, func, self_name(func) or "self")

    def _check(self, cls: cst.ClassDef, func: cst.FunctionDef, me: str) -> None:
        names = self.ctx.names
        guarded: set[int] = set()
        # layers built under an `if` that stores something on self are lazy one-time
        # creation (`if self.proj is None: self.proj = nn.Linear(...)`), also through a local
        for stmt in iter_statements(statement_body(func), into_defs=False):
            if isinstance(stmt, cst.If):
                stores = False
                for inner in small_statements(statement_body(stmt)):
                    if isinstance(inner, (cst.Assign, cst.AnnAssign)) and inner.value is not None:
                        targets = [t.target for t in inner.targets] if isinstance(inner, cst.Assign) else [inner.target]
                        if any(is_self_attr(t, me) for t in targets):
                            stores = True
                if stores:
                    guarded.update(id(n) for n in descendants(stmt.body))
        for node in find_all(func.body, cst.Call, skip_scopes=True):
            if id(node) in guarded:
                continue
            layer = self.ctx.torch_nn_name(node.func)
            if layer is None:
                continue
            if layer in names.nn_stateful_layers:
                why = "new random weights on every call, never trained"
            elif layer in names.nn_dropout_layers:
                why = "a new Module is in training mode, so it keeps dropping after .eval()"
            else:
                continue
            self.report(
                node,
                f"nn.{layer} is constructed inside {func.name.value}(): {why}; create it in __init__ "
                f"and store it on self" + (" (or use F.dropout(x, p, training=self.training))" if layer in names.nn_dropout_layers else ""),
                context={"class": cls.name.value},
            )


# --- TL108 ----------------------------------------------------------------------------------


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Levenshtein distance, capped at `limit` (enough to compare short method names)."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return min(previous[-1], limit)


# real words within edit distance 2 of "forward": method names chosen on purpose
_FORWARD_LOOKALIKE_WORDS = frozenset({"toward", "towards", "onward", "onwards", "coward", "foreword", "forwarded"})


class MisspelledForward(Rule):
    """A Module has no forward but has a method whose name is a misspelling of it."""

    code = "TL108"
    name = "misspelled-forward"
    summary = "no forward(), but a method named like a misspelling of it (foward, Forward, ...)"
    fix_safety = "unsafe"
    valid = [
        "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x\n    def forwards(self, x):\n        return x\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def _foward(self, x):\n        return x\n",
        "import torch.nn as nn\nclass M(nn.Sequential):\n    def foward(self, x):\n        return x\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def foward(self, x):\n        return x\n",
            line=3,
            fixed="import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x\n",
            unsafe=True,
        ),
        Case("import torch.nn as nn\nclass M(nn.Module):\n    def Forward(self, x):\n        return x\n", line=3),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self.ctx.is_module_class(node) or self.ctx.class_defines(node, "forward") is not False:
            return
        if self._forward_provided_otherwise(node):
            return
        for stmt in statement_body(node):
            if not isinstance(stmt, cst.FunctionDef):
                continue
            name = stmt.name.value
            if name.startswith("_") or name == "forward" or name.lower() in _FORWARD_LOOKALIKE_WORDS:
                continue
            if edit_distance(name.lower(), "forward") <= 2 and not self._called_by_name(name):
                self.report(
                    stmt,
                    f"{node.name.value} defines no forward() but defines {name}(); calling the Module raises "
                    "NotImplementedError; rename it to forward",
                    fix=PendingFix("unsafe", (Replace(stmt.name, "forward"),), "rename to forward"),
                    context={"class": node.name.value},
                )
                return

    @staticmethod
    def _forward_provided_otherwise(cls: cst.ClassDef) -> bool:
        """`forward = foward` in the class body, `self.forward = ...`, or an own __call__:
        calling the Module does not reach the missing forward."""
        for stmt in statement_body(cls):
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__call__":
                return True
        for small in small_statements(statement_body(cls), into_defs=True):
            if isinstance(small, (cst.Assign, cst.AnnAssign)):
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                for target in targets:
                    if isinstance(target, cst.Name) and target.value == "forward":
                        return True
                    if isinstance(target, cst.Attribute) and target.attr.value == "forward":
                        return True
        return False

    def _called_by_name(self, name: str) -> bool:
        """Whether the file uses `.name` somewhere: a method called by its own name was named
        on purpose (a helper of the subclasses' forward), not a misspelt forward."""
        return any(n.attr.value == name for n in find_all(self.ctx.module, cst.Attribute))
