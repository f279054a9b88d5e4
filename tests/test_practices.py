"""TL505-TL512 behaviour that depends on settings (torch-version, opt-in selection)."""

from __future__ import annotations

from torchlint.engine import Options, check_source
from torchlint.fix import fix_source
from torchlint.registry import select_codes

OLD_TORCH_LOAD = "import torch\n\nstate = torch.load(path, map_location='cpu')\n"


def findings(source: str, torch_version: str | None = None, select: list[str] | None = None,
             extend: list[str] | None = None) -> list[tuple[str, int]]:
    options = Options(enabled=select_codes(select, None, extend), torch_version=torch_version)
    return [(d.code, d.line) for d in check_source(source, "x.py", options).diagnostics]


def test_torch_load_without_weights_only_is_flagged_when_the_project_targets_old_torch() -> None:
    assert findings(OLD_TORCH_LOAD, torch_version="2.4", extend=["TL509"]) == [("TL509", 3)]
    assert findings(OLD_TORCH_LOAD, torch_version="2.6", extend=["TL509"]) == []
    assert findings(OLD_TORCH_LOAD, extend=["TL509"]) == []  # default: the name table's torch (>= 2.6)
    assert findings(OLD_TORCH_LOAD, torch_version="2.4") == []  # opt-in


def test_weights_only_fix_is_unsafe_and_converges() -> None:
    options = Options(enabled=select_codes(["TL509"], None), torch_version="2.4")

    def check(text: str):
        return check_source(text, "x.py", options).diagnostics

    assert fix_source(OLD_TORCH_LOAD, check, unsafe=False).source == OLD_TORCH_LOAD
    fixed = fix_source(OLD_TORCH_LOAD, check, unsafe=True).source
    assert fixed == "import torch\n\nstate = torch.load(path, map_location='cpu', weights_only=True)\n"
    assert fix_source(fixed, check, unsafe=True).source == fixed


LOADER = ("from torch.utils.data import DataLoader\n\nloader = DataLoader(ds, batch_size=8)\n"
          "loss.backward()\n")


def test_synchronous_dataloader_is_opt_in() -> None:
    assert findings(LOADER) == []
    assert findings(LOADER, extend=["TL507"]) == [("TL507", 3)]
    assert findings(LOADER, select=["TL5"]) == [("TL507", 3)]
    assert findings(LOADER, select=["ALL"]) == [("TL507", 3)]
    assert findings(LOADER, select=["TL"]) == []


def test_singleton_import_is_opt_in() -> None:
    source = "import torchvision.transforms as transforms\n"
    assert findings(source) == []
    assert findings(source, extend=["TL512"]) == [("TL512", 1)]
