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
    "cuda driver", "cuda error", "cuda is not available", "expected device", "device mismatch",
    "mixes a meta tensor with a cpu tensor",
    # composite kernels check devices themselves, before any op reaches the dispatch mode:
    # `Input and hidden tensors are not at the same device` (nn.LSTM/GRU/RNN)
    "not at the same device",
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
            or "cuda is not available" in text or "cuda driver" in text)


class DeviceMixMode(TorchDispatchMode):
    """Raise `DeviceMixError` on an op mixing meta tensors with non-0-dim CPU tensors."""

    def __init__(self, user_file: str) -> None:
        super().__init__()
        self.user_file = user_file
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
                    self.error = DeviceMixError(str(func), tuple(t.shape), str(t.dtype).replace("torch.", ""),
                                                self._origins.get(id(t)))
                    raise self.error
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


__all__ = ["DeviceMixError", "DeviceMixMode", "is_cuda_unavailable_error", "is_device_error", "to_device", "warm_up"]
