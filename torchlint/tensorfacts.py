"""Shared facts about tensors, Modules, devices and data loaders, for rules that need them.

Everything here is syntactic and deliberately conservative: a name counts as a tensor only
when every binding of it in its scope says so. Rules that flag on these facts prefer missing
a case to crying wolf. Results are cached per scope node for the life of one `FileContext`.

Main entry points:
- `scope_facts(ctx, scope)`: which local names of a function (or of the module body) hold
  tensors, which hold Modules, and which are batch names unpacked from a data loader.
- `loader_batch_names(ctx, for_node)`: the tensor names a `for` over a data loader unpacks.
- `is_device_expr(ctx, expr)`: whether an argument of `.to(...)` names a device (not a dtype).
- `is_tensor_annotation(ctx, expr)`: `torch.Tensor` / `Tensor`, however imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import libcst as cst

from torchlint.context import dotted_name, keyword_arg, positional_args
from torchlint.walk import descendants

if TYPE_CHECKING:
    from torchlint.context import FileContext

# torch functions that return one tensor (never a tuple, a dtype, a device or None).
TORCH_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "rand", "randn",
     "randint", "randperm", "tensor", "as_tensor", "from_numpy", "zeros_like", "ones_like",
     "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "tril_indices",
     "triu_indices", "bernoulli", "multinomial", "normal"}
)
TORCH_TENSOR_OPS = frozenset(
    {"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack", "matmul", "mm", "bmm",
     "einsum", "where", "clamp", "clip", "exp", "log", "sqrt", "rsqrt", "abs", "sigmoid", "tanh",
     "relu", "softmax", "log_softmax", "sum", "mean", "cumsum", "cumprod", "flatten", "reshape",
     "transpose", "permute", "squeeze", "unsqueeze", "tril", "triu", "outer", "diag", "flip",
     "roll", "repeat_interleave", "masked_fill", "gather", "index_select", "sin", "cos", "pow",
     "maximum", "minimum", "lerp", "addmm", "baddbmm", "logsumexp", "cdist", "floor", "ceil",
     "round", "sign", "neg", "reciprocal", "square", "mul", "add", "sub", "div", "bucketize",
     "searchsorted", "polar", "complex", "view_as_real", "view_as_complex", "atan2", "erf",
     # reductions and comparisons that return one tensor (`max`/`min`/`sort`/`topk` may
     # return a tuple and are left out)
     "argmax", "argmin", "argsort", "amax", "amin", "prod", "norm", "clone", "isnan", "isinf",
     "isfinite", "logical_not", "logical_and", "logical_or", "eq", "ne", "gt", "ge", "lt", "le"}
)
# Tensor methods that return one tensor (so `y = x.<m>(...)` keeps `y` a tensor).
TENSOR_RETURNING_METHODS = frozenset(
    {"to", "cuda", "cpu", "float", "half", "double", "long", "int", "bool", "byte", "char",
     "short", "bfloat16", "type_as", "view", "view_as", "reshape", "reshape_as", "permute",
     "transpose", "contiguous", "clone", "detach", "unsqueeze", "squeeze", "flatten",
     "unflatten", "expand", "expand_as", "repeat", "repeat_interleave", "sum", "mean", "exp",
     "log", "sqrt", "abs", "clamp", "clamp_min", "clamp_max", "softmax", "log_softmax",
     "sigmoid", "tanh", "relu", "matmul", "mm", "bmm", "masked_fill", "gather", "index_select",
     "narrow", "flip", "roll", "tril", "triu", "t", "cumsum", "pow", "mul", "add", "sub", "div",
     "neg", "reciprocal", "square", "pin_memory", "requires_grad_", "numpy_", "float_power",
     "argmax", "argmin", "norm", "round", "floor", "ceil", "sign", "long_", "new_zeros",
     "new_ones", "new_empty", "new_full", "new_tensor", "diagonal", "triu_", "tril_",
     "contiguous_", "fill_", "zero_", "normal_", "uniform_", "masked_fill_", "add_", "mul_",
     "sub_", "div_", "clamp_", "copy_", "unsqueeze_", "squeeze_", "t_", "transpose_"}
)
# Methods that convert or move a tensor and return the result instead of changing it.
MOVE_METHODS = frozenset(
    {"to", "cuda", "cpu", "half", "float", "double", "long", "int", "bool", "byte", "char",
     "short", "bfloat16", "type_as", "pin_memory"}
)
# Wrappers that iterate over their (first) argument: `enumerate(loader)`, `tqdm(loader)`.
_ITER_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "progress_bar", "track"})
_LOADER_CLASSES = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})


def is_tensor_annotation(ctx: FileContext, expr: cst.BaseExpression | None) -> bool:
    """`torch.Tensor`, or `Tensor` imported from torch (not Optional[...]: it may be None)."""
    if expr is None:
        return False
    if isinstance(expr, cst.SimpleString):
        return expr.value.strip("'\"") in ("torch.Tensor", "Tensor")
    return ctx.qualname(expr) in ("torch.Tensor", "torch.FloatTensor", "torch.LongTensor")


def is_optional_tensor_annotation(ctx: FileContext, expr: cst.BaseExpression | None) -> bool:
    """`Optional[Tensor]` or `Tensor | None` (or a plain tensor annotation)."""
    if expr is None:
        return False
    if is_tensor_annotation(ctx, expr):
        return True
    if isinstance(expr, cst.Subscript) and (dotted_name(expr.value) or "").split(".")[-1] == "Optional":
        elements = expr.slice
        return len(elements) == 1 and isinstance(elements[0].slice, cst.Index) and \
            is_tensor_annotation(ctx, elements[0].slice.value)
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
        sides = (expr.left, expr.right)
        return any(is_tensor_annotation(ctx, s) for s in sides) and any(
            isinstance(s, cst.Name) and s.value == "None" for s in sides)
    return False


def torch_function(ctx: FileContext, call: cst.Call) -> str | None:
    """`zeros` for a call of `torch.zeros` (however imported), else None."""
    qualname = ctx.qualname(call.func)
    if qualname is not None and qualname.startswith("torch.") and qualname.count(".") == 1:
        return qualname[len("torch."):]
    return None


def is_device_expr(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """Whether an argument of `.to(...)` names a device rather than a dtype or a tensor.

    True for string literals ("cuda", "cpu:0"), `torch.device(...)`, and names or attributes
    whose last part mentions a device (`device`, `self.device`, `dev`, `args.device`).
    """
    if isinstance(expr, cst.SimpleString):
        text = expr.value.strip("'\"bru").lower()
        return text.split(":")[0] in ("cuda", "cpu", "mps", "xpu", "npu", "meta")
    if isinstance(expr, cst.Call):
        return ctx.qualname(expr.func) == "torch.device"
    dotted = dotted_name(expr)
    if dotted is None:
        return False
    last = dotted.split(".")[-1].lower()
    return "device" in last or last in ("dev", "gpu", "rank", "local_rank")


def is_loader_iterable(ctx: FileContext, expr: cst.BaseExpression, loader_names: frozenset[str] = frozenset()) -> bool:
    """Whether a `for` iterates over a data loader (possibly through enumerate/tqdm)."""
    while isinstance(expr, cst.Call) and (dotted_name(expr.func) or "").split(".")[-1] in _ITER_WRAPPERS:
        args = positional_args(expr)
        if not args:
            return False
        expr = args[0].value
    if isinstance(expr, cst.Call):
        if ctx.qualname(expr.func) in _LOADER_CLASSES:
            return True
        name = (dotted_name(expr.func) or "").split(".")[-1].lower()
        return "dataloader" in name
    dotted = dotted_name(expr)
    if dotted is None:
        return False
    if dotted in loader_names:
        return True
    last = dotted.split(".")[-1].lower()
    return "loader" in last or last == "dl" or last.endswith("_dl") or \
        last in ("data_iter", "train_iter", "test_iter", "val_iter", "valid_iter")


def _target_names(target: cst.BaseExpression) -> list[cst.Name] | None:
    """The names of a flat `a, b` / `(a, b)` / `[a, b]` target, else None."""
    if isinstance(target, (cst.Tuple, cst.List)):
        names = []
        for element in target.elements:
            if isinstance(element, cst.StarredElement) or not isinstance(element.value, cst.Name):
                return None
            names.append(element.value)
        return names
    return None


def _names_bound(target: cst.BaseExpression) -> list[str]:
    """Every plain name an assignment target binds (`a`, `a, (b, *c)`)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _names_bound(e.value)]
    if isinstance(target, cst.StarredElement):
        return _names_bound(target.value)
    return []


def loader_batch_names(ctx: FileContext, node: cst.For, loader_names: frozenset[str] = frozenset()) -> list[str]:
    """Names unpacked from a data-loader batch: `for xb, yb in loader`, `for i, (xb, yb) in
    enumerate(loader)`. A single batch name is not returned: it may be a dict or a Hugging Face
    `BatchEncoding`, whose `.to()` moves in place."""
    if not is_loader_iterable(ctx, node.iter, loader_names):
        return []
    target = node.target
    iterable = node.iter
    enumerated = isinstance(iterable, cst.Call) and dotted_name(iterable.func) == "enumerate"
    if enumerated and isinstance(target, cst.Tuple) and len(target.elements) == 2:
        target = target.elements[1].value
    names = _target_names(target)
    if names is None or len(names) < 2:
        return []
    return [n.value for n in names if n.value != "_"]


def unpacked_batch(ctx: FileContext, node: cst.For, loader_names: frozenset[str] = frozenset()) -> tuple[list[str], cst.Assign | None]:
    """Batch names of a loader loop, also when the batch is unpacked on the loop's first lines:
    `for data in loader: inputs, labels = data` (the PyTorch tutorial's form). Returns the names
    and the unpacking assignment (None when the `for` target unpacks the batch itself)."""
    names = loader_batch_names(ctx, node, loader_names)
    if names or not is_loader_iterable(ctx, node.iter, loader_names):
        return names, None
    target = node.target
    if isinstance(node.iter, cst.Call) and dotted_name(node.iter.func) == "enumerate" and \
            isinstance(target, cst.Tuple) and len(target.elements) == 2:
        target = target.elements[1].value
    if not isinstance(target, cst.Name):
        return [], None
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
    for stmt in body[:3]:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and \
                    isinstance(small.value, cst.Name) and small.value.value == target.value:
                unpacked = _target_names(small.targets[0].target)
                if unpacked is not None and len(unpacked) >= 2:
                    return [n.value for n in unpacked if n.value != "_"], small
            if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and target.value in {
                    n for t in ([x.target for x in small.targets] if isinstance(small, cst.Assign)
                                else [small.target]) for n in _names_bound(t)}:
                # `batch = tuple(t.to(device) for t in batch)`: what is unpacked next is no
                # longer the loader's batch
                return [], None
    return [], None


# ---- per-scope facts ----------------------------------------------------------------------


@dataclass
class ScopeFacts:
    """What the bindings of one function (or module body) say about its local names."""

    scope: cst.CSTNode
    tensors: frozenset[str] = frozenset()  # every binding is a tensor
    modules: frozenset[str] = frozenset()  # some binding constructs or moves a Module
    batch_names: frozenset[str] = frozenset()  # unpacked from a data-loader batch
    loader_names: frozenset[str] = frozenset()  # bound from DataLoader(...)
    # name -> binding descriptions: ("tensor",) / ("derived", other_name) / ("other",)
    bindings: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


_CACHE: WeakKeyDictionary[FileContext, dict[int, ScopeFacts]] = WeakKeyDictionary()


def scope_nodes(scope: cst.CSTNode) -> list[cst.CSTNode]:
    """Every node of a scope's body in source order, nested functions, lambdas and classes
    not entered (their own node is kept); a slice of the file's flat tree during a check."""
    if isinstance(scope, cst.FunctionDef):
        return [scope.body, *descendants(scope.body, skip_scopes=True)]
    return descendants(scope, skip_scopes=True)


def _is_torch_module(expr: cst.BaseExpression, ctx: FileContext | None) -> bool:
    """`torch` (however imported, when `ctx` is given): `torch.exp(x)` is a function call,
    not the method `exp` of a tensor named `torch`."""
    if ctx is not None:
        return ctx.qualname(expr) == "torch"
    return isinstance(expr, cst.Name) and expr.value == "torch"


def tensor_root(expr: cst.BaseExpression, ctx: FileContext | None = None) -> cst.BaseExpression:
    """Strip tensor-preserving methods, subscripts and `.T`: `x.float()[None].T` -> `x`.
    A torch function named like a method (`torch.exp(x)`, `torch.argmax(x)`) is kept whole."""
    while True:
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
                expr.func.attr.value in TENSOR_RETURNING_METHODS and not _is_torch_module(expr.func.value, ctx):
            expr = expr.func.value
        elif isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Attribute) and expr.attr.value in ("T", "mT", "data"):
            expr = expr.value
        else:
            return expr


def module_valued(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """A Module constructor call, possibly followed by `.to(...)`/`.cuda()`/`.eval()`."""
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
            expr.func.attr.value in ("to", "cuda", "cpu", "eval", "train", "half", "float", "double"):
        expr = expr.func.value
    return isinstance(expr, cst.Call) and ctx.expr_is_module_class(expr.func) is True


def classify_value(ctx: FileContext, expr: cst.BaseExpression | None) -> tuple[str, ...]:
    """How a bound value types its target: ("tensor",), ("derived", name) or ("other",)."""
    if expr is None:
        return ("other",)
    if module_valued(ctx, expr):
        return ("module",)
    root = tensor_root(expr, ctx)
    if isinstance(root, cst.Call) and torch_function(ctx, root) in TORCH_FACTORIES | TORCH_TENSOR_OPS:
        return ("tensor",)
    if root is not expr and isinstance(root, cst.Name):
        return ("derived", root.value)
    if isinstance(expr, cst.BinaryOperation):
        for side in (expr.left, expr.right):
            kind = classify_value(ctx, side)
            if kind[0] in ("tensor", "derived"):
                return kind
    return ("other",)


def scope_facts(ctx: FileContext, scope: cst.CSTNode) -> ScopeFacts:
    """Facts about the local names of a function or of the module body (cached)."""
    per_file = _CACHE.setdefault(ctx, {})
    facts = per_file.get(id(scope))
    if facts is not None:
        return facts
    bindings: dict[str, list[tuple[str, ...]]] = {}

    def bind(name: str, kind: tuple[str, ...]) -> None:
        bindings.setdefault(name, []).append(kind)

    if isinstance(scope, cst.FunctionDef):
        params = scope.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            bind(param.name.value, ("tensor",) if is_tensor_annotation(ctx, param.annotation and param.annotation.annotation) else ("other",))
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                bind(star.name.value, ("other",))
    loader_names: set[str] = set()
    batch: set[str] = set()
    nodes = list(scope_nodes(scope))
    for node in nodes:
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call) and \
                ctx.qualname(node.value.func) in _LOADER_CLASSES:
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    loader_names.add(target.target.value)
    frozen_loaders = frozenset(loader_names)
    unpackings: dict[int, list[str]] = {}
    for node in nodes:
        if isinstance(node, cst.For):
            names, unpacking = unpacked_batch(ctx, node, frozen_loaders)
            if unpacking is not None:
                unpackings[id(unpacking)] = names
    for node in nodes:
        if isinstance(node, cst.Assign) and id(node) in unpackings:
            batch.update(unpackings[id(node)])
            for name in unpackings[id(node)]:
                bind(name, ("tensor",))
        elif isinstance(node, cst.Assign):
            kind = classify_value(ctx, node.value)
            for target in node.targets:
                _bind_target(target.target, kind, bind)
        elif isinstance(node, cst.AnnAssign):
            kind = classify_value(ctx, node.value) if node.value is not None else ("other",)
            _bind_target(node.target, kind, bind)
        elif isinstance(node, cst.AugAssign):
            if isinstance(node.target, cst.Name):
                bind(node.target.value, ("derived", node.target.value))
        elif isinstance(node, cst.NamedExpr):
            _bind_target(node.target, classify_value(ctx, node.value), bind)
        elif isinstance(node, cst.For):
            names = loader_batch_names(ctx, node, frozen_loaders)
            batch.update(names)
            _bind_target(node.target, ("other",), bind, keep=set(names))
            for name in names:
                bind(name, ("tensor",))
        elif isinstance(node, (cst.CompFor,)):
            _bind_target(node.target, ("other",), bind)
        elif isinstance(node, cst.AsName):
            _bind_target(node.name, ("other",), bind)
        elif isinstance(node, (cst.Global, cst.Nonlocal)):
            for item in node.names:
                bind(item.name.value, ("other",))
        elif isinstance(node, cst.Del):
            _bind_target(node.target, ("other",), bind)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            bind(node.name.value, ("other",))
    tensors: set[str] = set()
    changed = True
    while changed:  # least fixpoint: a name joins once all its bindings are tensors
        changed = False
        for name, kinds in bindings.items():
            if name in tensors:
                continue
            real = [k for k in kinds if not (k[0] == "derived" and k[1] == name)]
            if real and all(k[0] == "tensor" or (k[0] == "derived" and k[1] in tensors) for k in real):
                tensors.add(name)
                changed = True
    modules = frozenset(n for n, kinds in bindings.items() if any(k[0] == "module" for k in kinds))
    facts = ScopeFacts(scope, frozenset(tensors), modules, frozenset(batch & tensors), frozen_loaders, bindings)
    per_file[id(scope)] = facts
    return facts


def _bind_target(target: cst.BaseExpression, kind: tuple[str, ...], bind, keep: set[str] | None = None) -> None:
    """Bind every name of an assignment target; names in `keep` are bound by the caller."""
    if isinstance(target, cst.Name):
        if not keep or target.value not in keep:
            bind(target.value, kind)
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            # an unpacked element is one item of the value, not the value itself
            _bind_target(element.value, ("other",), bind, keep)
    elif isinstance(target, cst.StarredElement):
        _bind_target(target.value, ("other",), bind, keep)


def enclosing_scope(ctx: FileContext) -> cst.CSTNode | None:
    """The function (or the module) whose local names the current node reads; None inside a
    class body or a lambda, where this module does not track names."""
    for node in reversed(ctx.stack):
        if isinstance(node, cst.FunctionDef):
            return node
        if isinstance(node, (cst.ClassDef, cst.Lambda)):
            return None
    return ctx.module


def mentions(expr: cst.CSTNode, words: tuple[str, ...], ctx: FileContext) -> bool:
    """Whether the source text of an expression contains any of the words (lower-cased)."""
    text = ctx.code_for(expr).lower()
    return any(w in text for w in words)


__all__ = [
    "MOVE_METHODS", "TENSOR_RETURNING_METHODS", "TORCH_FACTORIES", "TORCH_TENSOR_OPS", "ScopeFacts",
    "classify_value", "enclosing_scope", "is_device_expr", "is_loader_iterable",
    "is_optional_tensor_annotation", "is_tensor_annotation", "keyword_arg", "loader_batch_names",
    "unpacked_batch",
    "mentions", "module_valued", "scope_facts", "scope_nodes", "tensor_root", "torch_function",
]
