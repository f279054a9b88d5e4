"""Extra cases for TL2xx/TL3xx that fixtures cannot express (file names, cross-scope facts)."""

from __future__ import annotations

from helpers import codes_lines, lint

PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
TEMPLATE = PRELUDE + (
    "from ..llama.modeling_llama import LlamaMLP\n\n\n"
    "class Child(nn.Linear):\n"
    "    def forward(self, x):\n"
    "        super().forward(x)\n"
)


def test_modular_template_files_are_not_flagged() -> None:
    # transformers' modular_*.py files are code-generator input: super().forward() means "copy the body"
    assert lint(TEMPLATE, "TL203", path="models/foo/modular_foo.py") == []
    assert codes_lines(lint(TEMPLATE, "TL203", path="models/foo/modeling_foo.py")) == [("TL203", 9)]


def test_non_torch_files_are_silent() -> None:
    code = (
        "def fit(self, model, opt, data):\n"
        "    model.training = True\n"
        "    for x in data:\n"
        "        loss = model.forward(x)\n"
        "        loss.backward()\n"
        "        opt.step()\n"
    )
    assert lint(code, ["TL201", "TL304", "TL306"]) == []
    assert {d.code for d in lint("import torch\n" + code, ["TL201", "TL304", "TL306"])} == {"TL201", "TL304", "TL306"}


def test_nested_training_loops_report_the_innermost_once() -> None:
    code = PRELUDE + (
        "def fit(model, optimizer, loader):\n"
        "    for epoch in range(3):\n"
        "        for x in loader:\n"
        "            model(x).sum().backward()\n"
        "            optimizer.step()\n"
    )
    assert codes_lines(lint(code, "TL304")) == [("TL304", 7)]


def test_training_loop_inside_a_called_function_is_reported_there_only() -> None:
    code = PRELUDE + (
        "def train_epoch(model, optimizer, loader):\n"
        "    for x in loader:\n"
        "        model(x).sum().backward()\n"
        "        optimizer.step()\n"
        "\n"
        "def fit(model, optimizer, loader):\n"
        "    for epoch in range(3):\n"
        "        train_epoch(model, optimizer, loader)\n"
    )
    assert codes_lines(lint(code, "TL304")) == [("TL304", 6)]


def test_method_helpers_are_followed() -> None:
    code = PRELUDE + (
        "class Trainer:\n"
        "    def validate(self):\n"
        "        self.model.eval()\n"
        "\n"
        "    def fit(self, loader):\n"
        "        self.model.train()\n"
        "        for epoch in range(3):\n"
        "            for x in loader:\n"
        "                self.optimizer.zero_grad()\n"
        "                self.model(x).sum().backward()\n"
        "                self.optimizer.step()\n"
        "            self.validate()\n"
    )
    assert codes_lines(lint(code, "TL302")) == [("TL302", 11)]
    assert lint(code.replace("self.model.eval()", "self.model.eval()\n        self.model.train()"), "TL302") == []


def test_no_grad_block_after_training_is_one_finding() -> None:
    code = PRELUDE + (
        "def fit(model, optimizer, train_loader, test_loader):\n"
        "    for x in train_loader:\n"
        "        optimizer.zero_grad()\n"
        "        model(x).sum().backward()\n"
        "        optimizer.step()\n"
        "    with torch.no_grad():\n"
        "        for x in test_loader:\n"
        "            model(x)\n"
    )
    assert codes_lines(lint(code, "TL301")) == [("TL301", 10)]


def test_closure_parameter_annotation_is_seen() -> None:
    code = PRELUDE + (
        "class Ref:\n"
        "    def forward(self, x):\n"
        "        return x\n"
        "\n"
        "def make(ref: Ref):\n"
        "    def inner(x):\n"
        "        return ref.forward(x)\n"
        "    return inner\n"
    )
    assert lint(code, "TL201") == []


def test_eval_inside_helper_called_before_no_grad() -> None:
    code = PRELUDE + (
        "def prepare(model):\n"
        "    model.eval()\n"
        "    return model\n"
        "\n"
        "def main(x):\n"
        "    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())\n"
        "    prepare(model)\n"
        "    with torch.no_grad():\n"
        "        return model(x)\n"
    )
    assert lint(code, "TL301") == []
    assert codes_lines(lint(code.replace("    prepare(model)\n", ""), "TL301")) == [("TL301", 11)]


def test_forward_fix_is_safe_only_for_known_modules() -> None:
    # `x.forward()` -> `x()` keeps behaviour only when x is an nn.Module: an OpenCV net has no __call__
    code = PRELUDE + (
        "class Net(nn.Module):\n"
        "    def __init__(self, inner, n):\n"
        "        super().__init__()\n"
        "        self.inner = inner\n"
        "        self.fc = nn.Linear(n, n).to('cpu')\n"
        "        self.blocks = nn.Sequential(nn.Linear(n, n))\n"
        "\n"
        "    def forward(self, x):\n"
        "        x = self.inner.forward(x)\n"
        "        x = self.fc.forward(x)\n"
        "        for name, child in self.blocks.named_children():\n"
        "            x = child.forward(x)\n"
        "        return self.blocks[0].forward(x)\n"
        "\n"
        "def run(model, x):\n"
        "    net = model\n"
        "    return net.forward(x)\n"
    )
    found = {d.line: d.fix.applicability for d in lint(code, "TL201") if d.fix is not None}
    assert found == {13: "unsafe", 14: "safe", 16: "safe", 17: "safe", 21: "unsafe"}


def test_forward_receivers_followed_through_copied_locals() -> None:
    code = PRELUDE + (
        "import cv2\n"
        "\n"
        "class Detector:\n"
        "    def __init__(self, path, backbone):\n"
        "        net = cv2.dnn.readNet(path)\n"
        "        self.__dict__.update(locals())\n"
        "\n"
        "    def run(self, x):\n"
        "        return self.net.forward(), self.backbone.forward(x)\n"
    )
    # self.net is the OpenCV net (silent); self.backbone is a parameter of unknown type (flagged)
    assert [(d.line, d.col) for d in lint(code, "TL201")] == [(13, 36)]


def test_state_update_forward_whose_result_is_used_is_flagged() -> None:
    code = PRELUDE + (
        "class Ema(nn.Module):\n"
        "    def __init__(self, model):\n"
        "        super().__init__()\n"
        "        self.model = model\n"
        "\n"
        "    @torch.no_grad()\n"
        "    def forward(self, other):\n"
        "        for a, b in zip(self.model.parameters(), other.parameters()):\n"
        "            a.lerp_(b, 0.01)\n"
        "\n"
        "class Trainer:\n"
        "    def __init__(self, model):\n"
        "        self.ema = Ema(model)\n"
        "\n"
        "    def step(self, model):\n"
        "        self.ema(model)\n"
    )
    assert lint(code, "TL203") == []
    used = code.replace("        self.ema(model)\n", "        return self.ema(model)\n")
    assert codes_lines(lint(used, "TL203")) == [("TL203", 11)]
