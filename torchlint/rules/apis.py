"""TL501-TL504: removed, deprecated and non-public torch APIs, and the `require_grad` typo.

The facts come from `data/torch_apis.json` (generated from torch by
`scripts/gen_torch_apis.py`; the linter never imports torch). Every rule here hooks only
`Call`, `ImportFrom`, `Import`, `Decorator` or `Assign`, and returns at once in a file that
imports nothing from torch or functorch.

They follow `torch-version` in `[tool.torchlint]`: a name removed after the targeted version
is reported as deprecated (TL502), one deprecated after it is not reported, nor is a
replacement or public alias that the targeted version does not have yet.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

import libcst as cst

from torchlint.context import dotted_name, imports_package
from torchlint.rule import Case, FixOp, InsertAfter, InsertBefore, PendingFix, Replace, Rule


class TorchApis(NamedTuple):
    version: str
    removed: dict[str, dict[str, Any]]
    deprecated: dict[str, dict[str, Any]]
    nonpublic: dict[str, dict[str, Any]]
    removed_modules: tuple[str, ...]


@lru_cache(maxsize=1)
def torch_apis() -> TorchApis:
    """Load the generated table once per process."""
    raw = json.loads(resources.files("torchlint").joinpath("data/torch_apis.json").read_text("utf-8"))
    removed = raw["removed"]
    modules = tuple(name for name, facts in removed.items() if facts.get("module"))
    return TorchApis(raw["torch_version"], removed, raw["deprecated"], raw["nonpublic"], modules)


def version_key(version: str | None) -> tuple[int, int]:
    if not version:
        return (0, 0)
    parts = version.split(".")
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)


def target_version(ctx: Any) -> tuple[int, int]:
    """The torch version the project targets (`torch-version`; default: the name table's)."""
    return version_key(ctx.options.get("torch_version") or torch_apis().version)


_ROOTS = ("torch", "functorch")


class _ApiRule(Rule):
    """What TL501-TL503 share: the table, the targeted version, qualified names."""

    def _active(self) -> bool:
        """Whether the file imports torch or functorch at all (cheap, once per file)."""
        return bool(self._heads())

    def _heads(self) -> frozenset[str]:
        """Local names bound by an import of torch or functorch (`torch`, `nn`, `F`, `symeig`):
        only calls through them can name a torch API. Empty when the file imports neither."""
        cached = self.__dict__.get("_torch_heads")
        if cached is None:
            shared = self.ctx.__dict__.setdefault("_tl5_facts", {})  # one answer for TL501-TL503
            cached = shared.get("heads")
            if cached is None:
                cached = frozenset()
                if imports_package(self.ctx, _ROOTS):
                    cached = frozenset(local for local, qual in self.ctx.imports.items()
                                       if qual.split(".", 1)[0] in _ROOTS)
                shared["heads"] = cached
            self._torch_heads = cached
        return cached

    @property
    def target(self) -> tuple[int, int]:
        return target_version(self.ctx)

    def has(self, version: str | None) -> bool:
        """The targeted torch has what came in `version` (None: always)."""
        return version is None or version_key(version) <= self.target

    def call_qualname(self, call: cst.Call) -> str | None:
        """The torch API a call names (None: not a torch API, or unknowable); one answer per
        call for all the TL5xx rules."""
        memo = self.ctx.__dict__.setdefault("_tl5_facts", {}).setdefault("quals", {})
        key = id(call)
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        found = memo[key] = self._call_qualname(call)
        return found

    def _call_qualname(self, call: cst.Call) -> str | None:
        func = call.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return None
        head = func
        while isinstance(head, cst.Attribute):
            head = head.value
        if not isinstance(head, cst.Name) or head.value not in self._heads():
            return None
        if head.value in self._compat_names():
            return None  # bound by a version-dependent import: which API it names is unknown
        qual = self.ctx.qualname(func)
        if qual is None or qual.split(".", 1)[0] not in _ROOTS:
            return None
        return qual

    def _compat_names(self) -> frozenset[str]:
        """Names imported inside a `try` that falls back on ImportError, or under an `if` that
        tests a version or `hasattr` (`try: from torch import vmap / except ImportError:
        from functorch import vmap`): each binding names a different API."""
        cached = self.ctx.__dict__.setdefault("_tl5_facts", {}).get("compat")
        if cached is None:
            from torchlint.context import iter_statements, statement_body
            from torchlint.walk import find_all

            found: set[str] = set()
            for stmt in find_all(self.ctx.module, (cst.Try, cst.If)):
                inner: list[cst.BaseStatement] = []
                if isinstance(stmt, cst.Try) and any(_catches_import_error(h) for h in stmt.handlers):
                    inner = statement_body(stmt) + [s for h in stmt.handlers for s in statement_body(h)]
                    if stmt.orelse is not None:
                        inner += statement_body(stmt.orelse)
                elif isinstance(stmt, cst.If):
                    if _tests_version(stmt.test):
                        inner = list(statement_body(stmt))
                        orelse = stmt.orelse
                        while orelse is not None:
                            inner += statement_body(orelse)
                            orelse = orelse.orelse if isinstance(orelse, cst.If) else None
                for sub in iter_statements(inner, into_defs=False):
                    if not isinstance(sub, cst.SimpleStatementLine):
                        continue
                    for small in sub.body:
                        if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                            for alias in small.names:
                                bound = alias.asname.name if alias.asname is not None else alias.name
                                name = dotted_name(bound) if isinstance(bound, (cst.Name, cst.Attribute)) else None
                                if name:
                                    found.add(name.split(".", 1)[0])
            cached = self.ctx.__dict__["_tl5_facts"]["compat"] = frozenset(found - {"torch"})
        return cached

    def guarded(self) -> bool:
        """The current node sits where code written for several torch versions picks one:
        an `except` handler (the fallback import) or an `if` that tests a version or `hasattr`."""
        for node in self.ctx.stack:
            if isinstance(node, cst.ExceptHandler):
                return True
            if isinstance(node, cst.Try) and any(_catches_import_error(h) for h in node.handlers):
                return True
            if isinstance(node, (cst.If, cst.IfExp)) and _tests_version(node.test):
                return True
        return False

    def spell(self, qualname: str, prefer: cst.BaseExpression | None = None) -> str | None:
        """How this file can write `qualname` with the names it imports (`torch.linalg.qr`,
        or `nn.utils.parametrizations.weight_norm` after `from torch import nn`)."""
        imports = self.ctx.imports
        candidates = []
        if prefer is not None:
            head = dotted_name(prefer)
            if head is not None:
                candidates.append(head.split(".", 1)[0])
        candidates.extend(sorted(imports, key=lambda name: -len(imports[name])))
        for local in candidates:
            bound = imports.get(local)
            if bound is None or "." in local:
                continue
            if qualname == bound or qualname.startswith(bound + "."):
                return local + qualname[len(bound):]
        return None

    def import_names(self, node: cst.ImportFrom) -> list[tuple[cst.ImportAlias, str]]:
        """(alias, qualified name) for each name of an absolute `from torch... import ...`."""
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return []
        module = dotted_name(node.module)
        if module is None or module.split(".", 1)[0] not in _ROOTS:
            return []
        out = []
        for alias in node.names:
            name = dotted_name(alias.name)
            if name is not None:
                out.append((alias, f"{module}.{name}"))
        return out


class RemovedTorchApi(_ApiRule):
    """A torch API that existed and was removed: the call fails on the torch in use."""

    code = "TL501"
    name = "removed-torch-api"
    summary = "a torch API that was removed (`torch.solve`, `torch.symeig`, `torch._six`); the message gives the replacement"
    fix_safety = None
    valid = [
        "import torch\nx = torch.linalg.solve(A, B)\n",
        "import torch\nw = torch.linalg.eigvalsh(A, UPLO='U')\n",
        "import torch\nX = torch.fft.rfft(x)\n",
        "import numpy as torch\nx = torch.solve(A, b)\n",
    ]
    invalid = [
        Case("import torch\nX = torch.solve(B, A).solution\n", line=2, col=5),
        Case("from torch import symeig\n", line=1, col=19),
        Case("import torch\nspectrum = torch.rfft(x, 2)\n", line=2),
        Case("from torch._six import inf\n", line=1),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not self._active():
            return
        qual = self.call_qualname(node)
        if qual is None:
            return
        facts = torch_apis().removed.get(qual) or self._in_removed_module(qual)
        if facts is not None and not facts.get("module"):
            self._report(node.func, qual, facts)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if not self._active():
            return
        apis = torch_apis()
        for alias, qual in self.import_names(node):
            module = qual.rsplit(".", 1)[0]
            facts = apis.removed.get(qual)
            if facts is not None and not facts.get("call_only"):
                self._report(alias, qual, facts)
            elif facts is None and (module in apis.removed_modules or qual in apis.removed_modules):
                name = module if module in apis.removed_modules else qual
                self._report(alias, name, apis.removed[name])
                return  # one finding per import of a removed module

    def visit_Import(self, node: cst.Import) -> None:
        if not self._active():
            return
        apis = torch_apis()
        for alias in node.names:
            name = dotted_name(alias.name)
            if name in apis.removed_modules:
                self._report(alias, name, apis.removed[name])

    def _in_removed_module(self, qual: str) -> dict[str, Any] | None:
        for module in torch_apis().removed_modules:
            if qual.startswith(module + "."):
                return torch_apis().removed[module]
        return None

    def _report(self, anchor: cst.CSTNode, qual: str, facts: dict[str, Any]) -> None:
        if not self.has(facts["removed"]):
            return  # the targeted torch still has it: TL502 says it is deprecated
        if self.guarded():
            return
        kind = "module" if facts.get("module") else "function"
        replacement = facts.get("replacement")
        use = f"; use `{replacement}`" if replacement else ""
        note = f": {facts['note']}" if facts.get("note") else ""
        since = f" (deprecated since {facts['deprecated']})" if facts["deprecated"] != facts["removed"] else ""
        if facts.get("call_only"):
            message = f"calling `{qual}(...)`: the function was removed in torch {facts['removed']}{since}{use}{note}"
        else:
            message = f"`{qual}` was removed in torch {facts['removed']}{since}{use}{note}" if use else (
                f"`{qual}` was removed in torch {facts['removed']}{since}: this {kind} no longer exists{note}")
        self.report(anchor, message)


# positional parameters of the deprecated amp constructors, in order
_AUTOCAST_PARAMS = ("enabled", "dtype", "cache_enabled")


class DeprecatedTorchApi(_ApiRule):
    """A torch API that still exists but is deprecated, with its replacement."""

    code = "TL502"
    name = "deprecated-torch-api"
    summary = "a deprecated torch API (`torch.cuda.amp.autocast`, `torch.qr`, `functorch.vmap`, ...) and its replacement"
    fix_safety = "safe"
    valid = [
        "import torch\nQ, R = torch.linalg.qr(A)\n",
        "import torch\nwith torch.amp.autocast('cuda'):\n    pass\n",
        "from torch.func import vmap\n",
        "import torch\nx = torch.arange(0, 10)\n",
    ]
    invalid = [
        Case("import torch\nQ, R = torch.qr(A)\n", line=2, col=8,
             fixed="import torch\nQ, R = torch.linalg.qr(A)\n"),
        Case("import torch\nwith torch.cuda.amp.autocast():\n    pass\n", line=2,
             fixed="import torch\nwith torch.amp.autocast(\"cuda\"):\n    pass\n"),
        Case("from functorch import vmap\n", line=1,
             fixed="from torch.func import vmap\n"),
        Case("import torch\nsteps = torch.range(0, 9)\n", line=2,
             fixed="import torch\nsteps = torch.arange(0, 10, dtype=torch.get_default_dtype())\n"),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not self._active():
            return
        qual = self.call_qualname(node)
        if qual is None:
            return
        apis = torch_apis()
        facts = apis.deprecated.get(qual)
        if facts is None:
            removed = apis.removed.get(qual)
            if removed is not None and not removed.get("module") and not self.has(removed["removed"]):
                self._report_removed_later(node.func, qual, removed)
            return
        if not self._applies(facts) or self.guarded():
            return
        fix = self._call_fix(node, qual, facts)
        self.report(node.func, self._message(qual, facts), fix=fix)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        """`@torch.cuda.amp.custom_fwd` without a call."""
        if not self._active() or not isinstance(node.decorator, (cst.Name, cst.Attribute)):
            return
        qual = self.ctx.qualname(node.decorator)
        facts = torch_apis().deprecated.get(qual) if qual else None
        if facts is None or not self._applies(facts):
            return
        fix = None
        if facts.get("fix") == "custom_cuda" and isinstance(node.decorator, cst.Attribute):
            new = self.spell(facts["replacement"], node.decorator)
            if new is not None:
                fix = PendingFix("safe", (Replace(node.decorator, f'{new}(device_type="cuda")'),),
                                 f"use {facts['replacement']}")
        self.report(node.decorator, self._message(qual, facts), fix=fix)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if not self._active():
            return
        apis = torch_apis()
        found = []
        for alias, qual in self.import_names(node):
            facts = apis.deprecated.get(qual)
            if facts is not None and self._applies(facts):
                found.append((alias, qual, facts))
            elif facts is None:
                removed = apis.removed.get(qual)
                if removed is not None and not removed.get("module") and not self.has(removed["removed"]):
                    self._report_removed_later(alias, qual, removed)
        if not found or self.guarded():
            return
        fix = self._import_fix(node, found)
        for alias, qual, facts in found:
            self.report(alias, self._message(qual, facts, imported=True), fix=fix)

    def _applies(self, facts: dict[str, Any]) -> bool:
        return self.has(facts["deprecated"]) and self.has(facts.get("replacement_since"))

    def _report_removed_later(self, anchor: cst.CSTNode, qual: str, facts: dict[str, Any]) -> None:
        """A name the targeted torch still has, removed in a later one."""
        if not self.has(facts["deprecated"]) or not self.has(facts.get("replacement_since")) or self.guarded():
            return
        use = f"; use `{facts['replacement']}`" if facts.get("replacement") else ""
        note = f": {facts['note']}" if facts.get("note") else ""
        self.report(anchor, f"`{qual}` is deprecated since torch {facts['deprecated']} and removed in "
                            f"{facts['removed']}{use}{note}")

    def _message(self, qual: str, facts: dict[str, Any], imported: bool = False) -> str:
        what = "import of deprecated" if imported else "deprecated"
        replacement = facts.get("replacement")
        if replacement is None:
            said = facts.get("torch_message")
            tail = f" ({said})" if said else ""
            return f"{what} `{qual}`: torch {facts['deprecated']} marks it deprecated{tail}"
        note = f" ({facts['note']})" if facts.get("note") and facts["note"] != "same arguments" else ""
        return f"{what} `{qual}` (since torch {facts['deprecated']}): use `{replacement}`{note}"

    # ---- fixes ---------------------------------------------------------------------------
    def _import_fix(self, node: cst.ImportFrom, found: list[tuple[cst.ImportAlias, str, dict[str, Any]]]) -> PendingFix | None:
        """`from functorch import vmap, grad` -> `from torch.func import vmap, grad`: only
        when every name of the statement moves to one module under the same name."""
        if isinstance(node.names, cst.ImportStar) or len(found) != len(node.names) or node.module is None:
            return None
        targets = set()
        for _alias, qual, facts in found:
            new = facts.get("replacement")
            if facts.get("fix") != "rename" or new is None or new.rsplit(".", 1)[-1] != qual.rsplit(".", 1)[-1]:
                return None
            targets.add(new.rsplit(".", 1)[0])
        if len(targets) != 1:
            return None
        return PendingFix("safe", (Replace(node.module, targets.pop()),), "import from the new module")

    def _call_fix(self, call: cst.Call, qual: str, facts: dict[str, Any]) -> PendingFix | None:
        kind = facts.get("fix")
        func = call.func
        if kind is None or not isinstance(func, cst.Attribute) or any(a.star for a in call.args):
            return None
        new = self.spell(facts["replacement"], func)
        if new is None:
            return None
        handler = getattr(self, f"_fix_{kind}", None)
        if handler is None:
            return None
        result = handler(call, new)
        if result is None:
            return None
        safety, ops = result
        return PendingFix(safety, tuple(ops), f"use {facts['replacement']}")

    def _fix_rename(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]]:
        return "safe", [Replace(call.func, new)]

    def _fix_rename_unsafe(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]]:
        return "unsafe", [Replace(call.func, new)]

    def _fix_pytree(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        positional = [a for a in call.args if a.keyword is None]
        keywords = {a.keyword.value for a in call.args if a.keyword is not None}
        if len(positional) > 3 or not keywords <= {"to_dumpable_context", "from_dumpable_context"}:
            return None
        return "safe", [Replace(call.func, new)]

    def _fix_qr(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        ops: list[FixOp] = [Replace(call.func, new)]
        positional = [a for a in call.args if a.keyword is None]
        some = [a for a in call.args if a.keyword is not None and a.keyword.value == "some"]
        if len(positional) > 2 or (len(positional) == 2 and some):
            return None
        arg = some[0] if some else (positional[1] if len(positional) == 2 else None)
        if arg is not None:
            value = arg.value
            if not isinstance(value, cst.Name) or value.value not in ("True", "False"):
                return None
            mode = '"reduced"' if value.value == "True" else '"complete"'
            if arg.keyword is not None:
                ops += [Replace(arg.keyword, "mode"), Replace(value, mode)]
            else:
                ops.append(Replace(value, f"mode={mode}"))
        return "safe", ops

    def _fix_cholesky(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        ops: list[FixOp] = [Replace(call.func, new)]
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > 2:
            return None
        if len(positional) == 2:
            if not self.has("1.10"):
                return None
            ops.append(InsertBefore(positional[1].value, "upper="))
        elif any(a.keyword is not None and a.keyword.value == "upper" for a in call.args) and not self.has("1.10"):
            return None
        return "safe", ops

    def _fix_chain_matmul(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        if len(call.args) < 2 or any(a.keyword is not None for a in call.args):
            return None
        return "safe", [Replace(call.func, new), InsertBefore(call.args[0].value, "["),
                        InsertAfter(call.args[-1].value, "]")]

    def _fix_autocast_cuda(self, call: cst.Call, new: str, device: str = "cuda") -> tuple[str, list[FixOp]] | None:
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) > len(_AUTOCAST_PARAMS):
            return None
        if not call.args:
            return "safe", [Replace(call, f'{new}("{device}")')]
        ops: list[FixOp] = [Replace(call.func, new)]
        for index, arg in enumerate(call.args):
            prefix = f'"{device}", ' if index == 0 else ""
            if arg.keyword is None:
                prefix += f"{_AUTOCAST_PARAMS[index]}="
            if prefix:
                ops.append(InsertBefore(arg.keyword if arg.keyword is not None else arg.value, prefix))
        return "safe", ops

    def _fix_autocast_cpu(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        return self._fix_autocast_cuda(call, new, "cpu")

    def _fix_scaler_cuda(self, call: cst.Call, new: str, device: str = "cuda") -> tuple[str, list[FixOp]] | None:
        if any(a.keyword is not None and a.keyword.value == "device" for a in call.args):
            return None
        if not call.args:
            return "safe", [Replace(call, f'{new}("{device}")')]
        first = call.args[0]
        return "safe", [Replace(call.func, new),
                        InsertBefore(first.keyword if first.keyword is not None else first.value, f'"{device}", ')]

    def _fix_scaler_cpu(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        return self._fix_scaler_cuda(call, new, "cpu")

    def _fix_custom_cuda(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        if any(a.keyword is not None and a.keyword.value == "device_type" for a in call.args):
            return None
        if not call.args:
            return "safe", [Replace(call, f'{new}(device_type="cuda")')]
        return "safe", [Replace(call.func, new), InsertAfter(call.args[-1].value, ', device_type="cuda"')]

    def _fix_range(self, call: cst.Call, new: str) -> tuple[str, list[FixOp]] | None:
        """`torch.range(a, b)` includes `b`; `torch.arange(a, b + step)` does not include its
        end. torch.range always returns the default float dtype: say so unless a dtype is given
        or a float literal already makes arange pick it."""
        positional = [a for a in call.args if a.keyword is None]
        keywords = {a.keyword.value for a in call.args if a.keyword is not None}
        if not 2 <= len(positional) <= 3 or keywords & {"start", "end", "step"}:
            return None
        start, end = positional[0].value, positional[1].value
        step_value = _int_literal(positional[2].value) if len(positional) == 3 else 1
        if step_value is None or step_value == 0:
            return None
        ops: list[FixOp] = [Replace(call.func, new)]
        safety = "safe"
        end_int = _int_literal(end)
        if end_int is not None and _int_literal(start) is not None:
            ops.append(Replace(end, str(end_int + step_value)))
        else:
            safety = "unsafe"  # a float start or end changes how many values there are
            if (step_value == 1 and isinstance(end, cst.BinaryOperation) and isinstance(end.operator, cst.Subtract)
                    and _int_literal(end.right) == 1):
                ops.append(Replace(end, self.ctx.code_for(end.left).strip()))
            elif end_int is not None:
                ops.append(Replace(end, str(end_int + step_value)))
            else:
                text = self.ctx.code_for(end).strip()
                if not isinstance(end, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float)):
                    text = f"({text})"
                sign = "+" if step_value > 0 else "-"
                ops.append(Replace(end, f"{text} {sign} {abs(step_value)}"))
        has_float = any(isinstance(a.value, cst.Float) for a in positional)
        if "dtype" not in keywords and not has_float:
            default_dtype = self.spell("torch.get_default_dtype", call.func)
            if default_dtype is None:
                return None
            ops.append(InsertAfter(call.args[-1].value, f", dtype={default_dtype}()"))
        return safety, ops


def _tests_version(test: cst.BaseExpression) -> bool:
    """An `if` test that picks code by torch version: it names a `version` or calls `hasattr`."""
    from torchlint.walk import descendants

    for node in [test, *descendants(test)]:
        if isinstance(node, cst.Name) and ("version" in node.value.lower() or node.value == "hasattr"):
            return True
        if isinstance(node, cst.Attribute) and "version" in node.attr.value.lower():
            return True
    return False


def _catches_import_error(handler: cst.ExceptHandler) -> bool:
    """`except:`, `except ImportError`, `except (ImportError, AttributeError)`, `except Exception`."""
    if handler.type is None:
        return True
    names = {dotted_name(e.value) for e in handler.type.elements} if isinstance(handler.type, cst.Tuple) else {dotted_name(handler.type)}
    return bool(names & {"ImportError", "ModuleNotFoundError", "AttributeError", "Exception", "BaseException", "RuntimeError"})


def _int_literal(expr: cst.BaseExpression) -> int | None:
    """The value of `5` or `-5`, else None."""
    if isinstance(expr, cst.Integer):
        try:
            return int(expr.value.replace("_", ""), 0)
        except ValueError:
            return None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = _int_literal(expr.expression)
        return None if inner is None else -inner
    return None


class NonPublicTorchImport(_ApiRule):
    """A non-public torch path of an object torch exports publicly."""

    code = "TL503"
    name = "non-public-torch-import"
    summary = "a non-public torch path (`torch.utils.data._utils.collate.default_collate`) of a public API"
    fix_safety = "safe"
    valid = [
        "from torch.utils.data import default_collate\n",
        "import torch\nbatch = torch.utils.data.default_collate(items)\n",
        "from torch.nn.modules.utils import _pair\n",
    ]
    invalid = [
        Case("from torch.utils.data._utils.collate import default_collate\n", line=1, col=45,
             fixed="from torch.utils.data import default_collate\n"),
        Case("import torch\nbatch = torch.utils.data._utils.collate.default_collate(items)\n", line=2,
             fixed="import torch\nbatch = torch.utils.data.default_collate(items)\n"),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not self._active():
            return
        qual = self.call_qualname(node)
        facts = torch_apis().nonpublic.get(qual) if qual else None
        if facts is None or not self.has(facts["since"]):
            return
        fix = None
        if isinstance(node.func, cst.Attribute):
            new = self.spell(facts["public"], node.func)
            if new is not None:
                fix = PendingFix("safe", (Replace(node.func, new),), f"use {facts['public']}")
        self.report(node.func, self._message(qual, facts), fix=fix)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if not self._active():
            return
        found = []
        for alias, qual in self.import_names(node):
            facts = torch_apis().nonpublic.get(qual)
            if facts is not None and self.has(facts["since"]):
                found.append((alias, qual, facts))
        if not found:
            return
        fix = None
        modules = {facts["public"].rsplit(".", 1)[0] for _a, _q, facts in found}
        same_names = all(facts["public"].rsplit(".", 1)[1] == qual.rsplit(".", 1)[1] for _a, qual, facts in found)
        if len(found) == len(node.names) and len(modules) == 1 and same_names and node.module is not None:  # type: ignore[arg-type]
            fix = PendingFix("safe", (Replace(node.module, modules.pop()),), "import from the public module")
        for alias, qual, facts in found:
            self.report(alias, self._message(qual, facts, imported=True), fix=fix)

    def _message(self, qual: str, facts: dict[str, Any], imported: bool = False) -> str:
        what = "import from" if imported else "use of"
        return (f"{what} the non-public path `{qual}`: torch exports the same object as "
                f"`{facts['public']}`; private modules move without notice")


_READ_REQUIRE_GRAD = re.compile(r"\.require_grad\b(?!\s*=(?!=))")


class RequireGradTypo(Rule):
    """`x.require_grad = ...`: a typo of `requires_grad` that sets an attribute torch never reads."""

    code = "TL504"
    name = "require-grad-typo"
    summary = "`p.require_grad = False`: a typo of `requires_grad`, freezes nothing"
    fix_safety = "safe"
    valid = [
        "for p in model.parameters():\n    p.requires_grad = False\n",
        "class Config:\n    def __init__(self, cfg):\n        self.require_grad = cfg.grad\n",
        "x.requires_grad_(True)\n",
    ]
    invalid = [
        Case("for p in model.parameters():\n    p.require_grad = False\n", line=2, col=5,
             fixed="for p in model.parameters():\n    p.requires_grad = False\n"),
        Case("pe = torch.zeros(10, 4)\npe.require_grad = False\n", line=2,
             fixed="pe = torch.zeros(10, 4)\npe.requires_grad = False\n"),
    ]

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            attr = target.target
            if not isinstance(attr, cst.Attribute) or attr.attr.value != "require_grad":
                continue
            owner = attr.value
            if isinstance(owner, cst.Name) and owner.value in ("self", "cls"):
                continue  # an attribute of the class's own (a config flag), not a tensor's
            reads = self.__dict__.get("_reads")
            if reads is None:
                reads = self._reads = bool(_READ_REQUIRE_GRAD.search(self.ctx.source))
            owner_text = self.ctx.code_for(owner).strip()
            message = (f"`{owner_text}.require_grad = ...` sets an attribute torch never reads: a typo of "
                       f"`requires_grad`, so gradients are computed as before (on a Module, use "
                       f"`.requires_grad_(...)`)")
            fix = None
            if reads:
                message += " (the file also reads `.require_grad`: rename every use)"
            else:
                fix = PendingFix("safe", (Replace(attr.attr, "requires_grad"),), "rename to requires_grad")
            self.report(attr, message, fix=fix)
