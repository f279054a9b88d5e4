"""TL2xx: calling a Module — `forward()` called directly, containers called, forward returning None."""

from __future__ import annotations

import libcst as cst

from torchlint.context import dotted_name, is_self_attr, positional_args, statement_body
from torchlint.facts import (MODULE_SELF_METHODS, container_attrs, container_kind, container_names, find_targets,
                             is_module_constructor, owner_class, self_attr_values, uses_torch)
from torchlint.rule import Case, PendingFix, Replace, Rule
from torchlint.walk import descendants, find_all

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


# Packages whose objects have a `.forward()` of their own and are never torch Modules:
# OpenCV DNN networks (`cv2.dnn.readNet*`), onnxruntime sessions, Caffe/MXNet/OpenVINO/
# TensorRT/Paddle/ncnn/TVM objects. Rewriting `net.forward()` as `net()` breaks them.
_FOREIGN_PACKAGES = frozenset(
    {"cv2", "onnxruntime", "caffe", "mxnet", "openvino", "tensorrt", "paddle", "ncnn", "tvm",
     "tensorflow", "keras", "tflite_runtime", "jax", "flax", "sklearn", "numpy", "dlib", "mindspore"}
)
# `RemoteModule.forward`/`forward_async` are its RPC API; hooks cannot be registered on it.
_REMOTE_MODULES = frozenset(
    {"torch.distributed.nn.RemoteModule", "torch.distributed.nn.api.remote_module.RemoteModule"}
)
_MODULE, _FOREIGN, _OTHER = "module", "foreign", "other"  # what a receiver is known to hold
_MODULE_SEQUENCES = frozenset({"torch.nn.ModuleList", "torch.nn.Sequential",
                               "torch.nn.modules.container.ModuleList", "torch.nn.modules.container.Sequential"})
_MODULE_DICTS = frozenset({"torch.nn.ModuleDict", "torch.nn.modules.container.ModuleDict"})


# binding entries of a name in one scope
_Entry = tuple  # ("value", expr) | ("loop", For, index or None) | ("param", Param) | ("unknown",)


def _combine(kinds: list[str | None]) -> str | None:
    """One answer for several bindings: all Modules, all foreign, all non-Modules, else unknown."""
    if kinds and all(k == "none" for k in kinds):
        return "none"  # only ever set to None: says nothing yet
    kinds = [k for k in kinds if k != "none"]
    if not kinds or None in kinds:
        return None
    if all(k == _MODULE for k in kinds):
        return _MODULE
    if all(k == _FOREIGN for k in kinds):
        return _FOREIGN
    if _MODULE not in kinds:
        return _OTHER
    return None


def _scope_bindings(scope: cst.CSTNode) -> dict[str, list[_Entry]]:
    """name -> how a function body (or the module) binds it, nested scopes excluded."""
    out: dict[str, list[_Entry]] = {}

    def unknown(target: cst.BaseExpression) -> None:
        for item in find_targets(target):
            if isinstance(item, cst.Name):
                out.setdefault(item.value, []).append(("unknown",))

    body = scope.body if isinstance(scope, cst.FunctionDef) else scope
    for node in descendants(body, skip_scopes=True):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    out.setdefault(target.target.value, []).append(("value", node.value))
                else:
                    unknown(target.target)
        elif isinstance(node, (cst.AnnAssign, cst.NamedExpr)) and isinstance(node.target, cst.Name):
            if node.value is not None:
                out.setdefault(node.target.value, []).append(("value", node.value))
        elif isinstance(node, cst.AugAssign):
            unknown(node.target)
        elif isinstance(node, cst.For):
            if isinstance(node.target, cst.Name):
                out.setdefault(node.target.value, []).append(("loop", node, None))
            elif isinstance(node.target, (cst.Tuple, cst.List)):
                for index, element in enumerate(node.target.elements):
                    if isinstance(element.value, cst.Name):
                        out.setdefault(element.value.value, []).append(("loop", node, index))
                    else:
                        unknown(element.value)
        elif isinstance(node, cst.WithItem) and node.asname is not None:
            unknown(node.asname.name)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            out.setdefault(node.name.value, []).append(("unknown",))
        elif isinstance(node, cst.ExceptHandler) and node.name is not None:
            unknown(node.name.name)
        elif isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                bound = alias.asname.name if alias.asname is not None else alias.name
                while isinstance(bound, cst.Attribute):
                    bound = bound.value
                if isinstance(bound, cst.Name):
                    out.setdefault(bound.value, []).append(("unknown",))
    return out


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
        _PRELUDE + "import cv2\n\nnet = cv2.dnn.readNetFromONNX('m.onnx')\nout = net.forward()\n",
    ]
    invalid = [
        Case(_PRELUDE + "model = nn.Linear(2, 2)\ny = model.forward(torch.ones(2))\n", line=6, col=5,
             fixed=_PRELUDE + "model = nn.Linear(2, 2)\ny = model(torch.ones(2))\n"),
        Case(_PRELUDE + "def run(model, x):\n    return model.forward(x)\n", line=6,
             fixed=_PRELUDE + "def run(model, x):\n    return model(x)\n", unsafe=True),
        Case(_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n        return self.fc.forward(x)\n",
             line=11, fixed=_PRELUDE + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n"),
    ]

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self._bindings: dict[int, dict[str, list[_Entry]]] = {}
        self._attr_entries_cache: dict[tuple[int, str], list[tuple[_Entry, list[cst.CSTNode]]]] = {}

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
        kind = self._receiver_kind(receiver)
        if kind in (_FOREIGN, _OTHER, "none"):
            return
        text = self.ctx.code_for(receiver).strip()
        # `x(...)` keeps behaviour only when x is an nn.Module (an OpenCV net has no __call__)
        if kind == _MODULE:
            fix = PendingFix("safe", (Replace(func, text),), f"call {text}(...) instead of {text}.forward(...)")
        else:
            fix = PendingFix("unsafe", (Replace(func, text),),
                             f"call {text}(...) instead of {text}.forward(...), if {text} is an nn.Module")
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

    # ---- what does the receiver hold? ----------------------------------------------------
    def _receiver_kind(self, receiver: cst.BaseExpression) -> str | None:
        """_MODULE, _FOREIGN (another library's object), _OTHER (known non-Module) or None."""
        scopes: list[cst.CSTNode] = [n for n in reversed(self.ctx.stack) if isinstance(n, cst.FunctionDef)]
        scopes.append(self.ctx.module)
        return self._value_kind(receiver, scopes, 0)

    def _value_kind(self, value: cst.BaseExpression, scopes: list[cst.CSTNode], depth: int) -> str | None:
        if depth > 8:
            return None
        ctx = self.ctx
        if isinstance(value, cst.Name):
            if value.value == "None":
                return "none"
            found = self._name_entries(value.value, scopes)
            return None if found is None else self._entries_kind(found[0], found[1], depth + 1)
        if isinstance(value, cst.Subscript):
            return _MODULE if self._container(value.value, scopes, depth + 1) else None
        attr = is_self_attr(value)
        if attr is not None:
            cls = ctx.enclosing_class()
            if cls is None:
                return None
            return _combine([self._entries_kind([entry], entry_scopes, depth + 1)
                             for entry, entry_scopes in self._attr_entries(cls, attr)])
        if not isinstance(value, cst.Call):
            return None
        func = value.func
        if isinstance(func, cst.Attribute) and func.attr.value in MODULE_SELF_METHODS:
            inner = self._value_kind(func.value, scopes, depth + 1)
            return _MODULE if inner == _MODULE else None  # `model.to(device)` is the model
        qualname = ctx.qualname(func)
        if qualname is not None:
            if qualname in _REMOTE_MODULES or qualname.startswith(("torch.classes.", "torch.ops.")):
                return _OTHER  # RPC proxies, compiled extension objects
            if qualname.split(".", 1)[0] in _FOREIGN_PACKAGES:
                return _FOREIGN
            if dotted_name(func) is not None and qualname.rsplit(".", 1)[-1] == "pipeline":
                return _OTHER  # a Hugging Face pipeline is not a Module
        if is_module_constructor(ctx, value):
            return _MODULE
        last = (qualname or "").rsplit(".", 1)[-1]
        # a class known not to be a Module; torch *functions* (torch.load, torch.compile) may return one
        if ctx.expr_is_module_class(func) is False and not (
                (qualname or "").startswith("torch.") and not last[:1].isupper()):
            return _OTHER
        if isinstance(func, cst.Attribute) and self._value_kind(func.value, scopes, depth + 1) == _FOREIGN:
            return _FOREIGN  # `core.read_network(...)` on an OpenVINO core: still that library's object
        return None

    def _entries_kind(self, entries: list[_Entry], scopes: list[cst.CSTNode], depth: int) -> str | None:
        kinds: list[str | None] = []
        for entry in entries:
            if entry[0] == "value":
                kinds.append(self._value_kind(entry[1], scopes, depth))
            elif entry[0] == "loop":
                kinds.append(self._loop_element_kind(entry[1], entry[2], scopes, depth))
            elif entry[0] == "param":
                # a declared type that is not known to be a Module class (`pipe: "DecisionPipeline"`)
                # says the author knows what it is: not flagged, as before
                annotation = entry[1].annotation
                if annotation is None:
                    kinds.append(None)
                else:
                    kinds.append(_MODULE if _annotation_is_module(self, annotation.annotation) else _OTHER)
            else:
                kinds.append(None)
        return _combine(kinds)

    def _name_entries(self, name: str, scopes: list[cst.CSTNode]) -> tuple[list[_Entry], list[cst.CSTNode]] | None:
        """How the innermost scope that binds `name` binds it (closures see outer names)."""
        for index, scope in enumerate(scopes):
            entries: list[_Entry] = []
            if isinstance(scope, cst.FunctionDef):
                params = scope.params
                for param in (*params.posonly_params, *params.params, *params.kwonly_params):
                    if param.name.value == name:
                        entries.append(("param", param))
                for star in (params.star_arg, params.star_kwarg):
                    if isinstance(star, cst.Param) and star.name.value == name:
                        entries.append(("unknown",))
            table = self._bindings.get(id(scope))
            if table is None:
                table = self._bindings[id(scope)] = _scope_bindings(scope)
            entries.extend(table.get(name, []))
            if entries:
                return entries, scopes[index:]
        return None

    def _attr_entries(self, cls: cst.ClassDef, attr: str) -> list[tuple[_Entry, list[cst.CSTNode]]]:
        """Every binding of `self.<attr>` in the class's methods, with the scopes to read it in:
        direct assignments, and the locals copied in by `self.__dict__.update(locals())` or
        `for k, v in locals().items(): setattr(self, k, v)`."""
        key = (id(cls), attr)
        found = self._attr_entries_cache.get(key)
        if found is not None:
            return found
        found = []
        for method in self.ctx.class_facts(cls).methods.values():
            params = [*method.params.posonly_params, *method.params.params]
            me = params[0].name.value if params else "self"
            scopes: list[cst.CSTNode] = [method, self.ctx.module]
            copies_locals = reads_locals = False
            for node in descendants(method.body):
                if isinstance(node, cst.Assign):
                    targets = [t.target for t in node.targets]
                elif isinstance(node, cst.AnnAssign) and node.value is not None:
                    targets = [node.target]
                else:
                    if isinstance(node, cst.Call):
                        copies_locals = copies_locals or _copies_locals(node, me)
                        reads_locals = reads_locals or dotted_name(node.func) == "locals"
                    continue
                for target in targets:
                    for item in find_targets(target):
                        if is_self_attr(item, me) == attr:
                            found.append((("value", node.value), scopes))
            if copies_locals and reads_locals:
                local = self._name_entries(attr, [method])
                if local is not None:
                    found.extend((entry, scopes) for entry in local[0])
        self._attr_entries_cache[key] = found
        return found

    def _loop_element_kind(self, loop: cst.For, index: int | None, scopes: list[cst.CSTNode],
                           depth: int) -> str | None:
        """What `for <target> in <iter>` binds: Modules when it walks a container of Modules."""
        iterable = loop.iter
        if (isinstance(iterable, cst.Call) and dotted_name(iterable.func) in ("enumerate", "reversed")
                and iterable.args):
            if dotted_name(iterable.func) == "enumerate":
                if index != 1:
                    return None
                index = None
            iterable = iterable.args[0].value
        if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute):
            method = iterable.func.attr.value
            if method in ("children", "modules") and index is None:
                return _MODULE
            if method in ("named_children", "named_modules") and index == 1:
                return _MODULE
            if (method == "values" and index is None) or (method == "items" and index == 1):
                return _MODULE if self._container(iterable.func.value, scopes, depth + 1) == "dict" else None
        if index is None and self._container(iterable, scopes, depth + 1) == "seq":
            return _MODULE
        return None

    def _container(self, expr: cst.BaseExpression, scopes: list[cst.CSTNode], depth: int) -> str | None:
        """"seq" for an nn.ModuleList/nn.Sequential, "dict" for an nn.ModuleDict, else None."""
        if depth > 8:
            return None
        if isinstance(expr, cst.Call):
            qualname = self.ctx.qualname(expr.func)
            if qualname in _MODULE_SEQUENCES:
                return "seq"
            if qualname in _MODULE_DICTS:
                return "dict"
            kind = container_kind(self.ctx, expr)
            return "seq" if kind == "ModuleList" else "dict" if kind == "ModuleDict" else None
        values: list[tuple[cst.BaseExpression, list[cst.CSTNode]]] = []
        attr = is_self_attr(expr)
        if attr is not None:
            cls = self.ctx.enclosing_class()
            entries = self._attr_entries(cls, attr) if cls is not None else []
            pairs = [(entry, entry_scopes) for entry, entry_scopes in entries]
        elif isinstance(expr, cst.Name):
            found = self._name_entries(expr.value, scopes)
            pairs = [(entry, found[1]) for entry in found[0]] if found is not None else []
        else:
            return None
        for entry, entry_scopes in pairs:
            if entry[0] != "value":
                return None
            if not (isinstance(entry[1], cst.Name) and entry[1].value == "None"):
                values.append((entry[1], entry_scopes))
        kinds = {self._container(value, value_scopes, depth + 1) for value, value_scopes in values}
        return kinds.pop() if len(kinds) == 1 else None


def _copies_locals(call: cst.Call, me: str) -> bool:
    """`self.__dict__.update(locals())`, `vars(self).update(locals())`, or `setattr(self, k, v)`
    with a computed name (the loop over `locals().items()` that copies every local)."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "update" and call.args:
        owner = func.value
        own_dict = dotted_name(owner) == f"{me}.__dict__" or (
            isinstance(owner, cst.Call) and dotted_name(owner.func) == "vars" and len(owner.args) == 1
            and dotted_name(owner.args[0].value) == me)
        arg = call.args[0].value
        return own_dict and isinstance(arg, cst.Call) and dotted_name(arg.func) == "locals"
    if isinstance(func, cst.Name) and func.value == "setattr" and len(call.args) == 3:
        return dotted_name(call.args[0].value) == me and isinstance(call.args[1].value, cst.Name)
    return False


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
            if func.attr.value not in container_attrs(self.ctx):
                return  # cheap exit: no assignment of the file makes this attribute a container
            method = self.ctx.enclosing_method()
            if method is None:
                return
            kind = self._self_kinds(method[0]).get(func.attr.value)
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

    def _self_kinds(self, cls: cst.ClassDef) -> dict[str, str]:
        """`attr -> container kind` for the attributes of `cls` that every assignment (None
        aside) binds to the same call-less container (once per class)."""
        cache: dict[int, dict[str, str]] = self.__dict__.setdefault("_kinds_by_class", {})
        found = cache.get(id(cls))
        if found is None:
            found = {}
            for attr, assigned in self_attr_values(self.ctx, cls).items():
                values = [v for v in assigned if not (isinstance(v, cst.Name) and v.value == "None")]
                kinds = {container_kind(self.ctx, v) for v in values}
                if len(kinds) == 1:
                    kind = kinds.pop()
                    if kind is not None:
                        found[attr] = kind
            cache[id(cls)] = found
        return found

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
        if _is_modular_template(self.ctx, body):
            return
        for inner in descendants(node.body, skip_scopes=True):
            if isinstance(inner, cst.Return) and inner.value is not None:
                return
            if isinstance(inner, (cst.Yield, cst.Await)):
                return  # a generator or coroutine: not the ordinary forward contract
        # a forward that only updates state (an EMA of another model's weights, a statistics
        # tracker) has nothing to return, unless this file uses what a call of it returns
        if _StateUpdates(self.ctx, cls, node).holds() and not _result_used_in_file(self.ctx, cls):
            return
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


# Bare calls that record state rather than compute a result (`tracker.add(...)`, `self.stats.append(x)`).
_STATE_WRITERS = frozenset({"append", "extend", "update", "add", "put", "record", "log", "log_dict", "add_scalar",
                            "add_scalars", "add_histogram", "add_image", "info", "debug", "warning", "store",
                            "save", "register", "setdefault", "insert", "push", "observe"})
_NEUTRAL_CALLS = frozenset({"print", "setattr", "delattr"})


def _root_name(expr: cst.BaseExpression) -> str | None:
    """`a` for `a`, `a.b[i].c` and calls chained on them (`a.b.mul_(d).add_(x)`)."""
    while True:
        if isinstance(expr, (cst.Attribute, cst.Subscript)):
            expr = expr.value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            expr = expr.func.value
        else:
            break
    return expr.value if isinstance(expr, cst.Name) else None


class _StateUpdates:
    """Whether a forward's work is updating state: in-place tensor methods (`p.mul_(d)`),
    assignments into `self` or into its inputs, recording calls (`self.stats.append(x)`,
    `tracker.add(...)`), with no computed value left unused."""

    def __init__(self, ctx: object, cls: cst.ClassDef, func: cst.FunctionDef) -> None:
        self.ctx = ctx
        self.cls = cls
        self.func = func
        params = func.params
        self.params = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
        self.params |= {p.name.value for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)}
        self.me = next(iter(p.name.value for p in (*params.posonly_params, *params.params)), "self")
        self.nodes = descendants(func.body, skip_scopes=True)
        # names that alias state (loop variables over parameters, `buf = self.running_mean`)
        self.state_names = set(self.params)
        self.updates = 0

    def holds(self) -> bool:
        for node in self.nodes:
            if isinstance(node, cst.For):
                for target in find_targets(node.target):
                    if isinstance(target, cst.Name):
                        self.state_names.add(target.value)
            elif isinstance(node, cst.Assign) and isinstance(node.value, (cst.Attribute, cst.Subscript)):
                if _root_name(node.value) in self.state_names:
                    self.state_names.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
        for node in self.nodes:
            if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
                if not self._updating_call(node.value):
                    return False
            elif isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for target in targets:
                    for item in find_targets(target):
                        if not isinstance(item, cst.Name) and _root_name(item) in self.state_names | {self.me}:
                            self.updates += 1  # `self.count += 1`, `p.data = ...`, `x[mask] = 0`
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and (
                    isinstance(node.func.value, cst.Name) and node.func.value.value == self.me
                    and not self._method_returns_nothing(node.func.attr.value)):
                return False  # runs a submodule (or a method that returns something): an output is computed
        return self.updates > 0 and not self._dead_locals()

    def _updating_call(self, call: cst.Call) -> bool:
        """A bare call statement that updates state (or only prints)."""
        func = call.func
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if name is None:
            return False
        if name in _NEUTRAL_CALLS:
            return True
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == self.me:
            if self._method_returns_nothing(name):
                self.updates += 1  # `self._update(model)`: delegated to a method of the class
                return True
            return False
        root = _root_name(func) if isinstance(func, cst.Attribute) else None
        bound_here = root is not None and root not in self.state_names and root != self.me and any(
            isinstance(n, cst.Name) and n.value == root for n in self._assigned_names())
        if name.endswith("_") and not name.endswith("__"):
            # `p.mul_(d)`, `nn.init.zeros_(self.w)`, `torch._foreach_mul_(...)`: in place, unless on a
            # value this forward just computed (then the result is dropped)
            if bound_here:
                return False
            self.updates += 1
            return True
        if name in _STATE_WRITERS and isinstance(func, cst.Attribute) and not bound_here:
            self.updates += 1
            return True
        return False

    def _assigned_names(self) -> list[cst.BaseExpression]:
        found = getattr(self, "_assigned", None)
        if found is None:
            found = []
            for node in self.nodes:
                if isinstance(node, cst.Assign):
                    for target in node.targets:
                        found.extend(find_targets(target.target))
                elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.NamedExpr)):
                    found.extend(find_targets(node.target))
            self._assigned = found
        return found

    def _method_returns_nothing(self, name: str) -> bool:
        """`name` is a method of this class with no `return <value>`."""
        for stmt in statement_body(self.cls):
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
                return not any(isinstance(n, cst.Return) and n.value is not None
                               for n in descendants(stmt.body, skip_scopes=True))
        return False

    def _dead_locals(self) -> bool:
        """A local bound in forward and never read afterwards (or within its loop): a value
        that was computed and dropped."""
        position = {id(n): i for i, n in enumerate(self.nodes)}
        loops = [n for n in self.nodes if isinstance(n, (cst.For, cst.While))]
        target_ids: set[int] = set()
        bindings: list[tuple[str, cst.CSTNode]] = []
        for node in self.nodes:
            if isinstance(node, cst.Assign):
                items = [i for t in node.targets for i in find_targets(t.target)]
            elif isinstance(node, (cst.AnnAssign, cst.AugAssign, cst.NamedExpr)):
                items = find_targets(node.target) if getattr(node, "value", True) is not None else []
            elif isinstance(node, cst.For):
                items = find_targets(node.target)
            elif isinstance(node, cst.WithItem) and node.asname is not None:
                items = find_targets(node.asname.name)
            else:
                continue
            for item in items:
                if isinstance(item, cst.Name):
                    target_ids.add(id(item))
                    if not item.value.startswith("_"):
                        bindings.append((item.value, node))
        reads: dict[str, list[int]] = {}
        for node in self.nodes:
            if isinstance(node, cst.Name) and id(node) not in target_ids:
                reads.setdefault(node.value, []).append(position[id(node)])
        for name, node in bindings:
            start = position[id(node)]
            end = start + len(descendants(node, skip_scopes=True))
            later = [r for r in reads.get(name, []) if r > end or (isinstance(node, cst.For) and start < r <= end)]
            if later:
                continue
            in_loop = False
            for loop in loops:
                loop_start = position[id(loop)]
                loop_end = loop_start + len(descendants(loop, skip_scopes=True))
                if loop_start < start <= loop_end and any(loop_start < r <= loop_end for r in reads.get(name, [])):
                    in_loop = True
                    break
            if not in_loop:
                return True
        return False


def _result_used_in_file(ctx, cls: cst.ClassDef) -> bool:  # type: ignore[no-untyped-def]
    """Whether this file calls an instance of `cls` and uses what the call returns."""
    name = cls.name.value
    names: set[str] = set()
    attrs: set[str] = set()
    calls = find_all(ctx.module, cst.Call)
    for node in find_all(ctx.module, (cst.Assign, cst.AnnAssign)):
        value = node.value
        if not (isinstance(value, cst.Call) and (dotted_name(value.func) or "").rsplit(".", 1)[-1] == name):
            continue
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        for target in targets:
            if isinstance(target, cst.Name):
                names.add(target.value)  # also a class attribute, called as self.<name>(...)
                attrs.add(target.value)
            elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
                attrs.add(target.attr.value)
    bare = {id(small.value) for small in find_all(ctx.module, cst.Expr)}
    for call in calls:
        func = call.func
        instance = ((isinstance(func, cst.Name) and func.value in names)
                    or (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                        and func.value.value in ("self", "cls") and func.attr.value in attrs)
                    or (isinstance(func, cst.Call) and (dotted_name(func.func) or "").rsplit(".", 1)[-1] == name))
        if instance and id(call) not in bare:
            return True
    return False
