"""Generate torchlint/data/torch_apis.json from the installed torch (run with torch 2.13).

The TL5xx rules (removed, deprecated and non-public torch APIs) read this file and never
import torch. What torch itself says is collected here:

* deprecated APIs: the PEP 702 `@deprecated` marker (`__deprecated__`), an unconditional
  `warnings.warn("... deprecated ...")` at the top of a Python function or `__init__`, or a
  docstring warning that says the function or class itself is deprecated;
* removed APIs that torch still keeps as stubs which only raise ("... is now removed");
* non-public paths of public objects (`torch.utils.data._utils.collate.default_collate` is
  `torch.utils.data.default_collate`), found by identity.

The facts torch cannot tell (in which version a name was deprecated or removed, what
replaces it and how the arguments change) are written below in CURATED, and checked
against torch here: a replacement must exist, a removed name must be gone or a raising
stub, a deprecated name must still exist. Regenerate with
`python scripts/gen_torch_apis.py` after a torch upgrade and commit the result.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pathlib
import re
import textwrap
import warnings
from typing import Any

import torch

# Public namespaces scanned for deprecated names (and for the non-public alias table).
NAMESPACES = [
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.utils",
    "torch.nn.utils.rnn", "torch.linalg", "torch.fft", "torch.special", "torch.cuda",
    "torch.cuda.amp", "torch.cpu.amp", "torch.amp", "torch.optim", "torch.optim.lr_scheduler",
    "torch.utils.data", "torch.utils.checkpoint", "torch.distributed", "torch.autograd",
    "torch.autograd.functional", "torch.backends.cuda", "torch.testing", "torch.func",
    "torch.hub", "torch.jit", "torch.utils._pytree",
]

# What torch cannot tell: versions, replacements, semantics. `since` is the torch version
# that deprecated (or removed) the name; `replacement_since` the first version that has the
# replacement. A `note` says how the replacement differs.
REMOVED: dict[str, dict[str, Any]] = {
    "torch.solve": dict(deprecated="1.9", removed="2.0", replacement="torch.linalg.solve", replacement_since="1.8",
                        note="`torch.solve(B, A)` becomes `torch.linalg.solve(A, B)`: the arguments are reversed and no LU factorization is returned (`.solution` is the result itself)"),
    "torch.symeig": dict(deprecated="1.9", removed="2.0", replacement="torch.linalg.eigh", replacement_since="1.8",
                         note="`torch.linalg.eigh(A, UPLO='U')` for eigenvectors, `torch.linalg.eigvalsh(A, UPLO='U')` for eigenvalues only: symeig read the upper triangle by default, eigh/eigvalsh read the lower one (UPLO='L')"),
    "torch.eig": dict(deprecated="1.9", removed="2.0", replacement="torch.linalg.eig", replacement_since="1.8",
                      note="`torch.linalg.eig`/`eigvals` return complex tensors instead of real (n, 2) pairs"),
    "torch.lstsq": dict(deprecated="1.9", removed="2.0", replacement="torch.linalg.lstsq", replacement_since="1.9",
                        note="`torch.lstsq(B, A)` becomes `torch.linalg.lstsq(A, B).solution`: the arguments are reversed and the QR factors are not returned"),
    "torch.matrix_rank": dict(deprecated="1.9", removed="2.0", replacement="torch.linalg.matrix_rank", replacement_since="1.8",
                              note="the `symmetric` argument is named `hermitian` in `torch.linalg.matrix_rank`"),
    "torch.gesv": dict(deprecated="1.1", removed="1.2", replacement="torch.linalg.solve", replacement_since="1.8",
                       note="`torch.gesv(B, A)` becomes `torch.linalg.solve(A, B)`: the arguments are reversed and no LU factorization is returned"),
    "torch.potrf": dict(deprecated="1.0", removed="1.2", replacement="torch.linalg.cholesky", replacement_since="1.8",
                        note="potrf returned the upper factor by default; `torch.linalg.cholesky` returns the lower one (`.mH` gives the upper)"),
    "torch.potrs": dict(deprecated="1.0", removed="1.2", replacement="torch.cholesky_solve", replacement_since="1.0",
                        note="`torch.cholesky_solve(B, L)` takes the lower factor by default (potrs took the upper)"),
    "torch.potri": dict(deprecated="1.0", removed="1.2", replacement="torch.cholesky_inverse", replacement_since="1.0",
                        note="`torch.cholesky_inverse(L)` takes the lower factor by default (potri took the upper)"),
    "torch.trtrs": dict(deprecated="1.1", removed="1.2", replacement="torch.linalg.solve_triangular", replacement_since="1.11",
                        note="`torch.trtrs(b, A)` becomes `torch.linalg.solve_triangular(A, b, upper=True)`: the arguments are reversed and `upper` has no default"),
    "torch.gels": dict(deprecated="1.2", removed="1.3", replacement="torch.linalg.lstsq", replacement_since="1.9",
                       note="`torch.gels(B, A)` becomes `torch.linalg.lstsq(A, B).solution`: the arguments are reversed"),
    "torch.btrifact": dict(deprecated="1.1", removed="1.3", replacement="torch.linalg.lu_factor", replacement_since="1.13",
                           note="`torch.linalg.lu_factor(A)` returns `(LU, pivots)`"),
    "torch.btrifact_with_info": dict(deprecated="1.1", removed="1.3", replacement="torch.linalg.lu_factor_ex", replacement_since="1.13",
                                     note="`torch.linalg.lu_factor_ex(A)` returns `(LU, pivots, info)`"),
    "torch.btrisolve": dict(deprecated="1.1", removed="1.3", replacement="torch.linalg.lu_solve", replacement_since="1.13",
                            note="`torch.btrisolve(b, LU, pivots)` becomes `torch.linalg.lu_solve(LU, pivots, B)`: the right-hand side comes last"),
    "torch.btriunpack": dict(deprecated="1.1", removed="1.3", replacement="torch.lu_unpack", replacement_since="1.1",
                             note="same arguments"),
    "torch.pstrf": dict(deprecated="1.1", removed="1.2", replacement=None, replacement_since=None,
                        note="there is no pivoted Cholesky in torch; `torch.linalg.cholesky` is the unpivoted one"),
    "torch.rfft": dict(deprecated="1.7", removed="1.8", replacement="torch.fft.rfftn", replacement_since="1.7",
                       note="the `torch.fft` functions return complex tensors instead of a trailing dimension of size 2 (`torch.view_as_real` gives the old layout) and take `dim=`/`norm=` instead of `signal_ndim`/`normalized`/`onesided`"),
    "torch.irfft": dict(deprecated="1.7", removed="1.8", replacement="torch.fft.irfftn", replacement_since="1.7",
                        note="the `torch.fft` functions take complex input instead of a trailing dimension of size 2 (`torch.view_as_complex`) and `dim=`/`norm=`/`s=` instead of `signal_ndim`/`normalized`/`signal_sizes`"),
    "torch.ifft": dict(deprecated="1.7", removed="1.8", replacement="torch.fft.ifftn", replacement_since="1.7",
                       note="the `torch.fft` functions take complex input instead of a trailing dimension of size 2 (`torch.view_as_complex`) and `dim=`/`norm=` instead of `signal_ndim`/`normalized`"),
    # `torch.fft` is a module since 1.8: calling it is calling the removed function
    "torch.fft": dict(deprecated="1.7", removed="1.8", replacement="torch.fft.fftn", replacement_since="1.7", call_only=True,
                      note="`torch.fft` is a module since 1.8; its functions return complex tensors instead of a trailing dimension of size 2 (`torch.view_as_real` gives the old layout) and take `dim=`/`norm=` instead of `signal_ndim`/`normalized`"),
    "torch._six": dict(deprecated="2.0", removed="2.0", replacement=None, replacement_since=None, module=True,
                       note="`torch._six` was a Python 2 compatibility module: use `math.inf`/`math.nan`, `str` for `string_classes`, `int` for `int_classes`, `collections.abc` for `container_abcs`"),
}

DEPRECATED: dict[str, dict[str, Any]] = {
    # linear algebra (deprecated in favour of torch.linalg in 1.9)
    "torch.qr": dict(deprecated="1.9", replacement="torch.linalg.qr", replacement_since="1.8", fix="qr",
                     note="`some=False` becomes `mode=\"complete\"`"),
    "torch.cholesky": dict(deprecated="1.9", replacement="torch.linalg.cholesky", replacement_since="1.8", fix="cholesky",
                           note="`upper=True` becomes `torch.linalg.cholesky(A).mH`"),
    "torch.chain_matmul": dict(deprecated="1.9", replacement="torch.linalg.multi_dot", replacement_since="1.9", fix="chain_matmul",
                               note="`multi_dot` takes one list of two or more tensors: `torch.linalg.multi_dot([a, b, c])`"),
    "torch.lu": dict(deprecated="1.13", replacement="torch.linalg.lu_factor", replacement_since="1.13",
                     note="`torch.linalg.lu_factor(A)` returns `(LU, pivots)`; `get_infos=True` becomes `torch.linalg.lu_factor_ex`"),
    "torch.lu_solve": dict(deprecated="1.13", replacement="torch.linalg.lu_solve", replacement_since="1.13",
                           note="`torch.lu_solve(b, LU, pivots)` becomes `torch.linalg.lu_solve(LU, pivots, B)`: the right-hand side comes last"),
    "torch.triangular_solve": dict(deprecated="1.11", replacement="torch.linalg.solve_triangular", replacement_since="1.11",
                                   note="`torch.triangular_solve(b, A)` becomes `torch.linalg.solve_triangular(A, b, upper=True)`: the arguments are reversed, `upper` has no default, and only the solution is returned"),
    "torch.ger": dict(deprecated="1.8", replacement="torch.outer", replacement_since="1.8", fix="rename", note="same arguments"),
    "torch.range": dict(deprecated="1.0", replacement="torch.arange", replacement_since="1.0", fix="range",
                        note="`torch.range` includes the end and always returns the default float dtype; `torch.arange` excludes the end and infers the dtype"),
    "torch.set_default_tensor_type": dict(deprecated="2.1", replacement="torch.set_default_dtype", replacement_since="2.0",
                                          note="`torch.set_default_dtype(torch.float64)` for the dtype and `torch.set_default_device(\"cuda\")` for the device"),
    "torch.testing.assert_allclose": dict(deprecated="1.12", replacement="torch.testing.assert_close", replacement_since="1.9",
                                          note="`assert_close` checks dtype and device too and has other default tolerances"),
    # nn
    "torch.nn.utils.weight_norm": dict(deprecated="2.1", replacement="torch.nn.utils.parametrizations.weight_norm", replacement_since="2.1", fix="rename_unsafe",
                                       note="the parametrized module stores `parametrizations.weight.original0/original1` instead of `weight_g/weight_v` (old checkpoints still load) and is undone with `torch.nn.utils.parametrize.remove_parametrizations`, not `remove_weight_norm`"),
    "torch.nn.utils.clip_grad_norm": dict(deprecated="1.0", replacement="torch.nn.utils.clip_grad_norm_", replacement_since="1.0", fix="rename", note="same arguments"),
    "torch.nn.UpsamplingNearest2d": dict(deprecated="1.0", replacement="torch.nn.Upsample", replacement_since="1.0",
                                         note="`nn.Upsample(size, scale_factor, mode=\"nearest\")`"),
    "torch.nn.UpsamplingBilinear2d": dict(deprecated="1.0", replacement="torch.nn.Upsample", replacement_since="1.0",
                                          note="`nn.Upsample(size, scale_factor, mode=\"bilinear\", align_corners=True)`"),
    "torch.nn.functional.upsample": dict(deprecated="1.0", replacement="torch.nn.functional.interpolate", replacement_since="1.0", fix="rename", note="same arguments"),
    "torch.nn.functional.upsample_nearest": dict(deprecated="1.0", replacement="torch.nn.functional.interpolate", replacement_since="1.0",
                                                 note="`F.interpolate(x, size, scale_factor, mode=\"nearest\")`"),
    "torch.nn.functional.upsample_bilinear": dict(deprecated="1.0", replacement="torch.nn.functional.interpolate", replacement_since="1.0",
                                                  note="`F.interpolate(x, size, scale_factor, mode=\"bilinear\", align_corners=True)`"),
    "torch.backends.cuda.sdp_kernel": dict(deprecated="2.2", replacement="torch.nn.attention.sdpa_kernel", replacement_since="2.2",
                                           note="`sdpa_kernel` takes a list of `torch.nn.attention.SDPBackend` values: each `enable_*=True` flag of `sdp_kernel` (all default to True) becomes one backend in the list"),
    # amp
    "torch.cuda.amp.autocast": dict(deprecated="2.4", replacement="torch.amp.autocast", replacement_since="1.10", fix="autocast_cuda",
                                    note="`torch.amp.autocast(\"cuda\", ...)`; its second positional parameter is `dtype`, not `enabled`"),
    "torch.cpu.amp.autocast": dict(deprecated="2.4", replacement="torch.amp.autocast", replacement_since="1.10", fix="autocast_cpu",
                                   note="`torch.amp.autocast(\"cpu\", ...)`; its second positional parameter is `dtype`, not `enabled`"),
    "torch.cuda.amp.GradScaler": dict(deprecated="2.4", replacement="torch.amp.GradScaler", replacement_since="2.3", fix="scaler_cuda",
                                      note="`torch.amp.GradScaler(\"cuda\", ...)`"),
    "torch.cpu.amp.GradScaler": dict(deprecated="2.4", replacement="torch.amp.GradScaler", replacement_since="2.3", fix="scaler_cpu",
                                     note="`torch.amp.GradScaler(\"cpu\", ...)`"),
    "torch.cuda.amp.custom_fwd": dict(deprecated="2.4", replacement="torch.amp.custom_fwd", replacement_since="2.4", fix="custom_cuda",
                                      note="`torch.amp.custom_fwd(device_type=\"cuda\", ...)`"),
    "torch.cuda.amp.custom_bwd": dict(deprecated="2.4", replacement="torch.amp.custom_bwd", replacement_since="2.4", fix="custom_cuda",
                                      note="`torch.amp.custom_bwd(device_type=\"cuda\")`"),
    # pytree: the private registration function
    "torch.utils._pytree._register_pytree_node": dict(deprecated="2.2", replacement="torch.utils._pytree.register_pytree_node", replacement_since="2.2", fix="pytree",
                                                      note="`to_str_fn`/`maybe_from_str_fn` are gone; `serialized_type_name=` is new"),
    # init functions without the trailing underscore (deprecated in 0.4)
    **{f"torch.nn.init.{name}": dict(deprecated="1.0", replacement=f"torch.nn.init.{name}_", replacement_since="1.0", fix="rename", note="same arguments")
       for name in ("uniform", "normal", "constant", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                    "orthogonal", "sparse", "dirac", "eye")},
    "torch.cuda.memory_cached": dict(deprecated="1.4", replacement="torch.cuda.memory_reserved", replacement_since="1.4", fix="rename", note="same arguments"),
    "torch.cuda.max_memory_cached": dict(deprecated="1.4", replacement="torch.cuda.max_memory_reserved", replacement_since="1.4", fix="rename", note="same arguments"),
    # functorch became torch.func in 2.0
    **{f"functorch.{name}": dict(deprecated="2.0", replacement=f"torch.func.{name}", replacement_since="2.0", fix="rename", note="same arguments")
       for name in ("vmap", "grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "functionalize")},
    "functorch.make_functional": dict(deprecated="2.0", replacement="torch.func.functional_call", replacement_since="2.0",
                                      note="`torch.func.functional_call(model, params, args)` takes the parameters as a dict (`dict(model.named_parameters())`)"),
    "functorch.make_functional_with_buffers": dict(deprecated="2.0", replacement="torch.func.functional_call", replacement_since="2.0",
                                                   note="`torch.func.functional_call(model, (params, buffers), args)` takes dicts of parameters and buffers"),
    "functorch.combine_state_for_ensemble": dict(deprecated="2.0", replacement="torch.func.stack_module_state", replacement_since="2.0",
                                                 note="`torch.func.stack_module_state(models)` returns dicts of stacked parameters and buffers"),
}

# Public aliases of non-public paths, with the first version that has the public name
# (entries found by identity but not listed here are reported only for projects that
# target the torch version of this table).
NONPUBLIC_SINCE = {
    "torch.utils.data.default_collate": "1.11",
    "torch.utils.data.default_convert": "1.11",
    "torch.utils.data.dataloader.default_collate": "1.0",
    "torch.utils.data.dataloader.default_convert": "1.9",
}


# Documented as deprecated, but used everywhere and without a drop-in replacement
# (`torch.linalg.vector_norm`/`matrix_norm` and `torch.linalg.svd` differ in arguments and
# results) and torch does not warn: a finding on every call would bury the others.
NOT_REPORTED = {"torch.norm", "torch.svd"}


def _import(name: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except Exception:
        return None


def resolve(qualname: str) -> tuple[bool, Any]:
    """(found, object) for a dotted path, importing modules along the way."""
    parts = qualname.split(".")
    for cut in range(len(parts), 0, -1):
        module = _import(".".join(parts[:cut]))
        if module is None:
            continue
        obj = module
        for part in parts[cut:]:
            if not hasattr(obj, part):
                return False, None
            obj = getattr(obj, part)
        return True, obj
    return False, None


_DOC_DEPRECATED = re.compile(
    r"(this (function|class|method|module) is (now )?deprecated|is deprecated in favou?r of|"
    r"is (now )?deprecated(,| and| in| since|\.)|deprecated since)",
    re.IGNORECASE,
)
_ARGUMENT_WORDS = re.compile(r"\b(argument|parameter|keyword|option|kwarg|flag|behaviou?r|mode|overload|signature|usage|passing|calling)\b", re.IGNORECASE)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.search(r"(?<=[.!])\s", text)
    return (text[: match.start()] if match else text).strip()


def _warn_message(func: Any) -> str | None:
    """The message of an unconditional `warnings.warn("...deprecat...")` at the top level of
    a Python function's body (argument-specific warnings sit inside an `if`)."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    for stmt in node.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            name = ast.unparse(call.func)
            if name.endswith("warn") and call.args:
                try:
                    text = ast.literal_eval(call.args[0])
                except ValueError:
                    text = ast.unparse(call.args[0])
                if isinstance(text, str) and "deprecat" in text.lower():
                    return text
    return None


def deprecation_of(qualname: str, obj: Any) -> tuple[str, str] | None:
    """(how torch marks it, torch's message) when torch says the object itself is deprecated."""
    marker = getattr(obj, "__deprecated__", None)
    if marker is None and inspect.isclass(obj):
        marker = getattr(obj.__init__, "__deprecated__", None)
    if isinstance(marker, str):
        return ("decorator", marker) if "will be deprecated" not in marker else None
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isfunction(target):
        text = _warn_message(target)
        if text is not None and not _ARGUMENT_WORDS.search(_first_sentence(text)):
            return "warning", text
    doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)) else None
    if doc:
        short = qualname.rsplit(".", 1)[-1]
        for block in re.split(r"\n\s*\n", doc):
            text = re.sub(r"^\.\. (warning|note|deprecated)::\s*", "", " ".join(block.split()))
            for sentence in re.split(r"(?<=[.!])\s", text):
                if not _DOC_DEPRECATED.search(sentence) or "will be deprecated" in sentence:
                    continue
                subject = sentence.lower().split("deprecated")[0]
                if _ARGUMENT_WORDS.search(subject):
                    continue
                if re.search(rf"(^|[`.\s]){re.escape(short.lower())}(`|\(|\s)", subject) or re.search(r"^\s*this (function|class|method)", subject):
                    return "docstring", sentence
    return None


def removed_stub(obj: Any) -> str | None:
    """torch keeps some removed functions as stubs that only raise: their message."""
    if not inspect.isfunction(obj):
        return None
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    if "raise RuntimeError" in source and "is now removed" in source:
        match = re.search(r'"([^"]*is now removed[^"]*)"', source)
        return match.group(1).strip() if match else "removed"
    return None


def scan() -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, str], dict[str, list[str]]]:
    deprecated: dict[str, dict[str, str]] = {}
    stubs: dict[str, str] = {}
    aliases: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    for namespace in NAMESPACES:
        module = _import(namespace)
        if module is None:
            continue
        public = sorted(n for n in dir(module) if not n.startswith("_") or namespace == "torch.utils._pytree")
        names[namespace] = sorted(n for n in dir(module) if not n.startswith("__"))
        for name in public:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    obj = getattr(module, name)
            except Exception:
                continue
            qualname = f"{namespace}.{name}"
            try:
                stub = removed_stub(obj)
            except Exception:
                stub = None
            if stub is not None:
                stubs[qualname] = stub
                continue
            private = name.startswith("_") or namespace == "torch.utils._pytree"
            try:
                found = None if (private and qualname not in DEPRECATED) else deprecation_of(qualname, obj)
            except Exception:  # objects whose attributes need a GPU or a backend
                found = None
            if found is not None:
                message = _first_sentence(found[1])
                entry = {"marked_by": found[0]}
                if not message.startswith(("f'", 'f"')):
                    entry["torch_message"] = message
                deprecated[qualname] = entry
            # a public name whose object lives under a non-public module path
            home = getattr(obj, "__module__", None)
            if (name.startswith("_") or not isinstance(home, str) or not home.startswith("torch.")
                    or (not inspect.isfunction(obj) and not inspect.isclass(obj))):
                continue
            if not any(part.startswith("_") for part in home.split(".")) or any(p.startswith("_") for p in namespace.split(".")):
                continue
            exported = getattr(module, "__all__", None)
            # torch._C: names of the C extension, which library code reaches for on purpose
            if home.startswith(("torch.testing._internal", "torch._C")) or name == "boolean_dispatch" or (exported is not None and name not in exported):
                continue
            home_module = _import(home)
            if home_module is None or getattr(home_module, name, None) is not obj:
                continue
            private = f"{home}.{name}"
            aliases.setdefault(private, qualname)
    return deprecated, stubs, aliases, names


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def main() -> None:
    version = torch.__version__.split("+")[0]
    deprecated_found, stubs, aliases, names = scan()
    removed: dict[str, dict[str, Any]] = {}
    for qualname, facts in REMOVED.items():
        exists, obj = resolve(qualname)
        stub = stubs.get(qualname)
        if facts.get("call_only"):
            assert exists and inspect.ismodule(obj), f"{qualname}: expected a module now"
        elif exists and stub is None and not facts.get("module"):
            raise AssertionError(f"{qualname} is listed as removed but torch {version} has it")
        if facts.get("module"):
            assert not exists, f"{qualname}: module still importable"
        if facts["replacement"] is not None:
            assert resolve(facts["replacement"])[0], f"{qualname}: replacement {facts['replacement']} missing"
        entry = {k: v for k, v in facts.items() if v is not None}
        if stub is not None:
            entry["torch_message"] = _first_sentence(stub)
        removed[qualname] = entry
    for qualname in stubs:
        assert qualname in removed, f"torch keeps a removed stub {qualname}: add its facts to REMOVED"
    deprecated: dict[str, dict[str, Any]] = {}
    for qualname, facts in DEPRECATED.items():
        if not qualname.startswith("functorch."):
            exists, _ = resolve(qualname)
            assert exists, f"{qualname} is listed as deprecated but torch {version} lacks it"
        assert resolve(facts["replacement"])[0], f"{qualname}: replacement {facts['replacement']} missing"
        entry = dict(facts)
        entry.update(deprecated_found.get(qualname, {}))
        deprecated[qualname] = entry
    # deprecated names torch marks that have no curated facts: reported with torch's own words,
    # only for projects that target this table's version (the version they were deprecated in
    # is unknown)
    for qualname, facts in DEPRECATED.items():
        # what torch itself says: every curated deprecation must be one torch marks
        assert qualname.startswith("functorch.") or qualname in deprecated_found, f"torch does not mark {qualname} deprecated"
    for qualname, found in deprecated_found.items():
        if qualname not in deprecated and qualname not in NOT_REPORTED:
            deprecated[qualname] = {"deprecated": ".".join(version.split(".")[:2]), **found}
    nonpublic = {}
    for private, public in sorted(aliases.items()):
        nonpublic[private] = {"public": public, "since": NONPUBLIC_SINCE.get(public, version)}
    # TorchFix points at the public module path; the package-level name is shorter
    for private, public in (("torch.utils.data._utils.collate.default_collate", "torch.utils.data.default_collate"),
                            ("torch.utils.data._utils.collate.default_convert", "torch.utils.data.default_convert")):
        assert resolve(private)[1] is resolve(public)[1], private
        nonpublic[private] = {"public": public, "since": NONPUBLIC_SINCE[public]}
    data = {
        "torch_version": version,
        "removed": dict(sorted(removed.items())),
        "deprecated": dict(sorted(deprecated.items())),
        "nonpublic": nonpublic,
        "namespaces": {k: v for k, v in names.items() if k != "torch.utils._pytree"},
    }
    out = pathlib.Path(__file__).resolve().parent.parent / "torchlint" / "data" / "torch_apis.json"
    out.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(removed)} removed, {len(deprecated)} deprecated "
          f"({len(deprecated_found)} marked by torch), {len(nonpublic)} non-public paths")


if __name__ == "__main__":
    main()
