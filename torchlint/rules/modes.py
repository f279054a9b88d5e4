"""TL3xx: train/eval mode and the training loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from torchlint.context import dotted_name, has_star_kwargs, keyword_arg, positional_args
from torchlint.facts import (
    MODULE_SELF_METHODS, UNKNOWN_MODE, Event, ModeReason, ScopeFacts, call_sites, graph_operands,
    has_training_code, is_module_constructor, keys_match, loop_iter_text, maybe_imported_elsewhere,
    mode_dependent, mode_reason, module_loop_var, optimized_models, owner_class, scope_facts, scope_may_matter,
    self_attr_values, top_level_functions, uses_torch,
)
from torchlint.rule import Case, InsertAfter, PendingFix, Replace, Rule
from torchlint.walk import descendants, find_all

if TYPE_CHECKING:
    from torchlint.context import FileContext

_PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
_MODE_KINDS = ("eval", "train", "either")


class _ScopeRule(Rule):
    """A rule that looks at whole scopes: each function body, and the module's top level."""

    # whether no_grad-style blocks alone (evaluation) can make a scope worth analysing
    evaluation = False

    def visit_Module(self, node: cst.Module) -> None:
        if has_training_code(self.ctx) and scope_may_matter(self.ctx, node, self.evaluation):
            self.check_scope(node, scope_facts(self.ctx, node))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if (has_training_code(self.ctx) and self.wants(node)
                and scope_may_matter(self.ctx, node, self.evaluation)):
            self.check_scope(node, scope_facts(self.ctx, node))

    def wants(self, func: cst.FunctionDef) -> bool:
        """Whether the rule looks at this function at all (before its facts are computed)."""
        return True

    def check_scope(self, scope: cst.Module | cst.FunctionDef, facts: ScopeFacts) -> None:
        raise NotImplementedError


def _last_mode(facts: ScopeFacts, key: str, before: int, after: int = 0) -> str | None:
    """The last train/eval switch on `key` (or on an unknown receiver) between two points."""
    last = None
    for event in facts.events:
        if event.order >= before:
            break
        if event.order <= after or event.kind not in _MODE_KINDS:
            continue
        if event.key is None or keys_match(event.key, key):
            last = "eval" if event.key is None else event.kind
    return last


def _model_like(key: str) -> bool:
    last = key.rsplit(".", 1)[-1].lower()
    return "model" in last or last in ("net", "network", "module") or last.endswith("_net")


class EvalWithoutEvalMode(_ScopeRule):
    """A Module is run for evaluation (no_grad / after training) while still in training mode."""

    code = "TL301"
    name = "eval-without-eval-mode"
    summary = "a Module is evaluated under no_grad (or after training) without .eval()"
    valid = [
        _PRELUDE + "model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))\nmodel.eval()\n"
        "with torch.no_grad():\n    y = model(torch.ones(1, 2))\n",
        _PRELUDE + "def evaluate(model, loader):\n    with torch.no_grad():\n        return [model(x) for x in loader]\n\n"
        "def main(model, loader):\n    model.eval()\n    return evaluate(model, loader)\n",
        _PRELUDE + "class Net(nn.Module):\n    @torch.no_grad()\n    def generate(self, x):\n        return self(x)\n",
        _PRELUDE + "model = nn.Sequential(nn.Conv2d(3, 3, 3), nn.InstanceNorm2d(3))\n"
        "with torch.no_grad():\n    y = model(torch.ones(1, 3, 8, 8))\n",
    ]
    invalid = [
        Case(_PRELUDE + "model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))\n"
             "with torch.no_grad():\n    y = model(torch.ones(1, 2))\n", line=6, col=1),
        Case(_PRELUDE + "@torch.no_grad()\ndef predict(x):\n    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))\n"
             "    return net(x)\n", line=6),
        Case(_PRELUDE + "def evaluate(model, loader):\n    with torch.no_grad():\n        return [model(x) for x in loader]\n",
             line=6, col=5),
    ]

    evaluation = True

    def wants(self, func: cst.FunctionDef) -> bool:
        ctx = self.ctx
        cls = owner_class(ctx, func)
        if cls is not None and ctx.class_facts(cls).is_module is not False:
            return False  # Module methods (generate, ...) run under no_grad by design
        return cls is not None or not any(isinstance(n, cst.ClassDef) for n in ctx.stack)

    def check_scope(self, scope: cst.Module | cst.FunctionDef, facts: ScopeFacts) -> None:
        ctx = self.ctx
        reported: set[int] = self.__dict__.setdefault("_reported_guards", set())
        training_loops = facts.innermost(facts.training_loops())
        trained = self._trained_models(facts, training_loops)
        # form 1: a call under no_grad of a Module known to be in training mode
        for event in facts.events:
            if event.kind != "module_call" or event.no_grad is None or event.key is None or event.via is not None:
                continue
            guard = event.no_grad
            if id(guard) in reported or not self._in_train_mode(facts, event, trained):
                continue
            reported.add(id(guard))
            what = "function decorated with no_grad" if isinstance(guard, cst.FunctionDef) else "no_grad block"
            why = _why(event.key, self._reason(facts, event.key, event.order))
            self.report(guard, f"{event.key} is called in a {what} but is still in training mode ({why}): "
                        f"call {event.key}.eval() first")
        # form 1 across a call: a Module known here to be in training mode is passed to a
        # same-file function that runs it under no_grad without switching it to eval mode
        for event in facts.events:
            if event.kind != "call" or event.via is not None or not isinstance(event.node, cst.Call):
                continue
            for key, param, guard in self._no_grad_uses(event.node):
                if id(guard) in reported:
                    continue
                probe = Event("module_call", event.node, event.order, event.loops, key=key, no_grad=event.no_grad)
                if not self._in_train_mode(facts, probe, trained):
                    continue
                reported.add(id(guard))
                what = "function decorated with no_grad" if isinstance(guard, cst.FunctionDef) else "no_grad block"
                caller = f"{scope.name.value}()" if isinstance(scope, cst.FunctionDef) else "the script"
                why = _why(key, self._reason(facts, key, event.order))
                self.report(guard, f"{param} is called in a {what} but nothing switches it to eval mode: {caller} "
                            f"passes {key} in still in training mode ({why}): call {param}.eval() first")
        # form 3: an evaluation helper that takes the model as a parameter
        if isinstance(scope, cst.FunctionDef):
            self._check_helper(scope, facts, reported)
        # form 2: after a training loop, a loop over another loader calls the model, no .eval() between
        for loop in training_loops:
            end = facts.loop_end[id(loop)]
            text = loop_iter_text(ctx, loop)
            for key in trained.get(id(loop), ()):
                if self._built_mode_free(facts, key):
                    continue
                for other in facts.loops:
                    if (facts.loop_start[id(other)] <= end or facts.loop_contains(other, loop)
                            or loop_iter_text(ctx, other) in (None, text)
                            or facts.in_loop(other, ("backward", "step"))):
                        continue
                    calls = [e for e in facts.in_loop(other, ("module_call",))
                             if e.key == key and e.no_grad is None and e.via is None]
                    if not calls or id(calls[0].node) in reported:
                        continue
                    call = calls[0]
                    if _last_mode(facts, key, call.order, after=end) is not None:
                        continue
                    reported.add(id(call.node))
                    why = _why(key, self._reason(facts, key, call.order))
                    self.report(call.node, f"{key} was trained above and is now run over another loader while "
                                f"still in training mode ({why}): call {key}.eval() before this loop (and "
                                f"{key}.train() before training again)")

    # ---- form 3: evaluation helpers ------------------------------------------------------
    def _check_helper(self, func: cst.FunctionDef, facts: ScopeFacts, reported: set[int]) -> None:
        """A function that runs a model parameter under no_grad with no train/eval switch before:
        flagged when no caller in the project exists, or every caller passes the model without
        switching it to eval mode first. Silent when any caller's mode cannot be seen."""
        ctx = self.ctx
        cls = owner_class(ctx, func)
        if cls is None and not _is_top_level(ctx, func):
            return  # a nested function: its callers are its enclosing function's business
        if cls is not None and (_has_framework_base(cls, ctx) or any(
                dotted_name(d.decorator) in ("staticmethod", "classmethod") for d in func.decorators)):
            return  # a hook of a framework class (a Lightning Callback, ...): the framework calls it
        for param in self._model_params(func, cls is not None):
            guard = _unswitched_no_grad_use(facts, param)
            if guard is None or id(guard) in reported:
                continue
            verdict, reason, where = self._callers_verdict(func, cls, param, depth=0)
            if verdict != "lacking":
                continue
            reported.add(id(guard))
            what = "function decorated with no_grad" if isinstance(guard, cst.FunctionDef) else "no_grad block"
            why = _why(param, reason)
            name = func.name.value
            if where is None:
                tail = "nothing in the project calls it (code that evaluates should set the mode itself)"
            else:
                tail = f"{where} passes it in without switching it first"
            self.report(guard, f"{name}() runs {param} in a {what} without putting it in eval mode, and {tail} "
                        f"({why}): call {param}.eval() at the start of {name}() (and {param}.train() before "
                        f"training resumes)")

    def _model_params(self, func: cst.FunctionDef, is_method: bool) -> list[str]:
        params = func.params
        out = []
        for index, p in enumerate((*params.posonly_params, *params.params, *params.kwonly_params)):
            if is_method and index == 0:
                continue
            name = p.name.value
            annotation = p.annotation.annotation if p.annotation is not None else None
            known = self.ctx.expr_is_module_class(annotation) if annotation is not None else None
            if known is True or (known is None and _model_like(name)):
                out.append(name)
        return out

    def _callers_verdict(self, func: cst.FunctionDef, cls: cst.ClassDef | None, key: str,
                         depth: int) -> tuple[str, ModeReason | None, str | None]:
        """How the callers of `func` pass the Module behind `key` (a parameter, or `self.x`):
        ("lacking", what the Module holds, the first caller that passes it without eval mode, or
        None when nothing in the project calls `func`); ("fine", ...) when every caller switches it
        to eval mode first (or passes a Module that does not depend on the mode); ("unknown", ...)
        when any caller cannot be judged."""
        ctx = self.ctx
        sites = call_sites(ctx, func, cls)
        if sites is None:
            return "unknown", None, None  # used other than by direct calls (a callback, functools.partial, ...)
        if not sites:
            # no caller at all: flagged only for a parameter named as a model (an annotation alone
            # also fits training-time helpers that run a Module without gradients on purpose)
            if not _model_like(key) or maybe_imported_elsewhere(ctx, (cls or func).name.value):
                return "unknown", None, None
            return "lacking", UNKNOWN_MODE, None
        first: str | None = None
        reason: ModeReason | None = UNKNOWN_MODE
        for scope, event in sites:
            arg = _argument_for(func, cls is not None, event.node, key)
            if arg is None:
                return "unknown", None, None
            facts = scope_facts(ctx, scope)
            found = self._reason(facts, arg, event.order)
            if found is None:
                continue  # a Module built here that computes the same in both modes
            mode = _last_mode(facts, arg, event.order)
            if mode is not None and mode != "train":
                continue  # switched to eval (or to a mode decided at runtime) before the call
            caller = scope.name.value + "()" if isinstance(scope, cst.FunctionDef) else "the script"
            if mode is None:
                caller_cls = owner_class(ctx, scope) if isinstance(scope, cst.FunctionDef) else None
                if isinstance(scope, cst.FunctionDef):
                    if caller_cls is not None and (ctx.class_facts(caller_cls).is_module is not False
                                                   or _has_framework_base(caller_cls, ctx)):
                        return "unknown", None, None  # a Module's or a framework hook's method: the framework sets the mode
                    if caller_cls is None and not _is_top_level(ctx, scope):
                        return "unknown", None, None
                head = arg.split(".")[0]
                binds = [e for e in facts.events
                         if e.kind in ("bind", "bind_module") and e.key == arg and e.order < event.order]
                trains_first = any(facts.loop_start[id(loop)] < event.order for loop in facts.training_loops())
                if trains_first or (binds and _fresh_model(ctx, binds[-1])):
                    pass  # trained here, or built here (a new Module is in training mode)
                elif isinstance(scope, cst.FunctionDef) and not binds and (
                        head in _param_names(scope) or (head == "self" and caller_cls is not None)):
                    # passed through: judged by this caller's own callers
                    if depth >= 3:
                        return "unknown", None, None
                    upper, upper_reason, _ = self._callers_verdict(scope, caller_cls, arg, depth + 1)
                    if upper == "unknown":
                        return "unknown", None, None
                    if upper == "fine":
                        continue
                    if upper_reason is not None and upper_reason.known:
                        found = upper_reason
                else:
                    return "unknown", None, None  # where the Module comes from (and its mode) is not visible
            if first is None:
                first = caller
            if found.known and not (reason is not None and reason.known):
                reason = found
        if first is None:
            return "fine", None, None
        return "lacking", reason, first

    def _reason(self, facts: ScopeFacts, key: str, before: int) -> ModeReason | None:
        """What the Module bound to `key` last (before a point) holds that depends on the mode:
        `UNKNOWN_MODE` when the scope does not build it."""
        reason: ModeReason | None = UNKNOWN_MODE
        for event in facts.events:
            if event.order >= before:
                break
            if event.key == key and event.kind == "bind_module":
                value = getattr(event.node, "value", None)
                reason = mode_reason(self.ctx, value) if isinstance(value, cst.Call) else UNKNOWN_MODE
            elif event.key == key and event.kind == "bind":
                reason = UNKNOWN_MODE
        return reason

    def _no_grad_uses(self, call: cst.Call) -> list[tuple[str, str, cst.CSTNode]]:
        """(argument, parameter, no_grad guard) for each argument of a call to a same-file
        top-level function that calls that parameter under no_grad with no train/eval switch
        (on it or on anything unknown) before, and does not rebind it."""
        ctx = self.ctx
        func = call.func
        if not isinstance(func, cst.Name) or func.value in ctx.imports:
            return []
        callee = ctx.local_functions.get(func.value)
        if callee is None or owner_class(ctx, callee) is not None:
            return []
        params = callee.params
        names = [p.name.value for p in (*params.posonly_params, *params.params)]
        passed: dict[str, str] = {}
        for index, arg in enumerate(positional_args(call)):
            key = dotted_name(arg.value)
            if index < len(names) and key is not None:
                passed[names[index]] = key
        for arg in call.args:
            key = dotted_name(arg.value)
            if arg.keyword is not None and key is not None:
                passed[arg.keyword.value] = key
        if not passed:
            return []
        inner = scope_facts(ctx, callee)
        out = []
        for param, key in passed.items():
            guard = _unswitched_no_grad_use(inner, param)
            if guard is not None:
                out.append((key, param, guard))
        return out

    def _trained_models(self, facts: ScopeFacts, loops: list[cst.CSTNode]) -> dict[int, set[str]]:
        """For each training loop: the models it trains (called in it, outside no_grad, with evidence)."""
        optimized = optimized_models(self.ctx)
        out: dict[int, set[str]] = {}
        for loop in loops:
            keys = set()
            for event in facts.in_loop(loop, ("module_call",)):
                key = event.key
                if key is None or event.no_grad is not None or event.via is not None:
                    continue
                if key in optimized or _model_like(key) or any(
                        e.kind == "train" and e.key == key for e in facts.events):
                    keys.add(key)
            out[id(loop)] = keys
        return out

    def _in_train_mode(self, facts: ScopeFacts, call: Event, trained: dict[int, set[str]]) -> bool:
        """Whether the model of `call` is known to be in training mode at the call."""
        key = call.key
        assert key is not None
        known = False
        for event in facts.events:
            if event.order >= call.order:
                break
            if event.kind == "bind_module" and event.key == key and self._mode_dependent(event.node):
                known = True
            elif event.kind == "bind" and event.key == key:
                known = False  # rebound to something else
            elif event.kind == "train" and event.key == key:
                # switched to train mode inside the same no_grad region: on purpose (BatchNorm
                # statistics refreshed without gradients, as torch.optim.swa_utils.update_bn does)
                known = event.no_grad is None or event.no_grad is not call.no_grad
        if not known and not self._built_mode_free(facts, key):
            for loop in facts.innermost(facts.training_loops()):
                if facts.loop_end[id(loop)] < call.order and key in trained.get(id(loop), ()):
                    known = True
        return known and _last_mode(facts, key, call.order) in (None, "train")

    def _built_mode_free(self, facts: ScopeFacts, key: str) -> bool:
        """The scope builds `key` from layers that behave the same in both modes."""
        binds = [e for e in facts.events if e.kind == "bind_module" and e.key == key]
        return bool(binds) and not any(self._mode_dependent(e.node) for e in binds)

    def _mode_dependent(self, assign: cst.CSTNode) -> bool:
        """A Module built here may behave differently in eval mode (Dropout, BatchNorm, unknown layers)."""
        value = getattr(assign, "value", None)
        return isinstance(value, cst.Call) and mode_dependent(self.ctx, value)


def _why(key: str, reason: ModeReason | None) -> str:
    """What goes wrong in training mode, naming the layer when it is known."""
    if reason is None or not reason.known:
        return "Dropout stays random, BatchNorm updates its statistics"
    what = reason.what
    if what.endswith("branching on self.training"):
        return f"{key}{reason.where} takes the training branch of {what.split(' ', 1)[0]}"
    if "Norm" in what:
        return f"{reason.describe(key)} normalises with batch statistics and updates its running averages"
    return f"{reason.describe(key)} stays active"


_BUILDER_PREFIXES = ("build", "create", "make", "get", "load", "init", "new")


def _fresh_model(ctx: FileContext, bind: Event) -> bool:
    """A binding that makes a new Module (in training mode): a Module class, a model factory, or a
    builder function of the project (`build_model(cfg)`, `get_net()`, `load_model(path)`)."""
    if bind.kind == "bind_module":
        return True
    value = getattr(bind.node, "value", None)
    while (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
           and value.func.attr.value in MODULE_SELF_METHODS and isinstance(value.func.value, cst.Call)):
        value = value.func.value  # `Net().to(device)`
    if not isinstance(value, cst.Call):
        return False
    name = (dotted_name(value.func) or "").rsplit(".", 1)[-1]
    if name[:1].isupper() and not name.isupper() and ctx.expr_is_module_class(value.func) is not False:
        return True  # an instance of a class of another file or package, passed on as the model
    name = name.lower()
    return name.startswith(_BUILDER_PREFIXES) and ("model" in name or name.endswith("net"))


def _unswitched_no_grad_use(facts: ScopeFacts, param: str) -> cst.CSTNode | None:
    """The no_grad guard of the first call of `param` in a scope, when nothing before it switches
    the mode (of it, or of anything unknown) or rebinds it."""
    for event in facts.events:
        if event.key is not None and event.key != param and not keys_match(event.key, param):
            continue
        if event.kind in ("bind", "bind_module") or event.kind in _MODE_KINDS:
            return None
        if event.kind == "module_call" and event.key == param and event.no_grad is not None and event.via is None:
            return event.no_grad
    return None


def _is_top_level(ctx: FileContext, func: cst.FunctionDef) -> bool:
    return id(func) in top_level_functions(ctx)


def _param_names(func: cst.FunctionDef) -> list[str]:
    params = func.params
    return [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]


def _argument_for(func: cst.FunctionDef, is_method: bool, call: cst.CSTNode, key: str) -> str | None:
    """The caller's dotted name for `key` (a parameter of `func`, or `self.x`) at a call."""
    if not isinstance(call, cst.Call) or any(a.star for a in call.args):
        return None
    head, _, rest = key.partition(".")
    if head == "self":
        return key if isinstance(call.func, cst.Attribute) and dotted_name(call.func.value) == "self" else None
    params = func.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    if is_method:
        positional = positional[1:]
    value: cst.BaseExpression | None = None
    arg = keyword_arg(call, head)
    if arg is not None:
        value = arg.value
    elif head in positional:
        pos = positional_args(call)
        index = positional.index(head)
        value = pos[index].value if index < len(pos) else None
    name = dotted_name(value) if value is not None else None
    if name is None:
        return None
    return f"{name}.{rest}" if rest else name


def _has_framework_base(cls: cst.ClassDef, ctx: FileContext | None = None, depth: int = 0) -> bool:
    """A class with a base other than `object` or plain classes of this file (a framework's hook
    class, whose methods the framework calls in the mode it chooses)."""
    for arg in cls.bases:
        base = arg.value
        if isinstance(base, cst.Name) and base.value == "object":
            continue
        if (ctx is not None and isinstance(base, cst.Name) and base.value in ctx.local_classes
                and base.value not in ctx.imports and depth < 5):
            if _has_framework_base(ctx.local_classes[base.value], ctx, depth + 1):
                return True
            continue
        return True
    return False


class TrainModeNotRestored(_ScopeRule):
    """A training loop switches the model to eval mode and never back to train mode."""

    code = "TL302"
    name = "train-mode-not-restored"
    summary = "a training loop calls .eval() but never .train() again"
    valid = [
        _PRELUDE + "def fit(model, opt, loader, val):\n    for epoch in range(3):\n        model.train()\n"
        "        for x, y in loader:\n            opt.zero_grad()\n            model(x).sum().backward()\n"
        "            opt.step()\n        model.eval()\n        evaluate(model, val)\n",
    ]
    invalid = [
        Case(_PRELUDE + "def fit(model, opt, loader, val):\n    model.train()\n    for epoch in range(3):\n"
             "        for x, y in loader:\n            opt.zero_grad()\n            model(x).sum().backward()\n"
             "            opt.step()\n        model.eval()\n        evaluate(model, val)\n", line=7, col=5),
    ]

    def check_scope(self, scope: cst.Module | cst.FunctionDef, facts: ScopeFacts) -> None:
        reported: set[int] = set()
        optimized = optimized_models(self.ctx)
        for event in facts.events:
            if event.kind != "eval" or event.key is None or not event.loops:
                continue
            # the innermost loop around the switch that also holds an optimizer step
            loop = next((l for l in reversed(event.loops)
                         if any(not e.nested for e in facts.in_loop(l, ("step", "closure_step")))
                         and facts.in_loop(l, ("backward",))), None)
            if loop is None or id(loop) in reported:
                continue
            key = event.key
            inside = facts.in_loop(loop)
            if any(e.kind in ("train", "either") and (e.key is None or keys_match(e.key, key)) for e in inside):
                continue
            trained = key in optimized or any(
                e.kind == "module_call" and e.key == key and e.no_grad is None for e in inside) or any(
                e.kind == "train" and e.key is not None and keys_match(e.key, key) for e in facts.events) or any(
                e.kind == "call" and e.node is not event.node and _passes(e.node, key)
                and any(x.kind == "backward" and x.via is e.node for x in inside) for e in inside)
            if not trained:
                continue
            reported.add(id(loop))
            self.report(loop, f"this training loop switches {key} to eval mode and never back: every iteration "
                        f"after the first trains in eval mode; call {key}.train() at the start of each epoch")


def _passes(call: cst.CSTNode, key: str) -> bool:
    return isinstance(call, cst.Call) and any(dotted_name(a.value) == key for a in call.args)


class FunctionalDropoutIgnoresMode(Rule):
    """`F.dropout(x, p)` inside a Module: `training` defaults to True, so it ignores .eval()."""

    code = "TL303"
    name = "functional-dropout-ignores-mode"
    summary = "F.dropout inside a Module without training=self.training"
    fix_safety = "safe"
    valid = [
        _PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5, training=self.training)\n",
        _PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5, self.training)\n",
        _PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n        return F.alpha_dropout(x, 0.5)\n",
        _PRELUDE + "def noisy(x):\n    return F.dropout(x, 0.5)\n",
    ]
    invalid = [
        Case(_PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, p=0.5)\n",
             line=7, col=16,
             fixed=_PRELUDE + "class Net(nn.Module):\n    def forward(self, x):\n"
             "        return F.dropout(x, p=0.5, training=self.training)\n"),
    ]
    _FUNCTIONS = frozenset({f"torch.nn.functional.{n}" for n in ("dropout", "dropout1d", "dropout2d", "dropout3d")})

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.qualname(node.func) not in self._FUNCTIONS:
            return
        if (keyword_arg(node, "training") is not None or len(positional_args(node)) >= 3
                or has_star_kwargs(node) or any(a.star == "*" for a in node.args) or not node.args):
            return
        method = self.ctx.enclosing_method()
        if method is None or not self.ctx.is_module_class(method[0]):
            return
        if _runs_only_in_training(self.ctx.stack, node) or _p_zero_in_eval(node):
            return
        cls, func = method
        name = (dotted_name(node.func) or "F.dropout")
        fix = None
        params = func.params.params
        if params and params[0].name.value == "self" and self.ctx.enclosing_function() is func:
            fix = PendingFix("safe", (InsertAfter(node.args[-1].value, ", training=self.training"),),
                             "pass training=self.training")
        self.report(node, f"{name}() defaults to training=True, so dropout stays on after .eval(): pass "
                    "training=self.training (or use an nn.Dropout layer)", fix=fix,
                    context={"class": cls.name.value})


def _is_training_flag(expr: cst.BaseExpression) -> bool:
    return (isinstance(expr, cst.Attribute) and expr.attr.value == "training"
            and isinstance(expr.value, cst.Name) and expr.value.value == "self")


def _training_when(test: cst.BaseExpression, outcome: bool) -> bool:
    """Whether `test` evaluating to `outcome` proves `self.training` is true."""
    if _is_training_flag(test):
        return outcome
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _training_when(test.expression, not outcome)
    if isinstance(test, cst.BooleanOperation):
        # `a and b` true: both true; `a or b` false: both false
        if isinstance(test.operator, cst.And) and outcome:
            return _training_when(test.left, True) or _training_when(test.right, True)
        if isinstance(test.operator, cst.Or) and not outcome:
            return _training_when(test.left, False) or _training_when(test.right, False)
        return False
    if (isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and _is_training_flag(test.left)
            and isinstance(test.comparisons[0].comparator, cst.Name)
            and test.comparisons[0].comparator.value in ("True", "False")):
        op = test.comparisons[0].operator
        wanted = test.comparisons[0].comparator.value == "True"
        if isinstance(op, (cst.Is, cst.Equal)):
            return wanted if outcome else not wanted
        if isinstance(op, (cst.IsNot, cst.NotEqual)):
            return (not wanted) if outcome else wanted
    return False


def _exits(block: cst.BaseSuite) -> bool:
    """A block whose last statement leaves the function (`return` / `raise`)."""
    body = block.body
    last = body[-1] if isinstance(body, (list, tuple)) and body else None
    if isinstance(last, cst.SimpleStatementLine):
        return bool(last.body) and isinstance(last.body[-1], (cst.Return, cst.Raise))
    return isinstance(last, (cst.Return, cst.Raise))


def _runs_only_in_training(stack: list[cst.CSTNode], node: cst.CSTNode) -> bool:
    """Whether `node` runs only when `self.training` is true: inside `if self.training [and ...]:`,
    the true branch of `... if self.training else ...`, the `else` of `if not self.training:`, or
    after an early `if not self.training: return ...` in the same function."""
    path = [*stack, node]
    for at in range(len(path) - 2, -1, -1):
        parent, child = path[at], path[at + 1]
        if isinstance(parent, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            break
        if isinstance(parent, (cst.If, cst.IfExp)):
            if child is parent.body and _training_when(parent.test, True):
                return True
            if child is parent.orelse and _training_when(parent.test, False):
                return True
        elif (isinstance(parent, cst.BooleanOperation) and isinstance(parent.operator, cst.And)
              and child is parent.right and _training_when(parent.left, True)):
            return True
        elif isinstance(parent, (cst.IndentedBlock, cst.Module)):
            for stmt in parent.body:
                if stmt is child:
                    break
                if (isinstance(stmt, cst.If) and stmt.orelse is None and _training_when(stmt.test, False)
                        and _exits(stmt.body)):
                    return True
    return False


def _p_zero_in_eval(call: cst.Call) -> bool:
    """`F.dropout(x, p=self.p if self.training else 0.0)`: no dropout in eval mode."""
    arg = keyword_arg(call, "p")
    if arg is None:
        pos = positional_args(call)
        arg = pos[1] if len(pos) > 1 else None
    value = arg.value if arg is not None else None
    if not isinstance(value, cst.IfExp):
        return False
    zero = (value.orelse if _training_when(value.test, True)
            else value.body if _training_when(value.test, False) else None)
    return isinstance(zero, (cst.Integer, cst.Float)) and float(zero.value) == 0.0


def _backward_losses(facts: ScopeFacts, loop: cst.CSTNode) -> set[str]:
    """Names of the tensors a loop calls `.backward()` on: `loss` in `loss.backward()`,
    `(loss / accum).backward()`, `loss.mean().backward()`, `scaler.scale(loss).backward()`."""
    losses = set()
    for event in facts.in_loop(loop, ("backward",)):
        if event.via is not None:
            continue
        if event.key:
            losses.add(event.key)
        elif isinstance(event.node, cst.Call) and isinstance(event.node.func, cst.Attribute):
            losses.update(n.value for n in graph_operands(event.node.func.value))
    return losses


class MissingZeroGrad(_ScopeRule):
    """A training loop never clears gradients: they accumulate across batches."""

    code = "TL304"
    name = "missing-zero-grad"
    summary = "a training loop calls backward() and step() but never zero_grad()"
    valid = [
        _PRELUDE + "def fit(model, optimizer, loader):\n    for x, y in loader:\n        optimizer.zero_grad()\n"
        "        model(x).sum().backward()\n        optimizer.step()\n",
        _PRELUDE + "def fit(model, optimizer, loader, accum):\n    for i, (x, y) in enumerate(loader):\n"
        "        (model(x).sum() / accum).backward()\n        if (i + 1) % accum == 0:\n"
        "            optimizer.step()\n            optimizer.zero_grad()\n",
        _PRELUDE + "def fit(model, scheduler, loader):\n    for x in loader:\n        model(x).sum().backward()\n"
        "        scheduler.step()\n",
    ]
    invalid = [
        Case(_PRELUDE + "def fit(model, optimizer, loader):\n    optimizer.zero_grad()\n    for x, y in loader:\n"
             "        model(x).sum().backward()\n        optimizer.step()\n", line=7, col=5),
    ]

    def check_scope(self, scope: cst.Module | cst.FunctionDef, facts: ScopeFacts) -> None:
        for loop in facts.innermost(facts.training_loops()):
            if facts.in_loop(loop, ("clear", "closure_step")):
                continue
            # an optimizer built inside the loop steps fresh tensors each time (latent optimisation)
            stepped = {dotted_name(e.node.func.value) for e in facts.in_loop(loop, ("step",))
                       if e.via is None and isinstance(e.node, cst.Call) and isinstance(e.node.func, cst.Attribute)}
            if any(e.key in stepped for e in facts.in_loop(loop, ("bind", "bind_module"))):
                continue
            self.report(loop, "this training loop calls .backward() and an optimizer step but never clears the "
                        "gradients, so they accumulate across batches: call optimizer.zero_grad() every step")


class LoopVariableModuleReplace(Rule):
    """`for m in model.modules(): m = nn.X()` rebinds the loop variable; the model is unchanged."""

    code = "TL305"
    name = "loop-variable-module-replace"
    summary = "a new Module is assigned to the loop variable of a model.modules() loop"
    valid = [
        _PRELUDE + "def swap(model):\n    for name, m in model.named_children():\n        if isinstance(m, nn.ReLU):\n"
        "            setattr(model, name, nn.LeakyReLU())\n",
        _PRELUDE + "def init(model):\n    for m in model.modules():\n        if isinstance(m, nn.Linear):\n"
        "            m.weight.data = torch.zeros_like(m.weight)\n",
    ]
    invalid = [
        Case(_PRELUDE + "def swap(model):\n    for m in model.modules():\n        if isinstance(m, nn.ReLU):\n"
             "            m = nn.LeakyReLU()\n", line=8, col=13),
    ]

    def visit_For(self, node: cst.For) -> None:
        var = module_loop_var(self.ctx, node)
        if var is None:
            return
        assign: cst.Assign | None = None
        inside: set[int] = set()
        body = descendants(node.body, skip_scopes=True)
        for at, inner in enumerate(body):
            if (isinstance(inner, cst.Assign) and len(inner.targets) == 1
                    and isinstance(inner.targets[0].target, cst.Name) and inner.targets[0].target.value == var
                    and is_module_constructor(self.ctx, inner.value)):
                assign = inner
                inside = {id(n) for n in descendants(inner)}
                break
        if assign is None:
            return
        # branches that never run after the assignment (`else:` of the `if` that holds it)
        for branch in find_all(node.body, cst.If, skip_scopes=True):
            if branch.orelse is not None and any(n is assign for n in descendants(branch.body, skip_scopes=True)):
                inside.update(id(n) for n in descendants(branch.orelse))
        for inner in body[at + 1:]:
            if id(inner) not in inside and isinstance(inner, cst.Name) and inner.value == var:
                return  # the new module is used afterwards (setattr, parent[name] = m, ...)
        self.report(assign, f"assigning to the loop variable {var} replaces nothing in the model: use "
                    f"named_modules() and setattr(parent, name, new) on the parent module")


class TrainingFlagAssigned(Rule):
    """`model.training = False` sets one flag: children keep their mode."""

    code = "TL306"
    name = "training-flag-assigned"
    summary = "model.training is assigned directly instead of calling .train()/.eval()"
    fix_safety = "safe"
    valid = [
        _PRELUDE + "def freeze(model, flag):\n    for m in model.modules():\n        m.training = flag\n",
        _PRELUDE + "class Net(nn.Module):\n    def train(self, mode=True):\n        self.training = mode\n        return self\n",
        _PRELUDE + "def run(args):\n    args.training = False\n",
    ]
    invalid = [
        Case(_PRELUDE + "def evaluate(model):\n    model.training = False\n", line=6, col=5,
             fixed=_PRELUDE + "def evaluate(model):\n    model.eval()\n", unsafe=True),
        Case(_PRELUDE + "def fit(model: nn.Module, flag):\n    model.training = flag\n", line=6,
             fixed=_PRELUDE + "def fit(model: nn.Module, flag):\n    model.train(flag)\n"),
    ]

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1:
            return
        target = node.targets[0].target
        if not (isinstance(target, cst.Attribute) and target.attr.value == "training"):
            return
        receiver = dotted_name(target.value)
        if receiver is None or receiver == "self":
            return  # a Module setting its own flag (its own train() override)
        if not uses_torch(self.ctx):
            return
        root = receiver.split(".")[0]
        for ancestor in self.ctx.stack:
            if (isinstance(ancestor, cst.For) and root in _target_names(ancestor.target)
                    and module_loop_var(self.ctx, ancestor, ("children", "named_children")) != root):
                return  # every module of a modules() walk (or a saved list of them) is set one by one on purpose
        if self._is_module(receiver) is not True:
            return
        value = node.value
        if isinstance(value, cst.Name) and value.value == "True":
            text = f"{receiver}.train()"
        elif isinstance(value, cst.Name) and value.value == "False":
            text = f"{receiver}.eval()"
        else:
            text = f"{receiver}.train({self.ctx.code_for(value).strip()})"
        # the rewrite calls a Module method: safe only when the receiver is known to be a Module, not
        # guessed from its name or its use (`cfg.model.training = False` on a config would raise)
        safety = "safe" if self._is_module(receiver, strict=True) is True else "unsafe"
        self.report(node, f"assigning {receiver}.training changes only this module's flag; its children keep their "
                    f"mode: call {text}", fix=PendingFix(safety, (Replace(node, text),), f"call {text}"))

    def _leaf_layer(self, call: cst.Call) -> bool:
        """A torch layer without child modules (BatchNorm, Linear, ...)."""
        name = self.ctx.torch_nn_name(call.func)
        return name is not None and name not in _WITH_CHILDREN

    def _is_module(self, receiver: str, strict: bool = False) -> bool | None:
        """True: a Module that may have children; None: a leaf layer (no children to miss); False: unknown.
        `strict`: only evidence that makes it certain (constructors, annotations, .children() loops),
        not the receiver's name or the methods called on it."""
        func = self.ctx.enclosing_function()
        scope: cst.CSTNode = func if func is not None else self.ctx.module
        for node in descendants(scope, skip_scopes=True):
            if (isinstance(node, cst.Assign) and any(dotted_name(t.target) == receiver for t in node.targets)
                    and isinstance(node.value, cst.Call) and self._leaf_layer(node.value)):
                return None  # a torch leaf layer: copying a flag onto it is harmless
        if _model_like(receiver) and not strict:
            return True
        parts = receiver.split(".")
        if parts[0] == "self" and len(parts) == 2:
            cls = self.ctx.enclosing_class()
            if cls is not None:
                values = self_attr_values(self.ctx, cls).get(parts[1], [])
                if values and all(isinstance(v, cst.Call) and self._leaf_layer(v) for v in values):
                    return None
                return bool(values) and all(is_module_constructor(self.ctx, v) for v in values)
            return False
        for ancestor in self.ctx.stack:
            if isinstance(ancestor, cst.For) and module_loop_var(self.ctx, ancestor) == parts[0]:
                return True  # a child from .children(): its own children keep their mode
        if func is not None:
            for param in func.params.params:
                if param.name.value == receiver and param.annotation is not None:
                    if self.ctx.expr_is_module_class(param.annotation.annotation) is True:
                        return True
        for node in descendants(scope, skip_scopes=True):
            if (not strict and isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                    and node.func.attr.value in ("eval", "parameters", "named_parameters", "modules", "children",
                                                 "state_dict", "load_state_dict", "zero_grad")
                    and dotted_name(node.func.value) == receiver):
                return True
            if (isinstance(node, cst.Assign) and is_module_constructor(self.ctx, node.value)
                    and any(dotted_name(t.target) == receiver for t in node.targets)):
                return True
        return False


_WITH_CHILDREN = frozenset({
    "Sequential", "ModuleList", "ModuleDict", "Transformer", "TransformerEncoder", "TransformerDecoder",
    "TransformerEncoderLayer", "TransformerDecoderLayer", "MultiheadAttention", "Module",
})


def _target_names(target: cst.BaseExpression) -> set[str]:
    return {n.value for n in [target, *descendants(target)] if isinstance(n, cst.Name)}


class LossAccumulatedWithGraph(_ScopeRule):
    """`total += loss` / `losses.append(loss)` keeps every iteration's autograd graph alive."""

    code = "TL307"
    name = "loss-accumulated-with-graph"
    summary = "a running total keeps the loss tensor (and its graph) instead of loss.item()"
    fix_safety = "safe"
    valid = [
        _PRELUDE + "def fit(model, optimizer, loader):\n    total = 0.0\n    for x, y in loader:\n"
        "        optimizer.zero_grad()\n        loss = model(x).sum()\n        loss.backward()\n"
        "        optimizer.step()\n        total += loss.item()\n",
        _PRELUDE + "def fit(model, optimizer, loader):\n    for x, y in loader:\n        optimizer.zero_grad()\n"
        "        total = 0\n        for part in x:\n            loss = model(part).sum()\n            total += loss\n"
        "        total.backward()\n        optimizer.step()\n",
    ]
    invalid = [
        Case(_PRELUDE + "def fit(model, optimizer, loader):\n    total = 0.0\n    for x, y in loader:\n"
             "        optimizer.zero_grad()\n        loss = model(x).sum()\n        loss.backward()\n"
             "        optimizer.step()\n        total += loss\n", line=12, col=9,
             fixed=_PRELUDE + "def fit(model, optimizer, loader):\n    total = 0.0\n    for x, y in loader:\n"
             "        optimizer.zero_grad()\n        loss = model(x).sum()\n        loss.backward()\n"
             "        optimizer.step()\n        total += loss.item()\n"),
        Case(_PRELUDE + "def fit(model, optimizer, loader):\n    losses = []\n    for x, y in loader:\n"
             "        optimizer.zero_grad()\n        loss = model(x).sum()\n        loss.backward()\n"
             "        optimizer.step()\n        losses.append(loss)\n", line=12,
             fixed=_PRELUDE + "def fit(model, optimizer, loader):\n    losses = []\n    for x, y in loader:\n"
             "        optimizer.zero_grad()\n        loss = model(x).sum()\n        loss.backward()\n"
             "        optimizer.step()\n        losses.append(loss.detach())\n"),
    ]
    _DETACHING = ("item", "detach", "tolist", "cpu", "numpy", "float")

    def check_scope(self, scope: cst.Module | cst.FunctionDef, facts: ScopeFacts) -> None:
        reported: set[int] = set()
        # names that flow into a backward() call: accumulating them is the point (summed losses)
        graph_names = {n.value for e in facts.events if e.kind == "backward" and e.via is None
                       for n in descendants(e.node) if isinstance(n, cst.Name)}
        for loop in facts.training_loops():
            losses = _backward_losses(facts, loop)
            if not losses:
                continue
            detached = self._rebound_detached(loop, losses)
            for event in facts.in_loop(loop, ("accumulate",)):
                if (event.via is not None or event.value not in losses or event.value in detached
                        or id(event.node) in reported or event.key is None or event.no_grad is not None
                        or event.key.split(".")[0] in graph_names or event.key in graph_names
                        or self._reset_in(facts, loop, event)):
                    continue
                # the same name in a validation loop nested in the epoch loop is another tensor
                if event.value not in _backward_losses(facts, event.loops[-1]):
                    continue
                reported.add(id(event.node))
                self._report(scope, event)

    @staticmethod
    def _reset_in(facts: ScopeFacts, loop: cst.CSTNode, event: Event) -> bool:
        """The total (or list) is bound afresh inside the loop (`total = 0`, `losses = []`): it does not
        outlive the iteration, and neither do the graphs it holds."""
        key = event.key
        for bind in facts.in_loop(loop, ("bind", "bind_module")):
            if bind.key != key or bind.node is event.node or bind.order > event.order:
                continue
            value = getattr(bind.node, "value", None)
            if value is not None and not any(isinstance(n, cst.Name) and n.value == key.split(".")[0]
                                             for n in [value, *descendants(value)]):
                return True
        return False

    def _rebound_detached(self, loop: cst.CSTNode, losses: set[str]) -> set[str]:
        """Loss names the loop rebinds to a Python number or detached tensor (`loss = loss.item()`)."""
        out = set()
        for node in descendants(loop, skip_scopes=True):
            if isinstance(node, cst.Assign) and any(
                    isinstance(t.target, cst.Name) and t.target.value in losses for t in node.targets):
                for inner in [node.value, *descendants(node.value)]:
                    if isinstance(inner, cst.Call) and (
                            (isinstance(inner.func, cst.Attribute) and inner.func.attr.value in self._DETACHING)
                            or (isinstance(inner.func, cst.Name) and inner.func.value in ("float", "int"))):
                        out.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
        return out

    def _report(self, scope: cst.CSTNode, event: Event) -> None:
        node = event.node
        total = event.key
        if isinstance(node, (cst.AugAssign, cst.Assign)):
            # keep behaviour: a total later used as a tensor (or handed back to a caller) stays a tensor
            as_tensor = any(
                (isinstance(n, cst.Attribute) and dotted_name(n.value) == total)
                or (isinstance(n, cst.Return) and n.value is not None and any(
                    dotted_name(m) == total for m in [n.value, *descendants(n.value)]))
                for n in descendants(scope, skip_scopes=True))
            method = "detach" if as_tensor else "item"
            if isinstance(node, cst.AugAssign):
                operand = node.value
                shown = f"{total} += {self.ctx.code_for(operand).strip()}"
            else:  # total = total + loss
                assert isinstance(node.value, cst.BinaryOperation)
                left, right = node.value.left, node.value.right
                operand = left if dotted_name(right) == total else right
                shown = f"{total} = {self.ctx.code_for(node.value).strip()}"
            fixed = self._detached(operand, method)
            fix = PendingFix("safe", (Replace(operand, fixed),), f"add {fixed}")
            self.report(node, f"{shown} keeps every iteration's autograd graph alive (memory grows each "
                        f"step): add {fixed}", fix=fix)
        else:
            assert isinstance(node, cst.Call)
            operand = node.args[0].value
            fixed = self._detached(operand, "detach")
            shown = self.ctx.code_for(operand).strip()
            fix = PendingFix("safe", (Replace(operand, fixed),), f"append {fixed}")
            self.report(node, f"{total}.append({shown}) keeps every iteration's autograd graph alive (memory grows "
                        f"each step): append {fixed} (or {self._detached(operand, 'item')})", fix=fix)

    def _detached(self, operand: cst.BaseExpression, method: str) -> str:
        text = self.ctx.code_for(operand).strip()
        if not isinstance(operand, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
            text = f"({text})"
        return f"{text}.{method}()"
