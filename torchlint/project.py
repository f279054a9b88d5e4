"""The cross-file index of classes: which classes are Modules, and what they define.

Built from a cheap text scan (regular expressions, no parse) of every file of the project,
so that the full check of each file needs nothing from the others. The scan reads class
headers, the methods defined in each class body, and import statements; that is all the
Module question needs. It is deliberately approximate in odd corners (a class statement
inside a multi-line string); a class it cannot resolve is "unknown", and rules treat
unknown as "do not flag".
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from torchlint.packages import InstalledPackages, installed_packages, well_known
from torchlint.torchnames import is_torch_module_qualname

# Each pattern starts with its keyword, so that `re` finds candidates with a fast literal
# scan; `at_line_start` then keeps those that begin a line, as a `^[ \t]*` anchor would
# (which makes the engine try every position of the file: 4x slower on large files).
_CLASS_RE = re.compile(r"class[ \t]+(\w+)[ \t]*(?:\[[^\]\n]*\][ \t]*)?(?:\(([^()]*(?:\([^()]*\)[^()]*)*)\))?[ \t]*:")
_DEF_RE = re.compile(r"def[ \t]+(\w+)")
_FORWARD_ASSIGN_RE = re.compile(r"(forward)[ \t]*(?::[^=\n]*)?=")
_FROM_IMPORT_RE = re.compile(r"from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*(?:\\\n[^\n#;]*)*)")
_IMPORT_RE = re.compile(r"import[ \t]+([^\n#;]+)")
_STAR_IMPORT_RE = re.compile(r"from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+\*")
_ASYNC_PREFIX = re.compile(r"([ \t]*)async[ \t]+")


def at_line_start(pattern: re.Pattern[str], source: str, after_async: bool = False,
                  blanks: str | None = " \t") -> Iterator[tuple[str, re.Match[str]]]:
    """(indent, match) for each match of `pattern` that only `blanks` (None: any whitespace)
    precede on its line, or with `after_async`, blanks and `async`; non-overlapping, in order."""
    pos = 0
    search = pattern.search
    while True:
        m = search(source, pos)
        if m is None:
            return
        start = m.start()
        head = source[source.rfind("\n", 0, start) + 1:start]
        if not head.strip(blanks):
            yield head, m
            pos = m.end()
            continue
        if after_async:
            prefixed = _ASYNC_PREFIX.fullmatch(head)
            if prefixed is not None:
                yield prefixed.group(1), m
                pos = m.end()
                continue
        pos = start + 1


_DOTTED = re.compile(r"^[A-Za-z_][\w.]*$")

BUILTIN_NON_MODULE_BASES = frozenset(
    {"object", "Exception", "BaseException", "ValueError", "RuntimeError", "TypeError", "dict",
     "list", "tuple", "set", "str", "int", "float", "type", "NamedTuple", "TypedDict", "Enum",
     "IntEnum", "Protocol", "Generic", "ABC", "abc.ABC", "enum.Enum", "typing.NamedTuple",
     "typing.Generic", "typing.Protocol"}
)


@dataclass
class ClassSummary:
    """A class as the cheap scan sees it: raw base expressions and the names defined in it."""

    name: str
    bases: list[str]
    methods: set[str] = field(default_factory=set)


@dataclass
class ModuleSummary:
    """One file: its dotted module name, import aliases and classes."""

    module: str
    imports: dict[str, str]
    classes: dict[str, ClassSummary]
    is_package: bool = False
    # absolute targets of `from X import *` (followed for installed packages only)
    star_imports: list[str] = field(default_factory=list)


def module_name_for(path: str | os.PathLike[str]) -> str:
    """The dotted module name of a file, from the outermost directory holding __init__.py."""
    p = Path(os.path.abspath(path))
    parts = [p.stem] if p.name != "__init__.py" else []
    parent = p.parent
    while (parent / "__init__.py").exists():
        parts.append(parent.name)
        if parent.parent == parent:
            break
        parent = parent.parent
    parts.reverse()
    return ".".join(parts) if parts else p.stem


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    if "(" not in text and "[" not in text and "{" not in text:
        return [s.strip() for s in text.split(",") if s.strip()]
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def resolve_relative(module: str, is_package: bool, target: str) -> str:
    """Absolute dotted name of a (possibly relative) `from X import` target."""
    level = len(target) - len(target.lstrip("."))
    if level == 0:
        return target
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    rest = target[level:]
    return ".".join([*package, rest] if rest else package)


def add_import_aliases(imports: dict[str, str], module: str, is_package: bool,
                       from_target: str | None, names_text: str) -> None:
    """Record the names bound by one import statement (`import a.b as c`, `from x import y`)."""
    names_text = names_text.replace("\\\n", " ").strip().strip("()")
    for item in _split_top(names_text.replace("\n", " ")):
        item = item.split("#")[0].strip()
        if item == "*" and from_target is not None:
            # `from x import *`: kept under a key no identifier can take (who may call what x defines)
            base = resolve_relative(module, is_package, from_target)
            imports[f"*{base}"] = base
            continue
        if not item or item == "*":
            continue
        parts = item.split()
        if len(parts) == 3 and parts[1] == "as":
            name, alias = parts[0], parts[2]
        elif len(parts) == 1:
            name, alias = parts[0], None
        else:
            continue
        if from_target is not None:
            base = resolve_relative(module, is_package, from_target)
            imports[alias or name] = f"{base}.{name}" if base else name
        elif alias:
            imports[alias] = name
        else:
            head = name.split(".")[0]
            imports.setdefault(head, head)


def summarize(source: str, module: str, is_package: bool = False) -> ModuleSummary:
    """The cheap scan of one file's text."""
    imports: dict[str, str] = {}
    for _, m in at_line_start(_FROM_IMPORT_RE, source):
        add_import_aliases(imports, module, is_package, m.group(1), m.group(2))
    for _, m in at_line_start(_IMPORT_RE, source):
        add_import_aliases(imports, module, is_package, None, m.group(1))
    star_imports = [resolve_relative(module, is_package, m.group(1))
                    for _, m in at_line_start(_STAR_IMPORT_RE, source)]
    events: list[tuple[int, int, str, str, str | None]] = []
    for indent, m in at_line_start(_CLASS_RE, source):
        events.append((m.start(), len(indent.expandtabs()), "class", m.group(1), m.group(2)))
    if not events:
        return ModuleSummary(module, imports, {}, is_package, star_imports)
    for indent, m in at_line_start(_DEF_RE, source, after_async=True):
        events.append((m.start(), len(indent.expandtabs()), "def", m.group(1), None))
    for indent, m in at_line_start(_FORWARD_ASSIGN_RE, source):
        if indent:
            events.append((m.start(), len(indent.expandtabs()), "attr", m.group(1), None))
    events.sort()
    classes: dict[str, ClassSummary] = {}
    stack: list[tuple[int, ClassSummary | None]] = []
    for _, indent, kind, name, bases_text in events:
        while stack and stack[-1][0] >= indent:
            stack.pop()
        owner = stack[-1][1] if stack else None
        if kind == "class":
            bases = []
            for raw in _split_top(re.sub(r"#[^\n]*", "", bases_text or "")):
                if "=" in raw or raw.startswith("*"):
                    continue
                raw = raw.split("[", 1)[0].strip()
                # a base the scan cannot name (`make_base(nn.Module)`) stays as an
                # unresolvable entry: the class is then unknown, not "not a Module"
                bases.append(raw if _DOTTED.match(raw) else "?")
            summary = ClassSummary(name, bases)
            classes.setdefault(name, summary)
            stack.append((indent, summary))
        else:
            if owner is not None:
                owner.methods.add(name)
            if kind == "def":
                stack.append((indent, None))
    return ModuleSummary(module, imports, classes, is_package, star_imports)


class ProjectIndex:
    """Answers "is this class a Module?" across every summarised file of the project."""

    def __init__(self, modules: dict[str, ModuleSummary] | None = None,
                 module_bases: tuple[str, ...] = ()) -> None:
        self.modules: dict[str, ModuleSummary] = dict(modules or {})
        self.module_bases = frozenset(module_bases)
        self._status: dict[str, bool | None] = {}
        # modules whose summaries the answers so far depended on (for the cache); the
        # memo keeps each answer's own dependencies so that a cached answer still counts
        self.touched: set[str] = set()
        self._status_deps: dict[str, frozenset[str]] = {}
        # installed third-party packages (read lazily from their source, memoised per process)
        self._packages: InstalledPackages | None = None
        self._tops: frozenset[str] | None = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_packages"] = None  # a worker process uses its own process-wide memo
        return state

    def add(self, summary: ModuleSummary) -> None:
        self.modules[summary.module] = summary
        self._status.clear()
        self._status_deps.clear()
        self._tops = None
        self.__dict__.pop("_fingerprints", None)

    # ---- installed packages --------------------------------------------------------------
    @property
    def packages(self) -> InstalledPackages:
        if self._packages is None:
            self._packages = installed_packages()
        return self._packages

    def _is_external(self, module: str) -> bool:
        """A module outside the project (and outside torch): answered by installed packages."""
        top = module.partition(".")[0]
        if not top or top in ("torch", "builtins", "__main__"):
            return False
        if self._tops is None:
            self._tops = frozenset(m.partition(".")[0] for m in self.modules)
        return top not in self._tops

    def _summary(self, module: str) -> ModuleSummary | None:
        summary = self.modules.get(module)
        if summary is None and self._is_external(module):
            summary = self.packages.summary(module)
        return summary

    def prefetch_external(self) -> None:
        """Resolve every project class's bases now, so that worker processes (forked after
        this) find the installed packages' answers memoised instead of each reading them."""
        for module, summary in list(self.modules.items()):
            for cls in summary.classes.values():
                for base in cls.bases:
                    full = self.resolve_name(module, base)
                    if full is not None and self._is_external(full):
                        self.is_module(full)

    def fingerprint(self, module: str) -> str:
        """A stable digest of what the index knows of one module ("-" when absent); memoised
        (every cache entry names the fingerprints of its dependencies)."""
        memo = self.__dict__.setdefault("_fingerprints", {})
        found = memo.get(module)
        if found is None:
            found = memo[module] = self._fingerprint(module)
        return found

    def _fingerprint(self, module: str) -> str:
        summary = self.modules.get(module)
        if summary is None:
            # an installed package's module: its answers change with the package version
            if self._is_external(module):
                return f"pkg:{self.packages.stamp(module)}"
            return "-"
        parts = [repr(sorted(summary.imports.items()))]
        for name in sorted(summary.classes):
            cls = summary.classes[name]
            parts.append(f"{name}({','.join(cls.bases)}){','.join(sorted(cls.methods))}")
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()

    def resolve_name(self, module: str, dotted: str) -> str | None:
        """Qualify a dotted name as written in `module` (through its imports and classes)."""
        summary = self._summary(module)
        head, _, rest = dotted.partition(".")
        if summary is not None:
            if head in summary.imports:
                full = summary.imports[head]
                return f"{full}.{rest}" if rest else full
            if head in summary.classes:
                return f"{module}.{dotted}"
        if dotted in BUILTIN_NON_MODULE_BASES:
            return f"builtins.{dotted}"
        return None

    def find_class(self, qualname: str, depth: int = 0) -> tuple[str, ClassSummary] | None:
        """The summary of a class by qualified name, following re-exports."""
        if depth > 10:
            return None
        module, _, name = qualname.rpartition(".")
        self.touched.add(module)
        summary = self._summary(module)
        if summary is None:
            # `pkg.mod.Class` reached through an attribute of an imported package
            return None
        if name in summary.classes:
            return qualname, summary.classes[name]
        target = summary.imports.get(name)
        if target and target != qualname:
            return self.find_class(target, depth + 1)
        if module not in self.modules and depth < 4:
            # an installed package's `from .models import *` re-exports (never the dummy
            # placeholder classes some packages star-import when a dependency is missing)
            for star in summary.star_imports:
                if "dummy" in star.rpartition(".")[2] or star == module:
                    continue
                if star not in self.modules and not self.packages.may_define(star, name):
                    continue
                found = self.find_class(f"{star}.{name}", depth + 1)
                if found is not None:
                    return found
        return None

    def is_module(self, qualname: str | None) -> bool | None:
        """True: a Module class; False: known not to be one; None: cannot tell."""
        if qualname is None:
            return None
        if qualname in self._status:
            self.touched |= self._status_deps.get(qualname, frozenset())
            return self._status[qualname]
        self._status[qualname] = None  # cycle guard
        outer, self.touched = self.touched, set()
        try:
            result = self._compute(qualname)
            self._status[qualname] = result
            self._status_deps[qualname] = frozenset(self.touched)
        finally:
            self.touched = outer | self.touched
        return result

    def _compute(self, qualname: str) -> bool | None:
        if qualname in self.module_bases:
            return True
        torch_answer = is_torch_module_qualname(qualname)
        if torch_answer is not None:
            return torch_answer
        if qualname.startswith("builtins."):
            return False
        found = self.find_class(qualname)
        if found is None:
            # a package that is not installed (or hides the class): the shipped table
            return well_known(qualname) if self._is_external(qualname) else None
        canonical, summary = found
        module = canonical.rpartition(".")[0]
        if canonical in self.module_bases:
            return True
        answers = [self.is_module(self.resolve_name(module, b)) for b in summary.bases]
        if any(a is True for a in answers):
            return True
        if all(a is False for a in answers):
            return False
        return None

    def defines(self, qualname: str, method: str, depth: int = 0) -> bool | None:
        """Whether the class or a project base defines `method`; None when a base is unknown."""
        if depth > 20:
            return None
        found = self.find_class(qualname)
        if found is None:
            return None
        canonical, summary = found
        if method in summary.methods:
            return True
        module = canonical.rpartition(".")[0]
        unknown = False
        for base in summary.bases:
            full = self.resolve_name(module, base)
            if full is None:
                unknown = True
                continue
            if full == "torch.nn.Module" or full.startswith("builtins."):
                continue
            if full.startswith("torch."):
                # torch layers and containers: only Sequential-like ones define forward
                last = full.rsplit(".", 1)[-1]
                if last in ("ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Module"):
                    continue
                if method == "forward":
                    return True
                unknown = True
                continue
            answer = self.defines(full, method, depth + 1)
            if answer:
                return True
            if answer is None:
                unknown = True
        return None if unknown else False

    def torch_base_chain(self, qualname: str, depth: int = 0) -> set[str]:
        """The torch classes (qualified) that a class derives from, through project classes."""
        if qualname.startswith("torch."):
            return {qualname}
        if depth > 20:
            return set()
        found = self.find_class(qualname)
        if found is None:
            return set()
        canonical, summary = found
        module = canonical.rpartition(".")[0]
        out: set[str] = set()
        for base in summary.bases:
            full = self.resolve_name(module, base)
            if full:
                out |= self.torch_base_chain(full, depth + 1)
        return out
