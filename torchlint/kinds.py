"""One answer to "what does this name hold?", and on what evidence.

A local name of a function (or of a script's top level) holds a Module, a tensor (maybe known
to be on the CPU), a data-loader batch, an optimizer, or something unknown. The answer comes
from evidence of several kinds, strongest first:

- binding: every binding of the name builds a tensor (a torch factory or op, a method of a
  tensor, the legacy `Variable(...)` wrapper, `torch.FloatTensor(...)`), or a Module;
- annotation: a parameter annotated `torch.Tensor`;
- batch: several names unpacked from a data-loader batch (`for xb, yb in loader`,
  `xb, yb = next(iter(loader))`);
- guard: the node sits in the body of `if torch.is_tensor(x):` / `isinstance(x, torch.Tensor)`;
- use: the scope uses the name as only a tensor is used (`x.size()`, `x.dim()`, `x.view(...)`,
  `x.shape`, `x.unsqueeze(...)`, arithmetic with a known tensor, the input of a Module call).

Contrary evidence wins over a use: a name bound to a literal container, a number or a string, a
single-name loader batch (a dict, or a Hugging Face `BatchEncoding` whose `.to()` moves in
place), a name used with an attribute that tensors do not have (`data.x`, `batch.items()`) or
with a string key (`batch["input_ids"]`), or a name that also holds a Module, is never a tensor
by use. A guard proves the type where it holds, and wins over everything.

`scope_kinds(ctx, scope)` computes this once per scope, lazily (only when a rule asks), with one
walk over the scope, and caches it for the life of the file's context. Bindings come from
`tensorfacts.scope_facts` (one walk, shared with the other device rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import libcst as cst

from torchlint.context import (
    dotted_name, is_self_attr, keyword_arg, positional_args, small_statements, statement_body,
)
from torchlint.tensorfacts import (
    TORCH_FACTORIES, classify_value, is_loader_iterable, scope_facts, tensor_root, torch_function,
)
from torchlint.walk import children

if TYPE_CHECKING:
    from torchlint.context import FileContext

# Methods and attributes that only tensors have (not Modules, numpy arrays, lists, dicts,
# Hugging Face or PyG batch objects): a name used with one is a tensor.
TENSOR_ONLY_CALLS = frozenset(
    {"size", "dim", "view", "unsqueeze", "permute", "contiguous", "numel", "detach", "masked_fill",
     "type_as", "view_as", "expand_as", "unflatten", "index_select", "narrow", "new_zeros",
     "new_ones", "new_full", "new_empty", "new_tensor", "softmax", "log_softmax"}
)
TENSOR_ONLY_ATTRS = frozenset({"shape", "is_cuda"})
# `Variable(t)` and the legacy typed constructors return a tensor on the CPU.
VARIABLE_WRAPPERS = frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"})
LEGACY_CONSTRUCTORS = frozenset(
    {"Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor",
     "ShortTensor", "ByteTensor", "CharTensor", "BoolTensor"}
)
# Factories that create their tensor on the default (CPU) device unless given `device=`.
CPU_CREATORS = frozenset(TORCH_FACTORIES - {n for n in TORCH_FACTORIES if n.endswith("_like")}) | LEGACY_CONSTRUCTORS
# Methods that move (or may move) a tensor to another device.
_DEVICE_MOVES = frozenset({"to", "cuda", "type_as", "to_device", "copy_", "xpu", "mps"})
_LITERALS = (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp, cst.GeneratorExp,
             cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.Integer, cst.Float,
             cst.Imaginary, cst.Lambda)


@dataclass(frozen=True)
class Holding:
    """What a name holds ("module", "tensor", "batch", "optimizer", "unknown") and why."""

    kind: str
    evidence: str = ""
    on_cpu: bool = False  # a tensor every binding of which creates it on the CPU, never moved


UNKNOWN = Holding("unknown")


def is_variable_call(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """`Variable(...)` / `torch.autograd.Variable(...)` (however imported)."""
    return isinstance(expr, cst.Call) and ctx.qualname(expr.func) in VARIABLE_WRAPPERS


def wrapped_tensor(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """A value that is a tensor whatever its input: `Variable(...)`, `torch.FloatTensor(...)`,
    or a chain through a method only tensors have (`transform(img).unsqueeze(0)`)."""
    current = expr
    while True:
        if isinstance(current, cst.Call):
            if is_variable_call(ctx, current) or torch_function(ctx, current) in LEGACY_CONSTRUCTORS:
                return True
            if isinstance(current.func, cst.Attribute):
                if current.func.attr.value in TENSOR_ONLY_CALLS - {"size", "dim", "numel"} and \
                        ctx.qualname(current.func.value) != "torch" and \
                        not (current.func.attr.value == "view" and not current.args):
                    return True
                current = current.func.value
                continue
            return False
        if isinstance(current, cst.Subscript):
            current = current.value
            continue
        return False


def created_on_cpu(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """A tensor certainly created on the CPU and not moved: a factory without `device=`
    (`torch.randn(1, 3)`, `torch.FloatTensor(...)`), maybe wrapped in `Variable(...)` or
    followed by methods that keep the device (`.float()`, `.view(...)`)."""
    current = expr
    while True:
        if isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute) and \
                ctx.qualname(current.func.value) != "torch" and not is_variable_call(ctx, current):
            if current.func.attr.value in _DEVICE_MOVES or current.func.attr.value.startswith("new_") or \
                    current.func.attr.value in ("numpy", "tolist", "item"):
                return False
            current = current.func.value
            continue
        if isinstance(current, cst.Subscript):
            current = current.value
            continue
        break
    if not isinstance(current, cst.Call):
        return False
    if is_variable_call(ctx, current):
        args = positional_args(current)
        return bool(args) and created_on_cpu(ctx, args[0].value)
    name = torch_function(ctx, current)
    if name not in CPU_CREATORS or keyword_arg(current, "device") is not None:
        return False
    return not any(a.star == "**" for a in current.args)


def narrowing_test(ctx: FileContext, test: cst.BaseExpression) -> set[str]:
    """Names an `if` test proves to be tensors: `torch.is_tensor(x)`, `isinstance(x, torch.Tensor)`,
    also as one operand of `and`."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return narrowing_test(ctx, test.left) | narrowing_test(ctx, test.right)
    if not isinstance(test, cst.Call):
        return set()
    args = positional_args(test)
    if not args or not isinstance(args[0].value, cst.Name):
        return set()
    name = args[0].value.value
    qualname = ctx.qualname(test.func)
    if qualname == "torch.is_tensor" and len(args) == 1:
        return {name}
    if isinstance(test.func, cst.Name) and test.func.value == "isinstance" and len(args) == 2:
        kind = args[1].value
        kinds = [e.value for e in kind.elements] if isinstance(kind, cst.Tuple) else [kind]
        if kinds and all(ctx.qualname(k) in ("torch.Tensor", "torch.FloatTensor", "torch.LongTensor",
                                             "torch.nn.Parameter", "torch.nn.parameter.Parameter")
                         for k in kinds):
            return {name}
    return set()


def narrowed_here(ctx: FileContext, name: str) -> bool:
    """Whether the node whose hook runs sits in the body of an `if`/`elif` that narrows `name`
    to a tensor (within the innermost function or module)."""
    stack = ctx.stack
    for i in range(len(stack) - 1, -1, -1):
        node = stack[i]
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        if isinstance(node, cst.If) and i + 1 < len(stack) and stack[i + 1] is node.body and \
                name in narrowing_test(ctx, node.test):
            return True
    return False


@dataclass
class ScopeKinds:
    """What each local name of one scope holds, with the evidence (see the module docstring)."""

    scope: cst.CSTNode
    tensors: dict[str, str] = field(default_factory=dict)  # name -> evidence
    modules: frozenset[str] = frozenset()
    batches: frozenset[str] = frozenset()  # several names unpacked from a loader batch
    single_batches: frozenset[str] = frozenset()  # `for batch in loader`: a dict or a BatchEncoding
    not_tensors: frozenset[str] = frozenset()  # contrary evidence
    cpu_tensors: frozenset[str] = frozenset()  # every binding creates a CPU tensor

    def of(self, name: str) -> Holding:
        """The holding of a name in this scope (guards are asked separately: `narrowed_here`)."""
        if name in self.modules:
            return Holding("module", "binding")
        if name in self.tensors:
            return Holding("batch" if name in self.batches else "tensor", self.tensors[name],
                           name in self.cpu_tensors)
        if name in self.single_batches:
            return Holding("batch", "single")
        return UNKNOWN


_CACHE: WeakKeyDictionary[FileContext, dict[int, ScopeKinds]] = WeakKeyDictionary()


def scope_kinds(ctx: FileContext, scope: cst.CSTNode) -> ScopeKinds:
    """The kinds of a scope's local names (computed on first use, cached per file)."""
    per_file = _CACHE.setdefault(ctx, {})
    found = per_file.get(id(scope))
    if found is None:
        found = per_file[id(scope)] = _compute(ctx, scope)
    return found


def holding(ctx: FileContext, scope: cst.CSTNode, name: str) -> Holding:
    """What `name` holds at the node whose hook runs: its scope's answer, or a tensor by guard."""
    answer = scope_kinds(ctx, scope).of(name)
    if answer.kind not in ("tensor", "batch") and narrowed_here(ctx, name):
        # inside `if isinstance(x, torch.Tensor):` x is a tensor, whatever else it holds elsewhere
        return Holding("tensor", "guard")
    return answer


_ATTR_CACHE: WeakKeyDictionary[FileContext, dict[int, frozenset[str]]] = WeakKeyDictionary()


def self_tensor_attrs(ctx: FileContext, cls: cst.ClassDef) -> frozenset[str]:
    """The `self.<attr>` of a class that every assignment in its methods binds to a tensor
    (`self.mean = torch.tensor([...])`, `self.h = Variable(torch.zeros(1, 8))`, or the attribute
    itself converted, `self.mean = self.mean.float()`), and that is not a registered buffer or
    parameter. Computed once per class."""
    per_file = _ATTR_CACHE.setdefault(ctx, {})
    found = per_file.get(id(cls))
    if found is not None:
        return found
    verdicts: dict[str, bool] = {}
    originated: set[str] = set()  # attributes with at least one assignment from a tensor value
    registered: set[str] = set()
    for method in ctx.class_facts(cls).methods.values():
        params = [*method.params.posonly_params, *method.params.params]
        if not params:
            continue
        me = params[0].name.value
        for small in small_statements(statement_body(method)):
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and \
                    isinstance(small.value.func, cst.Attribute) and \
                    small.value.func.attr.value in ("register_buffer", "register_parameter"):
                args = positional_args(small.value)
                if args and isinstance(args[0].value, cst.SimpleString):
                    registered.add(str(args[0].value.evaluated_value))
            if not isinstance(small, (cst.Assign, cst.AnnAssign)):
                continue
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                attr = is_self_attr(target, me)
                if attr is not None:
                    verdicts[attr] = verdicts.get(attr, True) and small.value is not None and \
                        _tensor_value(ctx, small.value, me, attr)
                    if small.value is not None and _tensor_origin(ctx, small.value):
                        originated.add(attr)
                else:
                    for element in _target_elements(target):
                        inner = is_self_attr(element, me)
                        if inner is not None:
                            verdicts[inner] = False
    # `self.vae = self.vae.to(dtype)` alone says nothing: Modules are converted the same way (a
    # diffusers pipeline registers its vae with register_modules and only ever converts it)
    found = per_file[id(cls)] = frozenset(a for a, ok in verdicts.items()
                                          if ok and a in originated and a not in registered)
    return found


def _tensor_origin(ctx: FileContext, value: cst.BaseExpression) -> bool:
    """A value that makes a tensor from something else (not the attribute converted)."""
    return classify_value(ctx, value)[0] == "tensor" or bool(wrapped_tensor(ctx, value))


def _tensor_value(ctx: FileContext, value: cst.BaseExpression, me: str, attr: str) -> bool:
    """A value that keeps `self.<attr>` a tensor: a tensor, or the attribute itself converted."""
    if _tensor_origin(ctx, value):
        return True
    root = tensor_root(value, ctx)
    return root is not value and is_self_attr(root, me) == attr


def _target_elements(target: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [x for e in target.elements for x in _target_elements(e.value)]
    if isinstance(target, cst.StarredElement):
        return _target_elements(target.value)
    return [target]


def _self_module_attrs(ctx: FileContext, scope: cst.CSTNode) -> tuple[str | None, set[str]]:
    """(the method's `self` name, the `self.<attr>` known to hold Modules) for a method."""
    if not isinstance(scope, cst.FunctionDef):
        return None, set()
    params = [*scope.params.posonly_params, *scope.params.params]
    if not params:
        return None, set()
    candidates = [n for n in reversed(ctx.stack) if isinstance(n, cst.ClassDef)] + list(ctx.local_classes.values())
    facts = next((f for c in candidates if (f := ctx.class_facts(c)).methods.get(scope.name.value) is scope), None)
    if facts is None:
        return None, set()
    attrs = {a for a, q in facts.attr_classes.items() if ctx.index.is_module(q) is True}
    return params[0].name.value, attrs


def _compute(ctx: FileContext, scope: cst.CSTNode) -> ScopeKinds:
    facts = scope_facts(ctx, scope)
    result = ScopeKinds(scope, batches=facts.batch_names)
    tensors: dict[str, str] = {n: "binding" for n in facts.tensors}
    for name in facts.batch_names:
        tensors[name] = "batch"
    contrary: set[str] = set(facts.modules)
    single: set[str] = set()
    wrapped: set[str] = set()
    cpu_candidates: dict[str, bool] = {}
    uses: dict[str, str] = {}
    inputs_of: dict[str, set[str]] = {}  # name -> local Module names called on it
    me, module_attrs = _self_module_attrs(ctx, scope)
    modules = set(facts.modules)

    if isinstance(scope, cst.FunctionDef):
        for param in (*scope.params.posonly_params, *scope.params.params, *scope.params.kwonly_params):
            if param.annotation is not None and param.name.value not in tensors:
                contrary.add(param.name.value)  # annotated with something else than a tensor
                if ctx.expr_is_module_class(param.annotation.annotation) is True:
                    modules.add(param.name.value)
            if param.default is not None and isinstance(param.default, _LITERALS):
                contrary.add(param.name.value)
        # a Module of the script's top level, called here (`model(x)` with a global `model`)
        modules |= scope_facts(ctx, ctx.module).modules - set(facts.bindings)

    parents: dict[int, cst.CSTNode] = {}
    stack: list[cst.CSTNode] = [scope.body] if isinstance(scope, cst.FunctionDef) else list(children(scope))[::-1]
    order: list[cst.CSTNode] = []
    while stack:
        node = stack.pop()
        order.append(node)
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        kids = list(children(node))
        for kid in kids:
            parents[id(kid)] = node
        kids.reverse()
        stack.extend(kids)

    def cpu_binding(name: str, value: cst.BaseExpression | None) -> None:
        ok = value is not None and created_on_cpu(ctx, value)
        cpu_candidates[name] = cpu_candidates.get(name, True) and ok

    for node in order:
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    name = target.target.value
                    if isinstance(node.value, _LITERALS) or isinstance(node.value, cst.Tuple):
                        contrary.add(name)
                    elif wrapped_tensor(ctx, node.value):
                        wrapped.add(name)
                    cpu_binding(name, node.value)
                else:
                    for inner in target_names(target.target):
                        cpu_candidates[inner] = False
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign, cst.NamedExpr)):
            if isinstance(node.target, cst.Name):
                if isinstance(node, cst.AugAssign):
                    continue  # `x += 1` keeps the device
                cpu_binding(node.target.value, node.value)
        elif isinstance(node, (cst.For, cst.CompFor)):
            for inner in target_names(node.target):
                cpu_candidates[inner] = False
            if isinstance(node, cst.For) and isinstance(node.target, cst.Name) and \
                    is_loader_iterable(ctx, node.iter, facts.loader_names):
                single.add(node.target.value)
        elif isinstance(node, cst.AsName):
            for inner in target_names(node.name):
                cpu_candidates[inner] = False
        elif isinstance(node, cst.Name):
            parent = parents.get(id(node))
            _use_evidence(ctx, node, parent, parents, tensors, contrary, uses, module_attrs, me, modules,
                          inputs_of)
        elif isinstance(node, cst.Arg) and node.star == "**" and isinstance(node.value, cst.Name):
            contrary.add(node.value.value)

    contrary |= single
    if inputs_of:
        # `model(data)` where `model = GCN()` and GCN.forward reads `data.x`: a graph, not a tensor
        classes = _local_module_classes(ctx, scope, order, {m for ms in inputs_of.values() for m in ms})
        for name, callees in inputs_of.items():
            if any(_forward_input_not_tensor(ctx, classes[m]) for m in callees if m in classes):
                contrary.add(name)
    for name in wrapped:
        if all(k[0] == "tensor" or k == ("derived", name) for k in facts.bindings.get(name, [])) or \
                _all_wrapped(ctx, name, order):
            tensors.setdefault(name, "wrapper")
    for name, evidence in uses.items():
        if name not in contrary:
            tensors.setdefault(name, evidence)
    # a name derived from a tensor known by wrapper or use is a tensor too
    changed = True
    while changed:
        changed = False
        for name, kinds in facts.bindings.items():
            if name in tensors or name in contrary:
                continue
            real = [k for k in kinds if not (k[0] == "derived" and k[1] == name)]
            if real and all(k[0] == "tensor" or (k[0] == "derived" and k[1] in tensors) for k in real):
                tensors[name] = "binding"
                changed = True
    for name in list(tensors):
        if name in contrary and tensors[name] not in ("binding", "batch"):
            del tensors[name]
    result.tensors = tensors
    result.modules = frozenset(modules)
    result.single_batches = frozenset(single - set(facts.batch_names))
    result.not_tensors = frozenset(contrary)
    result.cpu_tensors = frozenset(n for n, ok in cpu_candidates.items() if ok and n in tensors)
    return result


def _all_wrapped(ctx: FileContext, name: str, order: list[cst.CSTNode]) -> bool:
    """Every binding of `name` in the scope is a wrapped tensor or derived from `name` itself."""
    for node in order:
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name) and target.target.value == name:
                    root = tensor_root(node.value, ctx)
                    if not (wrapped_tensor(ctx, node.value) or (isinstance(root, cst.Name) and root.value == name)):
                        return False
                elif name in target_names(target.target):
                    return False
        elif isinstance(node, (cst.For, cst.CompFor, cst.AnnAssign, cst.NamedExpr)) and \
                name in target_names(node.target):
            return False
        elif isinstance(node, cst.AsName) and name in target_names(node.name):
            return False
    return True


def _use_evidence(ctx: FileContext, node: cst.Name, parent: cst.CSTNode | None,
                  parents: dict[int, cst.CSTNode], tensors: dict[str, str], contrary: set[str],
                  uses: dict[str, str], module_attrs: set[str], me: str | None,
                  modules: set[str], inputs_of: dict[str, set[str]]) -> None:
    """Record what one occurrence of a name says about it."""
    name = node.value
    if name in ctx.imports:
        return  # `F.softmax(x)`, `np.shape(x)`: a module, not a value
    if isinstance(parent, cst.Attribute) and parent.value is node:
        attr = parent.attr.value
        grand = parents.get(id(parent))
        called = isinstance(grand, cst.Call) and grand.func is parent
        if attr not in ctx.names.tensor_methods:
            contrary.add(name)  # `data.x`, `batch.items()`: not a tensor
        elif called and (attr in TENSOR_ONLY_CALLS or _in_place_tensor_method(ctx, attr)) and \
                not (attr == "view" and not grand.args):
            uses.setdefault(name, f"{name}.{attr}()")
        elif not called and attr in TENSOR_ONLY_ATTRS:
            uses.setdefault(name, f"{name}.{attr}")
        return
    if isinstance(parent, cst.Subscript) and parent.value is node:
        for element in parent.slice:
            if isinstance(element.slice, cst.Index) and \
                    isinstance(element.slice.value, (cst.SimpleString, cst.FormattedString)):
                contrary.add(name)  # `batch["input_ids"]`: a mapping
        return
    if isinstance(parent, cst.BinaryOperation) and not isinstance(parent.operator, (cst.Modulo,)):
        other = parent.right if parent.left is node else parent.left
        root = tensor_root(other, ctx)
        if (isinstance(root, cst.Name) and root.value in tensors and root.value != name) or \
                (isinstance(root, cst.Call) and torch_function(ctx, root) in TORCH_FACTORIES):
            uses.setdefault(name, "arithmetic with a tensor")
        return
    if isinstance(parent, cst.Arg) and parent.value is node and not parent.star and parent.keyword is None:
        call = parents.get(id(parent))
        if isinstance(call, cst.Call) and call.args and call.args[0] is parent:
            func = call.func
            if isinstance(func, cst.Name) and func.value in modules:
                uses.setdefault(name, f"the input of {func.value}(...)")
                inputs_of.setdefault(name, set()).add(func.value)
            elif me is not None and (attr := is_self_attr(func, me)) is not None and attr in module_attrs:
                uses.setdefault(name, f"the input of {me}.{attr}(...)")


def _local_module_classes(ctx: FileContext, scope: cst.CSTNode, order: list[cst.CSTNode],
                          wanted: set[str]) -> dict[str, cst.ClassDef]:
    """name -> the class of this file that a binding of the name constructs (`model = GCN()`,
    `net = Net(...).to(device)`), in the scope or at the module's top level."""
    out: dict[str, cst.ClassDef] = {}
    nodes = list(order)
    if scope is not ctx.module:
        nodes += list(small_statements(list(ctx.module.body)))
    for node in nodes:
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1 and
                isinstance(node.targets[0].target, cst.Name) and node.targets[0].target.value in wanted):
            continue
        value = node.value
        while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
            value = value.func.value  # `Net().to(device)`
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and \
                value.func.value in ctx.local_classes and value.func.value not in ctx.imports:
            out.setdefault(node.targets[0].target.value, ctx.local_classes[value.func.value])
    return out


_FORWARD_GUARD: set[int] = set()


def _forward_input_not_tensor(ctx: FileContext, cls: cst.ClassDef) -> bool:
    """Whether the class's `forward` uses its first input as something other than a tensor
    (`data.x`, `batch["ids"]`, a non-tensor annotation)."""
    forward = ctx.class_facts(cls).methods.get("forward")
    if forward is None or id(forward) in _FORWARD_GUARD:
        return False
    params = [*forward.params.posonly_params, *forward.params.params]
    if len(params) < 2:
        return False
    _FORWARD_GUARD.add(id(forward))
    try:
        return params[1].name.value in scope_kinds(ctx, forward).not_tensors
    finally:
        _FORWARD_GUARD.discard(id(forward))


def _in_place_tensor_method(ctx: FileContext, attr: str) -> bool:
    """`unsqueeze_`, `mul_`, `clamp_`: in-place methods that only tensors have."""
    return attr.endswith("_") and not attr.startswith("_") and attr in ctx.names.tensor_methods and \
        attr not in ctx.names.module_attributes


def target_names(target: cst.CSTNode) -> list[str]:
    """The names an assignment target binds (`a`, `a, (b, *c)`)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in target_names(e.value)]
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return []


def next_batch_names(ctx: FileContext, node: cst.Assign, loader_names: frozenset[str] = frozenset(),
                     iterators: frozenset[str] = frozenset()) -> list[str]:
    """Names unpacked from one batch taken by hand: `xb, yb = next(iter(loader))`,
    `images, labels = next(dataiter)` (with `dataiter = iter(loader)` in `iterators`),
    `images, labels = dataiter.next()`. A single name is not returned (it may be a dict)."""
    if len(node.targets) != 1 or not isinstance(node.value, cst.Call):
        return []
    target = node.targets[0].target
    if not isinstance(target, (cst.Tuple, cst.List)):
        return []
    names = []
    for element in target.elements:
        if isinstance(element, cst.StarredElement) or not isinstance(element.value, cst.Name):
            return []
        names.append(element.value.value)
    if len(names) < 2:
        return []
    call = node.value
    source: cst.BaseExpression | None = None
    if isinstance(call.func, cst.Name) and call.func.value == "next" and len(call.args) == 1:
        source = call.args[0].value
    elif isinstance(call.func, cst.Attribute) and call.func.attr.value in ("next", "__next__") and not call.args:
        source = call.func.value
    if source is None:
        return []
    if isinstance(source, cst.Call) and isinstance(source.func, cst.Name) and source.func.value == "iter" and \
            len(source.args) == 1:
        if not is_loader_iterable(ctx, source.args[0].value, loader_names):
            return []
    elif not (dotted_name(source) in iterators or is_loader_iterable(ctx, source, loader_names)):
        return []
    return [n for n in names if n != "_"]


def loader_iterators(ctx: FileContext, nodes: list[cst.CSTNode], loader_names: frozenset[str]) -> frozenset[str]:
    """Names bound from `iter(<loader>)` (`dataiter = iter(testloader)`)."""
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call) and \
                isinstance(node.value.func, cst.Name) and node.value.func.value == "iter" and \
                len(node.value.args) == 1 and is_loader_iterable(ctx, node.value.args[0].value, loader_names):
            name = dotted_name(node.targets[0].target)
            if name:
                out.add(name)
    return frozenset(out)


__all__ = [
    "Holding", "ScopeKinds", "created_on_cpu", "holding", "is_variable_call", "loader_iterators",
    "narrowed_here", "narrowing_test", "next_batch_names", "scope_kinds", "self_tensor_attrs", "target_names",
    "wrapped_tensor",
]
