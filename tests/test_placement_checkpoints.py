"""TL403 (GPU queries, early exits, CUDA defaults held by self) and TL405 (round trips,
training state, strong evidence, the map_location fix): shapes beyond the fixtures."""

from __future__ import annotations

import pytest

from helpers import fix, lint

HEAD = "import sys\nimport torch\nimport torch.nn as nn\n"


def lines(source: str, code: str) -> list[int]:
    return [d.line for d in lint(source) if d.code == code]


SILENT_403 = [
    # one-line early return, assert, continue in a loop, sys.exit on a flag held by self
    HEAD + "class A(nn.Module):\n    def f(self, x):\n        if not torch.cuda.is_available(): return x\n        return x.cuda()\n",
    HEAD + "class A(nn.Module):\n    def f(self, x):\n        assert torch.cuda.is_available()\n        return x.cuda()\n",
    HEAD + "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.ok = torch.cuda.is_available()\n"
           "    def f(self, xs):\n        for x in xs:\n            if not self.ok:\n                continue\n            x.cuda()\n"
           "    def g(self, x):\n        if not self.ok:\n            sys.exit(1)\n        for _ in range(2):\n            x = x.cuda()\n        return x\n",
    # a query with the device as a keyword
    HEAD + "class A(nn.Module):\n    def f(self):\n        return torch.cuda.mem_get_info(device='cuda')\n",
    # a CUDA default never used for placement
    HEAD + "class A(nn.Module):\n    def __init__(self, device='cuda'):\n        super().__init__()\n        self.device = device\n"
           "    def extra_repr(self):\n        return str(self.device)\n",
]


@pytest.mark.parametrize("source", SILENT_403)
def test_tl403_silent(source: str) -> None:
    assert lines(source, "TL403") == []


def test_tl403_early_exit_on_another_test_does_not_guard() -> None:
    source = HEAD + "class A(nn.Module):\n    def f(self, x):\n        if x is None:\n            return x\n        return x.cuda()\n"
    assert lines(source, "TL403") == [8]


def test_tl403_device_used_for_queries_and_placement_is_flagged() -> None:
    source = HEAD + ("class A(nn.Module):\n    def f(self, x):\n        d = torch.device('cuda')\n"
                     "        print(torch.cuda.get_device_name(d))\n        return x.to(d)\n")
    assert lines(source, "TL403") == [6]


def test_tl403_cuda_default_reported_once_per_attribute() -> None:
    source = HEAD + ("class A(nn.Module):\n    def __init__(self, device='cuda'):\n        super().__init__()\n"
                     "        self.device = device\n        self.fc = nn.Linear(2, 2).to(self.device)\n"
                     "    def forward(self, x):\n        return self.fc(x.to(self.device)) + torch.ones(2, device=self.device)\n")
    found = [d for d in lint(source) if d.code == "TL403"]
    assert [d.line for d in found] == [8]
    assert 'device="cuda"' in found[0].message or "device='cuda'" in found[0].message
    assert found[0].context == {"class": "A"}


SILENT_405 = [
    # saved earlier in the same function through a name bound once
    "import os\nimport torch\ndef f(model, d):\n    p = os.path.join(d, 'm.pt')\n    torch.save(model.state_dict(), p)\n"
    "    model.load_state_dict(torch.load(os.path.join(d, 'm.pt')))\n",
    # `.format` pieces
    "import torch\ndef f(model, d):\n    torch.save(model.state_dict(), '{}/m.pt'.format(d))\n"
    "    model.load_state_dict(torch.load('{}/m.pt'.format(d)))\n",
    # a checkpoint callback made here, its path read back
    "import torch\ndef test(model, trainer_cls, cb_cls):\n    cb = cb_cls.ModelCheckpoint(filepath='out/w')\n"
    "    trainer_cls(model, callbacks=[cb]).fit()\n    path = '_'.join([cb.filepath, '3.p'])\n"
    "    model.load_state_dict(torch.load(path))\n",
    # optimizer bound from torch.optim under another name
    "import torch\ndef f(model, p):\n    adam = torch.optim.Adam(model.parameters())\n    adam.load_state_dict(torch.load(p + '.pt'))\n",
    # RNG state with a checkpoint suffix
    "import torch\ndef f(p):\n    torch.set_rng_state(torch.load(p + '/rng.pth'))\n",
]


@pytest.mark.parametrize("source", SILENT_405)
def test_tl405_silent(source: str) -> None:
    assert lines(source, "TL405") == []


def test_tl405_save_after_load_is_not_a_round_trip() -> None:
    source = ("import torch\ndef train(model, p, n):\n    model.load_state_dict(torch.load(p))\n"
              "    for _ in range(n):\n        torch.save(model.state_dict(), p)\n")
    assert lines(source, "TL405") == [3]


def test_tl405_a_different_file_in_the_saved_directory_is_not_a_round_trip() -> None:
    source = ("import os\nimport torch\ndef f(model, d):\n    torch.save(model.state_dict(), os.path.join(d, 'last.pt'))\n"
              "    model.load_state_dict(torch.load(os.path.join(d, 'pretrained.pt')))\n")
    assert lines(source, "TL405") == [5]


def test_tl405_fix_safety_follows_the_receiver() -> None:
    unknown = "import torch\ndef f(m, p):\n    m.load_state_dict(torch.load(p))\n"
    assert fix(unknown, "TL405") == unknown
    assert 'torch.load(p, map_location="cpu")' in fix(unknown, "TL405", unsafe=True)
    known = "import torch\nimport torch.nn as nn\ndef f(m: nn.Module, p):\n    m.load_state_dict(torch.load(p))\n"
    assert 'torch.load(p, map_location="cpu")' in fix(known, "TL405")
    # not the direct shape: no fix at all
    bound = "import torch\ndef f(m: 'nn.Module', p):\n    sd = torch.load(p)\n    m.load_state_dict(sd)\n"
    assert lines(bound, "TL405") == [3]
    assert fix(bound, "TL405", unsafe=True) == bound


def test_tl405_round_trip_across_notebook_cells() -> None:
    import json

    from torchlint.notebook import extract

    def cell(text: str) -> dict:
        return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                "source": text.splitlines(keepends=True)}

    nb = {"cells": [cell("import torch\nimport torch.nn as nn\nnet = nn.Linear(2, 2)"),
                    cell("torch.save(net.state_dict(), 'net.pt')"),
                    {"cell_type": "markdown", "metadata": {}, "source": ["reload"]},
                    cell("net.load_state_dict(torch.load('net.pt'))\nnet.load_state_dict(torch.load('other.pt'))")],
          "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    source = extract(json.dumps(nb)).source
    found = lines(source, "TL405")
    assert len(found) == 1  # only the load of a file no earlier cell saved
    assert "other.pt" in source.splitlines()[found[0] - 1]
