"""The table of real torch names, generated from torch 2.13 and shipped as data.

Linting never imports torch: `scripts/gen_torch_names.py` writes `data/torch_names.json`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import NamedTuple


class TorchNames(NamedTuple):
    version: str
    nn: frozenset[str]
    nn_module_classes: frozenset[str]
    nn_stateful_layers: frozenset[str]
    nn_dropout_layers: frozenset[str]
    functional: frozenset[str]
    module_attributes: frozenset[str]
    tensor_methods: frozenset[str]
    torch: frozenset[str]


@lru_cache(maxsize=1)
def torch_names() -> TorchNames:
    """Load the generated table once per process."""
    raw = json.loads(resources.files("torchlint").joinpath("data/torch_names.json").read_text("utf-8"))
    return TorchNames(
        version=raw["torch_version"],
        nn=frozenset(raw["nn"]),
        nn_module_classes=frozenset(raw["nn_module_classes"]),
        nn_stateful_layers=frozenset(raw["nn_stateful_layers"]),
        nn_dropout_layers=frozenset(raw["nn_dropout_layers"]),
        functional=frozenset(raw["functional"]),
        module_attributes=frozenset(raw["module_attributes"]),
        tensor_methods=frozenset(raw["tensor_methods"]),
        torch=frozenset(raw["torch"]),
    )


# Module classes outside torch.nn's namespace that torch code derives from.
EXTRA_TORCH_MODULE_CLASSES = frozenset(
    {"Module", "ScriptModule", "DistributedDataParallel", "FullyShardedDataParallel", "GraphModule"}
)


def is_torch_module_qualname(qualname: str) -> bool | None:
    """True for torch's Module classes, False for other torch names, None outside torch."""
    if not qualname.startswith("torch."):
        return None
    last = qualname.rsplit(".", 1)[-1]
    names = torch_names()
    if last in names.nn_module_classes or last in EXTRA_TORCH_MODULE_CLASSES:
        return True
    return False
