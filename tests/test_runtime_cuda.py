"""The device paths of the runtime checker: CUDA hidden for TL403, TL402 traced on any device.

Device: the tracer and the GPU split run on CPU/meta on every machine (meta without the
mix mode behaves as CUDA does: only the kernels' own device checks refuse a mix). The
tests marked `cuda` run the real CUDA path and are skipped where CUDA is absent.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from torchlint.diagnostic import Diagnostic

torch = pytest.importorskip("torch")

from torchlint.runtime import confirm  # noqa: E402
from torchlint.runtime.devices import CreationTracer, is_cuda_unavailable_error  # noqa: E402
from torchlint.runtime.probes import ClassProber  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.skipif(not HAS_CUDA, reason="device: needs a CUDA GPU")

MODELS = '''
import os
import torch
import torch.nn as nn


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, x):
        steps = torch.arange(x.size(1), device=x.device)
        h0 = torch.zeros(1, x.size(0), 8)
        out, _ = self.lstm(x, (h0, h0))
        return out + steps[None, :, None]


class Bystander(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, x):
        ones = torch.ones(3)
        h0 = torch.zeros(1, x.size(0), 8)
        out, _ = self.lstm(x, (h0, h0))
        return out


class Added(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        pos = torch.arange(8).float()
        return self.fc(x) + pos


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.mask = torch.ones(8)

    def forward(self, x):
        return self.fc(x) * self.mask.to(x.device)


class Hardcoded(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x.cuda())


class SeesCuda(nn.Module):
    """Fails only in a worker that was started with CUDA hidden."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
            raise RuntimeError("CUDA is hidden here")
        return self.fc(x)
'''


def _line(path: Path, needle: str, after: str = "") -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, t in enumerate(lines) if after in t) if after else 0
    return next(i for i, t in enumerate(lines[start:], start=start + 1) if needle in t)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType]:
    path = tmp_path_factory.mktemp("devices") / "devmodels.py"
    path.write_text(textwrap.dedent(MODELS).lstrip("\n"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("devmodels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def _probe(models: tuple[Path, ModuleType], name: str, code: str, needle: str, device: str,
           mix_mode: bool = True) -> tuple[str, str]:
    path, module = models
    prober = ClassProber(getattr(module, name), vars(module), str(path), None, None,
                         device=device, mix_mode=mix_mode)
    prober.run({code}, discover=False)
    line = _line(path, needle, after=f"class {name}(")
    return prober.verdict(code, needle, line, line)


# -- the creation tracer, on CPU ------------------------------------------------------------

def test_tracer_tags_cpu_tensors_with_their_line(models: tuple[Path, ModuleType]) -> None:
    path, module = models
    model = module.Added()
    tracer = CreationTracer(str(path))
    with torch.no_grad(), tracer:
        model(torch.randn(2, 8))
    assert tracer.lines() == {_line(path, "pos = torch.arange", after="class Added(")}


def test_tracer_blames_only_what_the_failing_op_consumed(models: tuple[Path, ModuleType]) -> None:
    """meta without the mix mode: the LSTM kernel's own check refuses the cpu hidden state,
    as on CUDA; the tracer names the line of h0, not the bystander `torch.ones(3)`."""
    path, module = models
    model = module.Bystander().to("meta")
    tracer = CreationTracer(str(path))
    with pytest.raises(RuntimeError, match="not at the same device"), torch.no_grad(), tracer:
        model(torch.empty(2, 8, 8, device="meta"))
    h0 = _line(path, "h0 = torch.zeros", after="class Bystander(")
    assert tracer.failed_lines == {h0}
    assert _line(path, "ones = torch.ones", after="class Bystander(") in tracer.lines()


@pytest.mark.parametrize("mix_mode", [True, False], ids=["meta-mix-mode", "meta-as-cuda"])
def test_tl402_per_line_on_meta(models: tuple[Path, ModuleType], mix_mode: bool) -> None:
    """Device: meta, with the mix mode (CPU machines) and without it (the CUDA logic)."""
    status, detail = _probe(models, "Bystander", "TL402", "h0 = torch.zeros", "meta", mix_mode)
    assert status == "confirmed", detail
    status, detail = _probe(models, "Bystander", "TL402", "ones = torch.ones", "meta", mix_mode)
    assert status == "skipped", detail
    status, detail = _probe(models, "Recurrent", "TL402", "steps = torch.arange", "meta", mix_mode)
    assert status == "skipped", detail


def test_meta_survey_confirms_every_mixing_line(tmp_path: Path) -> None:
    path = tmp_path / "survey.py"
    path.write_text(textwrap.dedent('''
        import torch
        import torch.nn as nn

        class Two(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                x = self.fc(x) + torch.ones(8)
                return x * torch.rand(8)
    ''').lstrip("\n"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("survey", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prober = ClassProber(module.Two, vars(module), str(path), None, None, device="meta")
    prober.run({"TL402"}, discover=False)
    for needle in ("torch.ones(8)", "torch.rand(8)"):
        line = _line(path, needle)
        status, detail = prober.verdict("TL402", needle, line, line)
        assert status == "confirmed" and f"created at line {line}" in detail, detail


@pytest.mark.parametrize("device", ["meta", pytest.param("cuda", marks=cuda)], ids=["meta-as-cuda", "cuda"])
def test_kernel_checked_forward_surveys_the_lines_after_the_first_error(tmp_path: Path, device: str) -> None:
    """On CUDA (and on meta without the mix mode) forward stops at the first mix; the lines it
    never reached are surveyed on meta, so each finding gets its own verdict, not `skipped`."""
    path = tmp_path / "kernels.py"
    path.write_text(textwrap.dedent('''
        import torch
        import torch.nn as nn

        class Two(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                ones = torch.ones(8)
                x = self.fc(x) + ones
                scale = torch.arange(8, device=x.device)
                return x * torch.rand(8) * scale
    ''').lstrip("\n"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("kernels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prober = ClassProber(module.Two, vars(module), str(path), None, None, device=device, mix_mode=False)
    prober.run({"TL402"}, discover=False)
    first = _line(path, "ones = torch.ones(8)")
    status, detail = prober.verdict("TL402", "torch.ones(8)", first, first)
    assert status == "confirmed" and "surveyed" not in detail, detail
    later = _line(path, "torch.rand(8)")
    status, detail = prober.verdict("TL402", "torch.rand(8)", later, later)
    assert status == "confirmed" and "surveyed on meta" in detail and f"created at line {later}" in detail, detail
    moved = _line(path, "scale = torch.arange")
    assert prober.verdict("TL402", "torch.arange", moved, moved)[0] != "confirmed"


def test_device_messages_of_cuda_kernels_count_as_device_errors() -> None:
    from torchlint.runtime.devices import is_device_error
    assert is_device_error(RuntimeError("expected self and mask to be on the same device, but got mask "
                                        "on cpu and self on cuda:0"))
    assert is_device_error(RuntimeError("Input and hidden tensors are not at the same device, found input "
                                        "tensor at cuda:0 and hidden tensor at cpu"))
    assert not is_device_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x8 and 4x4)"))


def test_cuda_gone_messages_count_as_cuda_unavailable() -> None:
    """What `.cuda()` raises in a worker started with CUDA_VISIBLE_DEVICES="" on a GPU machine."""
    assert is_cuda_unavailable_error(RuntimeError("No CUDA GPUs are available"))
    assert is_cuda_unavailable_error(AssertionError("Torch not compiled with CUDA enabled"))


# -- the worker split, on any machine -------------------------------------------------------

def _finding(path: Path, code: str, needle: str, cls: str) -> Diagnostic:
    line = _line(path, needle, after=f"class {cls}(")
    return Diagnostic(str(path), line, 9, line, 40, code, code.lower(), code, context={"class": cls})


def test_only_tl402_runs_where_cuda_is_visible(
        models: tuple[Path, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    """Forcing the GPU split (as on a CUDA machine): TL402 gets a worker that keeps the
    machine's CUDA setting, every other finding (TL403 first) one started with
    CUDA_VISIBLE_DEVICES="", where it gets the answer a machine without CUDA gives."""
    path, _ = models
    monkeypatch.setenv("TORCHLINT_RUNTIME_GPU", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    given = [_finding(path, "TL403", "x.cuda()", "Hardcoded"),
             _finding(path, "TL402", "if os.environ", "SeesCuda"),
             _finding(path, "TL203", "if os.environ", "SeesCuda")]
    tl403, visible, hidden = (d.runtime or {} for d in confirm(given, paths=[str(path)], timeout=20.0))
    assert tl403["status"] == "confirmed", tl403
    assert "checked in a worker without CUDA (CUDA_VISIBLE_DEVICES='')" in tl403["detail"]
    assert visible["status"] == "not-reproduced", visible  # forward ran: CUDA_VISIBLE_DEVICES unset
    assert hidden["status"] == "skipped" and "CUDA is hidden here" in hidden["detail"], hidden


# -- the real CUDA path ---------------------------------------------------------------------

@cuda
def test_cuda_tl402_keeps_per_line_attribution(models: tuple[Path, ModuleType]) -> None:
    """Device: CUDA. The LSTM refuses the cpu h0; only h0's line is confirmed."""
    status, detail = _probe(models, "Bystander", "TL402", "h0 = torch.zeros", "cuda")
    assert status == "confirmed" and "forward on cuda" in detail, detail
    status, detail = _probe(models, "Bystander", "TL402", "ones = torch.ones", "cuda")
    assert status == "skipped", detail
    status, detail = _probe(models, "Added", "TL402", "pos = torch.arange", "cuda")
    assert status == "confirmed", detail


@cuda
def test_cuda_end_to_end(models: tuple[Path, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    """Device: CUDA, with the machine's own detection (no override)."""
    path, _ = models
    monkeypatch.delenv("TORCHLINT_RUNTIME_GPU", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    given = [_finding(path, "TL403", "x.cuda()", "Hardcoded"),
             _finding(path, "TL402", "h0 = torch.zeros", "Bystander"),
             _finding(path, "TL402", "ones = torch.ones", "Bystander"),
             _finding(path, "TL106", "self.mask = torch.ones", "Masked")]
    tl403, culprit, bystander, tl106 = (d.runtime or {} for d in confirm(given, paths=[str(path)], timeout=60.0))
    assert tl403["status"] == "confirmed" and "without CUDA" in tl403["detail"], tl403
    assert culprit["status"] == "confirmed" and "forward on cuda" in culprit["detail"], culprit
    assert bystander["status"] == "skipped", bystander
    assert tl106["status"] == "confirmed" and "still on cpu after .to(" in tl106["detail"], tl106


@cuda
def test_cuda_verdicts_are_as_right_as_the_cpu_ones(tmp_path: Path) -> None:
    """Device: CUDA. The TL402 fixtures checked twice on this machine, with the GPU in use and
    with it hidden (what a CPU machine does): every finding the CPU run confirms is confirmed
    on the GPU too, and no finding is confirmed by one and not reproduced by the other."""
    import json
    import os
    import subprocess
    import sys

    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "TL402"
    reports = {}
    for name, extra in (("gpu", {"TORCHLINT_RUNTIME_GPU": "1"}),
                        ("cpu", {"TORCHLINT_RUNTIME_GPU": "0", "CUDA_VISIBLE_DEVICES": ""})):
        env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "TORCHLINT_RUNTIME_GPU")}
        env.update(extra)
        out = tmp_path / f"{name}.json"
        subprocess.run([sys.executable, "-m", "torchlint", "check", "--no-cache", "--exit-zero", "--quiet",
                        "--runtime", "--select", "TL402", "--format", "json", "-o", str(out), str(fixtures)],
                       env=env, check=True, timeout=600)
        reports[name] = {(d["path"], d["line"], d["col"]): (d.get("runtime") or {}) for d in json.loads(out.read_text())}
    assert reports["gpu"].keys() == reports["cpu"].keys()
    worse = []
    for key, cpu in reports["cpu"].items():
        gpu = reports["gpu"][key]
        statuses = {cpu.get("status"), gpu.get("status")}
        if (cpu.get("status") == "confirmed" and gpu.get("status") != "confirmed") or \
                statuses == {"confirmed", "not-reproduced"}:
            worse.append(f"{key}: cpu {cpu} / gpu {gpu}")
    assert not worse, "\n".join(worse)
