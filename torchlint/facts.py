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
    """Cheap text pre-check: without `backward`, `no_grad` or `inference_mode` in the file, there
    is no training loop and no evaluation block, and the scope walk can be skipped."""
    cache = _cache(ctx)
    found = cache.get("training_code")
    if found is None:
        source = ctx.source
        found = cache["training_code"] = ("backward" in source or "no_grad" in source
                                          or "inference_mode" in source) and uses_torch(ctx)
    return bool(found)


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
    """`torch.no_grad()`, `torch.inference_mode()` (called or not, however imported)."""
    if isinstance(expr, cst.Call):
        if expr.args and ctx.qualname(expr.func) == "torch.inference_mode":
            literal = _bool_literal(expr.args[0].value)
            if literal is False:
                return False
        expr = expr.func
    return ctx.qualname(expr) in NO_GRAD_CONTEXTS


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
        from torchlint.walk import descendants

        assigns = cache["assigns"] = [n for n in descendants(ctx.module)
                                      if isinstance(n, (cst.Assign, cst.AnnAssign)) and n.value is not None]
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
        from torchlint.walk import descendants

        owners = {}
        for node in descendants(ctx.module):
            if isinstance(node, cst.ClassDef):
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
        from torchlint.walk import descendants

        found = {}
        for method in ctx.class_facts(classdef).methods.values():
            for node in descendants(method.body):
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


def container_names(ctx: FileContext) -> frozenset[str]:
    """Plain names the file binds, anywhere, to a call-less container (cheap pre-check for TL202)."""
    cache = _cache(ctx)
    found = cache.get("container_names")
    if found is None:
        names = set()
        for node in _all_assigns(ctx):
            if isinstance(node.value, cst.Call) and container_kind(ctx, node.value) is not None:
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                names.update(t.value for t in targets if isinstance(t, cst.Name))
        found = cache["container_names"] = frozenset(names)
    return found  # type: ignore[no-any-return]


# ---- does train/eval mode change what a Module computes? ---------------------------------
_MODE_FREE_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "DataParallel"})  # judged by their items
_ALWAYS_DROPOUT = ("Transformer", "MultiheadAttention")


def _torch_layer_mode_dependent(ctx: FileContext, name: str, call: cst.Call, depth: int) -> bool:
    if name in ctx.names.nn_dropout_layers or "BatchNorm" in name or "InstanceNorm" in name:
        return True
    if name.startswith(_ALWAYS_DROPOUT):
        return True
    if name in ("RNN", "LSTM", "GRU"):
        dropout = keyword_arg(call, "dropout")
        return dropout is not None and ctx.code_for(dropout.value).strip() not in ("0", "0.0")
    if name in _MODE_FREE_CONTAINERS:
        from torchlint.walk import descendants

        return any(isinstance(n, cst.Call) and mode_dependent(ctx, n, depth + 1) for n in descendants(call))
    return False


def mode_dependent(ctx: FileContext, call: cst.Call, depth: int = 0) -> bool:
    """Whether the Module that `call` builds may compute differently in train and eval mode.

    False only when that is known: torch layers without Dropout/BatchNorm/InstanceNorm, and
    classes of this file built only from such layers (the DQN of a tutorial). True otherwise.
    """
    if depth > 8:
        return True
    while (isinstance(call.func, cst.Attribute) and call.func.attr.value in MODULE_SELF_METHODS
           and isinstance(call.func.value, cst.Call)):
        call = call.func.value
    name = ctx.torch_nn_name(call.func)
    if name is not None:
        return _torch_layer_mode_dependent(ctx, name, call, depth)
    func = call.func
    if isinstance(func, cst.Name) and func.value in ctx.local_classes and func.value not in ctx.imports:
        return _class_mode_dependent(ctx, ctx.local_classes[func.value], depth)
    qualname = ctx.qualname(func)
    if qualname is not None and qualname.startswith("torch.nn.functional."):
        return qualname.rsplit(".", 1)[-1].startswith(("dropout", "batch_norm", "instance_norm", "alpha_dropout",
                                                        "feature_alpha_dropout"))
    if qualname is not None and qualname.startswith("torch.") and ctx.expr_is_module_class(func) is not True:
        return False  # torch functions and tensor ops
    if isinstance(func, cst.Attribute) and ctx.qualname(func) is None:
        return False  # a method call on a value (x.view(...)): not a Module being built
    if isinstance(func, cst.Name) and qualname is None and func.value[:1].islower():
        return False  # a builtin or plain function (super(), len(), ...), not a Module class
    if ctx.expr_is_module_class(func) is False:
        return False
    return True


def _class_mode_dependent(ctx: FileContext, classdef: cst.ClassDef, depth: int) -> bool:
    cache = _cache(ctx).setdefault("mode_dependent", {})
    found = cache.get(id(classdef))
    if found is None:
        cache[id(classdef)] = True  # recursion guard: assume the worst
        from torchlint.walk import descendants

        found = False
        for arg in classdef.bases:
            base = arg.value
            if isinstance(base, cst.Name) and base.value in ctx.local_classes and base.value not in ctx.imports:
                found = found or _class_mode_dependent(ctx, ctx.local_classes[base.value], depth + 1)
            elif ctx.torch_nn_name(base) not in ("Module", None) or ctx.qualname(base) is None:
                found = True  # a torch layer base, or a base the linter cannot read
            elif ctx.torch_nn_name(base) is None and ctx.qualname(base) is not None:
                found = True
        if not found:
            for node in descendants(classdef.body):
                if isinstance(node, cst.Attribute) and node.attr.value == "training":
                    found = True
                elif isinstance(node, cst.Call) and mode_dependent(ctx, node, depth + 1):
                    found = True
                if found:
                    break
        cache[id(classdef)] = found
    return bool(found)
