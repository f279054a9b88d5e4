"""The runner's parallel parts give the same answers as the serial ones."""

from __future__ import annotations

from pathlib import Path

from torchlint.runner import PARALLEL_INDEX_MIN, build_index


def test_index_built_in_parallel_equals_the_serial_one(tmp_path: Path) -> None:
    files = []
    for i in range(PARALLEL_INDEX_MIN + 10):
        path = tmp_path / f"m{i}.py"
        base = f"m{i - 1}.B{i - 1}" if i % 100 else "torch.nn.Module"  # chains of 100 classes
        path.write_text(f"import torch\nimport m{i - 1}\n\nclass B{i}({base}):\n    def forward(self, x):\n"
                        "        return x\n")
        files.append(str(path))
    serial = build_index(files, (), 1_000_000, None, jobs=1)
    parallel = build_index(files, (), 1_000_000, None, jobs=2)
    assert serial.modules.keys() == parallel.modules.keys()
    assert all(serial.fingerprint(m) == parallel.fingerprint(m) for m in serial.modules)
    last = f"m{PARALLEL_INDEX_MIN + 9}.B{PARALLEL_INDEX_MIN + 9}"
    assert parallel.is_module(last) is True
