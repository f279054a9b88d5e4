"""Jupyter support: code cells joined for the engine, magics skipped, positions mapped back to
cells, and fixes written back into the cells with outputs, metadata and formatting kept."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest
from helpers import ALL

from torchlint.engine import Options, check_source
from torchlint.fix import fix_source
from torchlint.notebook import (
    PLACEHOLDER,
    NotebookError,
    NotebookSource,
    extract,
    locate,
    split_lines,
    write_back,
)

OPTIONS = Options(enabled=ALL)


def code(source: str | list[str], outputs: list[Any] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["keep"]},
            "outputs": outputs if outputs is not None else [], "source": source}


def markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def lines(text: str) -> list[str]:
    """A cell source as Jupyter stores it: a list of lines, the last without its newline."""
    return split_lines(text)


def notebook(*cells: dict[str, Any], language: str = "python", **dump: Any) -> str:
    nb = {"cells": list(cells),
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": language, "name": "python3"},
                       "language_info": {"name": language, "version": "3.11.7"}},
          "nbformat": 4, "nbformat_minor": 5}
    style = {"indent": 1, "sort_keys": True, "ensure_ascii": False, **dump}
    return json.dumps(nb, **style) + "\n"  # how nbformat writes a notebook


def diagnostics(ns: NotebookSource) -> list[tuple[str, int, int]]:
    """(code, cell, line in cell) of every finding."""
    found = check_source(ns.source, "nb.ipynb", OPTIONS).diagnostics
    return [(d.code, *locate(ns, d.line)) for d in found]


MODEL = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.Linear(2, 2)]

    def forward(self, x):
        return F.dropout(x, p=0.5)"""

OUTPUT = {"name": "stdout", "output_type": "stream", "text": ["ok ünïcode\n"]}


# ---- extract / locate -------------------------------------------------------------------------

def test_cells_are_numbered_among_all_cells_and_lines_within_each_cell() -> None:
    text = notebook(markdown("# Title"), code(lines("import torch\nx = 1")), markdown("text"),
                    code(lines("y = 2\n\nz = 3\n")))
    ns = extract(text)
    assert ns.code_cells == (2, 4)
    assert ns.source == "import torch\nx = 1\ny = 2\n\nz = 3\n"
    assert [locate(ns, n) for n in range(1, 6)] == [(2, 1), (2, 2), (4, 1), (4, 2), (4, 3)]
    assert locate(ns, 7) == (4, 5)  # past the end (a finding at EOF) stays in the last cell


def test_findings_map_to_cells_and_the_class_index_spans_cells() -> None:
    base = "import torch.nn as nn\n\nclass Base(nn.Module):\n    pass"
    child = "class Child(Base):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)"
    ns = extract(notebook(code(lines(base)), markdown("Now a subclass"), code(lines(child))))
    # Child is a Module only through Base, defined two cells earlier
    assert ("TL101", 3, 2) in diagnostics(ns)


MAGICS = """\
%matplotlib inline
!pip install torch
files = !ls *.pt
t = %timeit -o sum(range(10))
torch.nn.Linear?
??torch.load
%config InlineBackend.figure_format = 'retina' \\
    # continued
for i in range(2):
    !echo {i}
    %time f(i)
doc = '''
%not a magic, inside a string
is this a question?
'''
x = 1  # really?
y = (1 +
     2)
"""


def test_magics_shell_and_help_lines_become_placeholders_of_the_same_length() -> None:
    ns = extract(notebook(code(lines(MAGICS))))
    joined = ns.source.splitlines()
    original = MAGICS.splitlines()
    assert len(joined) == len(original)
    ast.parse(ns.source)  # Python again
    magic = {n for n, line in enumerate(original, start=1) if line != joined[n - 1]}
    assert magic == {1, 2, 3, 4, 5, 6, 7, 8, 10, 11} == set(ns.magic_lines)
    assert joined[9] == "    " + PLACEHOLDER  # keeps the indentation of the block it is in
    assert joined[7] == PLACEHOLDER  # a continued magic keeps the indentation of its first line
    assert joined[12:18] == original[12:18]  # string content, comments and brackets untouched


def test_cell_magics() -> None:
    bash = code(lines("%%bash\necho hi\n  if true; then echo x; fi"))
    timed = code(lines("%%time\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)"))
    ns = extract(notebook(bash, timed))
    ast.parse(ns.source)
    assert ns.source.splitlines()[:3] == [PLACEHOLDER] * 3  # another language: opaque
    assert ns.source.splitlines()[3] == PLACEHOLDER
    assert ("TL101", 2, 4) in diagnostics(ns)  # the body of %%time is Python and is linted


def test_only_python_line_breaks_split_lines() -> None:
    ns = extract(notebook(code("a = 1\x0c\nb = '\u2028'\r\nc = 3")))
    assert len(ns.line_map) == 3
    assert ns.source == "a = 1\x0c\nb = '\u2028'\r\nc = 3\n"


def test_unreadable_notebooks_raise_a_clear_error() -> None:
    with pytest.raises(NotebookError, match="invalid JSON"):
        extract("{not json")
    with pytest.raises(NotebookError, match="no list of cells"):
        extract('{"cells": 3}')
    with pytest.raises(NotebookError, match="nbformat 3"):
        extract('{"worksheets": [], "nbformat": 3}')
    with pytest.raises(NotebookError, match="cell 1"):
        extract('{"cells": [{"cell_type": "code", "source": 5}]}')


def test_a_notebook_of_another_language_has_no_python() -> None:
    ns = extract(notebook(code("println(1)"), language="julia"))
    assert not ns.python and ns.source == "" and ns.code_cells == (1,)


def test_empty_notebook_and_empty_cells() -> None:
    assert extract(notebook()).source == ""
    ns = extract(notebook(code([]), code("x = 1")))
    assert ns.source == "x = 1\n" and locate(ns, 1) == (2, 1)


# ---- write_back -------------------------------------------------------------------------------

def fixed(ns: NotebookSource, unsafe: bool) -> str:
    outcome = fix_source(ns.source, lambda s: check_source(s, "nb.ipynb", OPTIONS).diagnostics, unsafe)
    return outcome.source


def test_unchanged_source_gives_back_the_identical_text() -> None:
    text = notebook(code(lines("!ls\nx = 1"), [OUTPUT]))
    ns = extract(text)
    assert write_back(text, ns, ns.source) is text
    # a round trip through the matcher with nothing changed is byte-identical too
    assert write_back(text, ns, ns.source + "") == text


def test_fixes_rewrite_only_the_changed_cell_and_keep_everything_else() -> None:
    text = notebook(markdown("# Ünïcode title"), code(lines("%load_ext autoreload\n!nvidia-smi"), [OUTPUT]),
                    code(lines(MODEL), [OUTPUT]), code(lines("model = Net()\nmodel?")))
    ns = extract(text)
    assert {c for c, *_ in diagnostics(ns)} >= {"TL104", "TL303"}
    new_text = write_back(text, ns, fixed(ns, unsafe=True))
    before, after = json.loads(text), json.loads(new_text)
    assert after["metadata"] == before["metadata"]
    for old, new in zip(before["cells"], after["cells"]):
        assert {k: v for k, v in old.items() if k != "source"} == {k: v for k, v in new.items() if k != "source"}
    assert [c["source"] for i, c in enumerate(after["cells"]) if i != 2] == \
           [c["source"] for i, c in enumerate(before["cells"]) if i != 2]
    cell = "".join(after["cells"][2]["source"])
    assert "nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])" in cell
    assert "training=self.training" in cell
    assert not cell.endswith("\n")  # Jupyter's convention kept
    # the same formatting: only the lines of that cell's source differ
    old_json, new_json = text.splitlines(), new_text.splitlines()
    assert len(old_json) == len(new_json)
    assert sum(a != b for a, b in zip(old_json, new_json)) == 2
    assert "Ünïcode" in new_text and new_text.endswith("}\n")
    again = extract(new_text)
    assert {c for c, *_ in diagnostics(again)}.isdisjoint({"TL104", "TL303"})


def test_inserted_lines_go_to_the_cell_they_were_inserted_in() -> None:
    init = "class M(nn.Module):\n    def __init__(self):\n        \"\"\"Doc.\"\"\"\n        self.fc = nn.Linear(2, 2)"
    text = notebook(code(lines("import torch.nn as nn")), code(lines(init)), code("m = M()"))
    ns = extract(text)
    new_text = write_back(text, ns, fixed(ns, unsafe=True))
    cells = [c["source"] for c in json.loads(new_text)["cells"]]
    assert cells[0] == ["import torch.nn as nn"]
    assert cells[1] == ['class M(nn.Module):\n', '    def __init__(self):\n', '        """Doc."""\n',
                        '        super().__init__()\n', '        self.fc = nn.Linear(2, 2)']
    assert cells[2] == "m = M()"  # a string source stays a string


def test_lines_inserted_or_deleted_at_cell_boundaries() -> None:
    text = notebook(code(lines("a = 1\nb = 2")), code(lines("c = 3\nd = 4")))
    ns = extract(text)
    grown = write_back(text, ns, "a = 1\nb = 2\nnew = 0\nc = 3\nd = 4\n")
    assert [c["source"] for c in json.loads(grown)["cells"]] == [["a = 1\n", "b = 2\n", "new = 0"], ["c = 3\n", "d = 4"]]
    shrunk = write_back(text, ns, "a = 1\nd = 4\n")
    assert [c["source"] for c in json.loads(shrunk)["cells"]] == [["a = 1"], ["d = 4"]]


def test_magics_survive_a_rewrite_even_next_to_changed_lines() -> None:
    text = notebook(code(lines("%time x = 1\ny = 2\n!ls")))
    ns = extract(text)
    new = ns.source.replace("y = 2", "y = 3")
    assert json.loads(write_back(text, ns, new))["cells"][0]["source"] == ["%time x = 1\n", "y = 3\n", "!ls"]


@pytest.mark.parametrize("style", [{"indent": 2}, {"indent": 1, "sort_keys": False, "ensure_ascii": True}])
def test_other_json_styles_are_kept(style: dict[str, Any]) -> None:
    text = notebook(markdown("é"), code(lines("x = 1")), **style)
    ns = extract(text)
    new_text = write_back(text, ns, "x = 2\n")
    assert new_text == text.replace('"x = 1"', '"x = 2"')


# ---- through the CLI --------------------------------------------------------------------------

def test_cli_checks_and_fixes_a_notebook(tmp_path) -> None:
    import subprocess
    import sys

    text = notebook(markdown("# Training"), code(lines("%matplotlib inline\n!nvidia-smi"), [OUTPUT]),
                    code(lines(MODEL), [OUTPUT]))
    path = tmp_path / "train.ipynb"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "torchlint.cli", "check", "--no-cache", *args],
                              cwd=tmp_path, check=False, capture_output=True, text=True, timeout=60)

    checked = cli(".")
    assert checked.returncode == 1, checked.stderr
    assert "train.ipynb:cell 3:9:9: TL104 " in checked.stdout
    assert "train.ipynb:cell 3:12:16: TL303 " in checked.stdout
    fixed = cli("--fix", "--unsafe-fixes", "train.ipynb")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    before, after = json.loads(text), json.loads(path.read_text(encoding="utf-8"))
    assert after["cells"][:2] == before["cells"][:2]  # magics, outputs untouched
    assert after["cells"][2]["outputs"] == [OUTPUT]
    assert "nn.ModuleList(" in "".join(after["cells"][2]["source"])
    assert path.read_text(encoding="utf-8").count("\n") == text.count("\n")  # Jupyter's layout kept


def test_max_file_size_applies_to_the_code_of_the_cells_not_to_the_json(tmp_path) -> None:
    """A notebook of several MB is mostly embedded images: its few KB of code are checked;
    code over the limit is TL000, and the JSON itself only has a far larger cap."""
    from torchlint.engine import check_file
    from torchlint.runner import summarize_file

    image = {"data": {"image/png": "iVBORw0KGgo" * 300_000, "text/plain": ["<Figure>"]},
             "metadata": {}, "output_type": "display_data"}
    path = tmp_path / "figures.ipynb"
    path.write_text(notebook(code(lines(MODEL), [image])), encoding="utf-8")
    assert path.stat().st_size > 3_000_000
    options = Options(enabled=ALL, max_file_size=100_000)
    found = check_file(str(path), options).diagnostics
    assert {d.code for d in found} == {"TL104", "TL303"}
    assert summarize_file(str(path), 100_000) is not None  # the project index sees its classes

    small = Options(enabled=ALL, max_file_size=200)
    found = check_file(str(path), small).diagnostics
    assert [d.code for d in found] == ["TL000"]
    assert "code of the notebook's cells is larger than max-file-size (200 bytes)" in found[0].message
    assert summarize_file(str(path), 200) is None
