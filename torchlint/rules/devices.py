"""TL401-TL405: devices and checkpoints.

Precision first: each rule flags only what it can show from the code in front of it (a name
that is certainly a tensor, a factory whose result certainly meets a tensor on the Module's
device, ...) and stays silent when it cannot tell.
"""

from __future__ import annotations

import re
from weakref import WeakKeyDictionary

import libcst as cst

from torchlint.context import (
    dotted_name, has_star_kwargs, is_self_attr, keyword_arg, positional_args, small_statements,
    statement_body,
)
from torchlint.kinds import (
    holding, is_variable_call, loader_iterators, next_batch_names, scope_kinds, self_tensor_attrs, target_names,
)
from torchlint.rule import Case, InsertAfter, InsertBefore, PendingFix, Rule
from torchlint.tensorfacts import (
    MOVE_METHODS, module_valued, TENSOR_RETURNING_METHODS, TORCH_TENSOR_OPS, enclosing_scope, is_device_expr,
    is_optional_tensor_annotation, is_tensor_annotation, scope_facts, scope_nodes, tensor_root,
    is_loader_iterable, torch_function, unpacked_batch,
)
from torchlint.rules.device_hints import (
    early_exit_guarded, is_cuda_query, leading_part, literal_text, parent_of, path_key, saved_path, source_position,
)
from torchlint.walk import FlatTree, children, descendants, find_all

# --- shared helpers for this family -------------------------------------------------------


def method_call(call: cst.CSTNode, names: frozenset[str] | set[str]) -> str | None:
    """The method name of `<receiver>.<name>(...)` when it is one of `names`."""
    if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value in names:
        return call.func.attr.value
    return None


def string_value(node: cst.CSTNode) -> str | None:
    """The text of a plain string literal (no f-string), else None."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def is_cuda_string(node: cst.CSTNode) -> bool:
    """`"cuda"` or `"cuda:0"`: a literal that names a CUDA device."""
    value = string_value(node)
    return value is not None and (value == "cuda" or value.startswith("cuda:"))


def class_name_context(ctx, cls: cst.ClassDef | None) -> dict[str, str] | None:
    """The `context` of a finding inside a Module class (the runtime checker reads it)."""
    if cls is not None and ctx.is_module_class(cls):
        return {"class": cls.name.value}
    return None


def first_param(func: cst.FunctionDef) -> str | None:
    params = [*func.params.posonly_params, *func.params.params]
    return params[0].name.value if params else None


# --- TL401 ----------------------------------------------------------------------------------


class DiscardedTensorMove(Rule):
    """`x.to(device)` as a statement on a tensor: tensors are not moved in place."""

    code = "TL401"
    name = "discarded-tensor-move"
    summary = "a tensor's .to()/.cuda()/.float() result is discarded (tensors are not moved in place)"
    fix_safety = "safe"
    valid = [
        "import torch\nx = torch.zeros(3)\nx = x.to('cuda')\n",
        "import torch.nn as nn\nmodel = nn.Linear(2, 2)\nmodel.to('cuda')\n",
        "import torch\ndef f(loader, device):\n    for batch in loader:\n        batch.to(device)\n",
        "def f(x, device):\n    x.to(device)\n",
        "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        self.cuda()\n        return x\n",
    ]
    invalid = [
        Case(
            "import torch\nx = torch.zeros(3)\nx.to('cuda')\n",
            line=3, col=1, fixed="import torch\nx = torch.zeros(3)\nx = x.to('cuda')\n",
        ),
        Case(
            "import torch\ndef f(loader, device):\n    for xb, yb in loader:\n        xb.to(device)\n",
            line=4,
        ),
        Case(
            "import torch\ndef f(x: torch.Tensor):\n    x.half()\n    return x\n",
            line=3, fixed="import torch\ndef f(x: torch.Tensor):\n    x = x.half()\n    return x\n",
        ),
    ]

    def visit_Expr(self, node: cst.Expr) -> None:
        value = node.value
        if isinstance(value, cst.Tuple):
            # `data.cuda(), target.cuda()`: both results discarded
            calls = [e.value for e in value.elements]
            if len(calls) < 2 or any(isinstance(e, cst.StarredElement) for e in value.elements):
                return
        else:
            calls = [value]
        moves = [self._discarded_move(call) for call in calls]
        found = [m for m in moves if m is not None]
        if not found:
            return
        context = class_name_context(self.ctx, self.ctx.enclosing_class())
        if len(calls) > 1:
            names = [m[0] for m in found]
            fix = None
            if len(found) == len(calls) and len(set(names)) == len(names):
                safety = "unsafe" if any(self._presumed(n) for n in names) else "safe"
                fix = PendingFix(safety, (InsertBefore(value, f"{', '.join(names)} = "),),
                                 f"assign: {', '.join(names)} = ...")
            for name, shown, call in found:
                self.report(call, f"{shown} returns a new tensor and the result is discarded (tensors are not "
                                  f"moved in place); assign it: {', '.join(names)} = ...", fix=fix, context=context)
                fix = None  # one fix for the statement
            return
        name, shown, call = found[0]
        self.report(
            call,
            f"{shown} returns a new tensor and the result is discarded (tensors are not moved "
            f"in place); assign it: {name} = {shown}",
            # `x = x.to(...)` is right for tensors; a loader batch item is only presumed to be one
            # (a custom batch object whose .to() moves in place and returns None would be lost)
            fix=PendingFix("unsafe" if self._presumed(name) else "safe",
                           (InsertBefore(call, f"{name} = "),), f"assign: {name} = {shown}"),
            context=context,
        )

    def _presumed(self, name: str) -> bool:
        """A name unpacked from a loader batch: a tensor by presumption only."""
        scope = enclosing_scope(self.ctx)
        return scope is not None and holding(self.ctx, scope, name).kind == "batch"

    def _discarded_move(self, call: cst.BaseExpression) -> tuple[str, str, cst.Call] | None:
        """(name, shown text, call) for `x.to(...)` / `x.cuda()` ... on a name holding a tensor."""
        method = method_call(call, MOVE_METHODS)
        if method is None:
            return None
        assert isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
        receiver = call.func.value
        shown = f"{method}(...)" if call.args else f"{method}()"
        if isinstance(receiver, cst.Attribute):
            # `self.mean.to(device)` where every assignment of self.mean is a plain tensor
            owner = self.ctx.enclosing_method()
            me = first_param(owner[1]) if owner is not None else None
            attr = is_self_attr(receiver, me) if me is not None else None
            if owner is None or attr is None or attr not in self_tensor_attrs(self.ctx, owner[0]):
                return None
            return f"{me}.{attr}", f"{me}.{attr}.{shown}", call
        if not isinstance(receiver, cst.Name):
            return None
        scope = enclosing_scope(self.ctx)
        if scope is None:
            return None
        name = receiver.value
        held = holding(self.ctx, scope, name)
        if held.kind not in ("tensor", "batch") or held.evidence == "single":
            return None
        return name, f"{name}.{shown}", call


# --- TL402 ----------------------------------------------------------------------------------

# Factories that create a new tensor on the default (CPU) device unless given `device=`.
CPU_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "rand", "randn",
     "randint", "randperm", "tensor"}
)
# torch functions whose tensor arguments must share a device.
_MEETING_TORCH_FUNCS = frozenset(
    {"where", "maximum", "minimum", "matmul", "mm", "bmm", "einsum", "masked_fill", "gather",
     "index_select", "lerp", "addmm", "baddbmm", "outer", "cdist", "atan2", "mul", "add", "sub",
     "div", "max", "min"}
)
_CONCAT_FUNCS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack"})
# Tensor methods whose tensor arguments must be on the receiver's device.
_MEETING_METHODS = frozenset(
    {"masked_fill", "masked_fill_", "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
     "matmul", "mm", "bmm", "gather", "index_select", "scatter", "scatter_", "scatter_add",
     "scatter_add_", "where", "lerp", "lerp_", "maximum", "minimum", "expand_as", "type_as_"}
)
# Methods that move a tensor (or may, e.g. a helper that takes the target tensor).
_MOVING_METHODS = frozenset({"to", "cuda", "type_as", "to_device", "copy_"})
_PARAM_CTORS = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter", "torch.nn.Buffer",
                          "torch.nn.parameter.Buffer"})
_REDUCTIONS = frozenset({"sum", "mean", "max", "min", "prod", "norm", "amax", "amin", "std", "var",
                         "all", "any", "argmax", "argmin"})
_SPLIT_METHODS = frozenset({"split", "chunk", "unbind", "tensor_split"})
_MOVED = object()  # sentinel: the created tensor is moved before anything else happens to it
# One-tensor torch functions that keep a CPU tensor a CPU tensor (`torch.triu(torch.ones(n, n), 1)`).
_WRAPPING_FUNCS = frozenset({"triu", "tril", "flip", "roll", "transpose", "unsqueeze", "squeeze", "reshape",
                             "flatten", "sin", "cos", "exp", "log", "sqrt", "abs", "logical_not"})


def _moved_to_cpu(expr: cst.BaseExpression, root: cst.BaseExpression) -> bool:
    """Whether a method chain from `root` to `expr` passes through `.cpu()` or `.to("cpu")`."""
    current = expr
    while current is not root:
        if isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute):
            method = current.func.attr.value
            if method in ("cpu", "numpy", "tolist"):
                return True
            if method == "to" and any(string_value(a.value) == "cpu" for a in current.args):
                return True
            current = current.func.value
        elif isinstance(current, (cst.Subscript, cst.Attribute)):
            current = current.value
        else:
            return False
    return False


class _MethodIndex:
    """A method's body: every node in source order (nested scopes not entered, their own node
    kept) and each node's parent within it. A slice of the file's flat tree when there is one
    (the engine's check), else one walk."""

    def __init__(self, func: cst.FunctionDef, tree: FlatTree | None) -> None:
        self.parent: dict[int, cst.CSTNode] = {}
        if tree is not None and id(func.body) in tree.index:
            self.nodes: list[cst.CSTNode] = [func.body, *tree.descendants(func.body, skip_scopes=True)]
            self._tree: FlatTree | None = tree
            self._members = set(map(id, self.nodes))
            return
        self._tree = None
        self.nodes = []
        stack: list[cst.CSTNode] = [func.body]
        while stack:
            node = stack.pop()
            self.nodes.append(node)
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            kids = list(children(node))
            for kid in kids:
                self.parent[id(kid)] = node
            kids.reverse()
            stack.extend(kids)

    def up(self, node: cst.CSTNode) -> cst.CSTNode | None:
        tree = self._tree
        if tree is None:
            return self.parent.get(id(node))
        if id(node) not in self._members:
            return None  # outside the body, or inside a nested scope
        parent = tree.parent_of(node)  # the body's own parent, the def, is not a member
        return parent if parent is not None and id(parent) in self._members else None

    def ancestors(self, node: cst.CSTNode):
        current = self.up(node)
        while current is not None:
            yield current
            current = self.up(current)


class _ClassDevices:
    """What a Module class's attributes are: parameters/buffers and submodules."""

    def __init__(self, ctx, cls: cst.ClassDef) -> None:
        facts = ctx.class_facts(cls)
        self.submodules = {attr for attr, q in facts.attr_classes.items() if ctx.index.is_module(q) is True}
        self.torch_layers = {attr for attr in self.submodules if facts.attr_classes[attr].startswith("torch.")}
        self.tensors: set[str] = set()
        for method in facts.methods.values():
            for small in small_statements(statement_body(method)):
                value = getattr(small, "value", None)
                if isinstance(small, (cst.Assign, cst.AnnAssign)) and isinstance(value, cst.Call) and \
                        ctx.qualname(value.func) in _PARAM_CTORS:
                    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                    for target in targets:
                        attr = is_self_attr(target)
                        if attr:
                            self.tensors.add(attr)
                elif isinstance(small, cst.Expr) and method_call(value, {"register_buffer", "register_parameter"}):
                    args = positional_args(value)
                    if args and string_value(args[0].value):
                        self.tensors.add(string_value(args[0].value) or "")


class _DeviceFlow:
    """Which expressions of one method are on the Module's device, and where CPU tensors meet them."""

    def __init__(self, ctx, func: cst.FunctionDef, index: _MethodIndex, cls_devices: _ClassDevices) -> None:
        self.ctx = ctx
        self.index = index
        self.cls = cls_devices
        self.me = first_param(func)
        self.params = self._tensor_params(func)
        self.names: set[str] = set(self.params)
        self.bindings: dict[str, int] = {}
        assigns: list[cst.Assign] = []
        for node in index.nodes:
            if isinstance(node, cst.Assign):
                assigns.append(node)
                for target in node.targets:
                    self._count_binding(target.target)
            elif isinstance(node, (cst.AnnAssign, cst.For, cst.NamedExpr, cst.CompFor)):
                self._count_binding(node.target)
            elif isinstance(node, cst.AsName):
                self._count_binding(node.name)
        for _ in range(2):  # twice: a loop may use a name before the line that binds it
            for node in assigns:
                if len(node.targets) != 1:
                    continue
                target = node.targets[0].target
                if isinstance(target, cst.Name) and self.on_device(node.value):
                    self.names.add(target.value)
                elif isinstance(target, (cst.Tuple, cst.List)) and self._splits_on_device(node.value):
                    self.names.update(_names_in_target(target))

    def _splits_on_device(self, value: cst.BaseExpression) -> bool:
        """`q, k, v = <device tensor>.split(...)` / `.chunk(...)` / `.unbind(...)`, or
        `out, h = self.lstm(...)`: every unpacked item is a tensor on the device."""
        if not isinstance(value, cst.Call):
            return False
        if self.is_torch_layer(value.func):
            return True
        if method_call(value, _SPLIT_METHODS):
            assert isinstance(value.func, cst.Attribute)
            return self.on_device(value.func.value)
        return torch_function(self.ctx, value) in _SPLIT_METHODS and bool(value.args) and \
            self.on_device(value.args[0].value)

    def _count_binding(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name):
            self.bindings[target.value] = self.bindings.get(target.value, 0) + 1
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._count_binding(element.value)
        elif isinstance(target, cst.StarredElement):
            self._count_binding(target.value)

    def _tensor_params(self, func: cst.FunctionDef) -> list[str]:
        """Parameters that hold tensors: annotated so, or unannotated, without a default and
        used with an attribute (`x.shape`, `x.view(...)`): an int size never is."""
        used_attr = {node.value.value for node in self.index.nodes
                     if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name)}
        out = []
        params = [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]
        for param in params[1:]:
            annotation = param.annotation.annotation if param.annotation else None
            if annotation is not None:
                if is_optional_tensor_annotation(self.ctx, annotation):
                    out.append(param.name.value)
            elif param.default is None and param.name.value in used_attr:
                out.append(param.name.value)
        return out

    def fix_param(self, func: cst.FunctionDef) -> str | None:
        """A tensor argument of `forward` without a default, to take the device from."""
        params = [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]
        for param in params[1:]:
            if param.default is not None or param.name.value not in self.params:
                continue
            annotation = param.annotation.annotation if param.annotation else None
            if annotation is None or is_tensor_annotation(self.ctx, annotation):
                return param.name.value
        return None

    def _self_attr(self, expr: cst.BaseExpression) -> str | None:
        return is_self_attr(expr, self.me) if self.me else None

    def is_submodule(self, expr: cst.BaseExpression) -> bool:
        attr = self._self_attr(expr)
        return attr is not None and attr in self.cls.submodules

    def is_torch_layer(self, expr: cst.BaseExpression) -> bool:
        """A submodule that is a torch layer: a project Module may move its inputs itself."""
        attr = self._self_attr(expr)
        return attr is not None and attr in self.cls.torch_layers

    def on_device(self, expr: cst.BaseExpression) -> bool:
        """Whether an expression is a tensor on the Module's device (an input, a parameter,
        a buffer, a submodule's output, or something computed from them)."""
        root = tensor_root(expr, self.ctx)
        if _moved_to_cpu(expr, root):
            return False
        if isinstance(root, cst.Name):
            return root.value in self.names
        if isinstance(root, cst.Attribute):
            attr = self._self_attr(root)
            if attr is not None:
                return attr in self.cls.tensors
            return root.attr.value in ("weight", "bias") and self.is_submodule(root.value)
        if isinstance(root, cst.BinaryOperation):
            return self.on_device(root.left) or self.on_device(root.right)
        if isinstance(root, cst.Call):
            if self.is_submodule(root.func):
                return True
            qualname = self.ctx.qualname(root.func) or ""
            name = torch_function(self.ctx, root)
            args = positional_args(root)
            if name is not None and (name in TORCH_TENSOR_OPS or name.endswith("_like")):
                for arg in args:
                    value = arg.value
                    if isinstance(value, (cst.List, cst.Tuple)):
                        if any(self.on_device(e.value) for e in value.elements):
                            return True
                    elif self.on_device(value):
                        return True
            if qualname.startswith("torch.nn.functional.") and args:
                return self.on_device(args[0].value)
        return False

    # -- where does a CPU tensor go? --
    def climb(self, node: cst.CSTNode) -> object:
        """The outermost expression that is still the same CPU tensor (through `.float()`,
        `[None]`, `* 2`, ...), or `_MOVED` when it is moved, or None when it stops being one."""
        current = node
        while True:
            parent = self.index.up(current)
            if isinstance(parent, cst.Attribute) and parent.value is current:
                grand = self.index.up(parent)
                if isinstance(grand, cst.Call) and grand.func is parent:
                    method = parent.attr.value
                    if method in _MOVING_METHODS:
                        return _MOVED
                    if method in _REDUCTIONS and not grand.args:
                        return None  # `t.sum()`: a 0-dim result mixes with CUDA tensors legally
                    if method in TENSOR_RETURNING_METHODS and not method.startswith("new_"):
                        current = grand
                        continue
                    return current
                if parent.attr.value in ("T", "mT"):
                    current = parent
                    continue
                return None  # .shape, .device, .dtype: not a tensor any more
            if isinstance(parent, cst.Subscript) and parent.value is current:
                if all(isinstance(e.slice, cst.Index) and isinstance(e.slice.value, (cst.Integer, cst.UnaryOperation))
                       for e in parent.slice):
                    return None  # `t[0]` may be 0-dim
                current = parent
                continue
            if isinstance(parent, cst.BinaryOperation):
                other = parent.right if parent.left is current else parent.left
                if not self.on_device(other):
                    current = parent
                    continue
            comparison = self._comparison(current)
            if comparison is not None:
                if not all(isinstance(t.operator, _TENSOR_COMPARISONS) for t in comparison.comparisons):
                    return None  # `t is None`, `v in t`: not a tensor
                if not any(self.on_device(o) for o in _operands(comparison) if o is not current):
                    current = comparison  # `idx[None] > idx[:, None]`: still a CPU (bool) tensor
                    continue
            return current

    def _comparison(self, expr: cst.CSTNode) -> cst.Comparison | None:
        """The comparison `expr` is an operand of."""
        parent = self.index.up(expr)
        if isinstance(parent, cst.ComparisonTarget) and parent.comparator is expr:
            parent = self.index.up(parent)
        elif not (isinstance(parent, cst.Comparison) and parent.left is expr):
            return None
        return parent if isinstance(parent, cst.Comparison) else None

    def meets(self, expr: cst.CSTNode) -> bool:
        """Whether the CPU tensor `expr` meets a tensor on the device right where it is used."""
        parent = self.index.up(expr)
        if isinstance(parent, cst.BinaryOperation):
            other = parent.right if parent.left is expr else parent.left
            return self.on_device(other)
        comparison = self._comparison(expr)
        if comparison is not None:
            return all(isinstance(t.operator, _TENSOR_COMPARISONS) for t in comparison.comparisons) and \
                any(self.on_device(o) for o in _operands(comparison) if o is not expr)
        if isinstance(parent, cst.Element):
            sequence = self.index.up(parent)
            arg = self.index.up(sequence) if sequence is not None else None
            call = self.index.up(arg) if isinstance(arg, cst.Arg) else None
            if not isinstance(call, cst.Call) or not isinstance(sequence, (cst.List, cst.Tuple)):
                return False
            if torch_function(self.ctx, call) in _CONCAT_FUNCS:
                return any(e is not parent and self.on_device(e.value) for e in sequence.elements)
            # `self.lstm(x, (h0, c0))`: the initial state goes to a torch layer
            return isinstance(sequence, cst.Tuple) and self.is_torch_layer(call.func)
        if isinstance(parent, cst.Arg):
            call = self.index.up(parent)
            if not isinstance(call, cst.Call):
                return False
            if self.is_torch_layer(call.func):
                return True
            others = [a.value for a in call.args if a is not parent and not a.star]
            if torch_function(self.ctx, call) in _MEETING_TORCH_FUNCS:
                return any(self.on_device(o) for o in others)
            if method_call(call, _MEETING_METHODS):
                assert isinstance(call.func, cst.Attribute)
                return self.on_device(call.func.value)
        return False

    def local_target(self, top: cst.CSTNode, seen: set[str]) -> str | None:
        """The local name a CPU tensor expression is bound to (`mask = <top>`), when that is
        its only binding and it is not a device tensor."""
        parent = self.index.up(top)
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and \
                isinstance(parent.targets[0].target, cst.Name):
            target = parent.targets[0].target.value
            if self.bindings.get(target, 0) == 1 and target not in self.names and target not in seen:
                return target
        return None

    def name_meets(self, name: str, binding: cst.CSTNode, seen: set[str] | None = None) -> bool | None:
        """Whether the tensor bound to a local name meets a device tensor, directly or through
        locals computed from it (`idx` -> `mask = idx[None] > idx[:, None]` -> `masked_fill`);
        None when moved."""
        seen = (seen or set()) | {name}
        found = False
        for node in self.index.nodes:
            if not (isinstance(node, cst.Name) and node.value == name):
                continue
            parent = self.index.up(node)
            if isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.Attribute) and parent.attr is node):
                continue
            if isinstance(parent, cst.Subscript) and parent.value is node:
                holder = self.index.up(parent)
                if isinstance(holder, cst.AssignTarget):  # t[...] = <device tensor>
                    assign = self.index.up(holder)
                    if isinstance(assign, cst.Assign) and self.on_device(assign.value):
                        found = True
                    continue
            if isinstance(parent, cst.AugAssign) and parent.target is node:
                found = found or self.on_device(parent.value)
                continue
            top = self.climb(node)
            if top is _MOVED:
                return None
            if isinstance(top, cst.CSTNode) and self.meets(top):
                found = True
            elif isinstance(top, cst.CSTNode) and len(seen) < 3 and \
                    (derived := self.local_target(top, seen)) is not None:
                result = self.name_meets(derived, top, seen)
                if result is None:
                    return None  # the derived tensor is moved: the author placed it
                found = found or result
        return found

    def rebound_state(self, top: cst.CSTNode) -> str | None:
        """`h = torch.zeros(...)` whose every other binding is `h, c = self.cell(x, (h, c))` (or
        `h = self.gru(x, h)`): a recurrent state passed to a submodule and rebound from its
        outputs. Later calls get device tensors; the first gets the CPU one. Returns the
        submodule's text."""
        factory = self.index.up(top)
        name = None
        if isinstance(factory, cst.Element):  # `h, c = torch.zeros(...), torch.zeros(...)`
            values = self.index.up(factory)
            factory = self.index.up(values) if isinstance(values, cst.Tuple) else None
            if isinstance(factory, cst.Assign) and len(factory.targets) == 1 and \
                    isinstance(factory.targets[0].target, (cst.Tuple, cst.List)) and \
                    isinstance(factory.value, cst.Tuple) and factory.value is values:
                targets = factory.targets[0].target.elements
                position = next(i for i, e in enumerate(values.elements) if e.value is top)
                if len(targets) == len(values.elements) and isinstance(targets[position].value, cst.Name):
                    name = targets[position].value.value
        elif isinstance(factory, cst.Assign) and len(factory.targets) == 1 and \
                isinstance(factory.targets[0].target, cst.Name):
            name = factory.targets[0].target.value
        if name is None or not isinstance(factory, cst.Assign):
            return None
        seen_factory, rebinds, callee = False, 0, None
        for node in self.index.nodes:
            if node is factory:
                seen_factory = True
            elif isinstance(node, cst.Assign) and any(name in _names_in_target(t.target) for t in node.targets):
                submodule = self._state_call(node.value, name)
                if not seen_factory or submodule is None:
                    return None
                rebinds += 1
                callee = callee or submodule
        if rebinds == 0 or rebinds + 1 != self.bindings.get(name, 0):
            return None
        return callee

    def _state_call(self, value: cst.BaseExpression, name: str) -> str | None:
        """The submodule text when `value` calls a submodule (`self.cell`, `self.cells[i]`) with
        `name` as an argument, alone or in a tuple or list (`(h, c)`)."""
        if not isinstance(value, cst.Call):
            return None
        func = value.func.value if isinstance(value.func, cst.Subscript) else value.func
        if not self.is_submodule(func):
            return None
        for arg in value.args:
            item = arg.value
            items = [e.value for e in item.elements] if isinstance(item, (cst.Tuple, cst.List)) else [item]
            if any(isinstance(i, cst.Name) and i.value == name for i in items):
                return self.ctx.code_for(value.func)
        return None


_TENSOR_COMPARISONS = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual, cst.Equal,
                       cst.NotEqual)


def _operands(comparison: cst.Comparison) -> list[cst.BaseExpression]:
    return [comparison.left, *(t.comparator for t in comparison.comparisons)]


def _climb_wrapped(flow: _DeviceFlow, node: cst.CSTNode) -> object:
    """`flow.climb`, also through one-tensor torch functions (`torch.triu(<tensor>, 1)`) whose
    other arguments are not device tensors."""
    current = node
    while True:
        top = flow.climb(current)
        if not isinstance(top, cst.CSTNode):
            return top
        arg = flow.index.up(top)
        call = flow.index.up(arg) if isinstance(arg, cst.Arg) else None
        if isinstance(call, cst.Call) and call.args and call.args[0] is arg and arg.keyword is None and \
                torch_function(flow.ctx, call) in _WRAPPING_FUNCS and \
                not any(flow.on_device(a.value) for a in call.args[1:]):
            current = call
            continue
        return top


def _is_returned(flow: _DeviceFlow, top: cst.CSTNode, seen: frozenset[str] = frozenset()) -> bool | None:
    """Whether a CPU tensor is what its method returns: `return <tensor>`, or `mask = <tensor>`
    (its only binding) and `return mask`, also through locals computed from it
    (`idx = torch.arange(n)`, `rel = idx[None] - idx[:, None]`, `return rel + k`); None when a
    use moves it."""
    def returns(expr: object) -> bool:
        return isinstance(expr, cst.CSTNode) and isinstance(flow.index.up(expr), cst.Return)

    top = _climb_wrapped(flow, top)
    if top is _MOVED:
        return None
    if not isinstance(top, cst.CSTNode):
        return False
    if returns(top):
        return True
    local = flow.local_target(top, set(seen))
    if local is None or len(seen) >= 3:
        return False
    returned = False
    for node in flow.index.nodes:
        if not (isinstance(node, cst.Name) and node.value == local):
            continue
        parent = flow.index.up(node)
        if isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.Attribute) and parent.attr is node):
            continue
        result = _is_returned(flow, node, seen | {local})
        if result is None:
            return None
        returned = returned or result
    return returned


def _is_zero_dim(name: str, call: cst.Call) -> bool:
    """`torch.tensor(1.0)`, `torch.zeros(())`, `torch.full((), v)`: 0-dim, legal beside CUDA."""
    args = positional_args(call)
    if name == "tensor":
        # only a literal list/tuple is surely not a scalar
        return not (args and isinstance(args[0].value, (cst.List, cst.Tuple, cst.ListComp)))
    if args and isinstance(args[0].value, (cst.Tuple, cst.List)) and not args[0].value.elements:
        return True
    size = keyword_arg(call, "size")
    return size is not None and isinstance(size.value, (cst.Tuple, cst.List)) and not size.value.elements


def _is_candidate(ctx, call: cst.Call) -> bool:
    """A factory call without `device=` (nor `out=`/`**kwargs`) that is not 0-dim."""
    name = torch_function(ctx, call)
    if name not in CPU_FACTORIES or not call.args:
        return False
    if keyword_arg(call, "device") or keyword_arg(call, "out") or has_star_kwargs(call):
        return False
    return not _is_zero_dim(name, call)


_GUARD_WORDS = ("is_scripting", "is_tracing", "jit", "onnx", "is_compiling", "device")


class TensorCreatedWithoutDevice(Rule):
    """A factory in forward creates a CPU tensor that meets the Module's tensors."""

    code = "TL402"
    name = "tensor-created-without-device"
    summary = "a tensor created in forward without device= meets an input, parameter or buffer"
    fix_safety = "unsafe"
    valid = [
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.zeros(x.shape, device=x.device)\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x * torch.tensor(2.0)\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        pos = torch.arange(x.shape[1]).to(x.device)\n        return x + pos\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        n = torch.arange(4).sum().item()\n        return x * n\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.zeros_like(x) + x.new_zeros(x.shape)\n",
    ]
    invalid = [
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.randn(x.shape)\n",
            line=5, col=20,
            fixed="import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.randn(x.shape, device=x.device)\n",
            unsafe=True,
        ),
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.emb = nn.Embedding(10, 4)\n"
            "    def forward(self, x):\n        pos = torch.arange(x.shape[1])\n        return x + self.emb(pos)\n",
            line=8,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        ctx = self.ctx
        if not ctx.is_module_class(node) or "forward" not in ctx.class_facts(node).methods:
            return
        cls_devices: _ClassDevices | None = None
        reachable = ctx.reachable_methods(node, ctx.class_facts(node).methods["forward"])
        self._reachable = {id(func) for func in reachable}
        indexes = {id(func): _MethodIndex(func, ctx.tree) for func in reachable}
        flows: dict[int, _DeviceFlow] = {}

        def flow_of(func: cst.FunctionDef) -> _DeviceFlow:
            nonlocal cls_devices
            if id(func) not in flows:
                cls_devices = cls_devices or _ClassDevices(ctx, node)
                flows[id(func)] = _DeviceFlow(ctx, func, indexes[id(func)], cls_devices)
            return flows[id(func)]

        for func in reachable:
            index = indexes[id(func)]
            candidates = [n for n in index.nodes if isinstance(n, cst.Call) and _is_candidate(ctx, n)]
            if not candidates:
                continue
            flow = flow_of(func)
            fix_param = flow.fix_param(func) if func.name.value == "forward" else None
            for call in candidates:
                self._check_factory(node, func, flow, call, fix_param,
                                    lambda f=func: [flow_of(o) for o in reachable if o is not f])

    def _returned_state(self, func: cst.FunctionDef, flow: _DeviceFlow, top: cst.CSTNode,
                        callers: list[_DeviceFlow]) -> str | None:
        """`def init_hidden(self, n): return (torch.zeros(...), torch.zeros(...))`, called from
        forward as `h = self.init_hidden(n)` and passed to a submodule (`self.lstm(x, h)`,
        `out, h = self.lstm(x, h)`): the submodule text, else None."""
        current = top
        while True:  # through `Variable(...)` and the elements of a returned tuple
            parent = flow.index.up(current)
            if isinstance(parent, cst.Arg) and is_variable_call(self.ctx, flow.index.up(parent)):
                current = flow.index.up(parent)
            elif isinstance(parent, cst.Element) and isinstance(flow.index.up(parent), cst.Tuple):
                current = flow.index.up(parent)
            else:
                break
        if not isinstance(parent, cst.Return):
            return None
        method = func.name.value
        for caller in callers:
            me = caller.me
            for node in caller.index.nodes:
                if not (isinstance(node, cst.Call) and me is not None and is_self_attr(node.func, me) == method):
                    continue
                parent = caller.index.up(node)
                if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and \
                        isinstance(parent.targets[0].target, cst.Name):
                    state = parent.targets[0].target.value
                    for other in caller.index.nodes:
                        found = caller._state_call(other, state)
                        if found is not None:
                            return found
                elif isinstance(parent, cst.Arg):
                    outer = caller.index.up(parent)
                    if isinstance(outer, cst.Call) and caller.is_submodule(outer.func):
                        return self.ctx.code_for(outer.func)
        return None

    def _returned_meets(self, cls: cst.ClassDef, func: cst.FunctionDef, flow: _DeviceFlow, top: cst.CSTNode,
                        callers: list[_DeviceFlow]) -> bool:
        """`def _causal_mask(self, n): return torch.triu(torch.ones(n, n), 1).bool()`, whose result
        forward combines with its tensors (`scores.masked_fill(self._causal_mask(n), ...)`), directly
        or through a local, without moving it first."""
        if _is_returned(flow, top) is not True:
            return False
        method = func.name.value
        for name, other in self.ctx.class_facts(cls).methods.items():
            if other is not func and id(other) not in self._reachable and f".{method}(" in self.ctx.code_for(other):
                return False  # also called from __init__ (a buffer) or elsewhere: not only forward's
        hit = False
        for caller in callers:
            me = caller.me
            for node in caller.index.nodes:
                if not (isinstance(node, cst.Call) and me is not None and is_self_attr(node.func, me) == method):
                    continue
                used = _climb_wrapped(caller, node)
                if used is _MOVED:
                    return False  # the author moves it at a call site: the helper is meant to be moved
                if not isinstance(used, cst.CSTNode):
                    continue
                if caller.meets(used):
                    hit = True
                    continue
                local = caller.local_target(used, set())
                if local is not None:
                    meets = caller.name_meets(local, used)
                    if meets is None:
                        return False
                    hit = hit or meets
        return hit

    def _check_factory(self, cls: cst.ClassDef, func: cst.FunctionDef, flow: _DeviceFlow,
                       call: cst.Call, fix_param: str | None, callers) -> None:
        name = torch_function(self.ctx, call)
        for ancestor in flow.index.ancestors(call):
            if isinstance(ancestor, (cst.If, cst.IfExp, cst.While)) and \
                    any(w in self.ctx.code_for(ancestor.test) for w in _GUARD_WORDS):
                return
            if isinstance(ancestor, cst.With) and any("device" in self.ctx.code_for(i.item) for i in ancestor.items):
                return  # `with torch.device(...)` sets the default device
        top = flow.climb(call)
        if top is _MOVED or not isinstance(top, cst.CSTNode):
            return
        hit = flow.meets(top)
        if not hit:
            target = flow.local_target(top, set())
            if target is not None:
                hit = flow.name_meets(target, top) is True
        state_of = None if hit else flow.rebound_state(top)
        returned_to = None
        if not hit and state_of is None and func.name.value != "forward":
            returned_to = self._returned_state(func, flow, top, callers())
        returned_meets = False
        if not hit and state_of is None and returned_to is None and func.name.value != "forward":
            returned_meets = self._returned_meets(cls, func, flow, top, callers())
        if not hit and state_of is None and returned_to is None and not returned_meets:
            return
        where = "forward" if func.name.value == "forward" else f"{func.name.value} (called from forward)"
        fix = None
        hint = "pass device=<input>.device"
        if fix_param is not None:
            last = call.args[-1]
            fix = PendingFix("unsafe", (InsertAfter(last.value, f", device={fix_param}.device"),),
                             f"add device={fix_param}.device")
            hint = f"pass device={fix_param}.device"
        meets = "that meets the Module's tensors"
        if state_of is not None:
            meets = f"passed to {state_of}, whose outputs rebind it (the first call gets the CPU tensor)"
        elif returned_to is not None:
            meets = f"returned as a state that is passed to {returned_to}"
        elif returned_meets:
            meets = "returned to forward, where it meets the Module's tensors"
        self.report(
            call,
            f"torch.{name}(...) in {where} creates a CPU tensor {meets}; "
            f"it fails once the Module is on a GPU: {hint}",
            fix=fix,
            context={"class": cls.name.value},
        )


# --- TL403 ----------------------------------------------------------------------------------

# Methods where a Module legitimately moves things: overrides of the moving API itself.
_MOVING_API = frozenset({"cuda", "to", "cpu", "_apply", "type", "half", "float", "double", "_to"})
_CUDA_GUARD_WORDS = ("cuda", "gpu", "device", "is_available")


def _cuda_literal(ctx, expr: cst.BaseExpression | None) -> bool:
    """`"cuda"`, `"cuda:0"`, or `torch.device("cuda")`."""
    if expr is None:
        return False
    if is_cuda_string(expr):
        return True
    if isinstance(expr, cst.Call) and ctx.qualname(expr.func) == "torch.device":
        args = positional_args(expr)
        return bool(args) and is_cuda_string(args[0].value)
    return False


class HardcodedDeviceInModule(Rule):
    """`.cuda()` / `.to("cuda")` / `device="cuda"` inside a Module class, also through a
    `self.<attr>` that holds a CUDA default."""

    code = "TL403"
    name = "hardcoded-device-in-module"
    summary = "a Module hard-codes a CUDA device (.cuda(), .to('cuda'), device='cuda')"
    valid = [
        "import torch\nx = torch.zeros(3).cuda()\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        if torch.cuda.is_available():\n            x = x.cuda()\n        return x\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.ones(3, device=x.device)\n",
        "import torch\nclass Helper:\n    def run(self, x):\n        return x.to('cuda')\n",
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        if not torch.cuda.is_available():\n            return\n        self.major = torch.cuda.get_device_properties(torch.device('cuda')).major\n",
    ]
    invalid = [
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.ones(3).cuda()\n",
            line=5, col=20,
        ),
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        mask = torch.ones(3, device='cuda')\n        return x * mask\n",
            line=5,
        ),
        Case(
            "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x.to(torch.device('cuda:0'))\n",
            line=5, col=21,
        ),
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, device='cuda'):\n        super().__init__()\n        self.device = device\n        self.fc = nn.Linear(2, 2).to(self.device)\n",
            line=6, col=19,
        ),
    ]

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._flags: set[str] | None = None
        self._cuda_attrs: dict[int, dict[str, str]] = {}
        self._reported_attrs: set[tuple[int, str]] = set()

    def visit_Call(self, node: cst.Call) -> None:
        what = self._hardcoded(node)
        if what is None:
            return
        cls = self.ctx.enclosing_class()
        if cls is None or not self.ctx.is_module_class(cls):
            return
        through: str | None = None
        attr = ""
        if what.startswith("self."):
            # a placement through an attribute: only when it holds a CUDA default
            attr, what = what[len("self."):].split(" ", 1)
            through = self._cuda_attrs_of(cls).get(attr)
            if through is None or (id(cls), attr) in self._reported_attrs:
                return
        stack = self.ctx.stack
        for ancestor in reversed(stack):
            if isinstance(ancestor, (cst.If, cst.IfExp, cst.While)):
                if self._is_guard(ancestor.test):
                    return
            elif isinstance(ancestor, cst.FunctionDef) and (
                    ancestor.name.value in _MOVING_API
                    or any(w in ancestor.name.value.lower() for w in ("cuda", "gpu", "offload", "device"))):
                return  # a method whose purpose is device placement
            elif isinstance(ancestor, cst.ClassDef):
                break
        if early_exit_guarded(self.ctx, [*stack, node], self._is_guard):
            return
        if through is None and self._only_queried(node, stack):
            return
        if through is not None:
            self._reported_attrs.add((id(cls), attr))
            self.report(
                node,
                f"{what} inside Module {cls.name.value} hard-codes a CUDA device ({through}), "
                "so the Module no longer runs on the CPU or another GPU by default; default the device to "
                "None/\"cpu\" (or pick it with torch.cuda.is_available()) and let the owner call .to(device)",
                context={"class": cls.name.value},
            )
            return
        self.report(
            node,
            f"{what} inside Module {cls.name.value} hard-codes a CUDA device, so the Module no longer "
            "runs on the CPU or another GPU; take the device from an input or a buffer "
            "(x.device, self.<buffer>.device)",
            context={"class": cls.name.value},
        )

    # -- guards --------------------------------------------------------------------------
    def _is_guard(self, test: cst.BaseExpression) -> bool:
        """A test that mentions CUDA or the device, or a flag set from `torch.cuda.is_available()`."""
        text = self.ctx.code_for(test).lower()
        if any(w in text for w in _CUDA_GUARD_WORDS):
            return True
        flags = self._availability_flags()
        if not flags:
            return False
        for sub in [test, *descendants(test)]:
            if isinstance(sub, (cst.Name, cst.Attribute)) and dotted_name(sub) in flags:
                return True
        return False

    def _availability_flags(self) -> set[str]:
        """Names and `self.<attr>`s bound from an expression that asks `is_available()`."""
        if self._flags is None:
            flags: set[str] = set()
            if "is_available" in self.ctx.source:
                for assign in find_all(self.ctx.module, (cst.Assign, cst.AnnAssign)):
                    if assign.value is None or "is_available" not in self.ctx.code_for(assign.value):
                        continue
                    targets = [t.target for t in assign.targets] if isinstance(assign, cst.Assign) else [assign.target]
                    for target in targets:
                        name = dotted_name(target)
                        if name is not None:
                            flags.add(name)
            self._flags = flags
        return self._flags

    def _only_queried(self, node: cst.Call, stack: list[cst.CSTNode]) -> bool:
        """`torch.device("cuda")` (or `device="cuda"`) that only asks about the GPU:
        an argument of `torch.cuda.get_device_properties(...)` and its kin, directly or
        through a local name used only there."""
        if is_cuda_query(self.ctx, node):
            return True  # torch.cuda.mem_get_info(device="cuda")
        if len(stack) >= 2 and isinstance(stack[-1], cst.Arg) and is_cuda_query(self.ctx, stack[-2]):
            return True
        if not (stack and isinstance(stack[-1], cst.Assign) and stack[-1].value is node
                and len(stack[-1].targets) == 1 and isinstance(stack[-1].targets[0].target, cst.Name)):
            return False
        name = stack[-1].targets[0].target.value
        scope = enclosing_scope(self.ctx)
        if scope is None:
            return False
        uses = 0
        for other in scope_nodes(scope):
            if isinstance(other, cst.Name) and other.value == name and other is not stack[-1].targets[0].target:
                arg = parent_of(self.ctx, other)
                call = parent_of(self.ctx, arg) if isinstance(arg, cst.Arg) else None
                if call is None or not is_cuda_query(self.ctx, call):
                    return False
                uses += 1
        return uses > 0

    # -- CUDA defaults held by self ------------------------------------------------------
    def _cuda_attrs_of(self, cls: cst.ClassDef) -> dict[str, str]:
        """`self.<attr>` -> why, for attributes that hold a CUDA device by default:
        `self.device = "cuda"`, or `self.device = device` with `device="cuda"` as the default of
        the method's parameter. Every assignment of the attribute in the class must be one."""
        found = self._cuda_attrs.get(id(cls))
        if found is not None:
            return found
        found = {}
        if "cuda" in self.ctx.source and "cuda" in self.ctx.code_for(cls):
            verdicts: dict[str, str | None] = {}
            methods = [s for s in statement_body(cls) if isinstance(s, cst.FunctionDef)]
            method_names = {m.name.value for m in methods}
            for method in methods:
                me = first_param(method)
                if me is None:
                    continue
                top = {id(s) for s in small_statements(statement_body(method))}
                for assign in find_all(method.body, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                    targets = ([t.target for t in assign.targets] if isinstance(assign, cst.Assign)
                               else [assign.target])
                    for target in targets:
                        attr = is_self_attr(target, me)
                        if attr is None:
                            continue
                        why = None
                        if id(assign) in top and not isinstance(assign, cst.AugAssign):
                            why = self._cuda_default(method, assign.value)
                        if why is None or attr in method_names:
                            verdicts[attr] = None
                        elif verdicts.get(attr, "") is not None:
                            verdicts[attr] = why
            found = {attr: why.replace("<attr>", attr) for attr, why in verdicts.items() if why}
        self._cuda_attrs[id(cls)] = found
        return found

    def _cuda_default(self, method: cst.FunctionDef, value: cst.BaseExpression | None) -> str | None:
        """Why a value stored on self is a CUDA device by default, or None."""
        if value is None:
            return None
        if is_cuda_string(value):
            return f"self.<attr> = {self.ctx.code_for(value)}"
        if isinstance(value, cst.Call) and self.ctx.qualname(value.func) == "torch.device":
            args = positional_args(value)
            if len(args) != 1 or len(value.args) != 1:
                return None
            value = args[0].value  # torch.device("cuda") itself is reported where it is written
            if not isinstance(value, cst.Name):
                return None
        if not isinstance(value, cst.Name):
            return None
        params = [*method.params.posonly_params, *method.params.params, *method.params.kwonly_params]
        param = next((p for p in params if p.name.value == value.value), None)
        if param is None or param.default is None or not is_cuda_string(param.default):
            return None
        for node in find_all(method.body, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr, cst.For,
                                           cst.WithItem, cst.Global, cst.Nonlocal)):
            if isinstance(node, (cst.Global, cst.Nonlocal)):
                return None
            targets: list[cst.CSTNode]
            if isinstance(node, cst.Assign):
                targets = [t.target for t in node.targets]
            elif isinstance(node, cst.WithItem):
                targets = [node.asname.name] if node.asname else []
            else:
                targets = [node.target]
            for target in targets:
                if value.value in _names_in_target(target):
                    return None  # the parameter is rebound (e.g. to "cpu" when CUDA is missing)
        return f"the default {param.name.value}={self.ctx.code_for(param.default)} of {method.name.value}"

    # -- what a call hard-codes ----------------------------------------------------------
    def _hardcoded(self, node: cst.Call) -> str | None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if last not in ("cuda", "to", "device") and keyword_arg(node, "device") is None:
            return None  # the common case, decided without resolving names
        if isinstance(func, cst.Attribute) and func.attr.value == "cuda":
            if self.ctx.qualname(func.value) == "torch":
                return None
            args = positional_args(node) + ([a] if (a := keyword_arg(node, "device")) else [])
            if args and not isinstance(args[0].value, (cst.Integer, cst.SimpleString)):
                return None  # `.cuda(device)`: the caller chooses the device
            return ".cuda()"
        if self.ctx.qualname(func) == "torch.device":
            args = positional_args(node)
            device = keyword_arg(node, "type")
            value = args[0].value if args else (device.value if device else None)
            if value is not None and is_cuda_string(value):
                return f"torch.device({self.ctx.code_for(value)})"
            return None
        if isinstance(func, cst.Attribute) and func.attr.value == "to":
            args = positional_args(node)
            if args and is_cuda_string(args[0].value):
                return f'.to({self.ctx.code_for(args[0].value)})'
            target = args[0].value if args else (keyword_arg(node, "device").value if keyword_arg(node, "device") else None)
            attr = is_self_attr(target) if target is not None else None
            if attr is not None:
                return f"self.{attr} .to({self.ctx.code_for(target)})"
        device = keyword_arg(node, "device")
        if device is not None and is_cuda_string(device.value):
            return f"device={self.ctx.code_for(device.value)}"
        if device is not None and (attr := is_self_attr(device.value)) is not None:
            return f"self.{attr} device={self.ctx.code_for(device.value)}"
        return None


# --- TL404 ----------------------------------------------------------------------------------

_LOADER_QUALNAMES = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
_MOVER_WORDS = ("device", "cuda", "gpu", "move", "to_", "send", "transfer", "prepare")


def model_move(ctx, node: cst.CSTNode) -> tuple[str, cst.BaseExpression | None] | None:
    """(model, device) for `model.to(device)` / `model.cuda()` statements and
    `model = <...>.to(device)` assignments; the model is a name or `self.<attr>`."""
    if isinstance(node, cst.Expr):
        call = node.value
        target: cst.BaseExpression | None = None
    elif isinstance(node, cst.Assign) and len(node.targets) == 1:
        call = node.value
        target = node.targets[0].target
    else:
        return None
    method = method_call(call, {"to", "cuda"})
    if method is None:
        return None
    assert isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
    args = positional_args(call)
    device_arg = keyword_arg(call, "device")
    device = device_arg.value if device_arg else (args[0].value if args else None)
    if method == "to" and (device is None or not is_device_expr(ctx, device)):
        return None  # .to(torch.float16) converts, it does not move
    name = dotted_name(target if target is not None else call.func.value)
    if name is None or name.count(".") > 1 or (name.count(".") == 1 and not name.startswith("self.")):
        return None
    return name, device


def _is_cpu(ctx, device: cst.BaseExpression | None) -> bool:
    if device is None:
        return False
    if isinstance(device, cst.Name):
        # `device = torch.device("cpu")` (every binding in the file): a CPU-only script
        return device.value in _cpu_device_names(ctx)
    if isinstance(device, cst.Call) and ctx.qualname(device.func) == "torch.device":
        args = positional_args(device)
        device = args[0].value if args else None
    value = string_value(device) if device is not None else None
    return value is not None and value.split(":")[0] == "cpu"


_CPU_NAMES: WeakKeyDictionary = WeakKeyDictionary()


def _cpu_device_names(ctx) -> frozenset[str]:
    """Names whose every assignment in the file is a CPU device (`torch.device("cpu")`, "cpu")."""
    found = _CPU_NAMES.get(ctx)
    if found is None:
        verdicts: dict[str, bool] = {}
        for small in small_statements(list(ctx.module.body), into_defs=True):
            if isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                for target in targets:
                    for name in target_names(target):
                        verdicts[name] = verdicts.get(name, True) and isinstance(target, cst.Name) and \
                            isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None and \
                            not isinstance(small.value, cst.Name) and _is_cpu(ctx, small.value)
        found = _CPU_NAMES[ctx] = frozenset(n for n, ok in verdicts.items() if ok)
    return found


def _looks_like_model(ctx, name: str, scope: cst.CSTNode) -> bool:
    """A Module by evidence (construction, annotation), or by name (`model`, `net`, `netD`,
    `resnet`, `generator`, `self.model`) when nothing says it holds a tensor."""
    last = name.split(".")[-1]
    held = scope_kinds(ctx, scope).of(last)
    if held.kind in ("tensor", "batch"):
        return False
    lower = last.lower().strip("_")
    return held.kind == "module" or "model" in lower or lower.startswith("net") or lower.endswith("net") or \
        lower in _MODEL_NAMES


# Names that read as a network (`netD`, `resnet`, `generator`): with a device move, a Module.
_MODEL_NAMES = frozenset({"generator", "discriminator", "encoder", "decoder", "classifier", "backbone", "critic"})


class InputNotMoved(Rule):
    """The model is moved to a device, then called on a data-loader batch that is not."""

    code = "TL404"
    name = "input-not-moved"
    summary = "a model moved to a device is called on a data-loader batch that was never moved"
    valid = [
        "import torch\ndef train(model, loader, device):\n    model.to(device)\n    for xb, yb in loader:\n        xb, yb = xb.to(device), yb.to(device)\n        model(xb)\n",
        "import torch\ndef train(model, loader):\n    model.to(torch.float16)\n    for xb, yb in loader:\n        model(xb)\n",
        "import torch\ndef train(model, loader, device):\n    model.to(device)\n    for batch in loader:\n        model(batch)\n",
    ]
    invalid = [
        Case(
            "import torch\ndef train(model, loader, device):\n    model.to(device)\n    for xb, yb in loader:\n        out = model(xb)\n",
            line=5, col=15,
        ),
        Case(
            "import torch\nclass Trainer:\n    def __init__(self, model, device):\n        self.device = device\n        self.model = model.to(device)\n"
            "    def train(self, loader):\n        for x, y in loader:\n            x, y = x.to(self.device), y.to(self.device)\n            self.model(x)\n"
            "    def validate(self, loader):\n        for x, y in loader:\n            self.model(x)\n",
            line=12,
        ),
    ]

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._scopes_with_moves: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        # cheap trigger: only scopes that move a model get the full analysis
        if method_call(node, {"to", "cuda"}) and self.ctx.stack and self._may_move_model(self.ctx.stack[-1]):
            scope = enclosing_scope(self.ctx)
            if scope is not None:
                self._scopes_with_moves.add(id(scope))

    def _may_move_model(self, statement: cst.CSTNode) -> bool:
        """A statement that moves something that may be a model (checked fully later)."""
        found = model_move(self.ctx, statement)
        if found is None:
            return False
        last = found[0].split(".")[-1].lower()
        return isinstance(statement, cst.Expr) or "model" in last or "net" in last or \
            (isinstance(statement, cst.Assign) and module_valued(self.ctx, statement.value))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if id(node) in self._scopes_with_moves:
            self._check_scope(node, {})

    def leave_Module(self, node: cst.Module) -> None:
        if id(node) in self._scopes_with_moves:
            self._check_scope(node, {})
            self._check_global_model(node)

    def _check_global_model(self, module: cst.Module) -> None:
        """A script moves its global `model` at the top level; its functions (`train()`,
        `test()`) call it on loader batches. Flagged when the omission is plain: another function
        (or the top level) moves its batches, or the script builds its own `DataLoader`s."""
        if self._loaders_move_batches():
            return
        nodes = list(scope_nodes(module))
        moved = {m: -1 for m in self._moved_models(module, nodes, {}) if "." not in m}
        if not moved:
            return
        functions = [n for n in nodes if isinstance(n, cst.FunctionDef)]
        results = []
        plain = self._scan(module, {})[1]
        for func in functions:
            local = scope_facts(self.ctx, func).bindings
            pre = {m: p for m, p in moved.items() if m not in local}
            if not pre:
                continue
            unmoved, moves = self._scan(func, pre)
            plain = plain or moves
            results.append((func, unmoved))
        if not plain and not any(isinstance(n, cst.Assign) and self._cpu_loader(n) for n in nodes):
            return  # perhaps the loader yields device tensors
        for func, unmoved in results:
            for call, model, batch_name in unmoved:
                if id(func) in self._scopes_with_moves and model in self._moved_models(func, list(scope_nodes(func)), {}):
                    continue  # the function moves the model itself: checked on its own
                self._report(call, model, batch_name)

    def _cpu_loader(self, assign: cst.Assign) -> bool:
        """`loader = DataLoader(dataset, ...)` with the default collate and nothing that
        mentions a device: its batches are CPU tensors."""
        value = assign.value
        if not (isinstance(value, cst.Call) and self.ctx.qualname(value.func) in _LOADER_QUALNAMES and
                keyword_arg(value, "collate_fn") is None and not self._mentions_device(value)):
            return False
        args = positional_args(value)
        dataset = dotted_name(args[0].value) if args else None
        if dataset is None:
            return True
        # `ds = TensorDataset(x.cuda(), y.cuda())`: a dataset that already holds device tensors
        return not any(isinstance(n, cst.Assign) and any(dotted_name(t.target) == dataset for t in n.targets) and
                       self._mentions_device(n.value) for n in find_all(self.ctx.module, cst.Assign))

    def _mentions_device(self, node: cst.CSTNode) -> bool:
        text = self.ctx.code_for(node).lower()
        return "device" in text or "cuda" in text

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        methods = self.ctx.class_facts(node).methods
        moved: dict[str, int] = {}
        movers: dict[str, set[str]] = {}  # model -> the methods that move it
        for name, func in methods.items():
            if name != "__init__" and id(func) not in self._scopes_with_moves:
                continue
            for small in small_statements(statement_body(func)):
                found = model_move(self.ctx, small)
                if found and found[0].startswith("self.") and not _is_cpu(self.ctx, found[1]) and \
                        _looks_like_model(self.ctx, found[0], func):
                    moved[found[0]] = -1
                    movers.setdefault(found[0], set()).add(name)
        if not moved:
            return
        if self._loaders_move_batches():
            return
        class_nodes = [n for func in methods.values() for n in scope_nodes(func)]
        for model in self._wrapped_models(class_nodes):
            moved.pop(model, None)
        if not moved:
            return
        device_loaders = frozenset(self._device_loaders(class_nodes))
        results = {name: self._scan(func, moved, device_loaders) for name, func in methods.items()
                   if name != "__init__"}
        if not any(moves for _, moves in results.values()) and not self._class_builds_cpu_loaders(node):
            return  # no sibling moves its batches: perhaps the loader yields device tensors
        for name, (unmoved, _) in results.items():
            for call, model, batch_name in unmoved:
                if name in movers.get(model, ()):
                    continue  # the per-function analysis owns this method
                self._report(call, model, batch_name)

    def _class_builds_cpu_loaders(self, cls: cst.ClassDef) -> bool:
        """The class builds its own `torch.utils.data.DataLoader`s (`self.train_loader =
        DataLoader(...)`) with the default collate: their batches are CPU tensors."""
        for func in self.ctx.class_facts(cls).methods.values():
            for small in small_statements(statement_body(func)):
                if isinstance(small, cst.Assign) and any(is_self_attr(t.target) for t in small.targets) and \
                        self._cpu_loader(small):
                    return True
        return False

    def _loaders_move_batches(self) -> bool:
        """The file defines a loader class that moves batches itself (`DeviceDataLoader`)."""
        return any("device" in n.lower() and ("loader" in n.lower() or "prefetch" in n.lower())
                   for n in self.ctx.local_classes)

    def _check_scope(self, scope: cst.CSTNode, pre_moved: dict[str, int]) -> None:
        if self._loaders_move_batches():
            return
        unmoved, _ = self._scan(scope, pre_moved)
        for call, model, batch_name in unmoved:
            self._report(call, model, batch_name)
        for call, model, name in self._cpu_inputs(scope):
            self._report(call, model, name, created=True)

    def _moved_models(self, scope: cst.CSTNode, nodes: list[cst.CSTNode],
                      pre_moved: dict[str, int]) -> dict[str, int]:
        """model -> position (in `nodes`) of its first move to a device, without the models a
        wrapper places inputs for (DataParallel scatters them; Accelerate/FSDP place them)."""
        ctx = self.ctx
        moved = dict(pre_moved)
        for position, node in enumerate(nodes):
            found = model_move(ctx, node)
            if found and not _is_cpu(ctx, found[1]) and _looks_like_model(ctx, found[0], scope):
                moved.setdefault(found[0], position)
        for model in self._wrapped_models(nodes):
            moved.pop(model, None)
        return moved

    def _wrapped_models(self, nodes: list[cst.CSTNode]) -> set[str]:
        """Names rebound from a wrapper that places inputs itself: DataParallel scatters them,
        Accelerate's `prepare` and FSDP place them (`model, opt = accelerator.prepare(model, opt)`)."""
        out: set[str] = set()
        for node in nodes:
            if isinstance(node, cst.Assign) and \
                    any(w in self.ctx.code_for(node.value) for w in ("DataParallel", "prepare", "FullyShard", "fsdp")):
                for target in node.targets:
                    out.update(_dotted_targets(target.target))
        return out

    def _scan(self, scope: cst.CSTNode, pre_moved: dict[str, int],
              device_loaders: frozenset[str] = frozenset()) -> tuple[list[tuple[cst.Call, str, str]], bool]:
        """Model calls on unmoved loader batches in a scope, and whether the scope moves any batch."""
        ctx = self.ctx
        facts = scope_facts(ctx, scope)
        nodes = list(scope_nodes(scope))
        moves_batches = False
        unmoved: list[tuple[cst.Call, str, str]] = []
        if not any(isinstance(n, (cst.For, cst.Assign)) for n in nodes):
            return unmoved, moves_batches
        moved = self._moved_models(scope, nodes, pre_moved)
        if not moved:
            return unmoved, moves_batches
        device_loaders = device_loaders | self._device_loaders(nodes)
        iterators = loader_iterators(ctx, nodes, facts.loader_names)
        positions = {id(n): i for i, n in enumerate(nodes)}
        for position, node in enumerate(nodes):
            if isinstance(node, cst.For):
                iterable = dotted_name(_strip_iter_wrappers(node.iter))
                if iterable is not None and iterable in device_loaders:
                    continue
                batch, unpacking = unpacked_batch(ctx, node, facts.loader_names)
                indexed: set[str] = set()
                single = _single_batch_target(node)
                if not batch and single is not None and is_loader_iterable(ctx, node.iter, facts.loader_names):
                    # `for batch in self.train_loader: self.model(batch[0])`: a sequence of tensors
                    # (also `for i, data in enumerate(loader, 0): real = data[0]`)
                    batch, indexed = [single], {single}
                if not batch:
                    continue
                region = descendants(node.body, skip_scopes=True)
                calls, moved_batch = self._uses(region, set(batch), set(moved), unpacking, indexed)
                moves_batches = moves_batches or bool(moved_batch - indexed)
                for call, model, batch_name in calls:
                    if batch_name not in moved_batch and moved[model] < position:
                        unmoved.append((call, model, batch_name))
            elif isinstance(node, cst.Assign):
                batch = next_batch_names(ctx, node, facts.loader_names, iterators)
                source = node.value.args[0].value if batch and isinstance(node.value, cst.Call) and \
                    node.value.args else None
                if not batch or (source is not None and dotted_name(_strip_iter_wrappers(source)) in device_loaders):
                    continue
                calls, moved_batch = self._uses(nodes[position + 1:], set(batch), set(moved), None, set())
                moves_batches = moves_batches or bool(moved_batch)
                for call, model, batch_name in calls:
                    if batch_name not in moved_batch and moved[model] < positions.get(id(call), -1):
                        unmoved.append((call, model, batch_name))
        return unmoved, moves_batches

    def _cpu_inputs(self, scope: cst.CSTNode) -> list[tuple[cst.Call, str, str]]:
        """Model calls, after the model was moved to a CUDA device, on a tensor of this scope
        that every binding creates on the CPU (`x = Variable(torch.randn(1, 3))`) and nothing
        moves: the script's dummy input or example batch."""
        kinds = scope_kinds(self.ctx, scope)
        if not kinds.cpu_tensors:
            return []
        nodes = list(scope_nodes(scope))
        moved = {m: p for m, p in self._moved_models(scope, nodes, {}).items()
                 if self._to_cuda(scope, nodes, p)}
        back: dict[str, list[int]] = {}  # model -> positions of moves back to the CPU
        for position, node in enumerate(nodes):
            method = method_call(node.value, {"cpu", "to"}) if isinstance(node, (cst.Expr, cst.Assign)) else None
            if method is not None:
                found = model_move(self.ctx, node)
                receiver = dotted_name(node.value.func.value)
                if receiver is not None and (method == "cpu" or (found is not None and _is_cpu(self.ctx, found[1]))):
                    back.setdefault(receiver, []).append(position)
        out = []
        for position, node in enumerate(nodes):
            if not isinstance(node, cst.Call):
                continue
            model = dotted_name(node.func)
            if model not in moved or moved[model] > position or \
                    any(moved[model] < p < position for p in back.get(model, ())):
                continue
            for arg in node.args:
                if arg.star:
                    continue
                root = _unmoved_batch_root(arg.value)
                if root is not None and root in kinds.cpu_tensors:
                    out.append((node, model, root))
                    break
        return out

    def _to_cuda(self, scope: cst.CSTNode, nodes: list[cst.CSTNode], position: int) -> bool:
        """Whether the move at `position` targets a GPU: `.cuda()`, a "cuda" literal, or a device
        name whose binding in the scope (or the module) mentions cuda."""
        found = model_move(self.ctx, nodes[position])
        if found is None:
            return False
        device = found[1]
        if device is None:
            return True  # `.cuda()`
        text = self.ctx.code_for(device).lower()
        if "cuda" in text or "gpu" in text:
            return True
        name = dotted_name(device)
        if name is None or "." in name:
            return False
        for where in (nodes, list(scope_nodes(self.ctx.module)) if scope is not self.ctx.module else []):
            for node in where:
                if isinstance(node, cst.Assign) and any(dotted_name(t.target) == name for t in node.targets):
                    if "cuda" in self.ctx.code_for(node.value).lower():
                        return True
        return False

    def _device_loaders(self, nodes: list[cst.CSTNode]) -> set[str]:
        """Loaders bound from a wrapper that puts batches on the device (`DeviceDataLoader(dl,
        device)`, `accelerator.prepare(dl)`): their batches need no move."""
        out: set[str] = set()
        for node in nodes:
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
                text = self.ctx.code_for(node.value).lower()
                if any(w in text for w in ("device", "cuda", "gpu", "prepare")):
                    for target in node.targets:
                        out.update(_dotted_targets(target.target))
        return out

    def _uses(self, region: list[cst.CSTNode], batch: set[str], models: set[str],
              unpacking: cst.Assign | None, indexed: set[str]) -> tuple[list[tuple[cst.Call, str, str]], set[str]]:
        """(model calls with a batch name argument, batch names that are moved) in a region
        (a loop body, or what follows `xb, yb = next(iter(loader))`); `unpacking`
        (`inputs, labels = data`) binds the batch names and moves nothing; names in `indexed`
        count only as `batch[0]` (a single batch name may be a dict)."""
        calls: list[tuple[cst.Call, str, str]] = []
        moved: set[str] = set()
        # a discarded `xb.to(device)` (TL401) moves nothing
        discarded = {id(n.value) for n in region if isinstance(n, cst.Expr) and method_call(n.value, MOVE_METHODS)}
        batch = set(batch)
        for node in region:
            if node is unpacking:
                continue
            alias = self._batch_alias(node, batch, indexed)
            if alias is not None:
                batch.add(alias)  # `inputs = batch[0]`, `x = Variable(xb.view(-1, 784))`: the same CPU batch
                continue
            if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                kept = self._still_unmoved(node, batch) if isinstance(node, cst.Assign) else set()
                for target in targets:
                    for name in _names_in_target(target):
                        if name in batch and name not in kept:
                            moved.add(name)  # rebound: moved, or at least no longer the batch
            if isinstance(node, cst.Call) and id(node) not in discarded:
                func_name = dotted_name(node.func)
                args = [a.value for a in node.args]
                arg_names = [a.value for a in args if isinstance(a, cst.Name) and a.value in batch]
                if func_name in models:
                    # `model(xb)`, and `model(xb.view(n, -1))`, `model(xb.float())`, `model(xb[:, 0])`
                    for arg in node.args:
                        if arg.star:
                            continue
                        name = _unmoved_batch_root(arg.value)
                        if name in batch and (name not in indexed or _int_indexed(arg.value, name)):
                            calls.append((node, func_name, name))
                elif arg_names and any(w in (func_name or self.ctx.code_for(node.func)).lower() for w in _MOVER_WORDS):
                    moved.update(arg_names)
                method = method_call(node, {"to", "cuda"})
                if method and isinstance(node.func.value, cst.Name) and node.func.value.value in batch:
                    moved.add(node.func.value.value)
            elif isinstance(node, cst.Call) and indexed and method_call(node, {"to", "cuda"}) and \
                    isinstance(node.func.value, cst.Name) and node.func.value.value in indexed:
                moved.add(node.func.value.value)  # `batch.to(device)`: may move a BatchEncoding in place
        return calls, moved

    def _batch_alias(self, node: cst.CSTNode, batch: set[str], indexed: set[str]) -> str | None:
        """The new name of `name = <batch>[0]` / `name = Variable(<batch name>.view(...))`, a
        binding to (part of) an unmoved batch under another name that is not a batch name yet."""
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1 and
                isinstance(node.targets[0].target, cst.Name)):
            return None
        new = node.targets[0].target.value
        value = node.value
        while is_variable_call(self.ctx, value) and positional_args(value):
            value = positional_args(value)[0].value
        root = _unmoved_batch_root(value)
        if new in batch or root not in batch or (root in indexed and not _int_indexed(value, root)):
            return None
        return new

    def _still_unmoved(self, node: cst.Assign, batch: set[str]) -> set[str]:
        """Batch names an assignment rebinds to the same CPU batch: `images = Variable(images)`,
        `x = x.view(-1, 784).float()`, `x, y = Variable(x), Variable(y)` (nothing moves them)."""
        if len(node.targets) != 1:
            return set()
        target, value = node.targets[0].target, node.value
        pairs: list[tuple[cst.BaseExpression, cst.BaseExpression]] = [(target, value)]
        if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) and \
                len(target.elements) == len(value.elements):
            pairs = [(t.value, v.value) for t, v in zip(target.elements, value.elements)]
        out = set()
        for left, right in pairs:
            if isinstance(left, cst.Name) and left.value in batch:
                while is_variable_call(self.ctx, right) and positional_args(right):
                    right = positional_args(right)[0].value
                    root = _unmoved_batch_root(right)
                    right = cst.Name(root) if root is not None else right
                if _unmoved_batch_root(right) == left.value:
                    out.add(left.value)
        return out

    def _report(self, call: cst.Call, model: str, batch_name: str, created: bool = False) -> None:
        if created:
            message = (f"{model} was moved to a GPU but is called on {batch_name}, a tensor created on the CPU "
                       f"and never moved; create it on the device or move it: {batch_name} = {batch_name}.to(device)")
        else:
            message = (f"{model} was moved to a device but is called on {batch_name} from the data loader, which "
                       f"is never moved; move it first: {batch_name} = {batch_name}.to(device)")
        self.report(call, message, context=class_name_context(self.ctx, self.ctx.enclosing_class()))


def _single_batch_target(node: cst.For) -> str | None:
    """`batch` of `for batch in ...` and of `for i, batch in enumerate(...)`."""
    target = node.target
    if isinstance(node.iter, cst.Call) and dotted_name(node.iter.func) == "enumerate" and \
            isinstance(target, cst.Tuple) and len(target.elements) == 2:
        target = target.elements[1].value
    return target.value if isinstance(target, cst.Name) else None


def _int_indexed(expr: cst.BaseExpression, name: str) -> bool:
    """`batch[0]` (maybe followed by tensor methods): an integer index into the batch `name`."""
    while True:
        if isinstance(expr, cst.Subscript):
            if isinstance(expr.value, cst.Name) and expr.value.value == name:
                first = expr.slice[0].slice if expr.slice else None
                return isinstance(first, cst.Index) and isinstance(first.value, (cst.Integer, cst.UnaryOperation))
            expr = expr.value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            expr = expr.func.value
        else:
            return False


def _unmoved_batch_root(expr: cst.BaseExpression) -> str | None:
    """`xb` for `xb`, `xb.view(...)`, `xb.float()`, `xb[:, 0]`: a tensor-preserving chain on a
    name that moves nothing (None when it passes through `.to(...)`, `.cuda()`, `.type_as()`)."""
    while True:
        if isinstance(expr, cst.Name):
            return expr.value
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
                expr.func.attr.value in TENSOR_RETURNING_METHODS and expr.func.attr.value not in _MOVING_METHODS:
            expr = expr.func.value
        elif isinstance(expr, cst.Subscript):
            expr = expr.value
        else:
            return None


def _strip_iter_wrappers(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`enumerate(tqdm(loader))` -> `loader`."""
    while isinstance(expr, cst.Call) and (dotted_name(expr.func) or "").split(".")[-1] in ("enumerate", "tqdm", "iter"):
        args = positional_args(expr)
        if not args:
            break
        expr = args[0].value
    return expr


_names_in_target = target_names


def _dotted_targets(target: cst.BaseExpression) -> list[str]:
    """The dotted names an assignment target binds: `a`, `self.loader`, `self.model, opt`."""
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _dotted_targets(e.value)]
    if isinstance(target, cst.StarredElement):
        return _dotted_targets(target.value)
    name = dotted_name(target)
    return [name] if name else []


# --- TL405 ----------------------------------------------------------------------------------

_CHECKPOINT_WORDS = ("ckpt", "checkpoint", "state_dict", "weights", "model")
# Words that say a load holds training state other than a model's weights (RNG state is a CPU
# ByteTensor; optimizer, scheduler, scaler and data-loader state are not model checkpoints):
# they silence a path suffix, never a result that reaches a Module's load_state_dict.
_STATE_WORDS = ("rng", "random", "optim", "sched", "scaler", "lr_", "sampler", "dataloader", "data_state")
# Weak hints: they only silence a load whose sole evidence is a name or a key.
_WEAK_NOT_MODEL_WORDS = ("dataset", "generator")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar", ".bin")
# load_state_dict receivers that are not Modules: optimizers, schedulers, scalers, engines.
_STATE_RECEIVER_TOKENS = frozenset({"optimizer", "optimizers", "optim", "opt", "scheduler", "schedulers",
                                    "sched", "scaler", "engine", "trainer"})
# Calls that take a load's result as plain data or as RNG state, never as model weights.
_DATA_SINKS = ("torch.from_numpy", "numpy.asarray", "numpy.array", "torch.set_rng_state",
               "torch.cuda.set_rng_state", "torch.cuda.set_rng_state_all", "torch.random.set_rng_state",
               "random.setstate", "numpy.random.set_state")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _last_string(expr: cst.CSTNode) -> str | None:
    """The last string literal in a path expression (`os.path.join(d, "model.pt")`)."""
    found = None
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.SimpleString):
            value = string_value(node)
            if value is not None:
                found = value
        elif isinstance(node, cst.FormattedString):
            texts = [p.value for p in node.parts if isinstance(p, cst.FormattedStringText)]
            if texts and node.parts and isinstance(node.parts[-1], cst.FormattedStringText):
                found = texts[-1]
            continue
        stack.extend(reversed(list(children(node))))
    return found


def _name_tokens(name: str) -> set[str]:
    """`d_optimizer` -> {d, optimizer}; `optG` -> {opt, g}."""
    return {t.lower() for part in name.split("_") for t in _CAMEL.findall(part)}


def _saver_call(ctx, call: cst.Call) -> bool:
    """A call that writes a checkpoint somewhere: `trainer.save(...)`, `save_checkpoint(...)`,
    `ModelCheckpoint(filepath=...)` (a callee named for saving or checkpointing, not loading)."""
    name = dotted_name(call.func)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1].lower()
    return ("save" in last or "checkpoint" in last) and "load" not in last and "restore" not in last


class TorchLoadWithoutMapLocation(Rule):
    """`torch.load` of a checkpoint without `map_location`."""

    code = "TL405"
    name = "torch-load-without-map-location"
    summary = "torch.load of a model checkpoint without map_location"
    fix_safety = "safe"
    valid = [
        "import torch\nstate = torch.load('model.pt', map_location='cpu')\n",
        "import torch\nstate = torch.load('model.pt', 'cpu')\n",
        "import torch\nrng_state = torch.load('rng_state.pth')\n",
        "import torch\ndef f(path, **kw):\n    ckpt = torch.load(path, **kw)\n",
        "import torch\nstats = torch.load(path)\n",
        "import torch\ndef f(model, path):\n    torch.save(model.state_dict(), path)\n    model.load_state_dict(torch.load(path))\n",
        "import torch\ndef f(optimizer, path):\n    optimizer.load_state_dict(torch.load(path))\n",
    ]
    invalid = [
        Case("import torch\nckpt = torch.load(path)\n", line=2, col=8),
        Case("import torch\nmodel.load_state_dict(torch.load(path))\n", line=2, col=23,
             fixed="import torch\nmodel.load_state_dict(torch.load(path, map_location=\"cpu\"))\n", unsafe=True),
        Case("import torch\nsd = torch.load('weights.pth', weights_only=True)\n", line=2),
        Case("import torch\ndef f(m, p):\n    data = torch.load(p)\n    m.load_state_dict(data)\n", line=3),
        Case("import torch\nimport torch.nn as nn\ndef f(p):\n    net = nn.Linear(2, 2)\n    net.load_state_dict(torch.load(p))\n",
             line=5, fixed="import torch\nimport torch.nn as nn\ndef f(p):\n    net = nn.Linear(2, 2)\n"
             "    net.load_state_dict(torch.load(p, map_location=\"cpu\"))\n"),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.qualname(node.func) not in ("torch.load", "torch.serialization.load"):
            return
        if keyword_arg(node, "map_location") or len(positional_args(node)) >= 2 or has_star_kwargs(node):
            return
        if any(a.star == "*" for a in node.args):
            return
        evidence = self._checkpoint_evidence(node)
        if evidence is None or self._round_trip(node):
            return
        self.report(
            node,
            f"torch.load of a model checkpoint ({evidence}) without map_location: a checkpoint saved "
            "on a GPU fails to load on a CPU-only machine; pass map_location=\"cpu\" (or the target device)",
            fix=self._fix(node),
            context=class_name_context(self.ctx, self.ctx.enclosing_class()),
        )

    # -- what the load is ----------------------------------------------------------------
    def _checkpoint_evidence(self, node: cst.Call) -> str | None:
        """Why this load is a model checkpoint, or None (not one, or RNG/optimizer/data state)."""
        words: list[str] = []
        args = positional_args(node)
        path = args[0].value if args else (keyword_arg(node, "f").value if keyword_arg(node, "f") else None)
        path_text = _last_string(path) if path is not None else None
        if path_text:
            words.append(path_text.lower())
        if path is not None:
            words.append(self.ctx.code_for(path).lower())
        stack = self.ctx.stack
        parent = stack[-1] if stack else None
        weak: list[str] = []
        module_sink: str | None = None  # the result reaches a Module's load_state_dict
        other_sink = False  # the result goes to an optimizer/scheduler/RNG/plain data
        if isinstance(parent, cst.Arg) and len(stack) >= 2 and isinstance(stack[-2], cst.Call):
            kind = self._sink(stack[-2])
            if kind == "module":
                module_sink = "passed to load_state_dict"
            elif kind == "other":
                other_sink = True
        elif isinstance(parent, cst.Subscript) and parent.value is node:
            key = self.ctx.code_for(parent.slice[0]) if parent.slice else ""
            if "state_dict" in key or "model" in key:
                weak.append(f"indexed with {key}")
        elif isinstance(parent, (cst.Assign, cst.AnnAssign)) and parent.value is node:
            targets = [t.target for t in parent.targets] if isinstance(parent, cst.Assign) else [parent.target]
            target_text = dotted_name(targets[0]) if len(targets) == 1 else None
            if target_text:
                bound = target_text.split(".")[-1]
                words.append(bound.lower())
                if any(w in bound.lower() for w in _CHECKPOINT_WORDS):
                    weak.append(f"bound to {bound}")
                if isinstance(targets[0], cst.Name):
                    module_use, other_use, key_use = self._name_uses(targets[0].value)
                    module_sink = module_use
                    other_sink = other_use
                    if key_use:
                        weak.append(key_use)
        if module_sink:
            return module_sink
        if other_sink or any(w in text for text in words for w in _STATE_WORDS):
            return None
        if path_text and path_text.lower().endswith(_CHECKPOINT_SUFFIXES):
            return f"path {path_text}"
        if not weak or any(w in text for text in words for w in _WEAK_NOT_MODEL_WORDS):
            return None
        return weak[0]

    def _sink(self, call: cst.Call) -> str | None:
        """"module" for a Module's load_state_dict, "other" for an optimizer's, a scheduler's,
        RNG state or plain data, else None."""
        if method_call(call, {"load_state_dict"}):
            return "other" if self._state_receiver(call.func.value) else "module"
        name = self.ctx.qualname(call.func)
        if name in _DATA_SINKS or (name or "").startswith("numpy.") and name.endswith(("asarray", "array")):
            return "other"
        return None

    def _state_receiver(self, receiver: cst.BaseExpression) -> bool:
        """An optimizer, LR scheduler, grad scaler or training engine: bound from torch.optim.*,
        torch.optim.lr_scheduler.* or GradScaler, or named like one."""
        name = dotted_name(receiver)
        if name is None:
            return False
        last = name.rsplit(".", 1)[-1]
        if _name_tokens(last) & _STATE_RECEIVER_TOKENS or last.lower().startswith(("optim", "sched")):
            return True
        origin = self._bound_class(receiver)
        return origin is not None and (origin.startswith("torch.optim.") or origin.endswith("GradScaler"))

    def _bound_class(self, receiver: cst.BaseExpression) -> str | None:
        """The qualified name of the class a receiver was constructed from, when known."""
        attr = is_self_attr(receiver)
        if attr is not None:
            cls = self.ctx.enclosing_class()
            return self.ctx.class_facts(cls).attr_classes.get(attr) if cls is not None else None
        if isinstance(receiver, cst.Name):
            scope = enclosing_scope(self.ctx)
            if scope is None:
                return None
            for other in scope_nodes(scope):
                if isinstance(other, cst.Assign) and isinstance(other.value, cst.Call) and any(
                        isinstance(t.target, cst.Name) and t.target.value == receiver.value for t in other.targets):
                    return self.ctx.qualname(other.value.func)
        return None

    def _name_uses(self, name: str) -> tuple[str | None, bool, str | None]:
        """How the name a load is bound to is used in its scope: (reaches a Module's
        load_state_dict, reaches an optimizer's / RNG / plain data, indexed with a
        `state_dict`/`model` key)."""
        scope = enclosing_scope(self.ctx)
        if scope is None:
            return None, False, None
        module_use: str | None = None
        other_use = False
        key_use: str | None = None
        for node in scope_nodes(scope):
            if isinstance(node, cst.Call) and node.args:
                root = tensor_root(node.args[0].value)
                if isinstance(root, cst.Name) and root.value == name:
                    kind = self._sink(node)
                    if kind == "module":
                        module_use = module_use or "passed to load_state_dict"
                    elif kind == "other":
                        other_use = True
            elif isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and node.value.value == name:
                key = self.ctx.code_for(node.slice[0]) if node.slice else ""
                if ("state_dict" in key or "model" in key) and key_use is None:
                    key_use = f"indexed with {key}"
        return module_use, other_use, key_use

    # -- round trips ---------------------------------------------------------------------
    def _round_trip(self, node: cst.Call) -> bool:
        """Saved earlier in the same function or module body (notebook cells are one module):
        `torch.save(obj, P)` with the same path expression, or a saving call (`trainer.save(d)`,
        `save_checkpoint(d)`, `ModelCheckpoint(filepath=d)`) given the path or the directory it
        is built from. The tensors come back to the devices they were just saved from."""
        args = positional_args(node)
        path = args[0].value if args else (keyword_arg(node, "f").value if keyword_arg(node, "f") else None)
        scope = enclosing_scope(self.ctx)
        here = source_position(self.ctx, node)
        if path is None or scope is None or here is None:
            return False
        nodes = list(scope_nodes(scope))
        bound_once: dict[str, cst.BaseExpression] = {}
        counts: dict[str, int] = {}
        for other in nodes:
            if isinstance(other, cst.Assign):
                for target in other.targets:
                    for name in _names_in_target(target.target):
                        counts[name] = counts.get(name, 0) + 1
                        if len(other.targets) == 1 and isinstance(target.target, cst.Name):
                            bound_once[name] = other.value
            elif isinstance(other, (cst.AnnAssign, cst.AugAssign, cst.For, cst.NamedExpr, cst.WithItem)):
                target = other.asname.name if isinstance(other, cst.WithItem) and other.asname else \
                    None if isinstance(other, cst.WithItem) else other.target
                for name in _names_in_target(target) if target is not None else []:
                    counts[name] = counts.get(name, 0) + 2  # bound some other way: not followed
        bound_once = {k: v for k, v in bound_once.items() if counts.get(k) == 1}

        def keys(expr: cst.BaseExpression) -> set[object]:
            """The path's own key, and that of the value of a local name bound once to it
            (`p = os.path.join(d, "m.pt")`)."""
            out = {path_key(self.ctx, expr)}
            if isinstance(expr, cst.Name) and expr.value in bound_once:
                out.add(path_key(self.ctx, bound_once[expr.value]))
            return out

        if self._saved_before(nodes, here, path, keys):
            return True
        value = bound_once.get(path.value) if isinstance(path, cst.Name) else None
        return value is not None and self._saved_before(nodes, here, value, keys)

    def _saved_before(self, nodes: list[cst.CSTNode], here: int, path: cst.BaseExpression, keys) -> bool:
        """Whether a call before position `here` saved to `path`."""
        key = keys(path)
        lead = leading_part(self.ctx, path)
        lead_key = path_key(self.ctx, lead) if lead is not None else None
        literal = literal_text(path)
        savers: set[str] = set()
        for other in nodes:
            if not isinstance(other, cst.Call):
                continue
            where = source_position(self.ctx, other)
            if where is None or where >= here:
                continue
            if self.ctx.qualname(other.func) == "torch.save":
                saved = saved_path(other)
                if saved is not None and keys(saved) & key:
                    return True
                continue
            if not _saver_call(self.ctx, other):
                continue
            bound = parent_of(self.ctx, other)
            if isinstance(bound, cst.Assign) and len(bound.targets) == 1 and isinstance(bound.targets[0].target, cst.Name):
                savers.add(bound.targets[0].target.value)
            for value in (a.value for a in other.args if not a.star):
                value_keys = keys(value)
                if value_keys & key or (lead_key is not None and lead_key in value_keys):
                    return True
                text = literal_text(value)
                if literal and text and literal.startswith(text) and (
                        text.endswith("/") or literal[len(text):len(text) + 1] in ("/", "\\")):
                    return True
        # `"_".join([saver.filepath, ...])`: a path taken from the checkpointing object made here
        return isinstance(lead, cst.Attribute) and isinstance(lead.value, cst.Name) and lead.value.value in savers

    # -- the fix -------------------------------------------------------------------------
    def _fix(self, node: cst.Call) -> PendingFix | None:
        """`X.load_state_dict(torch.load(P))` -> `torch.load(P, map_location="cpu")`: the
        values are copied into X's own tensors wherever they live. Safe when X is known to be
        a Module; unsafe otherwise (another object's load_state_dict may keep the tensors)."""
        stack = self.ctx.stack
        if len(stack) < 2 or not isinstance(stack[-1], cst.Arg) or not method_call(stack[-2], {"load_state_dict"}):
            return None
        call = stack[-2]
        assert isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
        outer = positional_args(call)
        if not outer or outer[0] is not stack[-1] or not node.args:
            return None
        applicability = "safe" if self._known_module(call.func.value) else "unsafe"
        return PendingFix(applicability, (InsertAfter(node.args[-1].value, ', map_location="cpu"'),),
                          'pass map_location="cpu"')

    def _known_module(self, receiver: cst.BaseExpression) -> bool:
        """The receiver is an nn.Module by evidence: `self` in a Module class, a local bound
        from a Module class, a `self.<attr>` assigned one, or a parameter annotated with one."""
        method = self.ctx.enclosing_method()
        if isinstance(receiver, cst.Name) and method is not None and receiver.value == first_param(method[1]) \
                and self.ctx.is_module_class(method[0]):
            return True
        attr = is_self_attr(receiver)
        if attr is not None:
            origin = self._bound_class(receiver)
            return origin is not None and self.ctx.index.is_module(origin) is True
        if not isinstance(receiver, cst.Name):
            return False
        scope = enclosing_scope(self.ctx)
        if scope is None:
            return False
        facts = scope_facts(self.ctx, scope)
        if receiver.value in facts.modules and facts.bindings.get(receiver.value) and all(
                kind == ("module",) for kind in facts.bindings[receiver.value]):
            return True
        if isinstance(scope, cst.FunctionDef):
            params = [*scope.params.posonly_params, *scope.params.params, *scope.params.kwonly_params]
            for param in params:
                if param.name.value == receiver.value and param.annotation is not None:
                    return self.ctx.expr_is_module_class(param.annotation.annotation) is True
        return False
