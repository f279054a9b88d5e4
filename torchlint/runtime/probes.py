"""Build one Module class with torch and watch it: the evidence behind each runtime status.

Worker only (imports torch). `ClassProber` runs a fixed pipeline, each stage once and only
when a requested code needs it:

1. construct (no arguments, or the configured expression);
2. registration walk: Modules, Parameters and tensors held in plain attributes or plain
   containers of the instance (and of its user-defined submodules) that `modules()`,
   `parameters()` and `buffers()` do not know;
3. forward on the CPU with instruments: `nn.Module.__init__` counted per call (layers built
   in forward), every submodule's forward counted against its forward hook (direct
   `.forward()` calls), the return value;
4. eval determinism (TL303): two passes after `.eval()` on the same input;
5. device: `.to("cuda")` when available, else `.to("meta")` and forward under
   `DeviceMixMode`; plain tensor attributes that stayed on the CPU.

`verdict()` turns the stages' facts into (status, detail) for one static finding;
`discover()` reports what the same facts show for a class without static findings.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from torch.utils.hooks import RemovableHandle

from torchlint.runtime.devices import (
    CreationTracer, CudaSurvey, DeviceMixError, DeviceMixMode, is_cuda_unavailable_error, is_device_error, to_device,
)
from torchlint.runtime.construct import attempts
from torchlint.runtime.inputs import Candidate, NoInput, from_expression, synthesise

CONFIRMED, NOT_REPRODUCED, SKIPPED, ERROR = "confirmed", "not-reproduced", "skipped", "error"
Verdict = tuple[str, str]

_INIT_ERROR = re.compile(r"before Module\.__init__\(\) call|has no attribute '_(modules|parameters|buffers)'")
_CONTAINER_CALL = re.compile(r'Module \[(ModuleList|ModuleDict)\] is missing the required "forward"'
                             r"|(ParameterList|ParameterDict) should not be called")
_NO_FORWARD = re.compile(r'Module \[(\w+)\] is missing the required "forward" function')
_SELF_ATTR = re.compile(r"^\s*self\s*\.\s*(\w+)")
_RECEIVER = re.compile(r"^(.*?)\s*\.\s*forward\s*\(", re.S)
# attributes every Module instance has; they are torch's bookkeeping, not user state
_MODULE_INTERNALS = frozenset(vars(nn.Module()).keys())
MAX_WALK_DEPTH = 4
# codes whose check moves the Module to another device
DEVICE_CODES = frozenset({"TL106", "TL402", "TL403"})


class StepTimeout(BaseException):
    """Raised by the worker's alarm: a BaseException so that `except Exception` in user code
    does not swallow it."""


def short_error(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(s) for s in tensor.shape) or "0-dim"


@dataclass
class Holdings:
    """What one attribute holds that the Module does not register."""

    modules: Counter[str] = field(default_factory=Counter)  # type name -> count
    module_params: int = 0  # values in those Modules' parameters
    params: int = 0  # Parameter objects
    param_values: int = 0
    tensors: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (path, tensor)
    in_container: bool = False  # items of a list/tuple/dict, not the attribute itself

    def layers_text(self) -> str:
        total = sum(self.modules.values())
        if len(self.modules) == 1:
            (kind, count), = self.modules.items()
            text = f"{count:,} {kind} layer" + ("" if count == 1 else "s")
        else:
            parts = ", ".join(f"{c} {k}" for k, c in self.modules.most_common())
            text = f"{_plural(total, 'layer')} ({parts})"
        if self.module_params:
            return f"{text}, {self.module_params:,} parameters not in model.parameters()"
        return f"{text} not in model.modules()"

    def params_text(self) -> str:
        return (f"{_plural(self.params, 'Parameter')} ({self.param_values:,} values) "
                "not in model.parameters()")


@dataclass
class ForwardReport:
    ran: bool = False
    candidate: Candidate | None = None
    output: Any = None
    built: list[Counter[str]] = field(default_factory=list)  # per call
    hooks: dict[str, list[int]] = field(default_factory=dict)  # name -> [forward runs, hook calls]
    error: BaseException | None = None
    error_kind: str = ""  # container | no-forward | device | cuda | error
    skipped: str = ""  # why forward could not be checked


@dataclass
class DeviceReport:
    device: str = ""
    moved: bool = False
    move_error: str = ""
    stale: dict[str, list[str]] = field(default_factory=dict)  # attr -> tensors still on cpu
    ran: bool = False
    error: BaseException | None = None
    device_error: bool = False
    skipped: str = ""
    cpu_lines: set[int] = field(default_factory=set)  # lines that made cpu tensors in forward
    # lines of the cpu tensors the failing op consumed (None: no traced op failed)
    failed_lines: set[int] | None = None
    failed_op: str = ""
    mix_errors: dict[int, DeviceMixError] = field(default_factory=dict)  # line -> its first mix (meta survey)
    # after a device error on CUDA: the same forward surveyed on meta, for the lines it never reached
    survey: DeviceReport | None = None


class _Instruments:
    """Counts Module constructions and compares each submodule's forward runs with its hooks."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.created: list[nn.Module] = []  # Modules constructed while forward ran
        self.hooks: dict[str, list[int]] = {}
        self._handles: list[RemovableHandle] = []
        self._wrapped: list[nn.Module] = []
        self._original_init: Any = None

    def __enter__(self) -> _Instruments:
        original_init = nn.Module.__dict__["__init__"]
        created = self.created

        def counting_init(module: nn.Module, *args: Any, **kwargs: Any) -> None:
            created.append(module)
            original_init(module, *args, **kwargs)

        self._original_init = original_init
        nn.Module.__init__ = counting_init  # type: ignore[method-assign]
        seen: set[int] = set()
        for name, sub in self.model.named_modules():
            if sub is self.model or id(sub) in seen:
                continue
            seen.add(id(sub))
            counts = self.hooks.setdefault(name, [0, 0])
            self._wrap_forward(sub, counts)
            self._handles.append(sub.register_forward_hook(self._hook_counter(counts)))
        return self

    def take_built(self) -> Counter[str]:
        """The layers built since the last call that matter (TL107): with parameters or
        buffers of their own (weights that are never trained), or dropout (in training mode)."""
        built: Counter[str] = Counter()
        for module in self.created:
            if (getattr(module, "_parameters", None) or getattr(module, "_buffers", None)
                    or isinstance(module, nn.modules.dropout._DropoutNd)):
                built[type(module).__name__] += 1
        self.created.clear()
        return built

    @staticmethod
    def _hook_counter(counts: list[int]) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            counts[1] += 1
        return hook

    def _wrap_forward(self, sub: nn.Module, counts: list[int]) -> None:
        # An instance attribute shadows the class's forward both for `sub(x)` (Module.__call__
        # looks up self.forward) and for a direct `sub.forward(x)`; only the former fires hooks.
        bound = sub.forward

        def counted_forward(*args: Any, **kwargs: Any) -> Any:
            counts[0] += 1
            return bound(*args, **kwargs)

        object.__setattr__(sub, "forward", counted_forward)
        self._wrapped.append(sub)

    def __exit__(self, *exc: Any) -> None:
        nn.Module.__init__ = self._original_init  # type: ignore[method-assign]
        for handle in self._handles:
            handle.remove()
        for sub in self._wrapped:
            sub.__dict__.pop("forward", None)


def _outputs_differ(first: Any, second: Any) -> float | None:
    """The largest difference between two outputs' tensors, or None when they agree."""
    a = [t for t in _flatten(first) if isinstance(t, torch.Tensor)]
    b = [t for t in _flatten(second) if isinstance(t, torch.Tensor)]
    worst: float | None = None
    for x, y in zip(a, b):
        if x.shape != y.shape or not torch.equal(x, y):
            diff = float((x.float() - y.float()).abs().max()) if x.shape == y.shape and x.numel() else float("inf")
            worst = diff if worst is None else max(worst, diff)
    return worst


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [item for v in value for item in _flatten(v)]
    if isinstance(value, dict):
        return [item for v in value.values() for item in _flatten(v)]
    return [value]


def _is_shape_error(exc: BaseException) -> bool:
    """An error a better-fitting input may avoid (shapes, a None where a mask was wanted)."""
    if is_device_error(exc) or is_cuda_unavailable_error(exc):
        return False
    if isinstance(exc, (TypeError, AssertionError)):
        return "NoneType" in str(exc) or isinstance(exc, AssertionError) or "argument" in str(exc)
    return isinstance(exc, (RuntimeError, ValueError, IndexError)) and not (
        _CONTAINER_CALL.search(str(exc)) or _NO_FORWARD.search(str(exc)))


def _user_module(module: nn.Module) -> bool:
    """Torch's own layers are right by construction; only user classes hold surprises."""
    return not type(module).__module__.startswith("torch.")


class ClassProber:
    """Everything the runtime checker does to one Module class."""

    def __init__(self, cls: type, namespace: dict[str, Any], user_file: str,
                 construct: str | None, inputs: str | None, recipes: list[dict[str, str]] | None = None,
                 input_recipes: list[dict[str, str]] | None = None, device: str | None = None,
                 mix_mode: bool = True) -> None:
        self.cls = cls
        self.recipes = recipes or []
        self.input_recipes = input_recipes or []
        # the device of the device stage: CUDA when the worker sees it, else meta (tests force
        # one; `mix_mode` False runs meta like CUDA, with only the kernels' own device checks)
        self.device = device or ("cuda" if torch.cuda.is_available() else "meta")
        self.mix_mode = mix_mode
        self.built_with = ""  # how the instance was built, for the detail
        self._thunk: Any = None  # builds the instance again (TL403's survey)
        self._cuda_lines: dict[int, str] | None = None
        self.construct_tried: list[str] = []
        self.namespace = namespace
        self.user_file = user_file
        self.construct_expression = construct
        self.inputs_expression = inputs
        self.instance: nn.Module | None = None
        self.construct_error: BaseException | None = None
        self.construct_from_config = False
        self.construct_skipped = ""
        self.missing_internals = False
        self.holdings: dict[str, Holdings] | None = None
        self.unregistered: list[nn.Module] = []
        self.forward_report: ForwardReport | None = None
        self.eval_difference: float | None = None
        self.eval_checked = False
        self.device_report: DeviceReport | None = None

    # -- stages --------------------------------------------------------------------------
    def run(self, codes: set[str], discover: bool) -> None:
        """Run the stages the codes need, in the only safe order (CPU work before the move)."""
        self._construct()
        if self.instance is None:
            return
        needs_forward = discover or bool(codes & {"TL107", "TL108", "TL109", "TL201", "TL202", "TL203",
                                                  "TL303", "TL402", "TL403"})
        self._register()
        if needs_forward:
            self._forward()
        if "TL303" in codes:
            self._eval_twice()
        if discover or codes & DEVICE_CODES:
            self._device()

    def _construct(self) -> None:
        if self.construct_expression:
            try:
                scope = dict(self.namespace)
                scope.setdefault("torch", torch)
                scope.setdefault("nn", nn)
                instance = eval(self.construct_expression, scope)  # noqa: S307 - the user's config
            except StepTimeout:
                raise
            except (Exception, SystemExit) as exc:
                self.construct_error = exc
                self.construct_from_config = True
                return
            if not isinstance(instance, nn.Module):
                self.construct_error = TypeError(
                    f"the construct expression gave a {type(instance).__name__}, not a Module")
                self.construct_from_config = True
                return
            self._built(instance, "the configured expression")
            self._thunk = lambda: eval(self.construct_expression, scope)  # noqa: S307
            return
        failures: list[tuple[str, BaseException]] = []
        for source, description, thunk in attempts(self.cls, self.namespace, self.recipes, "cpu"):
            try:
                instance = thunk()
            except StepTimeout:
                raise
            except (Exception, SystemExit) as exc:
                failures.append((description, exc))
                if _INIT_ERROR.search(str(exc)) or "super(type, obj)" in str(exc) or is_cuda_unavailable_error(exc):
                    # the class's own error shows through any arguments
                    self.construct_error = exc
                    self._thunk = thunk
                    self.construct_tried = [d for d, _ in failures]
                    return
                continue
            if not isinstance(instance, self.cls):
                failures.append((description, TypeError(f"it gave a {type(instance).__name__}, not a {self.cls.__name__}")))
                continue
            self._built(instance, description)
            self._thunk = thunk
            return
        self.construct_tried = [d for d, _ in failures]
        missing = self._required_constructor_args()
        if not failures:
            self.construct_skipped = (f"needs constructor arguments: {', '.join(missing)} (no factory, project "
                                      "call or fillable signature)")
            return
        # the first real failure: a no-argument or project construction says more than a guess
        description, error = failures[0]
        self.construct_error = error
        attempts_text = "; ".join(f"{d}: {short_error(e)}" for d, e in failures[:3])
        if missing:
            self.construct_skipped = f"needs constructor arguments: {', '.join(missing)} (tried {attempts_text})"
        else:
            self.construct_skipped = f"construction failed: {attempts_text}"

    def _built(self, instance: nn.Module, description: str) -> None:
        self.instance = instance
        self.built_with = description
        self.missing_internals = "_modules" not in vars(instance) or "_parameters" not in vars(instance)

    def _required_constructor_args(self) -> list[str]:
        try:
            signature = inspect.signature(self.cls)
        except (TypeError, ValueError):
            return []
        return [p.name for p in signature.parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def _register(self) -> None:
        model = self.instance
        assert model is not None
        self.holdings = {}
        if self.missing_internals:
            return
        registered_modules = {id(m) for m in model.modules()}
        registered_params = {id(p) for p in model.parameters()}
        registered_buffers = {id(b) for b in model.buffers()}
        counted: set[int] = set()  # each Module / Parameter / tensor reported once
        for prefix, owner in model.named_modules():
            if not _user_module(owner):
                continue
            for name, value in vars(owner).items():
                if name in _MODULE_INTERNALS or name == "forward":
                    continue
                attr = f"{prefix}.{name}" if prefix else name
                holding = Holdings()
                self._walk(value, attr, 0, holding, counted, registered_modules, registered_params,
                           registered_buffers)
                if holding.modules or holding.params or holding.tensors:
                    self.holdings[attr] = holding

    def _walk(self, value: Any, path: str, depth: int, holding: Holdings, counted: set[int],
              modules: set[int], params: set[int], buffers: set[int]) -> None:
        if id(value) in counted or depth > MAX_WALK_DEPTH:
            return
        if isinstance(value, nn.Parameter):
            if id(value) not in params:
                counted.add(id(value))
                holding.params += 1
                holding.param_values += value.numel()
                holding.in_container |= depth > 0
        elif isinstance(value, torch.Tensor):
            if id(value) not in params and id(value) not in buffers:
                counted.add(id(value))
                holding.tensors.append((path, value))
        elif isinstance(value, nn.Module):
            if id(value) not in modules:
                counted.add(id(value))
                self.unregistered.append(value)
                holding.in_container |= depth > 0
                holding.modules[type(value).__name__] += 1
                for p in value.parameters():
                    if id(p) not in params and id(p) not in counted:
                        counted.add(id(p))
                        holding.module_params += p.numel()
        elif isinstance(value, (list, tuple, set, frozenset)):
            for index, item in enumerate(list(value)[:10_000]):
                self._walk(item, f"{path}[{index}]", depth + 1, holding, counted, modules, params, buffers)
        elif isinstance(value, dict):
            for key, item in list(value.items())[:10_000]:
                self._walk(item, f"{path}[{key!r}]", depth + 1, holding, counted, modules, params, buffers)

    def _candidates(self) -> list[Candidate]:
        assert self.instance is not None
        if self.inputs_expression:
            return [from_expression(self.inputs_expression, self.namespace)]
        found = []
        for recipe in self.input_recipes:
            try:
                candidate = from_expression(recipe["code"], self.namespace)
            except StepTimeout:
                raise
            except Exception:
                continue
            candidate.description += f" (the project's call at {recipe['where']})"
            found.append(candidate)
        try:
            found += synthesise(self.instance, self.unregistered)
        except NoInput:
            if not found:
                raise
        return found

    def _forward(self) -> None:
        model = self.instance
        assert model is not None
        report = self.forward_report = ForwardReport()
        if self.missing_internals:
            report.skipped = "nn.Module.__init__ never ran"
            return
        try:
            candidates = self._candidates()
        except NoInput as exc:
            report.skipped = str(exc)
            return
        except StepTimeout:
            raise
        except (Exception, SystemExit) as exc:
            report.error, report.error_kind = exc, "inputs"
            return
        errors: list[BaseException] = []
        for candidate in candidates:
            instruments = _Instruments(model)
            try:
                with torch.no_grad(), instruments:
                    output = model(*candidate.args)
                    built = [instruments.take_built()]
                    if built[0]:
                        # built something: once (lazy creation) or on every call?
                        model(*candidate.args)
                        built.append(instruments.take_built())
            except StepTimeout:
                raise
            except (Exception, SystemExit) as exc:
                errors.append(exc)
                if _is_shape_error(exc) and not self.inputs_expression:
                    continue  # the next candidate shape may fit
                break
            report.ran, report.candidate, report.output = True, candidate, output
            report.built, report.hooks = built, instruments.hooks
            return
        # all shape errors: the most likely candidate's error says most; else the real one
        first_error = errors[-1] if not _is_shape_error(errors[-1]) else errors[0]
        report.error = first_error
        text = str(first_error)
        if _CONTAINER_CALL.search(text):
            report.error_kind = "container"
        elif _NO_FORWARD.search(text):
            report.error_kind = "no-forward"
        elif is_cuda_unavailable_error(first_error):
            report.error_kind = "cuda"
        elif is_device_error(first_error):
            report.error_kind = "device"
        elif _is_shape_error(first_error) and not self.inputs_expression:
            tried = "; ".join(c.description for c in candidates[:4])
            if len(candidates) > 4:
                tried += f"; and {len(candidates) - 4} more"
            report.skipped = f"no synthesised input fits (tried {tried}): {short_error(first_error)}"
        else:
            report.error_kind = "error"

    def _eval_twice(self) -> None:
        model = self.instance
        report = self.forward_report
        if model is None or report is None or not report.ran or report.candidate is None:
            return
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                first = model(*report.candidate.args)
                second = model(*report.candidate.args)
            self.eval_difference = _outputs_differ(first, second)
            self.eval_checked = True
        except StepTimeout:
            raise
        except (Exception, SystemExit):
            self.eval_checked = False
        finally:
            model.train(was_training)

    def _device(self) -> None:
        model = self.instance
        assert model is not None
        device = self.device
        report = self.device_report = DeviceReport(device=device)
        if self.missing_internals:
            report.skipped = "nn.Module.__init__ never ran"
            return
        try:
            model.to(device)
            report.moved = True
        except StepTimeout:
            raise
        except (Exception, SystemExit) as exc:
            report.move_error = short_error(exc)
            report.skipped = f".to({device!r}) failed: {short_error(exc)}"
            return
        for attr, holding in (self.holdings or {}).items():
            stale = []
            for path, tensor in holding.tensors:
                current = self._resolve_path(path)
                if isinstance(current, torch.Tensor) and current.device.type == "cpu":
                    stale.append(f"{path} ({_shape(current)} {str(current.dtype).replace('torch.', '')})")
            if stale:
                report.stale[attr] = stale
        forward = self.forward_report
        if forward is None or forward.candidate is None:
            report.skipped = (forward.skipped if forward and forward.skipped
                              else "forward did not run on cpu")
            return
        self._device_forward(model, report, to_device(forward.candidate.args, device), self.mix_mode)
        if report.device_error and (device != "meta" or not self.mix_mode):
            # the kernels' own checks (CUDA) stop forward at the first mix: survey the rest on
            # meta, where the mode records every line whose cpu tensor meets the model's
            survey = DeviceReport(device="meta")
            try:
                model.to("meta")
                survey.moved = True
            except StepTimeout:
                raise
            except (Exception, SystemExit) as exc:
                survey.skipped = f".to('meta') failed: {short_error(exc)}"
            if survey.moved:
                self._device_forward(model, survey, to_device(forward.candidate.args, "meta"), True)
                report.survey = survey

    def _device_forward(self, model: nn.Module, report: DeviceReport, args: Any, mix_mode: bool) -> None:
        """Forward on `report.device` with the creation tracer (and on meta, the mix mode)."""
        device = report.device
        # on meta the mode refuses meta/cpu mixes as CUDA would; on CUDA the kernels do it.
        # The tracer records where each cpu tensor came from, on either.
        mode = DeviceMixMode(self.user_file, survey=True) if device == "meta" and mix_mode else None
        tracer = CreationTracer(self.user_file)
        try:
            with torch.no_grad(), tracer:
                if mode is not None:
                    with mode:
                        model(*args)
                else:
                    model(*args)
            report.ran = True
        except StepTimeout:
            raise
        except (Exception, SystemExit) as exc:
            report.error = exc
            report.device_error = is_device_error(exc)
            report.cpu_lines = tracer.lines() | (mode.cpu_lines() if mode is not None else set())
            report.failed_lines, report.failed_op = tracer.failed_lines, tracer.failed_op
            if isinstance(exc, DeviceMixError) and exc.origin_line is not None:
                report.failed_lines = (report.failed_lines or set()) | {exc.origin_line}
            if not report.device_error:
                report.skipped = f"not checkable on {device}: {short_error(exc)}"
        finally:
            if device == "cuda":
                try:
                    torch.cuda.synchronize()
                except Exception:  # a device-side assert surfaces here; forward's error said it
                    pass
        if mode is not None and mode.errors:
            # every mix the survey saw (each would stop forward on CUDA), even when a later
            # error (a `.item()` meta cannot answer) ended the pass
            if report.error is None or not report.device_error:
                report.error, report.device_error, report.skipped = mode.errors[0], True, ""
            report.cpu_lines = tracer.lines() | mode.cpu_lines()
            report.failed_lines = (report.failed_lines or set()) | {
                e.origin_line for e in mode.errors if e.origin_line is not None}
            report.mix_errors = {e.origin_line: e for e in reversed(mode.errors) if e.origin_line is not None}

    def _resolve_path(self, path: str) -> Any:
        """Re-read `block.mask` or `masks[0]` from the (moved) instance."""
        value: Any = self.instance
        for part in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path):
            try:
                if part.startswith("["):
                    key = part[1:-1]
                    value = value[int(key)] if key.isdigit() else value[eval(key, {})]  # noqa: S307 - a repr we made
                elif isinstance(value, nn.Module) and part in value._modules:
                    value = value._modules[part]
                else:
                    value = vars(value)[part]
            except Exception:
                return None
        return value

    # -- verdicts ------------------------------------------------------------------------
    def _user_line(self, exc: BaseException) -> int | None:
        """The line of the user's file where an exception was raised (its innermost frame there)."""
        found = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.user_file:
                found = tb.tb_lineno
            tb = tb.tb_next
        return found

    def _cuda_verdict(self, stage: str, exc: BaseException, line: int | None, end_line: int | None) -> Verdict:
        """TL403 when CUDA is missing: confirmed by the finding whose line raised, not by its
        siblings in the class, whose lines never ran."""
        raised = self._user_line(exc)
        if raised is None or line is None or end_line is None or line <= raised <= end_line:
            return CONFIRMED, f"{stage} without CUDA: {short_error(exc)}"
        # the lines after the first never ran: run again with CUDA requests recorded and
        # kept on the cpu, to see whether this line asks for CUDA too
        asked = [(n, what) for n, what in self._cuda_survey().items() if line <= n <= end_line]
        if asked:
            return CONFIRMED, (f"line {asked[0][0]} asks for CUDA ({asked[0][1]}), seen with CUDA requests kept "
                               f"on the cpu; without CUDA line {raised} raised first: {short_error(exc)}")
        return SKIPPED, f"{stage} at line {raised} before this line ran: {short_error(exc)}"

    def _cuda_survey(self) -> dict[int, str]:
        """Lines of the user's file that ask for CUDA while the Module is built and run once
        with every such request recorded and kept on the cpu."""
        if self._cuda_lines is not None:
            return self._cuda_lines
        self._cuda_lines = {}
        if self._thunk is None:
            return self._cuda_lines
        survey = CudaSurvey(self.user_file)
        try:
            with torch.no_grad(), survey:
                model = self._thunk()
                if isinstance(model, nn.Module):
                    report = self.forward_report
                    candidates = [report.candidate] if report is not None and report.candidate else []
                    if not candidates:
                        candidates = synthesise(model, [])[:4]
                    for candidate in candidates:
                        try:
                            model(*candidate.args)
                            break
                        except StepTimeout:
                            raise
                        except Exception:
                            continue
        except StepTimeout:
            raise
        except (Exception, SystemExit):
            pass
        self._cuda_lines = dict(survey.lines)
        return self._cuda_lines

    def construction_blocker(self, code: str, line: int | None = None, end_line: int | None = None) -> Verdict | None:
        """The verdict when construction did not give an instance (or gave a broken one).

        A construction that fails is `skipped`: the arguments may be wrong, not the class,
        unless the failure is the finding's own error (TL101/TL102's init error, TL403's
        missing CUDA, TL109's AttributeError), or the user's configured expression failed."""
        error = self.construct_error
        if error is not None:
            message = short_error(error)
            if code in ("TL101", "TL102", "TL103") and (
                    _INIT_ERROR.search(str(error)) or "super(type, obj)" in str(error)):
                return CONFIRMED, f"construction failed: {message}"
            if code == "TL403" and is_cuda_unavailable_error(error):
                return self._cuda_verdict("construction failed", error, line, end_line)
            if code == "TL109" and isinstance(error, AttributeError):
                return None  # decided by the attribute name in verdict()
            if self.construct_from_config:
                if isinstance(error, SystemExit):
                    return ERROR, f"construction {message}"
                return ERROR, f"construction failed: {message}"
            return SKIPPED, self.construct_skipped or f"construction failed: {message}"
        if self.construct_skipped:
            return SKIPPED, self.construct_skipped
        if self.missing_internals and code in ("TL101", "TL102", "TL103"):
            return CONFIRMED, "the instance has no _modules/_parameters: nn.Module.__init__ never ran"
        return None

    def verdict(self, code: str, anchor: str, line: int, end_line: int) -> Verdict:
        """(status, detail) for one static finding of this class."""
        if code == "TL403" and torch.cuda.is_available():
            # TL403's worker runs with CUDA_VISIBLE_DEVICES="": CUDA must not be there
            return SKIPPED, "CUDA could not be hidden from the worker: cannot tell whether it runs without CUDA"
        blocker = self.construction_blocker(code, line, end_line)
        if blocker is not None:
            return blocker
        method = getattr(self, f"_verdict_{code}", None)
        if method is None:
            return SKIPPED, f"no runtime check for {code}"
        result: Verdict = method(anchor, line, end_line)
        return result

    def _verdict_TL101(self, anchor: str, line: int, end_line: int) -> Verdict:
        if self.construct_error is not None:
            return ERROR, f"construction failed: {short_error(self.construct_error)}"
        return NOT_REPRODUCED, "constructed without error; nn.Module.__init__ ran"

    _verdict_TL102 = _verdict_TL101
    _verdict_TL103 = _verdict_TL101

    def _holding_for(self, anchor: str) -> tuple[str | None, Holdings | None]:
        match = _SELF_ATTR.match(anchor)
        if not match or self.holdings is None:
            return None, None
        return match.group(1), self.holdings.get(match.group(1))

    def _root_totals(self) -> Holdings:
        total = Holdings()
        for attr, holding in (self.holdings or {}).items():
            if "." in attr:
                continue
            total.modules.update(holding.modules)
            total.module_params += holding.module_params
            total.params += holding.params
            total.param_values += holding.param_values
            total.tensors.extend(holding.tensors)
        return total

    def _has_attr(self, attr: str) -> bool:
        return self.instance is not None and attr in vars(self.instance)

    def _unregistered_verdict(self, anchor: str, modules: bool) -> Verdict:
        """TL104 (`modules`) / TL105: does the anchored attribute hold unregistered items?"""
        what, registry = ("Module", "_modules") if modules else ("Parameter", "_parameters")

        def found(holding: Holdings) -> str:
            if modules:
                return holding.layers_text() if holding.modules else ""
            return holding.params_text() if holding.params else ""

        attr, holding = self._holding_for(anchor)
        if attr is None:
            text = found(self._root_totals())
            if text:
                return CONFIRMED, text
            return NOT_REPRODUCED, f"every {what} the instance holds is registered"
        if holding is not None and found(holding):
            return CONFIRMED, found(holding)
        if self.instance is not None and not self._has_attr(attr) and attr not in getattr(self.instance, registry):
            return NOT_REPRODUCED, f"after construction the instance has no attribute {attr}"
        return NOT_REPRODUCED, f"the {what}s in self.{attr} are registered"

    def _verdict_TL104(self, anchor: str, line: int, end_line: int) -> Verdict:
        return self._unregistered_verdict(anchor, modules=True)

    def _verdict_TL105(self, anchor: str, line: int, end_line: int) -> Verdict:
        return self._unregistered_verdict(anchor, modules=False)

    def _verdict_TL106(self, anchor: str, line: int, end_line: int) -> Verdict:
        attr, holding = self._holding_for(anchor)
        device = self.device_report
        if attr is None:
            return SKIPPED, "cannot tell which attribute the finding is about"
        if holding is None or not holding.tensors:
            if self.instance is not None and attr in self.instance._buffers:
                return NOT_REPRODUCED, f"self.{attr} is a registered buffer"
            if not self._has_attr(attr):
                return NOT_REPRODUCED, f"after construction the instance has no attribute {attr}"
            return NOT_REPRODUCED, f"self.{attr} holds no unregistered tensor"
        path, tensor = holding.tensors[0]
        text = f"tensor self.{path} ({_shape(tensor)} {str(tensor.dtype).replace('torch.', '')}) is not in model.buffers()"
        if len(holding.tensors) > 1:
            text = f"{len(holding.tensors)} tensors in self.{attr} are not in model.buffers()"
        if device is not None and device.moved:
            if attr in device.stale:
                return CONFIRMED, f"{text}; still on cpu after .to({device.device!r})"
            return NOT_REPRODUCED, f"{text}, but it followed .to({device.device!r})"
        return CONFIRMED, text

    def _forward_blocker(self) -> Verdict | None:
        report = self.forward_report
        if report is None:
            return SKIPPED, "forward was not run"
        if report.skipped:
            return SKIPPED, report.skipped
        if report.error is not None and not report.ran:
            if report.error_kind == "inputs":
                return ERROR, f"the inputs expression failed: {short_error(report.error)}"
            return SKIPPED, f"forward failed on cpu: {short_error(report.error)}"
        return None

    def _verdict_TL107(self, anchor: str, line: int, end_line: int) -> Verdict:
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        built = self.forward_report.built if self.forward_report else []
        if len(built) > 1 and built[1]:
            return CONFIRMED, f"forward built {_counts(built[1])} on each call"
        if built and built[0]:
            return NOT_REPRODUCED, f"forward built {_counts(built[0])} on the first call only (created once, then reused)"
        return NOT_REPRODUCED, "forward built no Module"

    def _verdict_TL108(self, anchor: str, line: int, end_line: int) -> Verdict:
        report = self.forward_report
        if report is not None and report.error_kind == "no-forward" and report.error is not None:
            return CONFIRMED, f"calling the module raised {short_error(report.error)}"
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        return NOT_REPRODUCED, "calling the module ran a forward"

    def _verdict_TL109(self, anchor: str, line: int, end_line: int) -> Verdict:
        names = re.findall(r"\w+", anchor)
        name = names[-1] if names else ""
        for error in (self.construct_error, self.forward_report.error if self.forward_report else None):
            if isinstance(error, AttributeError) and name and f"'{name}'" in str(error):
                return CONFIRMED, short_error(error)
        looked_up = self._look_up(anchor, line)
        if looked_up is not None:
            return looked_up
        if isinstance(self.construct_error, AttributeError):
            # another misspelt name failed first: this one was never reached
            return SKIPPED, f"construction stopped earlier: {short_error(self.construct_error)}"
        if self.construct_error is not None:
            if self.construct_from_config:
                return ERROR, f"construction failed: {short_error(self.construct_error)}"
            return SKIPPED, self.construct_skipped or f"construction failed: {short_error(self.construct_error)}"
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        return NOT_REPRODUCED, f"construction and forward ran without an AttributeError for {name}"

    def _look_up(self, anchor: str, line: int) -> Verdict | None:
        """TL109 without running the line: look the name up on what its receiver is.

        `nn.Conv` / `F.gleu`: the module-level object; `self.named_paramters`: the class (and
        the instance, when built); `features.add_moudle`: the type a local of the same method
        was made from (`features = nn.Sequential()`). None when the receiver is unknown."""
        match = re.match(r"\s*([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)", anchor)
        if not match and re.fullmatch(r"\s*\w+\s*", anchor):
            # the anchor is the attribute alone: read its receiver from the line
            lines, _ = self._class_lines()
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            match = re.search(rf"((?<![\w.])[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*\s*\.\s*{anchor.strip()})\b", text)
        if not match:
            return None
        parts = [p.strip() for p in match.group(1).split(".")]
        root, middle, attr = parts[0], parts[1:-1], parts[-1]
        owner: Any
        if root == "self":
            if middle:
                if self.instance is None:
                    return None
                owner = self.instance
                for part in middle:
                    try:
                        owner = getattr(owner, part)
                    except AttributeError:
                        return None
            else:
                if self._may_set(attr) or any("__getattr__" in vars(c) for c in self.cls.__mro__
                                              if c not in (nn.Module, object)):
                    return None
                owner = self.instance if self.instance is not None else self.cls
            shown = f"self.{'.'.join([*middle, attr])}"
        elif root in self.namespace:
            owner = self.namespace[root]
            for part in middle:
                try:
                    owner = getattr(owner, part)
                except AttributeError as exc:
                    return CONFIRMED, f"{'.'.join(parts)} does not exist: {short_error(exc)}"
            shown = ".".join(parts)
        else:
            maker = self._local_maker(root, line)
            if maker is None or middle:
                return None
            owner = maker
            shown = f"{root}.{attr} ({root} is a {getattr(maker, '__name__', maker)})"
        try:
            if isinstance(owner, type):
                missing = not hasattr(owner, attr)
                error_text = f"type object '{owner.__name__}' has no attribute '{attr}'"
            else:
                getattr(owner, attr)
                missing = False
                error_text = ""
        except AttributeError as exc:
            missing, error_text = True, short_error(exc)
        except Exception:
            return None
        if missing:
            return CONFIRMED, f"{shown} does not exist: {error_text}"
        return NOT_REPRODUCED, f"{shown} exists"

    def _class_lines(self) -> tuple[list[str], int]:
        try:
            with open(self.user_file, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
            start = inspect.getsourcelines(self.cls)[1]
        except (OSError, TypeError):
            return [], 0
        return lines, start

    def _may_set(self, attr: str) -> bool:
        """Whether the class's file assigns `self.attr` or `setattr`s anything (an instance
        attribute the class itself does not have)."""
        texts = []
        for klass in self.cls.__mro__:
            if klass in (nn.Module, object) or klass.__module__.startswith("torch."):
                continue
            try:
                source_file = inspect.getsourcefile(klass)
                if source_file is None:
                    return True
                with open(source_file, encoding="utf-8", errors="replace") as handle:
                    texts.append(handle.read())
            except (OSError, TypeError):
                return True  # a base we cannot read may set it
        text = "\n".join(texts)
        return re.search(rf"\bself\s*\.\s*{re.escape(attr)}\s*=(?!=)", text) is not None \
            or "setattr(" in text or "__dict__" in text

    def _local_maker(self, name: str, line: int) -> type | None:
        """The class a local was last built from before `line` (`x = nn.Sequential()`)."""
        lines, start = self._class_lines()
        if not lines or not start or line > len(lines):
            return None
        pattern = re.compile(rf"^\s*{re.escape(name)}\s*=\s*([A-Za-z_][\w.]*)\s*\(")
        maker = None
        for text in lines[start - 1:line - 1]:
            found = pattern.match(text)
            if found:
                maker = found.group(1)
            elif re.match(rf"^\s*{re.escape(name)}\s*=", text):
                maker = None
        if maker is None:
            return None
        value: Any = self.namespace
        for index, part in enumerate(maker.split(".")):
            value = value.get(part) if index == 0 and isinstance(value, dict) else getattr(value, part, None)
            if value is None:
                return None
        return value if isinstance(value, type) else None

    def _verdict_TL201(self, anchor: str, line: int, end_line: int) -> Verdict:
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        hooks = self.forward_report.hooks if self.forward_report else {}
        mismatched = {name: c for name, c in hooks.items() if c[0] > c[1]}
        receiver = _receiver_path(anchor)
        if receiver is not None and receiver in hooks:
            runs, fired = hooks[receiver]
            if runs > fired:
                return CONFIRMED, _hook_text(receiver, runs, fired)
            if runs == 0:
                return NOT_REPRODUCED, f"self.{receiver}.forward did not run on this input"
            return NOT_REPRODUCED, f"{receiver}: its forward hooks fired each of the {_plural(runs, 'time')} its forward ran"
        if mismatched:
            name, (runs, fired) = next(iter(mismatched.items()))
            return CONFIRMED, _hook_text(name, runs, fired)
        if receiver is not None:
            return NOT_REPRODUCED, f"self.{receiver} is not a registered submodule that ran; every submodule's hooks fired"
        return NOT_REPRODUCED, "every submodule's forward hooks fired each time its forward ran"

    def _verdict_TL202(self, anchor: str, line: int, end_line: int) -> Verdict:
        report = self.forward_report
        if report is not None and report.error_kind == "container" and report.error is not None:
            match = _CONTAINER_CALL.search(str(report.error))
            kind = (match.group(1) or match.group(2)) if match else "the container"
            return CONFIRMED, f"calling a {kind} raised {short_error(report.error)}"
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        return NOT_REPRODUCED, "forward ran without calling a container"

    def _verdict_TL203(self, anchor: str, line: int, end_line: int) -> Verdict:
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        report = self.forward_report
        assert report is not None and report.candidate is not None
        if report.output is None:
            return CONFIRMED, f"forward returned None (input {report.candidate.description})"
        return NOT_REPRODUCED, f"forward returned a {type(report.output).__name__}"

    def _verdict_TL303(self, anchor: str, line: int, end_line: int) -> Verdict:
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        if not self.eval_checked:
            return SKIPPED, "forward failed in eval mode"
        if self.eval_difference is not None:
            return CONFIRMED, (f"after .eval(), two forward passes on the same input differ "
                               f"(max difference {self.eval_difference:.3g})")
        return NOT_REPRODUCED, "after .eval(), two forward passes on the same input agree"

    def _device_verdict(self, code: str, line: int, end_line: int) -> Verdict:
        forward = self.forward_report
        if forward is not None and forward.error_kind in ("cuda", "device") and forward.error is not None:
            if code == "TL403" and forward.error_kind == "cuda":
                return self._cuda_verdict("forward on cpu failed", forward.error, line, end_line)
            if code == "TL403":
                return CONFIRMED, f"forward on cpu failed: {short_error(forward.error)}"
            # a device error on the cpu: something else in forward chose a device
            return SKIPPED, f"forward on cpu stopped at a device error: {short_error(forward.error)}"
        device = self.device_report
        if device is None:
            return SKIPPED, "the device check did not run"
        verdict = self._mix_verdict(code, device, line, end_line)
        if verdict is not None:
            survey = device.survey
            if verdict[0] == SKIPPED and code == "TL402" and survey is not None:
                # CUDA stopped at another line's tensor; the meta survey ran the rest
                surveyed = self._mix_verdict(code, survey, line, end_line)
                if surveyed is not None and surveyed[0] == CONFIRMED:
                    other = sorted(device.failed_lines or ())
                    at = f"at line {other[0]}" if other else "at a device error"
                    return CONFIRMED, (f"forward on {device.device} stopped {at}: "
                                       f"{short_error(device.error)}; surveyed on meta: {surveyed[1]}")
            return verdict
        if device.skipped:
            return SKIPPED, device.skipped
        blocker = self._forward_blocker()
        if blocker:
            return blocker
        if device.device == "meta":
            return NOT_REPRODUCED, "forward ran on meta with no cpu tensor mixed in"
        return NOT_REPRODUCED, f"forward ran on {device.device}"

    def _mix_verdict(self, code: str, device: DeviceReport, line: int, end_line: int) -> Verdict | None:
        """The verdict when forward on `device.device` stopped at a device error (else None)."""
        if device.error is not None and device.device_error:
            error = device.error
            if code == "TL403":
                if device.device == "meta" and not is_cuda_unavailable_error(error):
                    # a meta/cpu mix stopped forward: the hard-coded CUDA line may not have run
                    return SKIPPED, f"forward on meta stopped earlier: {short_error(error)}"
                if device.device == "meta":
                    return self._cuda_verdict("forward on meta failed", error, line, end_line)
                return CONFIRMED, f"forward on {device.device} failed: {short_error(error)}"
            own = [e for s, e in device.mix_errors.items() if line <= s <= end_line]
            if own:
                return CONFIRMED, f"forward on meta: {own[0]}; this fails on CUDA"
            if is_cuda_unavailable_error(error):
                return SKIPPED, f"forward on {device.device} stopped earlier: {short_error(error)}"
            # confirm only the finding whose line made a cpu tensor that the failing op
            # consumed (traced on any device), never its bystanders in the class
            consumed = sorted(device.failed_lines or ())
            on = f"forward on {device.device}"
            suffix = "; this fails on CUDA" if device.device == "meta" else ""
            text = str(error) if isinstance(error, DeviceMixError) else short_error(error)
            if any(line <= s <= end_line for s in consumed):
                op = f" ({device.failed_op})" if device.failed_op else ""
                where = ", ".join(str(s) for s in consumed)
                return CONFIRMED, (f"{on} failed: {text}; the failing op{op} consumed a cpu tensor made at "
                                   f"line{'s' if len(consumed) > 1 else ''} {where}{suffix}")
            if consumed:
                return SKIPPED, f"{on} stopped earlier: {text} (a cpu tensor made at line {consumed[0]})"
            if isinstance(error, DeviceMixError):
                return SKIPPED, f"{on} stopped earlier at a cpu tensor the model holds: {text}"
            return SKIPPED, f"{on} stopped at a device error not traced to this line: {text}"
        return None

    def _verdict_TL402(self, anchor: str, line: int, end_line: int) -> Verdict:
        return self._device_verdict("TL402", line, end_line)

    def _verdict_TL403(self, anchor: str, line: int, end_line: int) -> Verdict:
        return self._device_verdict("TL403", line, end_line)

    # -- beyond the static rules ---------------------------------------------------------
    def discover(self) -> list[dict[str, str]]:
        """Problems a class without static findings shows at runtime: code, message, detail."""
        name = self.cls.__name__
        found: list[dict[str, str]] = []

        def add(code: str, message: str, detail: str) -> None:
            found.append({"code": code, "message": message, "detail": detail})

        if self.construct_error is not None and _INIT_ERROR.search(str(self.construct_error)):
            add("TL102", f"{name}.__init__ registers a submodule, Parameter or buffer before "
                "nn.Module.__init__() runs", f"construction failed: {short_error(self.construct_error)}")
            return found
        if self.instance is None:
            return found
        if self.missing_internals:
            add("TL101", f"{name}.__init__ never runs nn.Module.__init__(); nn.Module will not be initialised",
                "the instance has no _modules/_parameters")
            return found
        device = self.device_report
        for attr, holding in (self.holdings or {}).items():
            if holding.modules and holding.in_container:
                add("TL104", f"{name} keeps Modules in a plain container self.{attr}: invisible to "
                    "parameters(), .to() and state_dict(); use nn.ModuleList / nn.ModuleDict",
                    holding.layers_text())
            if holding.params and holding.in_container:
                add("TL105", f"{name} keeps Parameters in a plain container self.{attr}: invisible to "
                    "parameters(), .to() and state_dict(); use nn.ParameterList / nn.ParameterDict",
                    holding.params_text())
            if device is not None and attr in device.stale:
                add("TL106", f"{name}.{attr} holds a tensor that is not a buffer: it does not follow "
                    ".to(device); use self.register_buffer(...)",
                    f"{', '.join(device.stale[attr])} still on cpu after .to({device.device!r})")
        forward = self.forward_report
        if forward is not None and forward.ran:
            if len(forward.built) > 1 and forward.built[1]:
                add("TL107", f"{name}.forward constructs layers on every call: new random weights, never trained",
                    f"forward built {_counts(forward.built[1])} on each call")
            for sub, (runs, fired) in forward.hooks.items():
                # torch's own containers and layers call their children properly; a direct
                # .forward() call inside one of them is not the user's bug
                parent = self._resolve_path(sub.rpartition(".")[0]) if "." in sub else self.instance
                if runs > fired and isinstance(parent, nn.Module) and (
                        _user_module(parent) or isinstance(parent, (nn.ModuleList, nn.ModuleDict, nn.Sequential))):
                    add("TL201", f"{name}: submodule {sub} is run through .forward() directly, "
                        "skipping its hooks; call it as a function", _hook_text(sub, runs, fired))
                    break
        if forward is not None and forward.error is not None and not forward.ran:
            if forward.error_kind == "container":
                add("TL202", f"{name}.forward calls a container that has no forward",
                    f"calling it raised {short_error(forward.error)}")
            elif forward.error_kind == "cuda":
                add("TL403", f"{name} uses CUDA unconditionally: it no longer runs on the CPU",
                    f"forward on cpu failed: {short_error(forward.error)}")
        if device is not None and device.error is not None and device.device_error:
            error = device.error
            if isinstance(error, DeviceMixError) and error.origin_line is not None:
                add("TL402", f"{name}.forward creates a tensor on the CPU (line {error.origin_line}) that meets "
                    "the model's tensors: it breaks once the Module runs on a GPU",
                    f"forward on meta: {error}; this fails on CUDA")
            elif is_cuda_unavailable_error(error) and not any(f["code"] == "TL403" for f in found):
                add("TL403", f"{name} uses CUDA unconditionally: it no longer runs on the CPU",
                    f"forward on {device.device} failed: {short_error(error)}")
        return found


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in counter.most_common())


def _hook_text(name: str, runs: int, fired: int) -> str:
    return (f"{name}: forward ran {_plural(runs, 'time')}, its forward hook fired "
            f"{_plural(fired, 'time')}")


def _receiver_path(anchor: str) -> str | None:
    """`self.encoder.forward(x)` -> `encoder`; `self.blocks[0].forward` -> `blocks.0`."""
    match = _RECEIVER.match(anchor)
    if not match:
        return None
    receiver = re.sub(r"\s+", "", match.group(1))
    if not receiver.startswith("self."):
        return None
    path = receiver[len("self."):]
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\[['\"](\w+)['\"]\]", r".\1", path)
    return path if re.fullmatch(r"[\w.]+", path) else None


def train_eval_difference(item: dict[str, Any], namespace: dict[str, Any]) -> Verdict:
    """TL301 at runtime: the model's outputs on one seeded input, in train and in eval mode.

    They differ: the finding's evaluation really runs Dropout/BatchNorm in training mode
    (`confirmed`). Identical: the model has no mode-dependent layer, and the missing
    `.eval()` is harmless (`not-reproduced`)."""
    scope = dict(namespace)
    scope.setdefault("torch", torch)
    scope.setdefault("nn", nn)
    built = f"{item['construct']} (as at {item['where']})"
    try:
        model = eval(item["construct"], scope)  # noqa: S307 - the user's own construction
    except StepTimeout:
        raise
    except (Exception, SystemExit) as exc:
        return SKIPPED, f"could not build {built}: {short_error(exc)}"
    if not isinstance(model, nn.Module):
        return SKIPPED, f"{built} is a {type(model).__name__}, not a Module"
    candidates: list[Candidate] = []
    if item.get("inputs"):
        try:
            candidate = from_expression(item["inputs"], scope)
            candidate.description += f" (the call at {item['inputs_where']})"
            candidates.append(candidate)
        except StepTimeout:
            raise
        except Exception:
            pass
    try:
        candidates += synthesise(model, [])
    except NoInput as exc:
        if not candidates:
            return SKIPPED, str(exc)
    errors: list[BaseException] = []
    for candidate in candidates:
        try:
            with torch.no_grad():
                model.train()
                torch.manual_seed(0)
                trained = model(*candidate.args)
                model.eval()
                torch.manual_seed(0)
                evaluated = model(*candidate.args)
        except StepTimeout:
            raise
        except (Exception, SystemExit) as exc:
            errors.append(exc)
            if _is_shape_error(exc):
                continue
            break
        difference = _outputs_differ(trained, evaluated)
        if difference is not None:
            return CONFIRMED, (f"train and eval outputs differ (max difference {difference:.3g}) on input "
                               f"{candidate.description}; model {built}")
        return NOT_REPRODUCED, (f"train and eval outputs are identical on input {candidate.description}: "
                                f"the model has no mode-dependent layer; model {built}")
    return SKIPPED, f"forward failed for {built}: {short_error(errors[0] if errors else RuntimeError('no input'))}"
