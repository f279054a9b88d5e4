"""Extra cases for TL1xx that fixtures cannot express (file names)."""

from __future__ import annotations

from helpers import codes_lines, lint

TEMPLATE = (
    "import torch\n"
    "import torch.nn as nn\n"
    "\n"
    "from ..llama.modeling_llama import LlamaModel\n"
    "\n"
    "\n"
    "class FooModel(nn.Module):\n"
    "    def __init__(self, config):\n"
    "        self.extra = nn.Linear(config.hidden_size, 2)\n"
    "        super().__init__(config)\n"
)


def test_modular_template_init_order_is_not_flagged() -> None:
    # transformers' modular_*.py files are code-generator input, never run
    assert lint(TEMPLATE, "TL102", path="models/foo/modular_foo.py") == []
    assert codes_lines(lint(TEMPLATE, "TL102", path="models/foo/modeling_foo.py")) == [("TL102", 9)]


def test_modular_name_alone_is_not_a_template() -> None:
    # a user's own modular_net.py that imports no modeling_* module is ordinary code
    plain = TEMPLATE.replace("from ..llama.modeling_llama import LlamaModel", "import math")
    assert codes_lines(lint(plain, "TL102", path="nets/modular_net.py")) == [("TL102", 9)]
