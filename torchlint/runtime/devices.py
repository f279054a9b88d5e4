"""Finding device bugs without a GPU: a dispatch mode that refuses meta/cpu mixes (worker only).

On the `meta` device alone most device bugs go unseen: `Embedding(meta)(cpu ids)`,
`meta @ cpu` and `Conv2d(meta)(cpu)` all run. Under `DeviceMixMode` every aten op is
inspected, and one that combines a meta tensor with a CPU tensor of one or more dimensions
raises `DeviceMixError`, as the same op would on CUDA. A 0-dim CPU tensor is a scalar that
CUDA ops accept, and the index lists of `index`/`index_put_` may live on the CPU, so neither
counts. CPU tensors created during the forward pass are tagged with the line of the user's
file that created them, so a finding can be matched to the tensor that caused the error.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_aten = torch.ops.aten
# Ops whose second argument is a list of index tensors that CUDA accepts on the CPU.
_INDEX_OPS = frozenset({_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default,
                        _aten._index_put_impl_.default})
# Cross-device copies are legal: `param.copy_(cpu_tensor)` works on CUDA.
_LITERAL_OPS = frozenset({_aten.lift_fresh.default, _aten.lift_fresh_copy.default})
_COPY_OPS = frozenset({_aten.copy_.default, _aten._to_copy.default, _aten.lift_fresh.default,
                       _aten.lift_fresh_copy.default})

_DEVICE_MESSAGES = (
    "is not on the expected device", "expected all tensors to be on the same device",
    "found at least two devices", "torch not compiled with cuda", "no nvidia driver",
    "cuda driver", "cuda error", "cuda is not available", "no cuda gpus are available",
    "no cuda-capable device", "expected device", "device mismatch",
    "mixes a meta tensor with a cpu tensor",
    # composite kernels check devices themselves, before any op reaches the dispatch mode:
    # `Input and hidden tensors are not at the same device` (nn.LSTM/GRU/RNN), `expected self
    # and mask to be on the same device` (masked_fill on CUDA)
    "not at the same device", "to be on the same device",
)


class DeviceMixError(RuntimeError):
    """An op combined the Module's tensors with a CPU tensor that would not be on the GPU."""

    def __init__(self, op: str, shape: tuple[int, ...], dtype: str, origin_line: int | None) -> None:
        self.op = op
        self.shape = shape
        self.dtype = dtype
        self.origin_line = origin_line
        where = f" created at line {origin_line}" if origin_line else ""
        super().__init__(f"{op} mixes a meta tensor with a cpu tensor ({_shape(shape)} {dtype}){where}")


def _to_meta(value: Any) -> Any:
    """The cpu tensors of a (nested) value as meta tensors of the same shape."""
    flat, spec = tree_flatten(value)
    moved = [torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) and t.device.type == "cpu" else t
             for t in flat]
    from torch.utils._pytree import tree_unflatten
    return tree_unflatten(moved, spec)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) or "0-dim"


def is_device_error(exc: BaseException) -> bool:
    """Whether an exception is about devices (the bug the TL4xx rules predict)."""
    if isinstance(exc, DeviceMixError):
        return True
    text = str(exc).lower()
    return any(m in text for m in _DEVICE_MESSAGES)


def is_cuda_unavailable_error(exc: BaseException) -> bool:
    """`.cuda()` / `device="cuda"` on a machine without CUDA."""
    text = str(exc).lower()
    return ("not compiled with cuda" in text or "no nvidia driver" in text
            or "cuda is not available" in text or "cuda driver" in text
            or "no cuda gpus are available" in text or "no cuda-capable device" in text)


class DeviceMixMode(TorchDispatchMode):
    """Raise `DeviceMixError` on an op mixing meta tensors with non-0-dim CPU tensors."""

    def __init__(self, user_file: str, survey: bool = False) -> None:
        super().__init__()
        self.user_file = user_file
        # survey: record each mix and go on with the cpu tensor moved to meta, so that every
        # line whose tensor meets the model's is found in one pass, not only the first
        self.survey = survey
        self.errors: list[DeviceMixError] = []
        # id(tensor) -> the user line that created it during forward; the tensors are kept
        # alive in `_keep` so that ids are not reused while the mode is active
        self._origins: dict[int, int] = {}
        self._keep: list[torch.Tensor] = []
        self.error: DeviceMixError | None = None

    def cpu_lines(self) -> set[int]:
        """The user lines that created CPU tensors of one or more dimensions during forward:
        the suspects when a kernel's own device check (not this mode) refused a mix."""
        return {self._origins[id(t)] for t in self._keep if t.dim() > 0 and id(t) in self._origins}

    def _user_line(self) -> int | None:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == self.user_file:
                return frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        checked_args = args
        if func in _INDEX_OPS and len(args) > 1:
            checked_args = (args[0], *args[2:])
        flat, _ = tree_flatten((checked_args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        if func not in _COPY_OPS and any(t.device.type == "meta" for t in tensors):
            for t in tensors:
                if t.device.type == "cpu" and t.dim() > 0:
                    error = DeviceMixError(str(func), tuple(t.shape), str(t.dtype).replace("torch.", ""),
                                           self._origins.get(id(t)))
                    if self.error is None:
                        self.error = error
                    if not self.survey:
                        raise error
                    self.errors.append(error)
                    args, kwargs = _to_meta((args, kwargs))
                    return func(*args, **kwargs)
        if (func is _aten.copy_.default and len(args) > 1 and isinstance(args[0], torch.Tensor)
                and isinstance(args[1], torch.Tensor) and args[0].device.type == "cpu"
                and args[1].device.type == "meta"):
            return args[0]  # `cpu_out[:, 0] = meta_value`: legal on CUDA; meta has no data to copy
        result = func(*args, **kwargs)
        self._tag(func, tensors, result)
        return result

    def _tag(self, func: Any, inputs: list[torch.Tensor], result: Any) -> None:
        """Remember which user line made each new CPU tensor (or which tagged tensor it came from)."""
        outputs = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor) and t.device.type == "cpu"]
        if func in _LITERAL_OPS:
            inputs = []  # `torch.tensor([...])`: the input is the literal's constant, not user data
        if not outputs or any(t.device.type == "meta" for t in inputs):
            return
        known = [self._origins[id(t)] for t in inputs if id(t) in self._origins]
        if inputs and not known:
            return  # derived from a tensor made before forward (an attribute): no origin
        line = known[0] if known else self._user_line()
        if line is None:
            return
        for t in outputs:
            self._origins[id(t)] = line
            self._keep.append(t)


class CreationTracer(TorchFunctionMode):
    """Where each CPU tensor made during forward was created, and what the failing op consumed.

    Works on any device (CUDA, meta, CPU): every torch function and Tensor method call is
    seen with its arguments. A new CPU tensor is tagged with the line of the user's file that
    made it (or, when derived from a tagged tensor, with that tensor's line). When a call
    raises a device error, the lines of the tagged CPU tensors among *its* arguments are
    kept: the failing op consumed tensors made there, and only those lines are to blame.
    """

    def __init__(self, user_file: str) -> None:
        super().__init__()
        self.user_file = user_file
        self.origins: dict[int, int] = {}
        self._keep: list[torch.Tensor] = []  # keeps ids from being reused while tracing
        self.failed_lines: set[int] | None = None  # None: no device error seen by the tracer
        self.failed_op = ""

    def _user_line(self) -> int | None:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename == self.user_file:
                return frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            if self.failed_lines is None and is_device_error(exc):
                flat, _ = tree_flatten((args, kwargs))
                self.failed_lines = {self.origins[id(t)] for t in flat
                                     if isinstance(t, torch.Tensor) and id(t) in self.origins}
                self.failed_op = getattr(func, "__name__", str(func))
            raise
        self._tag(args, kwargs, result)
        return result

    def _tag(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        try:
            outputs = [t for t in tree_flatten(result)[0]
                       if isinstance(t, torch.Tensor) and t.device.type == "cpu" and id(t) not in self.origins]
        except Exception:
            return
        if not outputs:
            return
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        known = [self.origins[id(t)] for t in inputs if id(t) in self.origins]
        if known:
            line: int | None = known[0]
        elif inputs:
            return  # derived from tensors made before forward (the input, an attribute)
        else:
            line = self._user_line()
        if line is None:
            return
        for t in outputs:
            if t.dim() > 0:
                self.origins[id(t)] = line
                self._keep.append(t)

    def lines(self) -> set[int]:
        """Every line that made a CPU tensor during the traced forward."""
        return set(self.origins.values())


def _is_cuda(value: Any) -> bool:
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, str) and value.split(":")[0].strip() == "cuda"


class CudaSurvey(TorchFunctionMode):
    """Records the user lines that ask for CUDA, and keeps what they ask for on the cpu.

    `.cuda()`, `.to("cuda")` and `device="cuda"` on tensors (torch functions) and Modules
    (patched while the survey is active) run on the cpu instead; `lines` maps each line
    of the user's file that asked to what it asked. Used only where CUDA is missing, to
    see the hard-coded lines after the first one that raised."""

    def __init__(self, user_file: str) -> None:
        super().__init__()
        self.user_file = user_file
        self.lines: dict[int, str] = {}
        self._saved: list[tuple[str, Any]] = []

    def _record(self, what: str) -> None:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == self.user_file:
                self.lines.setdefault(frame.f_lineno, what)
                return
            frame = frame.f_back  # type: ignore[assignment]

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == "cuda" and args and isinstance(args[0], torch.Tensor):
            self._record(".cuda()")
            return args[0]
        if name == "to" and any(_is_cuda(a) for a in args[1:]):
            self._record('.to("cuda")')
            args = tuple("cpu" if _is_cuda(a) else a for a in args)
        if _is_cuda(kwargs.get("device")):
            self._record(f'{name}(device="cuda")')
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)

    def __enter__(self) -> CudaSurvey:
        module_cls = torch.nn.Module
        original_cuda, original_to = module_cls.cuda, module_cls.to
        survey = self

        def cuda(module: torch.nn.Module, device: Any = None) -> torch.nn.Module:
            survey._record("Module.cuda()")
            return module

        def to(module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
            if any(_is_cuda(a) for a in args) or _is_cuda(kwargs.get("device")):
                survey._record('Module.to("cuda")')
                args = tuple("cpu" if _is_cuda(a) else a for a in args)
                if _is_cuda(kwargs.get("device")):
                    kwargs["device"] = "cpu"
            return original_to(module, *args, **kwargs)

        self._saved = [("cuda", original_cuda), ("to", original_to)]
        module_cls.cuda = cuda  # type: ignore[method-assign,assignment]
        module_cls.to = to  # type: ignore[method-assign,assignment]
        return super().__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> None:
        for name, value in self._saved:
            setattr(torch.nn.Module, name, value)
        super().__exit__(*exc)


def warm_up() -> None:
    """Run one meta op under the mode, mixing devices once.

    The first meta op loads torch's reference kernels and decompositions, which takes
    about a second; done here, before the user's code runs, it does not eat into the
    user's per-class timeout.
    """
    layer = torch.nn.Linear(2, 2).to("meta")
    with torch.no_grad(), DeviceMixMode(__file__):
        out = layer(torch.empty(1, 2, device="meta"))
        try:
            out + torch.zeros(1, 2)
        except DeviceMixError:
            pass


def to_device(value: Any, device: str) -> Any:
    """Tensors of a (nested) input moved to `device`; on meta, created empty with the same shape."""
    if isinstance(value, torch.Tensor):
        if device == "meta":
            return torch.empty_like(value, device="meta")
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


__all__ = ["CreationTracer", "CudaSurvey", "DeviceMixError", "DeviceMixMode", "is_cuda_unavailable_error", "is_device_error", "to_device", "warm_up"]
