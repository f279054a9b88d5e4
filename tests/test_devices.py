"""Extra checks for TL401-TL405: the traps of issue 5 that must stay silent, and fix limits."""

from __future__ import annotations

import pytest

from helpers import fix, lint


def codes(source: str, code: str) -> list[int]:
    return [d.line for d in lint(source) if d.code == code]


SILENT = [
    # TL401: a single batch name may be a BatchEncoding, moved in place
    ("TL401", "def f(loader, device):\n    for batch in loader:\n        batch.to(device)\n"),
    # TL401: a name that is sometimes a Module is not a tensor
    ("TL401", "import torch\nimport torch.nn as nn\ndef f(a):\n    m = torch.zeros(2)\n    if a:\n        m = nn.Linear(2, 2)\n    m.cuda()\n"),
    # TL402: moved with .to(x) / .type_as(x)
    ("TL402", "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return x + torch.tensor([1.0, 2.0]).type_as(x)\n"),
    # TL402: device taken from a buffer
    ("TL402", "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.register_buffer('b', torch.zeros(2))\n    def forward(self, x):\n        return x + torch.ones(2, device=self.b.device)\n"),
    # TL402: guarded by torch.jit.is_scripting()
    ("TL402", "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        if not torch.jit.is_scripting():\n            x = x + torch.ones(x.shape)\n        return x\n"),
    # TL402: an int parameter is not a tensor
    ("TL402", "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x, n):\n        return torch.arange(n) * n\n"),
    # TL403: guarded by is_available()
    ("TL403", "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        d = 'cuda' if torch.cuda.is_available() else 'cpu'\n        return x.to(torch.device('cuda') if torch.cuda.is_available() else 'cpu')\n"),
    # TL404: a discarded move is TL401, not a move; but with no model move there is no TL404
    ("TL404", "def f(model, loader, device):\n    for xb, yb in loader:\n        model(xb)\n"),
    # TL405: map_location as the second positional argument, or possibly in **kwargs
    ("TL405", "import torch\nckpt = torch.load('a.pt', 'cpu')\n"),
    ("TL405", "import torch\ndef f(p, **kw):\n    model_sd = torch.load(p, **kw)\n"),
    ("TL405", "import torch\ncheckpoint_rng_state = torch.load('rng.pth')\n"),
]


@pytest.mark.parametrize("code,source", SILENT)
def test_traps_stay_silent(code: str, source: str) -> None:
    assert codes(source, code) == []


def test_discarded_move_does_not_count_as_moving_the_batch() -> None:
    source = "def f(model, loader, device):\n    model.to(device)\n    for xb, yb in loader:\n        xb.to(device)\n        model(xb)\n"
    assert sorted((d.code, d.line) for d in lint(source)) == [("TL401", 4), ("TL404", 5)]


def test_tl402_fix_only_in_forward_with_a_tensor_argument() -> None:
    helper = (
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n"
        "        return self.shift(x)\n    def shift(self, h: torch.Tensor):\n        return h + torch.randn(h.shape)\n"
    )
    assert codes(helper, "TL402") == [7]
    assert fix(helper, "TL402", unsafe=True) == helper  # x is not in scope in the helper
    defaulted = (
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x=None):\n"
        "        return x + torch.randn(x.shape)\n"
    )
    assert codes(defaulted, "TL402") == []  # x has a default: not known to be a tensor


def test_tl402_fix_reparses_with_trailing_comma() -> None:
    source = (
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x: torch.Tensor):\n"
        "        return x + torch.randn(\n            x.shape,\n        )\n"
    )
    fixed = fix(source, "TL402", unsafe=True)
    assert "x.shape, device=x.device," in fixed
    compile(fixed, "<fixed>", "exec")


def test_findings_in_modules_carry_the_class() -> None:
    source = "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    def forward(self, x):\n        return x.cuda()\n"
    found = [d for d in lint(source) if d.code == "TL403"]
    assert found and found[0].context == {"class": "Net"}
