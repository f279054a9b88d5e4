"""TL2xx: calling a Module — `forward()` called directly, containers called, forward returning None."""

from __future__ import annotations

import libcst as cst

from torchlint.context import dotted_name, positional_args, statement_body
from torchlint.facts import container_kind, container_names, owner_class, self_attr_values, uses_torch
from torchlint.rule import Case, PendingFix, Replace, Rule
from torchlint.walk import descendants

_PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"


def _class_context(rule: Rule) -> dict[str, str] | None:
    """`{"class": Name}` when the current node is inside a known Module class."""
    cls = rule.ctx.enclosing_class()
    if cls is not None and rule.ctx.is_module_class(cls):
        return {"class": cls.name.value}
    return None


def _annotation_is_module(rule: Rule, annotation: cst.BaseExpression) -> bool | None:
    """Whether a parameter annotation names a Module class (string annotations included)."""
    if isinstance(annotation, cst.SimpleString):
        try:
            annotation = cst.parse_expression(annotation.evaluated_value)  # type: ignore[arg-type]
        except Exception:  # a string annotation that is not an expression: unknown
            return None
    if isinstance(annotation, cst.Subscript):  # Optional[X], X | None: look at the first part
        elements = annotation.slice
        if elements and isinstance(elements[0].slice, cst.Index):
            annotation = elements[0].slice.value
    if isinstance(annotation, cst.BinaryOperation):
        annotation = annotation.left
    return rule.ctx.expr_is_module_class(annotation)


class DirectForwardCall(Rule):
    """`obj.forward(x)` skips `Module.__call__`: forward pre-hooks, forward hooks, backward hooks."""

    code = "TL201"
    name = "direct-forward-call"
    summary = "a Module's forward() is called directly, skipping its hooks"
    fix_safety = "safe"
    valid = [
        _PRELUDE + "class A(nn.Linear):\n    def forward(self, x):\n        return super().forward(x)\n",
        _PRELUDE + "class A(nn.Linear):\n    def forward(self, x):\n        return nn.Linear.forward(self, x)\n",
        _PRELUDE + "class A(nn.Module):\n    def step(self, x):\n        return self.forward(x)\n",
        _PRELUDE + "class Fn(torch.autograd.Function):\n    pass\n\ny = Fn.forward(None, 1)\n",
        _PRELUDE + "class Helper:\n    def forward(self, x):\n        return x\n\nh = Helper()\nh.forward(1)\n",
    ]
    invalid = [
        Case(_PRELUDE + "model = nn.Linear(2, 2)\ny = model.forward(torch.ones(2))\n", line=6, col=5,
             fixed=_PRELUDE + "model = nn.Linear(2, 2)\ny = model(torch.ones(2))\n"),
        Case(_PRELUDE + "def run(model, x):\n    return model.forward(x)\n", line=6,
             fixed=_PRELUDE + "def run(model, x):\n    return model(x)\n"),
        Case(_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n        return self.fc.forward(x)\n",
             line=11, fixed=_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n"),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value != "forward":
            return
        receiver = func.value
        # only names, attribute chains and items: `f().forward(x)` (an exported program's
        # `.module()`, a factory) is too unknown to judge
        if dotted_name(receiver) is None and not (
                isinstance(receiver, cst.Subscript) and dotted_name(receiver.value) is not None):
            return
        if not uses_torch(self.ctx) or self._is_class_or_unbound(node, receiver):
            return
        if isinstance(receiver, cst.Name) and receiver.value in ("self", "cls"):
            return  # the class's own forward: idiomatic (Lightning), documented choice
        if self._known_not_module(receiver):
            return
        text = self.ctx.code_for(receiver).strip()
        fix = PendingFix("safe", (Replace(func, text),), f"call {text}(...) instead of {text}.forward(...)")
        self.report(node, f"{text}.forward(...) skips Module.__call__ (forward pre-hooks, forward and backward "
                    f"hooks); call the module: {text}(...)", fix=fix, context=_class_context(self))

    def _is_class_or_unbound(self, call: cst.Call, receiver: cst.BaseExpression) -> bool:
        """`Base.forward(self, x)`, `nn.Linear.forward(self, x)`, `Fn.forward(ctx, ...)`."""
        pos = positional_args(call)
        if pos and isinstance(pos[0].value, cst.Name) and pos[0].value.value in ("self", "cls", "ctx"):
            return True
        dotted = dotted_name(receiver)
        if dotted is None:
            return False
        last = dotted.rsplit(".", 1)[-1]
        if last[:1].isupper() and not last.isupper():
            return True  # CamelCase: a class by convention
        if self.ctx.expr_is_module_class(receiver) is not None:
            return True
        return dotted.split(".")[0] in self.ctx.local_classes

    def _known_not_module(self, receiver: cst.BaseExpression) -> bool:
        """A receiver bound from a non-Module class or call, or annotated with a non-Module type."""
        ctx = self.ctx
        if isinstance(receiver, cst.Subscript):
            return False
        if isinstance(receiver, cst.Attribute) and isinstance(receiver.value, cst.Name) and receiver.value.value == "self":
            cls = ctx.enclosing_class()
            if cls is None:
                return False
            values = [v for v in self_attr_values(ctx, cls).get(receiver.attr.value, [])
                      if not (isinstance(v, cst.Name) and v.value == "None")]
            return bool(values) and all(self._value_not_module(v) for v in values)
        if not isinstance(receiver, cst.Name):
            return False
        name = receiver.value
        # the innermost function (or the module) that binds the name decides: closures see outer names
        scopes: list[cst.CSTNode] = [n for n in reversed(ctx.stack) if isinstance(n, cst.FunctionDef)]
        for scope in [*scopes, ctx.module]:
            if isinstance(scope, cst.FunctionDef):
                params = scope.params
                for param in (*params.posonly_params, *params.params, *params.kwonly_params):
                    if param.name.value == name:
                        if param.annotation is None:
                            return False
                        return _annotation_is_module(self, param.annotation.annotation) is not True
            values = []
            body = scope.body if isinstance(scope, cst.FunctionDef) else scope
            for node in descendants(body, skip_scopes=True):
                if isinstance(node, cst.Assign) and any(
                        isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
                    values.append(node.value)
            if values:
                return all(self._value_not_module(v) for v in values)
        return False

    def _value_not_module(self, value: cst.BaseExpression) -> bool:
        if not isinstance(value, cst.Call):
            return False
        qualname = self.ctx.qualname(value.func)
        if qualname is not None and qualname.startswith(("torch.classes.", "torch.ops.")):
            return True  # compiled extension objects
        if dotted_name(value.func) is not None and (qualname or "").rsplit(".", 1)[-1] == "pipeline":
            return True  # a Hugging Face pipeline is not a Module
        return self.ctx.expr_is_module_class(value.func) is False


class ContainerCalled(Rule):
    """Calling an nn.ModuleList/ModuleDict (no forward) or nn.ParameterList/ParameterDict raises."""

    code = "TL202"
    name = "container-called"
    summary = "an nn.ModuleList/ModuleDict/ParameterList/ParameterDict is called like nn.Sequential"
    valid = [
        _PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.blocks = nn.Sequential(nn.Linear(2, 2))\n\n    def forward(self, x):\n        return self.blocks(x)\n",
        _PRELUDE + "class Stack(nn.ModuleList):\n    def forward(self, x):\n        for m in self:\n            x = m(x)\n"
        "        return x\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.blocks = Stack([nn.Linear(2, 2)])\n\n    def forward(self, x):\n        return self.blocks(x)\n",
        _PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.blocks = nn.ModuleList([nn.Linear(2, 2)])\n\n    def forward(self, x):\n"
        "        for blk in self.blocks:\n            x = blk(x)\n        return x\n",
    ]
    invalid = [
        Case(_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.blocks = nn.ModuleList([nn.Linear(2, 2)])\n\n    def forward(self, x):\n"
             "        return self.blocks(x)\n", line=11, col=16),
        Case(_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.w = nn.ParameterList([nn.Parameter(torch.ones(2))])\n\n    def forward(self, x):\n"
             "        return x * self.w(0)\n", line=11),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        kind = None
        if (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"):
            method = self.ctx.enclosing_method()
            if method is None:
                return
            values = [v for v in self_attr_values(self.ctx, method[0]).get(func.attr.value, [])
                      if not (isinstance(v, cst.Name) and v.value == "None")]
            kinds = {container_kind(self.ctx, v) for v in values}
            if len(kinds) == 1:
                kind = kinds.pop()
        elif isinstance(func, cst.Name):
            kind = self._local_kind(func.value)
        elif isinstance(func, cst.Call):
            kind = container_kind(self.ctx, func)
        if kind is None:
            return
        text = self.ctx.code_for(func).strip()
        if kind == "ModuleList":
            advice = f"iterate: for layer in {text}: x = layer(x) (or build it as nn.Sequential)"
            error = "has no forward(); calling it raises NotImplementedError"
        elif kind == "ModuleDict":
            advice = f"pick a module: {text}[key](x), or iterate: for layer in {text}.values(): x = layer(x)"
            error = "has no forward(); calling it raises NotImplementedError"
        else:
            advice = f"index it: {text}[i]"
            error = f"cannot be called (RuntimeError: {kind} should not be called.)"
        self.report(node, f"{text} is an nn.{kind}, which {error}; {advice}", context=_class_context(self))

    def _local_kind(self, name: str) -> str | None:
        """The container kind of a local name when every assignment to it builds one."""
        if name not in container_names(self.ctx):
            return None  # cheap exit: the file never binds this name to a container
        func = self.ctx.enclosing_function()
        scope: cst.CSTNode = func.body if func is not None else self.ctx.module
        values = []
        for node in descendants(scope, skip_scopes=True):
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    if isinstance(target.target, cst.Name) and target.target.value == name:
                        values.append(node.value)
            elif isinstance(node, (cst.For, cst.Param)) and name in _bound_names(node):
                return None
        if func is not None and name in {p.name.value for p in func.params.params}:
            return None
        kinds = {container_kind(self.ctx, v) for v in values}
        return kinds.pop() if len(kinds) == 1 else None


def _bound_names(node: cst.CSTNode) -> set[str]:
    target = node.target if isinstance(node, cst.For) else getattr(node, "name", None)
    return {n.value for n in ([target] if isinstance(target, cst.Name) else
                              descendants(target) if target is not None else []) if isinstance(n, cst.Name)}


class ForwardReturnsNothing(Rule):
    """A Module's forward computes something but never returns it: callers get None."""

    code = "TL203"
    name = "forward-returns-nothing"
    summary = "forward() computes a result but returns nothing"
    valid = [
        _PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n        y = x + 1\n        return y\n",
        _PRELUDE + "class Base(nn.Module):\n    def forward(self, x):\n        raise NotImplementedError\n",
        _PRELUDE + "class Base(nn.Module):\n    def forward(self, x):\n        \"\"\"Subclasses compute.\"\"\"\n        ...\n",
        _PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n        if x is None:\n            return None\n"
        "        y = x * 2\n        return y\n",
    ]
    invalid = [
        Case(_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n        x = self.fc(x)\n", line=10, col=5),
    ]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value != "forward":
            return
        cls = owner_class(self.ctx, node)
        if cls is None or not self.ctx.is_module_class(cls):
            return
        for decorator in node.decorators:
            name = dotted_name(decorator.decorator) or ""
            if name.rsplit(".", 1)[-1] in ("abstractmethod", "overload", "property"):
                return
        body = statement_body(node)
        computes = False
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Raise):
                        return  # every path through here raises
                    if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                        computes = True
                    elif isinstance(small, cst.Expr) and isinstance(small.value, (cst.Call, cst.Await)):
                        computes = True
            else:
                computes = True
        if not computes:
            return
        if _is_modular_template(self.ctx, body) or _only_records_state(node):
            return
        for inner in descendants(node.body, skip_scopes=True):
            if isinstance(inner, cst.Return) and inner.value is not None:
                return
            if isinstance(inner, (cst.Yield, cst.Await)):
                return  # a generator or coroutine: not the ordinary forward contract
        self.report(node, f"{cls.name.value}.forward computes a result but has no `return`; the caller gets None: "
                    "return the output", context={"class": cls.name.value})


def _is_modular_template(ctx, body: list[cst.BaseStatement]) -> bool:
    """Hugging Face `modular_*.py` files are templates for a code generator, never run: a bare
    `super().forward(...)` statement there means "copy the parent's body", return included."""
    if not ctx.is_generator_template:
        return False
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)
                        and isinstance(small.value.func, cst.Attribute) and small.value.func.attr.value == "forward"
                        and isinstance(small.value.func.value, cst.Call)
                        and dotted_name(small.value.func.value.func) == "super"):
                    return True
    return False


_STATE_WRITERS = frozenset({"append", "extend", "update", "add", "copy_", "fill_", "zero_", "add_", "put", "record"})


def _only_records_state(func: cst.FunctionDef) -> bool:
    """An observer/logger forward: it binds no new local variable, runs no submodule, and writes
    only into `self` (`self.stats[k].append(x)`, `self.count += 1`); its result is not meant
    to be used."""
    writes = False
    params = {p.name.value for p in func.params.params}
    for node in descendants(func.body, skip_scopes=True):
        if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                if isinstance(target, cst.Name) and target.value in params:
                    continue  # normalising an input (`x = x[0]`) is not computing a result
                root = target
                while isinstance(root, (cst.Attribute, cst.Subscript)):
                    root = root.value
                if not (isinstance(root, cst.Name) and root.value == "self" and root is not target):
                    return False
                writes = True
        elif isinstance(node, (cst.For, cst.With, cst.NamedExpr)):
            return False  # binds local names
        elif (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
              and isinstance(node.func.value, cst.Name) and node.func.value.value == "self"):
            return False  # runs a submodule or method: computes an output
        elif (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
              and node.func.attr.value in _STATE_WRITERS and (dotted_name(node.func.value) or "").startswith("self.")):
            writes = True
        elif (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
              and node.func.attr.value in _STATE_WRITERS and isinstance(node.func.value, cst.Subscript)):
            inner = node.func.value.value
            if (dotted_name(inner) or "").startswith("self."):
                writes = True
    return writes
