"""Generate torchlint/data/torch_names.json from the installed torch (run with torch 2.13).

The linter reads this file and never imports torch. Regenerate with
`python scripts/gen_torch_names.py` after a torch upgrade and commit the result.
"""

from __future__ import annotations

import inspect
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def public(names: list[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("__"))


def main() -> None:
    nn_names = public(dir(nn))
    module_classes = sorted(
        n for n in nn_names if inspect.isclass(getattr(nn, n)) and issubclass(getattr(nn, n), nn.Module)
    )
    # layers that own parameters or running state when built with default arguments
    stateful = []
    for n in module_classes:
        cls = getattr(nn, n)
        sig = inspect.signature(cls.__init__)
        has_state = False
        for pname in sig.parameters:
            if pname in {"in_features", "in_channels", "num_features", "normalized_shape",
                         "num_embeddings", "input_size", "embed_dim", "d_model", "num_parameters",
                         "in1_features", "num_groups", "out_features", "out_channels"}:
                has_state = True
        if n.startswith("Lazy") or n in {"PReLU", "LSTM", "GRU", "RNN", "TransformerEncoder", "TransformerDecoder"}:
            has_state = True
        if has_state:
            stateful.append(n)
    dropout = sorted(n for n in module_classes if "Dropout" in n)
    data = {
        "torch_version": torch.__version__.split("+")[0],
        "nn": nn_names,
        "nn_module_classes": module_classes,
        "nn_stateful_layers": sorted(stateful),
        "nn_dropout_layers": dropout,
        "functional": public(dir(F)),
        "module_attributes": public(dir(nn.Module)),
        "tensor_methods": public(dir(torch.Tensor)),
        "torch": public(dir(torch)),
    }
    out = pathlib.Path(__file__).resolve().parent.parent / "torchlint" / "data" / "torch_names.json"
    out.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(nn_names)} nn names, {len(data['functional'])} functional names")


if __name__ == "__main__":
    main()
