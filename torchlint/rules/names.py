"""TL109: names that do not exist in torch (`nn.Conv`, `F.gelu_`, `self.add_moudle`)."""

from __future__ import annotations

import re

import difflib
from functools import lru_cache

import libcst as cst

from torchlint.context import is_self_attr
from torchlint.rule import Case, PendingFix, Replace, Rule
from torchlint.rules.apis import torch_apis
from torchlint.rules.registration import edit_distance

# Submodules of torch.nn that `dir(torch.nn)` may not list until imported.
_NN_SUBMODULES = frozenset(
    {"attention", "backends", "common_types", "cpp", "functional", "grad", "init", "intrinsic",
     "modules", "parallel", "parameter", "qat", "quantizable", "quantized", "utils"}
)


def closest(name: str, candidates: frozenset[str], limit: int = 3) -> list[str]:
    """Real names close to a wrong one, best first; ties prefer the 2d variants (nn.Conv -> Conv2d)."""
    scored = []
    for candidate in candidates:
        if candidate.startswith("_"):
            continue
        ratio = difflib.SequenceMatcher(None, name.lower(), candidate.lower()).ratio()
        if ratio >= 0.75 or (candidate.lower().startswith(name.lower()) and len(name) >= 3):
            scored.append((-ratio, "2d" not in candidate, candidate))
    return [c for _, _, c in sorted(scored)[:limit]]


class UnknownTorchAttribute(Rule):
    """nn.X / F.X that torch does not have, or a misspelt nn.Module method."""

    code = "TL109"
    name = "unknown-torch-attribute"
    summary = "nn.X / F.X or a Module method that does not exist in torch (typo)"
    fix_safety = "safe"
    valid = [
        "import torch.nn as nn\nlayer = nn.Conv2d(1, 6, 3)\n",
        "import torch.nn.functional as F\ny = F.gelu(x)\n",
        "from torch import nn\nnn.init.zeros_(w)\nnn.utils.clip_grad_norm_(p, 1.0)\n",
        "import numpy as nn\nnn.Conv\n",
        "from torch import nn\ndef styles(latent):\n    nn = noise(latent)\n    return nn.repeat(1, 2)\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n    def reset(self):\n        self.fc.reset_parameters()\n        self.my_helper()\n    def my_helper(self):\n        pass\n",
    ]
    invalid = [
        Case(
            "import torch.nn as nn\nlayer = nn.Conv(1, 6, 3)\n",
            line=2, col=12,
        ),
        Case(
            "import torch.nn as nn\nseq = nn.Sequential()\nseq.add_moudle('fc', nn.Linear(2, 2))\n",
            line=3,
            fixed="import torch.nn as nn\nseq = nn.Sequential()\nseq.add_module('fc', nn.Linear(2, 2))\n",
        ),
        Case(
            "import torch\nx = torch.nn.functional.rleu(y)\n",
            line=2,
            fixed="import torch\nx = torch.nn.functional.relu(y)\n",
        ),
        Case(
            "import torch.nn as nn\nclass M(nn.Module):\n    def reset(self):\n        self.zero_grads()\n",
            line=4,
            fixed="import torch.nn as nn\nclass M(nn.Module):\n    def reset(self):\n        self.zero_grad()\n",
        ),
    ]

    def visit_Attribute(self, node: cst.Attribute) -> None:
        ctx = self.ctx
        owner = node.value
        # cheap exits first: only `<import of torch.nn(.functional)>.X` and `torch.nn(.functional).X`
        if isinstance(owner, cst.Name):
            if owner.value not in self._nn_heads():
                return
        elif not isinstance(owner, cst.Attribute) or owner.attr.value not in ("nn", "functional"):
            return
        qual = ctx.qualname(owner)
        if qual == "torch.nn":
            real, label = ctx.names.nn | _NN_SUBMODULES, "nn"
        elif qual == "torch.nn.functional":
            real, label = ctx.names.functional, "F"
        else:
            return
        head = owner
        while isinstance(head, cst.Attribute):
            head = head.value
        if isinstance(head, cst.Name) and self._rebound_locally(head.value):
            return  # `nn = noise(...)` in this function: not the imported torch.nn
        attr = node.attr.value
        if attr in real or attr.startswith("__") or attr in self._probed_names():
            return
        if f"{qual}.{attr}" in torch_apis().removed:
            return  # a name that existed and was removed is TL501's, with its replacement
        prefix = ctx.code_for(owner)
        # a name that differs only in case (`nn.Relu`) has one obvious correction
        same = [m for m in real if m.lower() == attr.lower() and not m.startswith("_")]
        matches = same if len(same) == 1 else closest(attr, real)
        hint = f"; did you mean `{prefix}.{matches[0]}`?" if matches else ""
        fix = None
        if len(matches) == 1:
            fix = PendingFix("safe", (Replace(node.attr, matches[0]),), f"replace with {matches[0]}")
        self.report(
            node.attr,
            f"`{prefix}.{attr}` does not exist in torch {ctx.names.version} ({'torch.nn' if label == 'nn' else 'torch.nn.functional'}){hint}",
            fix=fix,
        )

    def _nn_heads(self) -> frozenset[str]:
        """Local names an import binds to torch.nn or torch.nn.functional (`nn`, `F`)."""
        heads = self.__dict__.get("_heads")
        if heads is None:
            heads = self._heads = frozenset(local for local, qual in self.ctx.imports.items()
                                            if qual in ("torch.nn", "torch.nn.functional"))
        return heads

    def _rebound_locally(self, name: str) -> bool:
        """Whether the enclosing function binds `name` itself (a parameter, an assignment, a loop
        or `with` target), shadowing the module-level import."""
        maybe = self.__dict__.setdefault("_may_rebind", {})
        if name not in maybe:
            # cheap text test first: most files never bind `nn`/`F` to anything but the import
            # (the name first, for a fast literal scan; then no `.` or word character before it)
            pattern = re.compile(rf"{re.escape(name)}\s*(?:[:,)]|=(?!=)|\bin\b)")
            source = self.ctx.source
            found, pos = False, 0
            while not found and (m := pattern.search(source, pos)) is not None:
                start = m.start()
                before = source[start - 1] if start else " "
                found = before != "." and not (before.isalnum() or before == "_")
                pos = start + 1
            maybe[name] = found
        if not maybe[name]:
            return False
        func = self.ctx.enclosing_function()
        if func is None:
            return False
        cache: dict[tuple[int, str], bool] = self.__dict__.setdefault("_rebound", {})
        key = (id(func), name)
        if key not in cache:
            from torchlint.walk import descendants

            params = func.params
            bound = any(p.name.value == name for p in [*params.params, *params.kwonly_params, *params.posonly_params])
            for node in descendants(func, skip_scopes=True):
                if bound:
                    break
                targets: list[cst.BaseExpression] = []
                if isinstance(node, cst.Assign):
                    targets = [t.target for t in node.targets]
                elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
                    targets = [node.target]
                elif isinstance(node, cst.For):
                    targets = [node.target]
                elif isinstance(node, cst.WithItem) and node.asname is not None:
                    targets = [node.asname.name]
                for target in targets:
                    elements = [target] + [e.value for e in getattr(target, "elements", [])]
                    if any(isinstance(t, cst.Name) and t.value == name for t in elements):
                        bound = True
            cache[key] = bound
        return cache[key]

    def _probed_names(self) -> frozenset[str]:
        """Names the file tests with `hasattr(x, "name")`: code written for other torch
        versions (`if hasattr(F, "scaled_dot_product_attention"): ...`)."""
        cached = getattr(self, "_probed", None)
        if cached is None:
            from torchlint.walk import find_all

            found = set()
            for node in find_all(self.ctx.module, cst.Call):
                if (isinstance(node.func, cst.Name)
                        and node.func.value == "hasattr" and len(node.args) >= 2
                        and isinstance(node.args[1].value, cst.SimpleString)):
                    value = node.args[1].value.evaluated_value
                    if isinstance(value, str):
                        found.add(value)
            cached = self._probed = frozenset(found)
        return cached

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or not isinstance(func.value, cst.Name):
            return
        attr = func.attr.value
        module_attrs = self.ctx.names.module_attributes
        if attr in module_attrs or attr.startswith("_") or len(attr) < 5:
            return
        # the close Module method names first: most method names are close to none (cached
        # across files), and the receiver's analysis is the expensive part
        best = _close_module_methods(attr, module_attrs)
        if not best or not self._is_plain_module(func.value.value, attr):
            return
        fix = None
        if len(best) == 1:
            fix = PendingFix("safe", (Replace(func.attr, best[0]),), f"replace with {best[0]}")
        self.report(
            func.attr,
            f"nn.Module has no method `{attr}`; did you mean `{best[0]}`?",
            fix=fix,
        )

    def _is_plain_module(self, receiver: str, attr: str) -> bool:
        """The receiver is `self` in a Module class whose whole chain is known and lacks `attr`,
        or a local name bound to a torch.nn layer/container constructor."""
        ctx = self.ctx
        found = ctx.enclosing_method()
        if found is not None and receiver == "self":
            return self._class_lacks(found[0], attr)
        function = ctx.enclosing_function() or ctx.module
        bindings = self.__dict__.setdefault("_bindings_by_scope", {})
        table = bindings.get(id(function))
        if table is None:
            table = bindings[id(function)] = _bindings(function)
        values = table.get(receiver, [])
        binding = values[0] if len(values) == 1 else None
        if binding is None or not isinstance(binding, cst.Call):
            return False
        func = binding.func
        if isinstance(func, cst.Name) and func.value in ctx.local_classes and func.value not in ctx.imports:
            return self._class_lacks(ctx.local_classes[func.value], attr)  # `model = Net()`, Net of this file
        layer = ctx.torch_nn_name(func)
        return layer is not None and layer in ctx.names.nn_module_classes

    def _class_lacks(self, cls: cst.ClassDef, attr: str, depth: int = 0) -> bool:
        """A Module class of this file whose whole chain (classes of this file down to nn.Module
        itself) neither defines nor sets `attr`."""
        ctx = self.ctx
        if depth > 20 or not ctx.is_module_class(cls) or ctx.class_defines(cls, attr) is not False:
            return False
        if "__getattr__" in ctx.class_facts(cls).methods:
            return False  # forwards unknown names (wrappers around another object)
        # the name must not be an attribute the class sets anywhere
        cache = self.__dict__.setdefault("_attrs_by_class", {})
        attrs = cache.get(id(cls))
        if attrs is None:
            attrs = cache[id(cls)] = _attributes_set(cls)
        if attr in attrs:
            return False
        for base in cls.bases:
            if base.keyword is not None or base.star:
                continue
            value = base.value
            if ctx.qualname(value) == "torch.nn.Module":
                continue
            # bases other than nn.Module itself have methods of their own we do not list,
            # unless they are classes of this file whose chain we can read
            if not (isinstance(value, cst.Name) and value.value in ctx.local_classes and value.value not in ctx.imports):
                return False
            local = ctx.local_classes[value.value]
            if local is cls or not self._class_lacks(local, attr, depth + 1):
                return False
        return True


@lru_cache(maxsize=4096)
def _close_module_methods(attr: str, module_attrs: frozenset[str]) -> tuple[str, ...]:
    """The public nn.Module attributes nearest to `attr` (edit distance at most 2), best first."""
    # two edits touch at most two of three pieces of `attr`: a name within distance 2 holds
    # the third unchanged (a substring test in C before the edit distance in Python)
    third = max(1, len(attr) // 3)
    pieces = (attr[:third], attr[third:2 * third], attr[2 * third:])
    size = len(attr)
    candidates = [m for m in module_attrs
                  if abs(len(m) - size) <= 2 and not m.startswith("_") and any(p in m for p in pieces)
                  and edit_distance(attr, m) <= 2]
    if not candidates:
        return ()
    candidates.sort(key=lambda m: (edit_distance(attr, m), m))
    return tuple(m for m in candidates if edit_distance(attr, m) == edit_distance(attr, candidates[0]))


def _attributes_set(cls: cst.ClassDef) -> set[str]:
    from torchlint.walk import descendants

    out = set()
    for node in descendants(cls.body):
        targets: list[cst.BaseExpression] = []
        if isinstance(node, cst.AssignTarget):
            targets = [node.target]
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
            targets = [node.target]
        for target in targets:
            for sub in [target, *descendants(target)]:
                attr = is_self_attr(sub) if isinstance(sub, cst.Attribute) else None
                if attr:
                    out.add(attr)
        if isinstance(node, cst.FunctionDef):
            out.add(node.name.value)
    # class-level names (`zero_grads = reset_grads`, `forward_hook: Callable`)
    for stmt in cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ():
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets = ([t.target for t in small.targets] if isinstance(small, cst.Assign)
                           else [small.target] if isinstance(small, cst.AnnAssign) else [])
                out.update(t.value for t in targets if isinstance(t, cst.Name))
    return out


def _bindings(scope: cst.CSTNode) -> dict[str, list[cst.BaseExpression]]:
    """name -> the values of every plain `name = ...` assignment in a scope (one pass)."""
    from torchlint.context import small_statements, statement_body

    stmts = list(scope.body) if isinstance(scope, cst.Module) else statement_body(scope)
    out: dict[str, list[cst.BaseExpression]] = {}
    for small in small_statements(stmts):
        if isinstance(small, cst.Assign):
            for target in small.targets:
                if isinstance(target.target, cst.Name):
                    out.setdefault(target.target.value, []).append(small.value)
    return out
