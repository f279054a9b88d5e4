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
