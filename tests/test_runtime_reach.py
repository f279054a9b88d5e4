"""How the runtime checker builds Modules and finds their inputs, and TL301 at runtime.

Device: CPU/meta (every worker starts with CUDA hidden, on any machine). One `confirm()`
over one small project answers every case, so the suite pays for a few torch imports only.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from torchlint.diagnostic import Diagnostic

pytest.importorskip("torch")

from torchlint.runtime import confirm  # noqa: E402
from torchlint.runtime.recipes import model_recipe, scan_file  # noqa: E402

PROJECT = {
    "models.py": '''
        import torch
        import torch.nn as nn

        HIDDEN = 12


        class Factory(nn.Module):
            def __init__(self, block, layers):
                super().__init__()
                self.blocks = [block(4, 4) for _ in layers]

            def forward(self, x):
                return x


        def make_factory():
            return Factory(nn.Linear, [2, 2])


        class CalledHere(nn.Module):
            def __init__(self, width, classes=3):
                super().__init__()
                self.heads = [nn.Linear(width, classes)]

            def forward(self, x):
                return self.heads[0](x)


        class CalledInMain(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fcs = [nn.Linear(width, width)]

            def forward(self, x):
                return x


        class CalledInTest(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fcs = [nn.Linear(width, 2)]

            def forward(self, x):
                return x


        class Synth(nn.Module):
            def __init__(self, in_dim: int, dropout: float, use_bias: bool, encoder: nn.Module,
                         table: torch.Tensor, num_heads, eps, device):
                super().__init__()
                assert isinstance(in_dim, int) and isinstance(use_bias, bool) and 0 < dropout < 1
                assert isinstance(encoder, nn.Module) and isinstance(table, torch.Tensor)
                assert num_heads == 8 and 0 < eps < 1 and str(device) == "cpu"
                self.parts = [nn.Linear(in_dim, num_heads)]

            def forward(self, x):
                return x


        class Unbuildable(nn.Module):
            def __init__(self, path):
                super().__init__()
                self.parts = [open(path).read()]
                self.fcs = [nn.Linear(2, 2)]


        class NoSuper(nn.Module):
            def __init__(self, dim):
                self.fc = nn.Linear(dim, dim)


        class Image(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3 * 40 * 40, 4)

            def forward(self, x):
                y = self.fc(x.flatten(1))


        class InForward(nn.Module):
            def __init__(self):
                super().__init__()
                self.dim = 6

            def forward(self, x):
                y = torch.relu(x @ torch.ones(6, 6)) + nn.Linear(self.dim, 6)(x)


        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.q = nn.Linear(8, 8)

            def forward(self, queries, keys, values, attn_mask):
                scores = self.q(queries) @ keys.transpose(-1, -2)
                if attn_mask is not None:
                    scores = scores.masked_fill(attn_mask, 0.0)
                out = scores.softmax(-1) @ values


        class Shapeless(nn.Module):
            def forward(self, x):
                out = torch.tanh(x.reshape(x.shape[0], -1, 8))


        def predict(x):
            net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
            with torch.no_grad():
                return net(x)


        def predict_plain(x):
            net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
            with torch.no_grad():
                return net(x)


        def test_image():
            net = Image()
            net(torch.randn(2, 3, 40, 40))


        CalledHere(HIDDEN)

        if __name__ == "__main__":
            CalledInMain(width=HIDDEN)
    ''',
    "test_models.py": '''
        from models import CalledInTest


        def test_shape():
            model = CalledInTest(5)
            assert model is not None
    ''',
}

# (code, class or function, anchor needle, status, a piece of the detail)
CASES = [
    ("TL104", "Factory", "self.blocks", "confirmed", "built with factory make_factory() at models.py:16"),
    ("TL104", "CalledHere", "self.heads", "confirmed", "built with CalledHere(12) at models.py:"),
    ("TL104", "CalledInMain", "self.fcs", "confirmed", "built with CalledInMain(width=12) at models.py:"),
    ("TL104", "CalledInTest", "self.fcs", "confirmed", "built with CalledInTest(5) at test_models.py:5"),
    ("TL104", "Synth", "self.parts", "confirmed",
     "synthesised arguments (in_dim=8, dropout=0.1, use_bias=False, encoder=nn.Identity(), table=tensor(8x8), "
     "num_heads=8, eps=0.1, device='cpu')"),
    ("TL104", "Unbuildable", "self.fcs", "skipped", "needs constructor arguments: path"),
    ("TL101", "NoSuper", "def __init__", "confirmed", "cannot assign module before Module.__init__() call"),
    ("TL203", "Image", "y = self.fc", "confirmed", "(2, 3, 40, 40) (the project's call at models.py:"),
    ("TL203", "InForward", "y = torch.relu", "confirmed", "forward returned None (input (2, 6))"),
    ("TL203", "Attention", "scores = self.q", "confirmed",
     "queries=(2, 8), keys=(2, 8), values=(2, 8), attn_mask=None"),
    ("TL203", "Shapeless", "out = torch.tanh", "confirmed", "(a common shape)"),
]


def _write(directory: Path, name: str, code: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(code).lstrip("\n"), encoding="utf-8")
    return path


def _finding(path: Path, code: str, needle: str, cls: str | None) -> Diagnostic:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 0
    if cls:
        start = next(i for i, text in enumerate(lines)
                     if text.startswith((f"class {cls}(", f"def {cls}(")))
    for number, text in enumerate(lines[start:], start=start + 1):
        if needle in text:
            col = text.index(needle) + 1
            context = {"class": cls} if cls and code != "TL301" else None
            return Diagnostic(str(path), number, col, number, len(text) + 1, code, code.lower(), code,
                              context=context)
    raise AssertionError(needle)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, str]]:
    directory = tmp_path_factory.mktemp("reach")
    paths = {name: _write(directory, name, code) for name, code in PROJECT.items()}
    models = paths["models.py"]
    given = [_finding(models, code, needle, cls) for code, cls, needle, _, _ in CASES]
    given += [_finding(models, "TL301", "with torch.no_grad()", "predict"),
              _finding(models, "TL301", "with torch.no_grad()", "predict_plain")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHLINT_RUNTIME_GPU", "0")
        results = confirm(given, paths=[str(models)], timeout=20.0, project_root=str(directory))
    keys = [(c[0], c[1]) for c in CASES] + [("TL301", "predict"), ("TL301", "predict_plain")]
    return {key: dict(d.runtime or {}) for key, d in zip(keys, results)}


@pytest.mark.parametrize(("code", "cls", "needle", "status", "detail"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_reach(project: dict[tuple[str, str], dict[str, str]], code: str, cls: str, needle: str,
               status: str, detail: str) -> None:
    runtime = project[(code, cls)]
    assert runtime.get("status") == status, runtime
    assert detail in runtime["detail"], runtime


def test_tl301_confirmed_when_train_and_eval_differ(project: dict[tuple[str, str], dict[str, str]]) -> None:
    runtime = project[("TL301", "predict")]
    assert runtime["status"] == "confirmed", runtime
    assert "train and eval outputs differ (max difference" in runtime["detail"]


def test_tl301_not_reproduced_without_mode_dependent_layers(project: dict[tuple[str, str], dict[str, str]]) -> None:
    runtime = project[("TL301", "predict_plain")]
    assert runtime["status"] == "not-reproduced", runtime
    assert "identical" in runtime["detail"] and "no mode-dependent layer" in runtime["detail"]


def test_model_recipe_reads_how_the_model_is_built(tmp_path: Path) -> None:
    path = _write(tmp_path, "script.py", '''
        import torch
        import torch.nn as nn
        SIZE = 4
        net = nn.Sequential(nn.Linear(SIZE, 2), nn.Dropout(0.1))
        with torch.no_grad():
            print(net(torch.randn(3, SIZE)))

        def evaluate(model, x):
            with torch.no_grad():
                return model(x)

        def from_args(args):
            model = nn.Linear(args.dim, 2)
            with torch.no_grad():
                return model(args.x)
    ''')
    scan = scan_file(str(path), "script")
    assert scan is not None
    model, inputs, why = model_recipe(scan, 5, "script.py")
    assert model is not None and model.code == "nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.1))"
    assert inputs is not None and inputs.code == "(torch.randn(3, 4),)"
    assert model_recipe(scan, 9, "script.py")[2] == "the model (model) is a parameter: its caller decides how it is built"
    assert "known only when the code runs" in model_recipe(scan, 14, "script.py")[2]


def test_recipes_ignore_same_named_classes_of_other_files(tmp_path: Path) -> None:
    """A `Net(3)` call in a file that never imports this file's Net is another Net."""
    from torchlint.runtime.recipes import RecipeBook

    _write(tmp_path, "a.py", "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n")
    _write(tmp_path, "b.py", "import torch.nn as nn\nclass Net(nn.Module):\n    pass\nNet(3)\n")
    _write(tmp_path, "c.py", "from a import Net\nNet(n=7)\n")
    files = [(str(tmp_path / n), n[:-3]) for n in ("a.py", "b.py", "c.py")]
    _, calls, _ = RecipeBook(files, str(tmp_path)).find(str(tmp_path / "a.py"), "a", "Net")
    assert [c.code for c in calls] == ["Net(n=7)"]
    ast.parse(calls[0].code)
