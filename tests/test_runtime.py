"""The runtime checker with real torch on the CPU (and the meta device), in subprocesses.

Each `confirm()` call starts one worker per file (about a second each, to import torch),
so the cases are grouped: one "zoo" file holds a class per confirmation, not-reproduced and
skipped case; one batch holds the hostile files and runs them in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from torchlint.diagnostic import Diagnostic
from torchlint.engine import Options, check_file
from torchlint.registry import select_codes

pytest.importorskip("torch")

from torchlint.runtime import INSTALL_HINT, confirm, runtime_available  # noqa: E402
from torchlint.runtime.loader import class_at, list_classes, plan_import  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 2.0


@pytest.fixture(autouse=True, scope="module")
def _meta_path() -> object:
    """Device: these tests pin the CPU/meta path (every worker starts with CUDA hidden), so
    their answers and details are the same on every machine; tests/test_runtime_cuda.py
    forces the CUDA path where CUDA is present."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHLINT_RUNTIME_GPU", "0")
        yield


def write(directory: Path, name: str, code: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code).lstrip("\n"), encoding="utf-8")
    return path


def static(path: Path) -> list[Diagnostic]:
    """The real static engine's findings on a file."""
    return check_file(str(path), Options(enabled=select_codes(None, None))).diagnostics


def by_hand(path: Path, code: str, needle: str, cls: str | None) -> Diagnostic:
    """A finding anchored on the first `needle` in class `cls` (for cases the rules do not flag)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 0
    if cls:
        start = next(i for i, text in enumerate(lines) if text.lstrip().startswith(f"class {cls}("))
    for number, text in enumerate(lines[start:], start=start + 1):
        if needle in text:
            col = text.index(needle) + 1
            context = {"class": cls} if cls else None
            return Diagnostic(str(path), number, col, number, len(text) + 1, code, code.lower(),
                              f"{code} by hand", context=context)
    raise AssertionError(f"{needle!r} not in {path}")


def class_of(d: Diagnostic) -> str | None:
    """The class a finding is about: its context, else the class spanning its line."""
    if d.context and "class" in d.context:
        return str(d.context["class"])
    import ast

    found = class_at(list_classes(ast.parse(Path(d.path).read_text(encoding="utf-8"))), d.line)
    return found.qualname if found else None


def pick(results: list[Diagnostic], code: str, cls: str) -> dict[str, str]:
    found = [d for d in results if d.code == code and class_of(d) == cls]
    assert len(found) == 1, (code, cls, [(d.code, d.context, d.runtime) for d in results])
    assert found[0].runtime is not None, found[0]
    return found[0].runtime


ZOO = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.order = [self.a, self.b]

    def forward(self, x):
        for layer in self.order:
            x = layer(x)
        return x


class Weights(nn.Module):
    def __init__(self):
        super().__init__()
        self.weights = [nn.Parameter(torch.randn(8, 8)) for _ in range(2)]

    def forward(self, x):
        return x @ self.weights[0]


class NoSuper(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)


class AssignFirst(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(4, 4)
        super().__init__()

    def forward(self, x):
        return self.fc(x)


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.mask = torch.tril(torch.ones(8, 8))

    def forward(self, x):
        return self.fc(x) * self.mask


class Builder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        head = nn.Linear(8, 8)
        return head(self.fc(x))


class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.head = None

    def forward(self, x):
        if self.head is None:
            self.head = nn.Linear(8, 8)
        return self.head(self.fc(x))


class Misspelled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def foward(self, x):
        return self.fc(x)


class Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv(1, 2, 3)


class Direct(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 8)

    def forward(self, x):
        return self.encoder.forward(x)


class Called(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 8)

    def forward(self, x):
        return self.encoder(x)


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])

    def forward(self, x):
        return self.blocks(x)


class Scales(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.scales = nn.ParameterList([nn.Parameter(torch.ones(8))])

    def forward(self, x):
        return self.fc(x) * self.scales(x)


class Nothing(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)


class Drop(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 64)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)


class DropOk(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 64)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5, training=self.training)


class NoDevice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        pos = torch.arange(8).float()
        return self.fc(x) + pos


class WithDevice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        pos = torch.arange(8, device=x.device).float()
        return self.fc(x) + pos * torch.tensor(2.0)


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 8)

    def forward(self, ids):
        ids = torch.tensor([[1, 2, 3]])
        return self.emb(ids)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum().item() > 1e9:
            return x
        return self.fc(x) + torch.zeros(8)


class Cuda(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x).cuda()


class CudaInit(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8).cuda()

    def forward(self, x):
        return self.fc(x)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, x):
        h0 = torch.zeros(1, x.size(0), 8)
        c0 = torch.zeros(1, x.size(0), 8)
        out, _ = self.lstm(x, (h0, c0))
        return out


class RecurrentBystander(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, x):
        steps = torch.arange(x.size(1), device=x.device)
        h0 = torch.zeros(1, x.size(0), 8)
        out, _ = self.lstm(x, (h0, h0))
        return out + steps[None, :, None]


class CudaAfterMix(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc(x) + torch.ones(8)
        if x.dim() > 2:
            x = x.cuda()
        return x


class CudaInitTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8).cuda()
        self.register_buffer("mask", torch.ones(8, device="cuda"))


class CudaTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc(x).cuda()
        return x.to("cuda")


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc = nn.Linear(16 * 5 * 5, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class Args(nn.Module):
    def __init__(self, dim, tasks, scale=1.0):
        super().__init__()
        self.heads = [nn.Linear(dim, 1) for _ in tasks]


class Heads(nn.Module):
    def __init__(self, dim, tasks):
        super().__init__()
        self.heads = [nn.Linear(dim, 1) for _ in tasks]

    def forward(self, x):
        return [head(x) for head in self.heads]


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, mask):
        out = self.fc(x)


class TwoInputsConfigured(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, mask):
        out = self.fc(x) * mask


class Activation(nn.Module):
    def forward(self, x):
        y = torch.relu(x)


class Mismatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(3, 3)

    def forward(self, x):
        y = self.out(self.fc(x))


class Looper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        for m in self.modules():
            m = nn.ReLU()
        return self.fc(x)


def train(model, loader, opt):
    for x, y in loader:
        loss = model(x).sum()
        loss.backward()
        opt.step()
'''


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One confirm() over the zoo: static findings plus hand-made ones for the cases rules skip."""
    directory = tmp_path_factory.mktemp("zoo")
    path = write(directory, "zoo.py", ZOO)
    found = static(path)
    hand = [
        by_hand(path, "TL104", "self.order = [", "Shared"),
        by_hand(path, "TL107", "self.head = nn.Linear", "Lazy"),
        by_hand(path, "TL201", "self.encoder(x)", "Called"),
        by_hand(path, "TL303", "F.dropout(self.fc(x), 0.5, training", "DropOk"),
        by_hand(path, "TL402", "torch.arange(8, device", "WithDevice"),
        by_hand(path, "TL402", "torch.tensor([[1, 2, 3]])", "Embed"),
        by_hand(path, "TL402", "torch.zeros(8)", "DataDependent"),
        by_hand(path, "TL402", "h0 = torch.zeros", "Recurrent"),
        by_hand(path, "TL402", "torch.arange(x.size(1), device", "RecurrentBystander"),
        by_hand(path, "TL403", "x.cuda()", "CudaAfterMix"),
        by_hand(path, "TL403", 'torch.ones(8, device="cuda")', "CudaInitTwice"),
        by_hand(path, "TL403", 'x.to("cuda")', "CudaTwice"),
        by_hand(path, "TL203", "def forward(self, x):", "LeNet"),
        by_hand(path, "TL104", "self.heads = [", "Args"),
        by_hand(path, "TL104", "self.heads = [", "Heads"),
        by_hand(path, "TL203", "def forward(self, x, mask):", "TwoInputs"),
        by_hand(path, "TL203", "def forward(self, x, mask):", "TwoInputsConfigured"),
        by_hand(path, "TL203", "def forward(self, x):", "Activation"),
        by_hand(path, "TL203", "y = self.out(self.fc(x))", "Mismatch"),
        by_hand(path, "TL304", "for x, y in loader:", None),
    ]
    # the static rules may or may not flag these already; keep one finding per (code, class)
    keys = {(d.code, (d.context or {}).get("class")) for d in hand}
    diagnostics = [d for d in found if (d.code, (d.context or {}).get("class")) not in keys] + hand
    started = time.monotonic()
    results = confirm(
        diagnostics, paths=[str(path)], timeout=10.0,
        construct={"zoo:Heads": "Heads(8, ['a', 'b'])"},
        inputs={"TwoInputsConfigured": "(torch.randn(2, 8), torch.ones(2, 8))"},
    )
    return {"static": found, "given": diagnostics, "results": results, "seconds": time.monotonic() - started}


def results_of(zoo: dict[str, object]) -> list[Diagnostic]:
    results = zoo["results"]
    assert isinstance(results, list)
    return results


# (code, class, status, a piece of the detail)
ZOO_CASES = [
    ("TL104", "Plain", "confirmed", "3 Linear layers, 12,480 parameters not in model.parameters()"),
    ("TL104", "Shared", "not-reproduced", "self.order are registered"),
    ("TL105", "Weights", "confirmed", "2 Parameters (128 values) not in model.parameters()"),
    ("TL101", "NoSuper", "confirmed", "cannot assign module before Module.__init__() call"),
    ("TL102", "AssignFirst", "confirmed", "cannot assign module before Module.__init__() call"),
    ("TL106", "Masked", "confirmed", "tensor self.mask (8x8 float32) is not in model.buffers(); still on cpu after .to('meta')"),
    ("TL107", "Builder", "confirmed", "forward built 1 Linear on each call"),
    ("TL107", "Lazy", "not-reproduced", "on the first call only"),
    ("TL108", "Misspelled", "confirmed", 'missing the required "forward" function'),
    ("TL109", "Unknown", "confirmed", "has no attribute 'Conv'"),
    ("TL201", "Direct", "confirmed", "encoder: forward ran 1 time, its forward hook fired 0 times"),
    ("TL201", "Called", "not-reproduced", "every submodule's forward hooks fired each time its forward ran"),
    ("TL202", "Blocks", "confirmed", "calling a ModuleList raised NotImplementedError"),
    ("TL202", "Scales", "confirmed", "ParameterList should not be called."),
    ("TL203", "Nothing", "confirmed", "forward returned None (input (2, 8))"),
    ("TL203", "LeNet", "not-reproduced", "forward returned a Tensor"),
    ("TL303", "Drop", "confirmed", "after .eval(), two forward passes on the same input differ"),
    ("TL303", "DropOk", "not-reproduced", "agree"),
    ("TL402", "NoDevice", "confirmed", "mixes a meta tensor with a cpu tensor (8 float32) created at line"),
    ("TL402", "WithDevice", "not-reproduced", "forward ran on meta with no cpu tensor mixed in"),
    ("TL402", "Embed", "confirmed", "aten.embedding"),
    ("TL402", "DataDependent", "skipped", "not checkable on meta: RuntimeError: Tensor.item() cannot be called on meta tensors"),
    # nn.LSTM checks devices itself, before the dispatch mode sees an op: the finding is
    # confirmed by the line that made the cpu tensor, and only by it
    ("TL402", "Recurrent", "confirmed", "not at the same device, found input tensor at meta and hidden tensor at cpu"),
    ("TL402", "RecurrentBystander", "skipped", "stopped earlier"),
    ("TL403", "Cuda", "confirmed", "forward on cpu failed without CUDA"),  # the message depends on the torch build
    # without CUDA the first hard-coded line stops the run: the lines after it never ran
    # ... and a second run with CUDA requests recorded and kept on the cpu shows that the
    # later lines ask for CUDA too
    ("TL403", "CudaInitTwice", "confirmed", "asks for CUDA (ones(device=\"cuda\")), seen with CUDA requests kept"),
    ("TL403", "CudaTwice", "confirmed", 'asks for CUDA (.to("cuda"))'),
    # the .cuda() line never runs (not on cpu, not on meta, where a cpu/meta mix stops forward
    # first): no evidence for TL403
    ("TL403", "CudaAfterMix", "skipped", "forward on meta stopped earlier"),
    ("TL403", "CudaInit", "confirmed", "construction failed without CUDA"),
    # no factory, no call: built from the signature (a config stand-in iterates as two tasks)
    ("TL104", "Args", "confirmed", "built with synthesised arguments (dim=8, tasks=a config stand-in)"),
    ("TL104", "Heads", "confirmed", "2 Linear layers, 18 parameters"),
    ("TL203", "TwoInputs", "confirmed", "forward returned None (input x=(2, 8), mask=None)"),
    ("TL203", "TwoInputsConfigured", "confirmed", "forward returned None (input (2, 8), (2, 8))"),
    ("TL203", "Activation", "confirmed", "forward returned None (input (2, 8) (a common shape))"),
    ("TL203", "Mismatch", "skipped", "no synthesised input fits (tried (2, 8); (2, 8, 8); (2, 3, 32, 32)"),
    ("TL305", "Looper", "skipped", "no runtime check for TL305"),
]


@pytest.mark.parametrize(("code", "cls", "status", "detail"), ZOO_CASES, ids=[f"{c[0]}-{c[1]}" for c in ZOO_CASES])
def test_zoo(zoo: dict[str, object], code: str, cls: str, status: str, detail: str) -> None:
    runtime = pick(results_of(zoo), code, cls)
    assert runtime["status"] == status, runtime
    assert detail in runtime["detail"], runtime


def test_zoo_static_findings_carry_over(zoo: dict[str, object]) -> None:
    """The real engine's findings come back in order, unchanged except for `runtime`."""
    found = zoo["static"]
    assert isinstance(found, list)
    assert {"TL101", "TL102", "TL104", "TL105", "TL106", "TL107", "TL108"} <= {d.code for d in found}
    given = zoo["given"]
    assert isinstance(given, list)
    assert results_of(zoo) == given  # equality ignores `runtime`; nothing added, nothing reordered


def test_finding_outside_module_class_gets_no_runtime(zoo: dict[str, object]) -> None:
    script = [d for d in results_of(zoo) if d.code == "TL304"]
    assert script and all(d.runtime is None for d in script)


def test_lenet_needs_32_pixel_images(zoo: dict[str, object]) -> None:
    """Conv inputs try 32, 64, 224: LeNet only fits 32."""
    runtime = pick(results_of(zoo), "TL203", "LeNet")
    assert runtime["status"] == "not-reproduced"


def test_zoo_is_fast(zoo: dict[str, object]) -> None:
    seconds = zoo["seconds"]
    assert isinstance(seconds, float) and seconds < 30


# -- hostile user code ---------------------------------------------------------------------

HOSTILE = {
    "raises.py": '''
        import torch.nn as nn
        import boom_dep

        class Net(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(2, 2)
    ''',
    "boom_dep.py": '''
        raise RuntimeError("boom at import")
    ''',
    "exits.py": '''
        import torch.nn as nn
        import exit_dep

        class Net(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(2, 2)
    ''',
    "exit_dep.py": '''
        import sys
        sys.exit(3)
    ''',
    "aborts.py": '''
        import torch.nn as nn
        import abort_dep

        class Net(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(2, 2)
    ''',
    "abort_dep.py": '''
        import os
        os.abort()
    ''',
    "toplevel_exit.py": '''
        import sys
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(2, 2)

        sys.exit(3)
    ''',
    "hangs.py": '''
        import torch.nn as nn

        class Hang(nn.Module):
            def __init__(self):
                super().__init__()
                while True:
                    pass

        class After(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(2, 2)]
    ''',
    "stubborn.py": '''
        import time
        import torch.nn as nn

        class Stubborn(nn.Module):
            def __init__(self):
                super().__init__()
                while True:
                    try:
                        time.sleep(0.05)
                    except BaseException:
                        pass

        class Later(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(2, 2)]
    ''',
    "crashes.py": '''
        import os
        import torch.nn as nn

        class Crash(nn.Module):
            def __init__(self):
                super().__init__()
                os.abort()

        class Survivor(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(2, 2)]
    ''',
    "prints.py": '''
        import sys
        import torch.nn as nn
        print("HELLO FROM IMPORT")
        sys.stderr.write("noise on stderr\\n")

        class Loud(nn.Module):
            print("HELLO FROM CLASS BODY")

            def __init__(self):
                super().__init__()
                print("HELLO FROM INIT")
                self.layers = [nn.Linear(2, 2)]

            def forward(self, x):
                print("HELLO FROM FORWARD")
                return x
    ''',
    "train_script.py": '''
        import torch
        import torch.nn as nn

        MARKER = __file__ + ".ran"
        HIDDEN = 4


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(HIDDEN, HIDDEN)]

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x


        model = Net()
        open(MARKER, "w").write("the script ran")
        for step in range(3):
            model(torch.randn(2, HIDDEN)).sum().backward()
    ''',
    "pkg/__init__.py": "",
    "pkg/base.py": '''
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                return self.fc(x)
    ''',
    "pkg/model.py": '''
        import torch.nn as nn
        from .base import Block

        class Stack(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = [Block(), Block()]

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x
    ''',
    "model.v2.py": '''
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(2, 2)]
    ''',
    "missing_dep.py": '''
        import torch.nn as nn
        import not_a_real_module_xyz

        class Net(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(2, 2)
    ''',
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    directory = tmp_path_factory.mktemp("hostile")
    paths = {name: write(directory, name, code) for name, code in HOSTILE.items()}
    diagnostics = [
        by_hand(paths["raises.py"], "TL101", "def __init__", "Net"),
        by_hand(paths["exits.py"], "TL101", "def __init__", "Net"),
        by_hand(paths["aborts.py"], "TL101", "def __init__", "Net"),
        by_hand(paths["missing_dep.py"], "TL101", "def __init__", "Net"),
        by_hand(paths["toplevel_exit.py"], "TL101", "def __init__", "Net"),
        by_hand(paths["model.v2.py"], "TL104", "self.layers", "Net"),
        by_hand(paths["hangs.py"], "TL101", "def __init__", "Hang"),
        by_hand(paths["hangs.py"], "TL104", "self.layers", "After"),
        by_hand(paths["stubborn.py"], "TL101", "def __init__", "Stubborn"),
        by_hand(paths["stubborn.py"], "TL104", "self.layers", "Later"),
        by_hand(paths["crashes.py"], "TL101", "def __init__", "Crash"),
        by_hand(paths["crashes.py"], "TL104", "self.layers", "Survivor"),
        by_hand(paths["prints.py"], "TL104", "self.layers", "Loud"),
        by_hand(paths["prints.py"], "TL203", "def forward", "Loud"),
        by_hand(paths["train_script.py"], "TL104", "self.layers", "Net"),
        by_hand(paths["pkg/model.py"], "TL104", "self.blocks", "Stack"),
    ]
    started = time.monotonic()
    results = confirm(diagnostics, paths=[str(directory)], timeout=TIMEOUT, jobs=2)
    return {"results": results, "seconds": time.monotonic() - started, "paths": paths}


def hostile_result(hostile: dict[str, object], name: str, code: str, cls: str) -> dict[str, str]:
    results = hostile["results"]
    assert isinstance(results, list)
    paths = hostile["paths"]
    assert isinstance(paths, dict)
    mine = [d for d in results if d.path == str(paths[name])]
    return pick(mine, code, cls)


HOSTILE_CASES = [
    ("raises.py", "TL101", "Net", "error", "import failed: RuntimeError: boom at import"),
    ("exits.py", "TL101", "Net", "error", "import failed: called sys.exit(3)"),
    ("aborts.py", "TL101", "Net", "error", "the process crashed (SIGABRT) while importing the file"),
    ("toplevel_exit.py", "TL101", "Net", "confirmed",
     "cannot assign module before Module.__init__() call; loaded definitions only (the top level runs code, line 8: sys.exit(3))"),
    ("missing_dep.py", "TL101", "Net", "error",
     "import failed: ModuleNotFoundError: No module named 'not_a_real_module_xyz'"),
    ("hangs.py", "TL101", "Hang", "error", f"timed out after {TIMEOUT:g} s"),
    ("hangs.py", "TL104", "After", "confirmed", "1 Linear layer, 6 parameters"),
    ("stubborn.py", "TL101", "Stubborn", "error", f"timed out after {TIMEOUT:g} s while checking Stubborn"),
    ("stubborn.py", "TL104", "Later", "confirmed", "1 Linear layer"),
    ("crashes.py", "TL101", "Crash", "error", "the process crashed (SIGABRT) while checking Crash"),
    ("crashes.py", "TL104", "Survivor", "confirmed", "1 Linear layer"),
    ("prints.py", "TL104", "Loud", "confirmed", "1 Linear layer"),
    ("prints.py", "TL203", "Loud", "not-reproduced", "forward returned a Tensor"),
    ("train_script.py", "TL104", "Net", "confirmed", "loaded definitions only (the top level runs code, line 19"),
    ("pkg/model.py", "TL104", "Stack", "confirmed", "2 Block layers, 40 parameters"),
    ("model.v2.py", "TL104", "Net", "confirmed", "1 Linear layer, 6 parameters"),
]


@pytest.mark.parametrize(("name", "code", "cls", "status", "detail"), HOSTILE_CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in HOSTILE_CASES])
def test_hostile(hostile: dict[str, object], name: str, code: str, cls: str, status: str, detail: str) -> None:
    runtime = hostile_result(hostile, name, code, cls)
    assert runtime["status"] == status, runtime
    assert detail in runtime["detail"], runtime


def test_hostile_run_finishes_within_its_timeouts(hostile: dict[str, object]) -> None:
    seconds = hostile["seconds"]
    assert isinstance(seconds, float) and seconds < 60  # bounded by the timeouts, not their sum: loose for loaded machines


def test_training_script_is_not_run(hostile: dict[str, object]) -> None:
    paths = hostile["paths"]
    assert isinstance(paths, dict)
    assert not Path(str(paths["train_script.py"]) + ".ran").exists()


def test_no_user_output_reaches_the_caller(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "loud.py", HOSTILE["prints.py"])
    results = confirm([by_hand(path, "TL104", "self.layers", "Loud")], paths=[str(path)], timeout=TIMEOUT,
                      progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "HELLO" not in err and "noise" not in err
    assert "torchlint runtime: 1/1 files" in err  # the progress line, on stderr only
    assert results[0].runtime and results[0].runtime["status"] == "confirmed"


def test_cli_json_stays_parseable(tmp_path: Path) -> None:
    """`torchlint check --runtime --format json` over printing, exiting and crashing files."""
    for name in ("prints.py", "exits.py", "exit_dep.py", "aborts.py", "abort_dep.py"):
        write(tmp_path, name, HOSTILE[name])
    code = "import sys; from torchlint.cli import main; sys.exit(main(sys.argv[1:]))"
    completed = subprocess.run(
        [sys.executable, "-c", code, "check", "--runtime", "--runtime-timeout", str(TIMEOUT),
         "--format", "json", "--no-cache", "-j", "2", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    payload = json.loads(completed.stdout)
    findings = payload if isinstance(payload, list) else payload.get("findings", payload.get("diagnostics", []))
    statuses = {(Path(f["path"]).name, f["code"]): f.get("runtime", {}).get("status") for f in findings}
    assert statuses.get(("prints.py", "TL104")) == "confirmed", completed.stdout
    assert statuses.get(("exits.py", "TL101")) == "error"
    assert statuses.get(("aborts.py", "TL101")) == "error"
    for text in ("HELLO FROM CLASS BODY", "HELLO FROM INIT", "HELLO FROM FORWARD"):
        assert text not in completed.stdout
    # the runtime summary goes to stderr, its last line: stdout stays one JSON array
    assert completed.stderr.strip().splitlines()[-1].startswith("runtime: "), completed.stderr


# -- beyond the static rules ---------------------------------------------------------------

HIDDEN = '''
import torch
from torch import nn


def make_layers(n):
    return [nn.Linear(8, 8) for _ in range(n)]


def make_scale():
    return torch.ones(8)


def run_forward(module, x):
    return module.forward(x)


def cpu_zeros(x):
    return torch.zeros(x.shape)


class Hidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = make_layers(3)
        self.scale = make_scale()

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x * self.scale


class Indirect(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return run_forward(self.fc, x) + cpu_zeros(x)


class Fine(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x)


class Flagged(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(8, 8)
'''


def test_scope_all_reports_what_static_analysis_missed(tmp_path: Path) -> None:
    path = write(tmp_path, "hidden.py", HIDDEN)
    found = static(path)
    results = confirm(found, paths=[str(tmp_path)], scope="all", timeout=TIMEOUT)
    new = [d for d in results if d.runtime and d.runtime.get("found_by") == "runtime"]
    got = {(d.code, (d.context or {}).get("class")) for d in new}
    assert {("TL104", "Hidden"), ("TL106", "Hidden"), ("TL201", "Indirect"), ("TL402", "Indirect")} <= got
    assert not any(cls in ("Fine", "Flagged") for _, cls in got)  # clean, or already flagged
    lines = path.read_text().splitlines()
    for d in new:
        assert lines[d.line - 1].startswith(f"class {d.context['class']}")  # anchored on the class
        assert d.runtime["status"] == "confirmed" and d.path == str(path)
    hidden = next(d for d in new if d.code == "TL104")
    assert hidden.runtime["detail"] == "3 Linear layers, 216 parameters not in model.parameters()"
    assert results[:len(found)] == found  # static findings first, in order


def test_scope_is_validated() -> None:
    with pytest.raises(ValueError):
        confirm([], paths=[], scope="everything")


def test_nothing_to_check_starts_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "script.py", "for i in range(3):\n    print(i)\n")
    d = Diagnostic(str(path), 1, 1, 1, 4, "TL304", "missing-zero-grad", "m")
    started = time.monotonic()
    assert confirm([d], paths=[str(path)]) == [d]
    assert time.monotonic() - started < 1.0


# -- the parts that never import torch ----------------------------------------------------

def test_interface_without_torch_import() -> None:
    code = ("import sys, torchlint.runtime, torchlint.runtime.runner, torchlint.runtime.loader; "
            "print('torch' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert completed.stdout.strip() == "False"
    assert runtime_available() is True
    assert INSTALL_HINT == "the runtime checker needs torch: pip install 'torchlint[runtime]'"


def test_library_file_is_imported_as_is() -> None:
    source = textwrap.dedent('''
        """Doc."""
        import logging
        import torch.nn as nn
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from x import y
        try:
            import apex
        except ImportError:
            apex = None
        log = logging.getLogger(__name__)
        ACT = nn.GELU()
        SIZES = [1, 2, 3]

        class Net(nn.Module):
            pass

        if __name__ == "__main__":
            Net()
    ''')
    assert plan_import(source).definitions_only is False


def test_script_becomes_definitions_only() -> None:
    source = textwrap.dedent('''
        import torch
        import torch.nn as nn
        DIM = 4
        data = torch.load("data.pt")
        batch = data[0]

        class Net(nn.Module):
            pass

        model = Net()
        for epoch in range(10):
            train(model)
        print("done")
    ''')
    plan = plan_import(source)
    assert plan.definitions_only
    assert plan.reason == 'line 5: data = torch.load("data.pt")'
    assert plan.tree is not None
    kept = [type(s).__name__ for s in plan.tree.body]
    assert kept == ["Import", "Import", "Assign", "ClassDef"]  # `batch` depended on `data`
    assert plan.dropped == [5, 6, 11, 12, 14]
    namespace: dict[str, object] = {}
    exec(compile(plan.tree, "<test>", "exec"), namespace)  # runs nothing but definitions
    assert namespace["DIM"] == 4 and "Net" in namespace and "model" not in namespace


def test_class_lookup() -> None:
    source = textwrap.dedent('''
        class Outer:
            class Inner:
                def f(self):
                    pass

        def factory():
            class Local:
                pass
            return Local
    ''')
    import ast

    classes = list_classes(ast.parse(source))
    assert [(c.qualname, c.in_function) for c in classes] == [
        ("Outer", False), ("Outer.Inner", False), ("factory.<locals>.Local", True)]
    found = class_at(classes, 5)
    assert found is not None and found.qualname == "Outer.Inner"
    assert class_at(classes, 7) is None


def test_required_constructor_args_are_read_without_importing() -> None:
    import ast

    source = textwrap.dedent('''
        class A:
            def __init__(self, dim, scale=1.0, *args, heads, bias=True, **kwargs):
                pass

        class B:
            def __init__(self, dim=4):
                pass

        class C(A):
            pass
    ''')
    required = {c.name: c.required_args for c in list_classes(ast.parse(source))}
    assert required == {"A": ("dim", "heads"), "B": (), "C": None}


def test_definitions_only_import_failure_says_what_was_left_out(tmp_path: Path) -> None:
    path = write(tmp_path, "cfg_script.py", '''
        import torch.nn as nn

        def load_config():
            return {"dim": 4}

        CONFIG = load_config()

        class Net(nn.Module):
            dim = CONFIG["dim"]

            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(self.dim, self.dim)]
    ''')
    results = confirm([by_hand(path, "TL104", "self.layers", "Net")], paths=[str(path)], timeout=TIMEOUT)
    runtime = results[0].runtime
    assert runtime is not None and runtime["status"] == "error"
    assert runtime["detail"] == ("import failed: NameError: name 'CONFIG' is not defined; loaded definitions "
                                 "only (the top level runs code, line 6: CONFIG = load_config())")


# -- the dispatch mode, in this process ----------------------------------------------------

def test_device_mix_mode_flags_what_cuda_would_refuse() -> None:
    import torch

    from torchlint.runtime.devices import DeviceMixError, DeviceMixMode, is_device_error

    weight = torch.empty(4, 3, device="meta")
    x = torch.empty(2, 4, device="meta")
    with DeviceMixMode(__file__):
        assert (x * torch.tensor(2.0)).device.type == "meta"  # a 0-dim CPU scalar is legal on CUDA
        assert x[torch.tensor([0, 1])].device.type == "meta"  # CPU index tensors are legal too
        x.clone().copy_(torch.zeros(2, 4))  # cross-device copies are legal
        for mixed in (lambda: x @ torch.zeros(4, 3),  # runs on meta alone: the mode must catch it
                      lambda: torch.nn.functional.embedding(torch.tensor([1, 2]), weight),
                      lambda: x + torch.zeros(2, 4)):
            with pytest.raises(DeviceMixError) as caught:
                mixed()
            assert is_device_error(caught.value)
    assert not is_device_error(RuntimeError("Tensor.item() cannot be called on meta tensors"))


def test_scope_all_ignores_parameter_free_layers_built_in_forward(tmp_path: Path) -> None:
    """Building an activation in forward is harmless; a Linear or a Dropout is the bug."""
    path = write(tmp_path, "acts.py", '''
        import torch.nn as nn

        def act():
            return nn.GELU()

        def drop():
            return nn.Dropout(0.1)

        class Harmless(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                return act()(self.fc(x))

        class Dropping(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                return drop()(self.fc(x))
    ''')
    results = confirm(static(path), paths=[str(path)], scope="all", timeout=TIMEOUT)
    new = {(d.code, (d.context or {}).get("class")): d.runtime for d in results
           if d.runtime and d.runtime.get("found_by") == "runtime"}
    assert ("TL107", "Harmless") not in new
    assert new[("TL107", "Dropping")]["detail"] == "forward built 1 Dropout on each call"
