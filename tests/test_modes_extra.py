"""TL301 across files and in its messages; TL303/TL307 shapes that fixtures cannot pin down."""

from __future__ import annotations

from helpers import codes_lines, lint
from torchlint.project import ProjectIndex, summarize

PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
HELPER = PRELUDE + (
    "def evaluate(model, loader):\n"
    "    with torch.no_grad():\n"
    "        return [model(x) for x in loader]\n"
)


def _index(**files: str) -> ProjectIndex:
    index = ProjectIndex()
    for module, source in files.items():
        index.add(summarize(source, module))
    return index


def test_helper_without_any_caller_is_flagged() -> None:
    index = _index(utils=HELPER, train="import torch\nprint(1)\n")
    assert codes_lines(lint(HELPER, "TL301", path="utils.py", index=index)) == [("TL301", 6)]


def test_helper_imported_by_another_module_is_left_to_its_callers() -> None:
    for importer in ("from utils import evaluate\n", "import utils\n", "from utils import *\n",
                     "from .utils import evaluate\n"):
        index = _index(utils=HELPER, train=importer + "evaluate(model, loader)\n")
        assert lint(HELPER, "TL301", path="utils.py", index=index) == [], importer


def test_message_names_the_mode_dependent_layer() -> None:
    code = PRELUDE + (
        "class Encoder(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.Dropout(p=0.1))])\n"
        "\n"
        "class Model(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.stem = nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3))\n"
        "        self.encoder = Encoder()\n"
        "\n"
        "model = Model()\n"
        "with torch.no_grad():\n"
        "    model(torch.ones(1, 3, 8, 8))\n"
    )
    [finding] = lint(code, "TL301")
    assert "BatchNorm2d in model.stem[1]" in finding.message
    only_encoder = code.replace("nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3))", "nn.Conv2d(3, 3, 3)")
    [finding] = lint(only_encoder, "TL301")
    assert "Dropout(p=0.1) in model.encoder.layers[0][1]" in finding.message


def test_set_grad_enabled_with_a_flag_is_not_a_no_grad_context() -> None:
    code = PRELUDE + (
        "def run(model, loader, train):\n"
        "    with torch.set_grad_enabled(train):\n"
        "        return [model(x) for x in loader]\n"
    )
    assert lint(code, "TL301") == []
    assert codes_lines(lint(code.replace("(train)", "(False)"), "TL301")) == [("TL301", 6)]


def test_caller_that_trains_first_passes_the_model_in_training_mode() -> None:
    code = PRELUDE + (
        "class Trainer:\n"
        "    def validate(self):\n"
        "        return evaluate(self.model, self.val)\n"
        "\n"
        "    def fit(self, loader):\n"
        "        for x in loader:\n"
        "            self.opt.zero_grad()\n"
        "            self.model(x).sum().backward()\n"
        "            self.opt.step()\n"
        "        self.model.eval()\n"
        "        return self.validate()\n"
        "\n"
        "def evaluate(model, loader):\n"
        "    with torch.no_grad():\n"
        "        return [model(x) for x in loader]\n"
    )
    # validate() passes self.model through; its only caller switches it to eval mode first
    assert lint(code, "TL301") == []
    assert codes_lines(lint(code.replace("        self.model.eval()\n", ""), "TL301")) == [("TL301", 17)]


def test_dropout_after_early_return_in_a_nested_block() -> None:
    code = PRELUDE + (
        "class Net(nn.Module):\n"
        "    def forward(self, x):\n"
        "        if not self.training:\n"
        "            return x\n"
        "        for _ in range(2):\n"
        "            if x.sum() > 0:\n"
        "                x = F.dropout(x, 0.1)\n"
        "        return x\n"
    )
    assert lint(code, "TL303") == []


def test_loss_total_message_shows_the_expression() -> None:
    code = PRELUDE + (
        "def fit(model, optimizer, loader):\n"
        "    total = 0.0\n"
        "    for x, y in loader:\n"
        "        optimizer.zero_grad()\n"
        "        loss = F.mse_loss(model(x), y)\n"
        "        loss.backward()\n"
        "        optimizer.step()\n"
        "        total += loss * x.size(0)\n"
        "    print(total)\n"
    )
    [finding] = lint(code, "TL307")
    assert "total += loss * x.size(0)" in finding.message
    assert "(loss * x.size(0)).item()" in finding.message
