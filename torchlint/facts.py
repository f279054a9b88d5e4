"""Shared facts about training code: which names hold Modules, what a training loop is.

Several rules (TL301, TL302, TL304, TL307, TL306) ask the same questions of one function
body or of a script's top level (a "scope"): where are the `.backward()` calls, the
optimizer steps, the gradient clears, the `.eval()` / `.train()` switches, and which loops
hold them. `scope_facts()` answers them with one walk over the scope, cached on the file's
context, so that each rule only reads the result. Calls of functions defined in the same
file are followed through `function_effects()`, a per-function summary (also cached).

Everything here prefers "unknown" to a guess: a rule that cannot tell stays silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import libcst as cst

from torchlint.context import dotted_name, keyword_arg, positional_args

if TYPE_CHECKING:
    from torchlint.context import FileContext

LOOPS = (cst.For, cst.While)
_CACHE_ATTR = "_torchlint_facts_cache"

# Calls that return a Module in training mode although they are functions, not classes.
MODULE_FACTORY_PREFIXES = ("torchvision.models.",)
MODULE_FACTORIES = frozenset({"timm.create_model", "timm.models.create_model"})
# Methods that return the Module itself (so `Net().to(device)` is still a Module).
MODULE_SELF_METHODS = frozenset({"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "train", "requires_grad_"})
NO_GRAD_CONTEXTS = frozenset({"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
                              "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"})


def uses_torch(ctx: FileContext) -> bool:
    """Whether the file imports torch (or defines a Module class): rules about training code stay
    silent in files of other frameworks (d2l ships the same trainer for JAX, TensorFlow, MXNet)."""
    cache = _cache(ctx)
    found = cache.get("uses_torch")
    if found is None:
        found = any(q == "torch" or q.startswith(("torch.", "torchvision", "timm", "transformers", "lightning",
                                                  "pytorch_lightning", "accelerate", "diffusers"))
                    for q in ctx.imports.values())
        if not found:
            found = any(ctx.class_facts(c).is_module is True for c in ctx.local_classes.values())
        cache["uses_torch"] = found
    return bool(found)


def has_training_code(ctx: FileContext) -> bool:
    """Cheap text pre-check: without `backward`, `no_grad`, `inference_mode` or `set_grad_enabled`
    in the file, there is no training loop and no evaluation block, and the scope walk can be skipped."""
    cache = _cache(ctx)
    found = cache.get("training_code")
    if found is None:
        source = ctx.source
        found = cache["training_code"] = ("backward" in source or "no_grad" in source or "inference_mode" in source
                                          or "set_grad_enabled" in source) and uses_torch(ctx)
    return bool(found)


# Names whose presence in a scope can give the scope rules something to report: a backward
# call (a training loop) or a no_grad-style block (an evaluation).
_TRAIN_TRIGGERS = frozenset({"backward"})
_EVAL_TRIGGERS = frozenset({"no_grad", "inference_mode", "set_grad_enabled"})


def scope_may_matter(ctx: FileContext, scope: cst.Module | cst.FunctionDef, evaluation: bool = False) -> bool:
    """Whether the scope rules can find anything in `scope`: it names `backward` (with
    `evaluation`, also a no_grad-style context) itself (a nested function counts for the
    functions around it), or names a same-file function that does, transitively (what
    `_inline` reaches through calls). A superset of the scopes where TL302, TL304 and TL307
    (training loops) or TL301 (evaluation too) can fire, found with one pass over the file's
    names instead of one event walk per function."""
    cache = _cache(ctx)
    found = cache.get("scopes_that_matter")
    if found is None:
        found = cache["scopes_that_matter"] = _scopes_that_matter(ctx)
    return id(scope) in found[1 if evaluation else 0]


def _scopes_that_matter(ctx: FileContext) -> tuple[set[int], set[int]]:
    """(scopes reaching a backward call, scopes reaching one or a no_grad-style context)."""
    tree = ctx.tree
    if tree is None:  # outside the engine (tests of helpers): no shortcut
        from torchlint.walk import find_all
        every = {id(ctx.module)} | {id(f) for f in find_all(ctx.module, cst.FunctionDef)}
        return every, every
    train = set(_TRAIN_TRIGGERS)
    either = set(_TRAIN_TRIGGERS | _EVAL_TRIGGERS)
    for local, qual in ctx.imports.items():
        last = qual.rsplit(".", 1)[-1]
        if last in _TRAIN_TRIGGERS:
            train.add(local)
        if last in _TRAIN_TRIGGERS or last in _EVAL_TRIGGERS:
            either.add(local)
    nodes, parents = tree.nodes, tree.parents
    functions = {position: nodes[position] for position in tree.positions_of(cst.FunctionDef)}
    names_of = {func.name.value for func in functions.values()}
    # the functions around each trigger (-1: the module's top level), and the function names
    # each scope mentions
    marked_train: set[int] = set()
    marked_either: set[int] = set()
    mentions: dict[int, set[str]] = {}
    for position in tree.positions_of(cst.Name):
        value = nodes[position].value
        in_either = value in either
        if not in_either and value not in names_of:
            continue
        up = parents[position]
        owners = []
        while up >= 0:
            if up in functions:
                owners.append(up)
            up = parents[up]
        for owner in owners or [-1]:
            if in_either:
                marked_either.add(owner)
                if value in train:
                    marked_train.add(owner)
            else:
                mentions.setdefault(owner, set()).add(value)
    out = []
    for marked in (marked_train, marked_either):
        changed = bool(marked)
        while changed:
            changed = False
            marked_names = {functions[p].name.value for p in marked if p >= 0}
            for owner, named in mentions.items():
                if owner not in marked and named & marked_names:
                    marked.add(owner)
                    changed = True
        scopes = {id(functions[p]) for p in marked if p >= 0}
        if -1 in marked:
            scopes.add(id(ctx.module))
        out.append(scopes)
    return out[0], out[1]


# ---- small expression helpers -----------------------------------------------------------
def receiver_key(call: cst.Call) -> str | None:
    """`model.module` for `model.module.eval()`: the dotted receiver of a method call."""
    if isinstance(call.func, cst.Attribute):
        return dotted_name(call.func.value)
    return None


def keys_match(a: str, b: str) -> bool:
    """Whether two dotted receivers name the same Module or one wraps the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _bool_literal(expr: cst.BaseExpression) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


def mode_switch(call: cst.Call) -> str | None:
    """"eval" for `.eval()` / `.train(False)`, "train" for `.train()` / `.train(True)`,
    "either" for `.train(mode)` with a value not known statically; None otherwise."""
    if not isinstance(call.func, cst.Attribute):
        return None
    name = call.func.attr.value
    if name == "eval" and not call.args:
        return "eval"
    if name == "train":
        if not call.args:
            return "train"
        arg = keyword_arg(call, "mode")
        pos = positional_args(call)
        value = arg.value if arg is not None else (pos[0].value if pos else None)
        if value is None:
            return "either"
        literal = _bool_literal(value)
        if literal is None:
            return "either"
        return "train" if literal else "eval"
    return None


def is_no_grad_context(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """`torch.no_grad()`, `torch.inference_mode()` (called or not, however imported),
    `torch.set_grad_enabled(False)`."""
    if isinstance(expr, cst.Call):
        qualname = ctx.qualname(expr.func)
        if expr.args and qualname == "torch.inference_mode":
            literal = _bool_literal(expr.args[0].value)
            if literal is False:
                return False
        if qualname in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled",
                        "torch.autograd.grad_mode.set_grad_enabled"):
            pos = positional_args(expr)
            mode = keyword_arg(expr, "mode")
            value = mode.value if mode is not None else (pos[0].value if pos else None)
            return value is not None and _bool_literal(value) is False
        expr = expr.func
    return ctx.qualname(expr) in NO_GRAD_CONTEXTS


def eval_context_receiver(expr: cst.BaseExpression) -> str | None:
    """`model` for `with eval_mode(model):` / `with evaluating(self.net):`: a context manager whose
    name says it switches its argument to eval mode."""
    if not isinstance(expr, cst.Call) or not expr.args:
        return None
    name = (dotted_name(expr.func) or "").rsplit(".", 1)[-1].lower()
    if "eval" not in name:
        return None
    return dotted_name(expr.args[0].value)


def is_module_constructor(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """Whether an expression builds a Module: `Net(...)`, `nn.Linear(...)`, `Net().to(dev)`,
    `torchvision.models.resnet18()`, `timm.create_model(...)`."""
    while (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
           and expr.func.attr.value in MODULE_SELF_METHODS and isinstance(expr.func.value, cst.Call)):
        expr = expr.func.value
    if not isinstance(expr, cst.Call):
        return False
    if ctx.expr_is_module_class(expr.func) is True:
        return True
    qualname = ctx.qualname(expr.func)
    if qualname is None:
        return False
    return qualname in MODULE_FACTORIES or (
        qualname.startswith(MODULE_FACTORY_PREFIXES) and qualname.rsplit(".", 1)[-1][:1].islower()
    )


# ---- optimizers ---------------------------------------------------------------------------
def _is_optimizer_class_name(qualname: str) -> bool:
    if "sched" in qualname.lower() or "swa_utils" in qualname:
        return False
    if qualname.startswith("torch.optim."):
        return True
    last = qualname.rsplit(".", 1)[-1].lower()
    return "optim" in last


def optimizer_bindings(ctx: FileContext) -> tuple[frozenset[str], frozenset[str]]:
    """(names bound from an optimizer constructor, every name the file binds from a call).

    Names are the last segment of the target: `self.opt = torch.optim.SGD(...)` binds `opt`.
    """
    cache = _cache(ctx)
    found = cache.get("optimizers")
    if found is None:
        optimizers: set[str] = set()
        bound: set[str] = set()
        for node in _all_assigns(ctx):
            value = node.value
            if not isinstance(value, cst.Call):
                continue
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            names = [_last_segment(t) for t in targets]
            qualname = ctx.qualname(value.func)
            for name in names:
                if name is None:
                    continue
                bound.add(name)
                if qualname is not None and _is_optimizer_class_name(qualname):
                    optimizers.add(name)
        found = cache["optimizers"] = (frozenset(optimizers), frozenset(bound))
    return found  # type: ignore[no-any-return]


def optimized_models(ctx: FileContext) -> frozenset[str]:
    """Dotted names `X` whose `X.parameters()` is handed to an optimizer constructor in the file."""
    cache = _cache(ctx)
    found = cache.get("optimized")
    if found is None:
        from torchlint.walk import descendants

        names: set[str] = set()
        for node in _all_assigns(ctx):
            value = node.value
            if isinstance(value, cst.Call):
                qualname = ctx.qualname(value.func)
                if qualname is not None and _is_optimizer_class_name(qualname):
                    for inner in descendants(value):
                        if (isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute)
                                and inner.func.attr.value in ("parameters", "named_parameters")):
                            key = dotted_name(inner.func.value)
                            if key:
                                names.add(key)
        found = cache["optimized"] = frozenset(names)
    return found  # type: ignore[no-any-return]


def _all_assigns(ctx: FileContext) -> list[cst.Assign | cst.AnnAssign]:
    cache = _cache(ctx)
    assigns = cache.get("assigns")
    if assigns is None:
        from torchlint.walk import find_all

        assigns = cache["assigns"] = [n for n in find_all(ctx.module, (cst.Assign, cst.AnnAssign))
                                      if n.value is not None]
    return assigns  # type: ignore[no-any-return]


def _last_segment(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    return None


def is_optimizer_expr(ctx: FileContext, expr: cst.BaseExpression) -> bool:
    """A name the file binds from an optimizer class, or (unbound) one that looks like one."""
    name = _last_segment(expr)
    if name is None:
        return False
    optimizers, bound = optimizer_bindings(ctx)
    if name in optimizers:
        return True
    lowered = name.lower()
    if "sched" in lowered:
        return False
    if name in bound and not ("optim" in lowered or lowered == "opt"):
        return False
    return "optim" in lowered or lowered == "opt"


def optimizer_step(ctx: FileContext, call: cst.Call) -> str | None:
    """"step" for `opt.step()` / `scaler.step(opt)` / `xm.optimizer_step(opt)`,
    "closure" for `opt.step(closure)` (the closure clears gradients itself); else None."""
    func = call.func
    if not isinstance(func, cst.Attribute):
        return None
    name = func.attr.value
    if name == "optimizer_step":
        return "step"
    if name != "step":
        return None
    if is_optimizer_expr(ctx, func.value):
        pos = positional_args(call)
        if pos or keyword_arg(call, "closure") is not None:
            return "closure"
        return "step"
    # GradScaler.step(optimizer): the step happens through the scaler
    pos = positional_args(call)
    if pos and is_optimizer_expr(ctx, pos[0].value):
        receiver = _last_segment(func.value) or ""
        if "scaler" in receiver.lower():
            return "step"
    return None


def backward_target(call: cst.Call) -> tuple[bool, str | None]:
    """(is this a backward call, the name of the loss tensor when it is a plain name).

    `loss.backward()`, `scaler.scale(loss).backward()`, `accelerator.backward(loss)`,
    `torch.autograd.backward(loss)`.
    """
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value != "backward":
        return False, None
    receiver = func.value
    pos = positional_args(call)
    if isinstance(receiver, cst.Name) and receiver.value not in ("accelerator", "autograd", "engine"):
        return True, receiver.value
    if (isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "scale" and receiver.args
            and isinstance(receiver.args[0].value, cst.Name)):
        return True, receiver.args[0].value.value
    if pos and isinstance(pos[0].value, cst.Name):
        return True, pos[0].value.value
    return True, None


# Tensor methods whose result still carries the autograd graph of their receiver.
GRAPH_KEEPING_METHODS = frozenset({
    "sum", "mean", "clone", "squeeze", "unsqueeze", "view", "reshape", "flatten", "contiguous", "abs", "sqrt",
    "exp", "log", "double", "half", "to", "cuda", "mul", "div", "add", "sub",
})
_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.Power)


def graph_operands(expr: cst.BaseExpression) -> list[cst.Name]:
    """The names whose tensor (and autograd graph) an expression's value still carries:
    `loss` in `loss`, `loss / len(loader)`, `loss * x.size(0)`, `loss.sum()`, `(loss + aux).mean()`.
    Detached forms (`loss.item()`, `loss.detach()`, `float(loss)`, `loss.data`) carry none."""
    if isinstance(expr, cst.Name):
        return [] if expr.value in ("True", "False", "None") else [expr]
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, _ARITHMETIC):
        return graph_operands(expr.left) + graph_operands(expr.right)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        return graph_operands(expr.expression)
    if (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in GRAPH_KEEPING_METHODS):
        return graph_operands(expr.func.value)
    return []


def clears_grad_call(call: cst.Call) -> bool:
    """`opt.zero_grad()`, `model.zero_grad(set_to_none=True)`, `p.grad.zero_()`, `p.grad.data.zero_()`."""
    func = call.func
    if isinstance(func, cst.Name):
        return func.value == "zero_grad"
    if not isinstance(func, cst.Attribute):
        return False
    name = func.attr.value
    if name == "zero_grad" or name == "zero_grads":
        return True
    if name in ("zero_", "detach_", "fill_"):
        key = dotted_name(func.value) or ""
        return ".grad" in f".{key}" or key.endswith("grad")
    return False


def clears_grad_target(target: cst.BaseExpression) -> bool:
    """`p.grad = None` (or `p.grad = torch.zeros_like(p)`): an assignment that clears a gradient."""
    return isinstance(target, cst.Attribute) and target.attr.value == "grad"


# ---- events of one scope -------------------------------------------------------------------
@dataclass
class Event:
    """Something that happens in a scope, in source order, with the loops around it."""

    kind: str  # backward | step | closure_step | clear | eval | train | either | call | module_call | accumulate
    node: cst.CSTNode
    order: int
    loops: tuple[cst.CSTNode, ...]
    key: str | None = None  # receiver (eval/train/module_call), loss name (backward), total (accumulate)
    no_grad: cst.CSTNode | None = None  # the innermost no_grad with/def around it
    value: str | None = None  # accumulate: the name added; call: the local function name
    via: cst.Call | None = None  # for events that come from a same-file function: the call site
    nested: bool = False  # came from a same-file function, from inside one of its own loops


@dataclass
class ScopeFacts:
    """All events of one scope (a function body, or a module's top level)."""

    node: cst.CSTNode
    events: list[Event] = field(default_factory=list)
    loops: list[cst.CSTNode] = field(default_factory=list)
    loop_end: dict[int, int] = field(default_factory=dict)  # id(loop) -> order after its body
    loop_parents: dict[int, tuple[cst.CSTNode, ...]] = field(default_factory=dict)  # enclosing loops
    loop_start: dict[int, int] = field(default_factory=dict)  # id(loop) -> order before its body
    params: list[str] = field(default_factory=list)

    def in_loop(self, loop: cst.CSTNode, kinds: tuple[str, ...] = ()) -> list[Event]:
        """Events inside a loop (optionally only of the given kinds)."""
        return [e for e in self.events if any(l is loop for l in e.loops) and (not kinds or e.kind in kinds)]

    def training_loops(self) -> list[cst.CSTNode]:
        """Loops that hold both a backward call and an optimizer step (directly or through calls)."""
        out = []
        for loop in self.loops:
            kinds = {e.kind for e in self.in_loop(loop) if not e.nested}
            if "backward" in kinds and ("step" in kinds or "closure_step" in kinds):
                out.append(loop)
        return out

    def innermost(self, loops: list[cst.CSTNode]) -> list[cst.CSTNode]:
        """The loops of the list that contain no other loop of the list."""
        return [loop for loop in loops
                if not any(other is not loop and any(p is loop for p in self.loop_parents[id(other)])
                           for other in loops)]

    def loop_contains(self, outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
        """Whether loop `inner` is `outer` or nested in it."""
        return inner is outer or any(p is outer for p in self.loop_parents.get(id(inner), ()))


def _cache(ctx: FileContext) -> dict[str, Any]:
    # The context is per file; rules share these facts through it rather than global state.
    cache = getattr(ctx, _CACHE_ATTR, None)
    if cache is None:
        cache = {}
        setattr(ctx, _CACHE_ATTR, cache)
    return cache


def scope_facts(ctx: FileContext, scope: cst.Module | cst.FunctionDef) -> ScopeFacts:
    """The events of a function body (or a module's top level), computed once."""
    cache = _cache(ctx).setdefault("scopes", {})
    facts = cache.get(id(scope))
    if facts is None:
        facts = cache[id(scope)] = _Collector(ctx, scope).run()
    return facts  # type: ignore[no-any-return]


def owner_class(ctx: FileContext, func: cst.FunctionDef) -> cst.ClassDef | None:
    """The class whose body defines `func` directly (a method), else None."""
    owners = _cache(ctx).get("owners")
    if owners is None:
        from torchlint.walk import find_all

        owners = {}
        for node in find_all(ctx.module, cst.ClassDef):
            for stmt in node.body.body if isinstance(node.body, cst.IndentedBlock) else ():
                if isinstance(stmt, cst.FunctionDef):
                    owners[id(stmt)] = node
        _cache(ctx)["owners"] = owners
    return owners.get(id(func))  # type: ignore[no-any-return]


def _params(func: cst.FunctionDef) -> list[str]:
    params = func.params
    return [p.name.value for p in (*params.posonly_params, *params.params)]


class _Collector:
    """One walk over a scope, recording events with the loops and no_grad blocks around them."""

    def __init__(self, ctx: FileContext, scope: cst.Module | cst.FunctionDef) -> None:
        self.ctx = ctx
        self.scope = scope
        self.facts = ScopeFacts(scope)
        self.order = 0
        self.loops: list[cst.CSTNode] = []
        self.no_grad: list[cst.CSTNode] = []
        self.enclosing_class = owner_class(ctx, scope) if isinstance(scope, cst.FunctionDef) else None

    def run(self) -> ScopeFacts:
        if isinstance(self.scope, cst.FunctionDef):
            self.facts.params = _params(self.scope)
            if any(is_no_grad_context(self.ctx, d.decorator) for d in self.scope.decorators):
                self.no_grad.append(self.scope)
            self._walk_block(self.scope.body)
        else:
            for stmt in self.scope.body:
                self._walk(stmt, top=True)
        return self.facts

    def _add(self, kind: str, node: cst.CSTNode, **kw: Any) -> None:
        self.order += 1
        self.facts.events.append(Event(kind, node, self.order, tuple(self.loops),
                                       no_grad=self.no_grad[-1] if self.no_grad else None, **kw))

    def _walk_block(self, node: cst.CSTNode) -> None:
        from torchlint.walk import children

        for child in children(node):
            self._walk(child)

    def _walk(self, node: cst.CSTNode, top: bool = False) -> None:
        from torchlint.walk import children

        if isinstance(node, (cst.ClassDef, cst.Lambda)):
            return
        if isinstance(node, cst.FunctionDef):
            # a nested def is its own scope, except a closure inside a loop (`opt.step(closure)`)
            if self.loops:
                self._walk_block(node.body)
            return
        if isinstance(node, LOOPS):
            if isinstance(node, cst.For):
                self._walk(node.iter)
            else:
                self._walk(node.test)
            self.facts.loop_parents[id(node)] = tuple(self.loops)
            self.order += 1
            self.facts.loop_start[id(node)] = self.order
            self.loops.append(node)
            self.facts.loops.append(node)
            self._walk_block(node.body)
            self.loops.pop()
            self.order += 1
            self.facts.loop_end[id(node)] = self.order
            if node.orelse is not None:
                self._walk_block(node.orelse)
            return
        if isinstance(node, cst.With):
            guarded = any(is_no_grad_context(self.ctx, item.item) for item in node.items)
            for item in node.items:
                self._walk(item)
                switched = eval_context_receiver(item.item)
                if switched is not None:
                    self._add("eval", item.item, key=switched)
            if guarded:
                self.no_grad.append(node)
            self._walk_block(node.body)
            if guarded:
                self.no_grad.pop()
            return
        if isinstance(node, cst.Call):
            # arguments are evaluated before the call itself
            for child in children(node):
                self._walk(child)
            self._call(node)
            return
        if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            if getattr(node, "value", None) is not None:
                self._walk(node.value)  # type: ignore[arg-type]
            self._assign(node)
            return
        if isinstance(node, cst.Del):
            for target in find_targets(node.target):
                if clears_grad_target(target):
                    self._add("clear", node)
            return
        for child in children(node):
            self._walk(child)

    def _assign(self, node: cst.Assign | cst.AugAssign | cst.AnnAssign) -> None:
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        else:
            targets = [node.target]
        for target in targets:
            if clears_grad_target(target):
                self._add("clear", node)
            elif isinstance(target, cst.Attribute):
                self._walk(target.value)
            elif isinstance(target, cst.Subscript):
                self._walk(target)
        if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
            key = dotted_name(node.target)
            if key:
                for name in graph_operands(node.value):
                    self._add("accumulate", node, key=key, value=name.value)
        elif isinstance(node, cst.Assign) and len(node.targets) == 1:
            key = dotted_name(node.targets[0].target)
            value = node.value
            if (key is not None and isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add)):
                # `total = total + loss` (or `loss + total`): the spelled-out `+=`
                sides = (value.left, value.right)
                for own, added in (sides, sides[::-1]):
                    if dotted_name(own) == key:
                        for name in graph_operands(added):
                            if name.value != key:
                                self._add("accumulate", node, key=key, value=name.value)
                        break
            if key is not None:
                kind = "bind_module" if is_module_constructor(self.ctx, node.value) else "bind"
                self._add(kind, node, key=key)

    def _call(self, call: cst.Call) -> None:
        ctx = self.ctx
        is_backward, loss = backward_target(call)
        if is_backward:
            self._add("backward", call, key=loss)
            return
        step = optimizer_step(ctx, call)
        if step is not None:
            self._add("step" if step == "step" else "closure_step", call)
            return
        if clears_grad_call(call):
            self._add("clear", call)
            return
        switch = mode_switch(call)
        if switch is not None:
            self._add(switch, call, key=receiver_key(call))
            return
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "append" and len(call.args) == 1:
            key = dotted_name(func.value)
            if key:
                for name in graph_operands(call.args[0].value):
                    self._add("accumulate", call, key=key, value=name.value)
            return
        local = self._local_function(func)
        if local is not None:
            self._add("call", call, value=local.name.value)
            self._inline(call, local)
            return
        key = dotted_name(func)
        if key is not None:
            self._add("module_call", call, key=key)

    def _local_function(self, func: cst.BaseExpression) -> cst.FunctionDef | None:
        ctx = self.ctx
        if isinstance(func, cst.Name):
            if func.value in ctx.imports:
                return None
            found = ctx.local_functions.get(func.value)
            # a method is not reachable by its bare name
            return found if found is not None and _is_top_level_function(ctx, found) else None
        if (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"
                and self.enclosing_class is not None):
            return self.ctx.class_facts(self.enclosing_class).methods.get(func.attr.value)
        return None

    def _inline(self, call: cst.Call, func: cst.FunctionDef) -> None:
        """Add the effects of a same-file function at its call site."""
        effects = function_effects(self.ctx, func)
        params = _params(func)
        if params and params[0] == "self" and isinstance(call.func, cst.Attribute):
            params = params[1:]
        args: dict[str, str | None] = {}
        for index, arg in enumerate(positional_args(call)):
            if index < len(params):
                args[params[index]] = dotted_name(arg.value)
        for arg in call.args:
            if arg.keyword is not None:
                args[arg.keyword.value] = dotted_name(arg.value)
        for kind, key, nested in effects:
            if key is not None:
                head, _, rest = key.partition(".")
                if head in params:
                    mapped = args.get(head)
                    key = (mapped + ("." + rest if rest else "")) if mapped else None
            self._add(kind, call, key=key, via=call, nested=nested)


def find_targets(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The assignment targets inside a (possibly tuple) target expression."""
    if isinstance(node, (cst.Tuple, cst.List)):
        out: list[cst.BaseExpression] = []
        for element in node.elements:
            out.extend(find_targets(element.value))
        return out
    return [node]


def _is_top_level_function(ctx: FileContext, func: cst.FunctionDef) -> bool:
    """A function reachable by its bare name: not a method of a class."""
    return owner_class(ctx, func) is None


_EFFECT_KINDS = frozenset({"backward", "step", "closure_step", "clear", "eval", "train", "either"})


def function_effects(ctx: FileContext, func: cst.FunctionDef) -> list[tuple[str, str | None, bool]]:
    """What calling a same-file function does, as (kind, receiver, inside a loop of it), transitively.

    Receivers stay in the callee's own names (a parameter `model`, `self.model`); the caller
    maps parameters to its arguments. Recursion is cut (a function already being summarised
    contributes nothing).
    """
    cache = _cache(ctx).setdefault("effects", {})
    found = cache.get(id(func))
    if found is None:
        cache[id(func)] = []  # recursion guard
        facts = scope_facts(ctx, func)
        found = [(e.kind, e.key, bool(e.loops) or e.nested) for e in facts.events if e.kind in _EFFECT_KINDS]
        cache[id(func)] = found
    return found  # type: ignore[no-any-return]


def loop_iter_text(ctx: FileContext, loop: cst.CSTNode) -> str | None:
    """The source of a `for` loop's iterable (None for `while`)."""
    if isinstance(loop, cst.For):
        return ctx.code_for(loop.iter).strip()
    return None


def module_loop_var(ctx: FileContext, loop: cst.For,
                    methods: tuple[str, ...] = ("modules", "children", "named_modules", "named_children")) -> str | None:
    """The Module variable of `for m in x.modules()` / `for name, m in x.named_modules()`."""
    it = loop.iter
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value in methods):
        return None
    target = loop.target
    if it.func.attr.value.startswith("named_"):
        if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
            target = target.elements[1].value
        else:
            return None
    return target.value if isinstance(target, cst.Name) else None


# ---- what the attributes of a class hold ---------------------------------------------------
def self_attr_values(ctx: FileContext, classdef: cst.ClassDef) -> dict[str, list[cst.BaseExpression]]:
    """`attr -> [values]` for every `self.<attr> = value` in any method of a class (cached)."""
    cache = _cache(ctx).setdefault("attr_values", {})
    found = cache.get(id(classdef))
    if found is None:
        from torchlint.walk import find_all

        found = {}
        for method in ctx.class_facts(classdef).methods.values():
            for node in find_all(method.body, (cst.Assign, cst.AnnAssign)):
                if isinstance(node, cst.Assign):
                    targets = [t.target for t in node.targets]
                elif isinstance(node, cst.AnnAssign) and node.value is not None:
                    targets = [node.target]
                else:
                    continue
                for target in targets:
                    for item in find_targets(target):
                        if (isinstance(item, cst.Attribute) and isinstance(item.value, cst.Name)
                                and item.value.value == "self"):
                            found.setdefault(item.attr.value, []).append(node.value)
        cache[id(classdef)] = found
    return found  # type: ignore[no-any-return]


CALL_LESS_CONTAINERS = ("ModuleList", "ModuleDict", "ParameterList", "ParameterDict")


def container_kind(ctx: FileContext, value: cst.BaseExpression) -> str | None:
    """"ModuleList" (etc.) when `value` constructs a container that has no forward():
    torch's own, or a class deriving from one that defines no forward."""
    if not isinstance(value, cst.Call):
        return None
    qualname = ctx.qualname(value.func)
    if qualname is None:
        return None
    if qualname.startswith("torch."):
        last = qualname.rsplit(".", 1)[-1]
        return last if last in CALL_LESS_CONTAINERS and qualname in (
            f"torch.nn.{last}", f"torch.nn.modules.container.{last}") else None
    chain = ctx.index.torch_base_chain(qualname)
    kinds = {q.rsplit(".", 1)[-1] for q in chain}
    kind = next((k for k in CALL_LESS_CONTAINERS if k in kinds), None)
    if kind is None or len(chain) != 1:
        return None
    if isinstance(value.func, cst.Name) and value.func.value in ctx.local_classes:
        defines = ctx.class_defines(ctx.local_classes[value.func.value], "forward")
    else:
        defines = ctx.index.defines(qualname, "forward")
    return kind if defines is False else None


def container_attrs(ctx: FileContext) -> frozenset[str]:
    """Attribute names the file assigns, anywhere, a call-less container (cheap pre-check for
    TL202's `self.blocks(x)`)."""
    return _container_targets(ctx)[1]


def container_names(ctx: FileContext) -> frozenset[str]:
    """Plain names the file binds, anywhere, to a call-less container (cheap pre-check for TL202)."""
    return _container_targets(ctx)[0]


def _container_targets(ctx: FileContext) -> tuple[frozenset[str], frozenset[str]]:
    """(plain names, attribute names) that an assignment of the file binds to a call-less
    container: one pass over the file's assignments for both pre-checks."""
    cache = _cache(ctx)
    found = cache.get("container_targets")
    if found is None:
        names: set[str] = set()
        attrs: set[str] = set()
        for node in _all_assigns(ctx):
            if isinstance(node.value, cst.Call) and container_kind(ctx, node.value) is not None:
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                names.update(t.value for t in targets if isinstance(t, cst.Name))
                attrs.update(t.attr.value for t in targets if isinstance(t, cst.Attribute))
        found = cache["container_targets"] = (frozenset(names), frozenset(attrs))
    return found  # type: ignore[no-any-return]


# ---- does train/eval mode change what a Module computes? ---------------------------------
@dataclass(frozen=True)
class ModeReason:
    """What makes a Module compute differently in train and eval mode.

    `what` names it (`Dropout(p=0.1)`, `BatchNorm2d`, `Block.forward branching on self.training`);
    empty when the Module may depend on the mode but the linter cannot see what it holds (a class
    of another file or package). `where` is the path below the Module (`[1]`, `.encoder.layers[0]`).
    """

    what: str
    where: str = ""

    @property
    def known(self) -> bool:
        return bool(self.what)

    def within(self, prefix: str) -> ModeReason:
        return ModeReason(self.what, prefix + self.where) if self.what else self

    def describe(self, key: str) -> str:
        """`Dropout(p=0.1) in model.encoder.layers[0]` (empty when unknown)."""
        return f"{self.what} in {key}{self.where}" if self.what else ""


UNKNOWN_MODE = ModeReason("")
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
_WRAPPERS = frozenset({"DataParallel", "DistributedDataParallel"})  # judged by the wrapped Module


def _number(expr: cst.BaseExpression | None) -> float | None:
    if isinstance(expr, (cst.Integer, cst.Float)):
        try:
            return float(expr.value.replace("_", ""))
        except ValueError:
            return None
    return None


def _argument(call: cst.Call, name: str, index: int | None) -> cst.BaseExpression | None:
    """The value of a parameter given by keyword or position (None when not given)."""
    arg = keyword_arg(call, name)
    if arg is not None:
        return arg.value
    pos = positional_args(call)
    if index is not None and index < len(pos):
        return pos[index].value
    return None


def _literal(expr: cst.BaseExpression | None) -> bool | None:
    return _bool_literal(expr) if expr is not None else None


# (parameter, position, default) of the dropout probability of the layers that have one
_DROPOUT_PARAM = {
    "RNN": ("dropout", None, 0.0), "LSTM": ("dropout", 5, 0.0), "GRU": ("dropout", 5, 0.0),
    "Transformer": ("dropout", 5, 0.1), "TransformerEncoderLayer": ("dropout", 3, 0.1),
    "TransformerDecoderLayer": ("dropout", 3, 0.1), "MultiheadAttention": ("dropout", 2, 0.0),
}


def _torch_layer_reason(ctx: FileContext, name: str, call: cst.Call | None, depth: int,
                        in_class: bool = False) -> ModeReason | None:
    """Why a torch layer depends on the mode (None: it does not). `call` is None for a base class."""
    if name in ctx.names.nn_dropout_layers:
        p = _argument(call, "p", 0) if call is not None else None
        if p is None:
            return ModeReason(f"{name}(p=0.5)") if call is not None else ModeReason(name)
        return None if _number(p) == 0 else ModeReason(f"{name}(p={ctx.code_for(p).strip()})")
    if "BatchNorm" in name:
        track = _argument(call, "track_running_stats", 4) if call is not None else None
        return None if _literal(track) is False else ModeReason(name)  # no running stats: batch stats in both modes
    if "InstanceNorm" in name:
        track = _argument(call, "track_running_stats", 4) if call is not None else None
        if track is None or _literal(track) is False:
            return None  # the default: instance statistics in both modes
        return ModeReason(f"{name}(track_running_stats={ctx.code_for(track).strip()})")
    if name in _DROPOUT_PARAM:
        if call is None:
            return UNKNOWN_MODE
        param, index, default = _DROPOUT_PARAM[name]
        value = _argument(call, param, index)
        if value is None and name == "RNN" and len(positional_args(call)) > 6:
            return UNKNOWN_MODE
        if value is None:
            return None if default == 0 else ModeReason(f"{name}({param}={default})")
        return None if _number(value) == 0 else ModeReason(f"{name}({param}={ctx.code_for(value).strip()})")
    if name in ("TransformerEncoder", "TransformerDecoder"):
        layer = _argument(call, "encoder_layer" if name == "TransformerEncoder" else "decoder_layer", 0) \
            if call is not None else None
        if isinstance(layer, cst.Call):
            found = mode_reason(ctx, layer, depth + 1)
            return found.within(".layers[0]") if found is not None else None
        return UNKNOWN_MODE
    if name in _CONTAINERS or name in _WRAPPERS:
        return _items_reason(ctx, name, call, depth, in_class) if call is not None else UNKNOWN_MODE
    return None


def _items_reason(ctx: FileContext, name: str, call: cst.Call, depth: int, in_class: bool) -> ModeReason | None:
    """The first mode-dependent item of a container (`nn.Sequential(a, b)`, `nn.ModuleList([...])`).
    In a class, items held in local names were built by calls of the class's own methods, which
    the class scan reads anyway (`in_class`); elsewhere such an item is unknown."""
    from torchlint.walk import descendants

    items: list[tuple[str, cst.BaseExpression]] = []
    if name == "Sequential":
        items = [(f"[{i}]" if not a.star else "", a.value) for i, a in enumerate(call.args) if a.keyword is None]
    elif call.args and isinstance(call.args[0].value, (cst.List, cst.Tuple)) and not call.args[0].star:
        items = [(f"[{i}]", e.value) for i, e in enumerate(call.args[0].value.elements)]
    elif call.args and isinstance(call.args[0].value, cst.Dict) and not call.args[0].star:
        for element in call.args[0].value.elements:
            if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString):
                items.append((f"[{element.key.value}]", element.value))
            elif isinstance(element, cst.DictElement):
                items.append(("", element.value))
            else:
                return UNKNOWN_MODE
    elif name in _WRAPPERS and call.args:
        items = [("", call.args[0].value)]
    elif call.args:
        items = [("", a.value) for a in call.args if a.keyword is None]
    unknown = False
    for where, item in items:
        if not isinstance(item, cst.Call):
            # a name, a starred list, a comprehension: look at the calls inside, if any
            calls = [n for n in descendants(item) if isinstance(n, cst.Call)] if not isinstance(item, cst.Name) else []
            if not calls and not in_class:
                unknown = True
            for inner in calls:
                found = mode_reason(ctx, inner, depth + 1)
                if found is not None and found.known:
                    return found
                unknown = unknown or found is not None
            continue
        found = mode_reason(ctx, item, depth + 1)
        if found is not None and found.known:
            return found.within(where)
        unknown = unknown or found is not None
    return UNKNOWN_MODE if unknown else None


def mode_reason(ctx: FileContext, call: cst.Call, depth: int = 0, in_class: bool = False) -> ModeReason | None:
    """Why the Module that `call` builds may compute differently in train and eval mode.

    None only when it is known not to: torch layers without an active Dropout, BatchNorm,
    tracked InstanceNorm, or recurrent/attention dropout, and classes of this file built only
    from such layers that never read `self.training` (a tutorial's DQN, a CycleGAN generator of
    convolutions and default InstanceNorm2d). `UNKNOWN_MODE` when it may, for reasons the
    linter cannot see (a class of another file or package).
    """
    if depth > 8:
        return UNKNOWN_MODE
    while (isinstance(call.func, cst.Attribute) and call.func.attr.value in MODULE_SELF_METHODS
           and isinstance(call.func.value, cst.Call)):
        call = call.func.value
    name = ctx.torch_nn_name(call.func)
    if name is not None:
        return _torch_layer_reason(ctx, name, call, depth, in_class)
    func = call.func
    if isinstance(func, cst.Name) and func.value not in ctx.imports:
        if func.value in ctx.local_classes:
            classdef = ctx.local_classes[func.value]
            if ctx.class_facts(classdef).is_module is False:
                return None
            return _class_reason(ctx, classdef, depth)
        local = ctx.local_functions.get(func.value)
        if local is not None and func.value[:1].islower():
            return _body_reason(ctx, local, depth)  # a builder function of this file
    qualname = ctx.qualname(func)
    if qualname is not None and qualname.startswith("torch.") and ctx.expr_is_module_class(func) is not True:
        return None  # torch functions (F.dropout without a training flag ignores the mode) and tensor ops
    if isinstance(func, cst.Attribute) and qualname is None:
        return None  # a method call on a value (x.view(...)): not a Module being built
    if qualname is not None and (qualname in MODULE_FACTORIES or qualname.startswith(MODULE_FACTORY_PREFIXES)):
        return UNKNOWN_MODE
    last = (qualname or dotted_name(func) or "").rsplit(".", 1)[-1]
    if last[:1].islower() or last[:1] == "_":
        return None  # a function (builtin, numpy, a helper of another file): not known to build a Module
    if ctx.expr_is_module_class(func) is False:
        return None
    return UNKNOWN_MODE


def mode_dependent(ctx: FileContext, call: cst.Call, depth: int = 0) -> bool:
    """Whether the Module that `call` builds may compute differently in train and eval mode."""
    return mode_reason(ctx, call, depth) is not None


def _reads_training(node: cst.CSTNode) -> bool:
    return (isinstance(node, cst.Attribute) and node.attr.value == "training"
            and isinstance(node.value, cst.Name) and node.value.value == "self")


def _body_reason(ctx: FileContext, func: cst.FunctionDef, depth: int) -> ModeReason | None:
    """The first mode-dependent layer built in a function of this file (a model builder)."""
    cache = _cache(ctx).setdefault("mode_reason", {})
    if id(func) in cache:
        return cache[id(func)]  # type: ignore[no-any-return]
    cache[id(func)] = UNKNOWN_MODE  # recursion guard
    from torchlint.walk import find_all

    found: ModeReason | None = None
    for call in find_all(func.body, cst.Call, skip_scopes=True):
        reason = mode_reason(ctx, call, depth + 1)
        if reason is not None and reason.known:
            found = ModeReason(reason.what)
            break
        if reason is not None:
            found = UNKNOWN_MODE
    cache[id(func)] = found
    return found


def _class_reason(ctx: FileContext, classdef: cst.ClassDef, depth: int) -> ModeReason | None:
    cache = _cache(ctx).setdefault("mode_reason", {})
    if id(classdef) in cache:
        return cache[id(classdef)]  # type: ignore[no-any-return]
    cache[id(classdef)] = UNKNOWN_MODE  # recursion guard: assume the worst
    from torchlint.walk import descendants

    unknown = False
    found: ModeReason | None = None
    for arg in classdef.bases:
        base = arg.value
        if isinstance(base, cst.Name) and base.value in ctx.local_classes and base.value not in ctx.imports:
            reason = _class_reason(ctx, ctx.local_classes[base.value], depth + 1)
        else:
            name = ctx.torch_nn_name(base)
            if name == "Module":
                continue
            reason = _torch_layer_reason(ctx, name, None, depth) if name is not None else UNKNOWN_MODE
        if reason is not None and reason.known:
            found = reason
            break
        unknown = unknown or reason is not None
    if found is None:
        seen: set[int] = set()
        attrs = self_attr_values(ctx, classdef)
        for attr, values in attrs.items():
            for value in values:
                seen.update(id(n) for n in descendants(value))
                if not isinstance(value, cst.Call) or found is not None:
                    continue
                reason = mode_reason(ctx, value, depth + 1, in_class=True)
                if reason is not None and reason.known:
                    found = reason.within(f".{attr}")
                unknown = unknown or reason is not None
    if found is None:
        for method in ctx.class_facts(classdef).methods.values():
            for node in descendants(method.body):
                if _reads_training(node) and not _assigned_target(node, method):
                    found = ModeReason(f"{classdef.name.value}.{method.name.value} branching on self.training")
                    break
                if isinstance(node, cst.Call) and id(node) not in seen:
                    reason = mode_reason(ctx, node, depth + 1, in_class=True)
                    if reason is not None and reason.known:
                        found = ModeReason(reason.what)
                        break
                    unknown = unknown or reason is not None
            if found is not None:
                break
    result = found if found is not None else (UNKNOWN_MODE if unknown else None)
    cache[id(classdef)] = result
    return result


def _assigned_target(node: cst.CSTNode, method: cst.FunctionDef) -> bool:
    """`self.training = mode` in an override of train(): a write, not a read."""
    from torchlint.walk import find_all

    return any(any(t.target is node for t in assign.targets)
               for assign in find_all(method.body, cst.Assign, skip_scopes=True))


# ---- who calls a function of this file ------------------------------------------------------
def top_level_functions(ctx: FileContext) -> frozenset[int]:
    """ids of the functions defined at module level (also inside module-level `if`/`try`)."""
    cache = _cache(ctx)
    found = cache.get("top_level_functions")
    if found is None:
        from torchlint.context import iter_statements

        found = cache["top_level_functions"] = frozenset(
            id(s) for s in iter_statements(list(ctx.module.body), into_defs=False) if isinstance(s, cst.FunctionDef))
    return found  # type: ignore[no-any-return]


def name_counts(ctx: FileContext) -> dict[str, int]:
    """How often each identifier occurs in the file (definitions, attributes and uses alike)."""
    cache = _cache(ctx)
    found = cache.get("name_counts")
    if found is None:
        from torchlint.walk import find_all

        found = {}
        for node in find_all(ctx.module, cst.Name):
            found[node.value] = found.get(node.value, 0) + 1
        cache["name_counts"] = found
    return found  # type: ignore[no-any-return]


def all_scopes(ctx: FileContext) -> list[cst.Module | cst.FunctionDef]:
    """The module and every function of the file."""
    cache = _cache(ctx)
    found = cache.get("all_scopes")
    if found is None:
        from torchlint.walk import find_all

        found = cache["all_scopes"] = [ctx.module, *find_all(ctx.module, cst.FunctionDef)]
    return found  # type: ignore[no-any-return]


def call_sites(ctx: FileContext, func: cst.FunctionDef,
               cls: cst.ClassDef | None) -> list[tuple[cst.Module | cst.FunctionDef, Event]] | None:
    """Every call of a same-file function (`f(...)`) or method (`self.m(...)` in its class), with
    the scope that makes it and its event there. None when the name is used in any other way
    (passed as a callback, wrapped in functools.partial, called on another receiver, shadowed)."""
    cache = _cache(ctx).setdefault("call_sites", {})
    if id(func) in cache:
        return cache[id(func)]  # type: ignore[no-any-return]
    name = func.name.value
    sites: list[tuple[cst.Module | cst.FunctionDef, Event]] = []
    seen: set[int] = set()
    for scope in all_scopes(ctx):
        for event in scope_facts(ctx, scope).events:
            if (event.kind != "call" or event.via is not None or event.value != name
                    or not isinstance(event.node, cst.Call) or id(event.node) in seen):
                continue
            target = event.node.func
            if cls is None:
                if not isinstance(target, cst.Name):
                    continue
            elif not (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                      and target.value.value == "self" and isinstance(scope, cst.FunctionDef)
                      and owner_class(ctx, scope) is cls):
                continue
            seen.add(id(event.node))
            sites.append((scope, event))
    # the definition's own name plus one per call: anything else is a use the events do not show
    found = sites if name_counts(ctx).get(name, 0) == len(sites) + 1 else None
    cache[id(func)] = found
    return found


def maybe_imported_elsewhere(ctx: FileContext, name: str) -> bool:
    """Whether another module of the project may import `name` from this file (by name, through
    the module itself, or with a star import). Conservative: a last-segment match is enough."""
    index = ctx.index
    me = ctx.module_name
    stem = me.rsplit(".", 1)[-1]
    index.touched.update(index.modules)  # the answer depends on every module's imports
    for module, summary in index.modules.items():
        if module == me:
            continue
        for target in summary.imports.values():
            if target == me or target.rsplit(".", 1)[-1] in (name, stem):
                return True
    return False
