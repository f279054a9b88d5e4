"""The shared answer to "what does this name hold?" (torchlint/kinds.py)."""

from __future__ import annotations

import textwrap

import libcst as cst

from torchlint.context import FileContext
from torchlint.kinds import created_on_cpu, scope_kinds
from torchlint.project import ProjectIndex, summarize


def _context(source: str) -> FileContext:
    source = textwrap.dedent(source)
    module = cst.parse_module(source)
    index = ProjectIndex()
    index.add(summarize(source, "example", False))
    return FileContext("example.py", source, module, "example", index)


def _kinds(source: str, function: str | None = None):
    ctx = _context(source)
    scope = ctx.module if function is None else ctx.local_functions[function]
    return scope_kinds(ctx, scope)


def test_bindings_wrappers_and_uses() -> None:
    kinds = _kinds("""
        import torch
        import torch.nn as nn
        from torch.autograd import Variable

        def f(a, b, c, d, e: nn.Module, g: int):
            x = torch.zeros(3)
            v = Variable(a)
            img = d.unsqueeze(0)
            net = nn.Linear(2, 2)
            b.size(0)
            y = c * x
            net(e)
            return v, img, y
    """, "f")
    assert kinds.of("x").evidence == "binding" and kinds.of("x").on_cpu
    assert kinds.of("v").evidence == "wrapper"
    assert kinds.of("img").kind == "tensor"
    assert kinds.of("b").evidence == "b.size()"
    assert kinds.of("c").evidence == "arithmetic with a tensor"
    assert kinds.of("net").kind == "module" and kinds.of("e").kind == "module"
    assert kinds.of("g").kind == "unknown" and kinds.of("a").kind == "unknown"


def test_contrary_evidence_wins() -> None:
    kinds = _kinds("""
        import torch

        def f(model, data, inputs, loader, items):
            data.size()
            data.edge_index
            inputs.shape
            model(**inputs)
            for batch in loader:
                batch.size()
            items = [items]
            items.view(2)
    """, "f")
    for name in ("data", "inputs", "batch", "items"):
        assert kinds.of(name).kind != "tensor", name
    assert kinds.of("batch").evidence == "single"


def test_batches_and_cpu_tensors_at_module_level() -> None:
    kinds = _kinds("""
        import torch
        from torch.autograd import Variable
        loader = torch.utils.data.DataLoader([])
        for xb, yb in loader:
            pass
        sample = Variable(torch.randn(2, 3))
        placed = torch.randn(2, 3, device="cuda")
        moved = torch.randn(2, 3)
        moved = moved.cuda()
    """)
    assert kinds.of("xb").kind == "batch"
    assert "sample" in kinds.cpu_tensors
    assert "placed" not in kinds.cpu_tensors and "moved" not in kinds.cpu_tensors


def test_created_on_cpu() -> None:
    ctx = _context("import torch\nfrom torch.autograd import Variable\n")
    cpu = ["torch.zeros(3)", "torch.FloatTensor([1.0])", "Variable(torch.randn(2)).float()", "torch.ones(2)[0]"]
    not_cpu = ["torch.zeros(3, device=d)", "torch.zeros(3).cuda()", "x.new_zeros(3)", "f(x)",
               "torch.zeros(3, **kw)", "Variable(x)"]
    for text in cpu:
        assert created_on_cpu(ctx, cst.parse_expression(text)), text
    for text in not_cpu:
        assert not created_on_cpu(ctx, cst.parse_expression(text)), text
