"""Jupyter notebooks: the code cells as one Python source for the engine, and fixes back.

`extract()` joins the code cells of a notebook, in order, into one source, so that the
Module class index and every rule see the notebook as the kernel runs it. IPython syntax
that is not Python (line magics `%time`, cell magics `%%bash`, shell lines `!pip install`,
`files = !ls`, help lines `obj?` / `?obj`) is replaced line for line by a placeholder
statement with the same indentation, so every line of the joined source is exactly one line
of one cell and columns never move.

Cells are numbered as the user sees them: **the 1-based index of the cell among all cells
of the notebook, markdown and raw cells included** (so "cell 3" is the third cell from the
top, whatever its kind). Lines within a cell are 1-based.

`write_back()` takes the joined source after fixes and puts each line back in its cell
(lines a fix inserted go to the cell of the line before them), restores the magics, and
re-serialises the notebook in the formatting it was read in (Jupyter writes `indent=1`, keys
as they were, non-ASCII unescaped), so outputs, metadata and untouched cells do not change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

PLACEHOLDER = "pass  # torchlint: magic"
# cell magics whose body is Python run by IPython: the first line is skipped, the body linted
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_HELP = re.compile(r"(?:\?{1,2}[\w.*\[\]()]+|[\w.*\[\]()]+\?{1,2})\s*")
_ASSIGNED_MAGIC = re.compile(r"[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[%!]")


class NotebookError(ValueError):
    """The file is not a notebook we can read (invalid JSON, not nbformat 4); say it as TL000."""


@dataclass(frozen=True)
class NotebookSource:
    """The joined Python source of a notebook's code cells, and where each line came from."""

    source: str
    # line_map[n - 1] is (cell, line_in_cell) of line n of `source`, both 1-based
    line_map: tuple[tuple[int, int], ...]
    # 1-based indices (among all cells) of the code cells, in order
    code_cells: tuple[int, ...]
    # lines of `source` (1-based) that hold a placeholder instead of IPython syntax
    magic_lines: frozenset[int] = frozenset()
    # False for a notebook whose kernel is not Python: `source` is then empty
    python: bool = True


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split only where Python's tokenizer splits (not at \\f, \\x1c...)."""
    return _LINE.findall(text)


def _ending(line: str) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith(("\n", "\r")):
        return line[-1]
    return ""


def _load(nb_json_text: str) -> dict[str, Any]:
    try:
        notebook = json.loads(nb_json_text)
    except ValueError as exc:
        raise NotebookError(f"not a notebook: invalid JSON: {exc}") from None
    if not isinstance(notebook, dict):
        raise NotebookError("not a notebook: the JSON is not an object")
    if "worksheets" in notebook and "cells" not in notebook:
        raise NotebookError("nbformat 3 notebooks are not supported; resave it with Jupyter")
    cells = notebook.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise NotebookError("not a notebook: no list of cells")
    for number, cell in enumerate(cells, start=1):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            if not isinstance(source, str) and not (
                    isinstance(source, list) and all(isinstance(s, str) for s in source)):
                raise NotebookError(f"cell {number}: source is neither a string nor a list of strings")
    return notebook


def _cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _is_python(notebook: dict[str, Any]) -> bool:
    metadata = notebook.get("metadata")
    if not isinstance(metadata, dict):
        return True
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        table = metadata.get(key)
        if isinstance(table, dict) and isinstance(table.get(field), str):
            return table[field].lower().startswith("python")
    return True


class _Scanner:
    """Just enough of Python's tokenizer to know whether a line starts a logical line
    (not inside a string, brackets, or after a backslash), where IPython looks for magics."""

    def __init__(self) -> None:
        self.quote: str | None = None  # the open string's delimiter: ', ", ''' or \"\"\"
        self.depth = 0
        self.continued = False

    @property
    def at_statement_start(self) -> bool:
        return self.quote is None and self.depth == 0 and not self.continued

    def feed(self, line: str) -> None:
        text = line.rstrip("\r\n")
        self.continued = False
        i, n = 0, len(text)
        while i < n:
            char = text[i]
            if self.quote is not None:
                if char == "\\":
                    i += 2
                    continue
                if text.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = None
                    continue
                i += 1
                continue
            if char == "#":
                break
            if char in "'\"":
                triple = char * 3
                self.quote = triple if text.startswith(triple, i) else char
                i += len(self.quote)
                continue
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            i += 1
        if text.endswith("\\") and (self.quote is None or len(self.quote) == 1):
            self.continued = self.quote is None
            return  # a single-quoted string continued by a backslash stays open
        if self.quote is not None and len(self.quote) == 1:
            self.quote = None  # unterminated: the parser will say so


def is_magic(line: str) -> bool:
    """Whether a line, at the start of a statement, is IPython syntax rather than Python."""
    code = line.strip()
    if not code:
        return False
    if code[0] in "%!?":
        return True
    return _HELP.fullmatch(code) is not None or _ASSIGNED_MAGIC.match(code) is not None


def _mask(lines: list[str]) -> tuple[list[bool], bool]:
    """Which lines of one cell are IPython syntax, and whether the whole cell is opaque."""
    magic = [False] * len(lines)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    start = 0
    if first is not None and lines[first].lstrip().startswith("%%"):
        name = lines[first].lstrip()[2:].split(None, 1)[0] if lines[first].strip() != "%%" else ""
        if name not in PYTHON_CELL_MAGICS:
            return [True] * len(lines), True  # another language (bash, html, writefile...): opaque
        magic[first] = True
        start = first + 1
    scanner = _Scanner()
    in_magic = False  # a magic line ending in a backslash continues on the next line
    for i in range(start, len(lines)):
        line = lines[i]
        if in_magic or (scanner.at_statement_start and is_magic(line)):
            magic[i] = True
            in_magic = line.rstrip("\r\n").endswith("\\")
            continue
        scanner.feed(line)
    return magic, False


def _placeholder(line: str, indent: str) -> str:
    return indent + PLACEHOLDER + (_ending(line) or "\n")


def extract(nb_json_text: str) -> NotebookSource:
    """The code cells of a notebook as one Python source (raises NotebookError if unreadable)."""
    notebook = _load(nb_json_text)
    cells = notebook["cells"]
    code_cells = tuple(n for n, cell in enumerate(cells, start=1) if cell.get("cell_type") == "code")
    if not _is_python(notebook):
        return NotebookSource("", (), code_cells, frozenset(), python=False)
    parts: list[str] = []
    line_map: list[tuple[int, int]] = []
    magic_lines: set[int] = set()
    for number in code_cells:
        lines = split_lines(_cell_text(cells[number - 1]))
        mask, opaque = _mask(lines)
        indent = ""
        continues = False  # the previous line was a magic ending in a backslash
        for offset, (line, magic) in enumerate(zip(lines, mask), start=1):
            if magic:
                if not continues and not opaque:
                    indent = line[: len(line) - len(line.lstrip(" \t"))]
                text = _placeholder(line, indent)
                magic_lines.add(len(line_map) + 1)
                continues = line.rstrip("\r\n").endswith("\\")
            else:
                text = line if _ending(line) else line + "\n"
                continues = False
            parts.append(text)
            line_map.append((number, offset))
    return NotebookSource("".join(parts), tuple(line_map), code_cells, frozenset(magic_lines))


def locate(ns: NotebookSource, line: int) -> tuple[int, int]:
    """(cell, line in cell) of a line of the joined source; past the end: after the last line."""
    if not ns.line_map:
        return (ns.code_cells[0] if ns.code_cells else 1, max(line, 1))
    if line < 1:
        return ns.line_map[0]
    if line > len(ns.line_map):
        cell, last = ns.line_map[-1]
        return cell, last + line - len(ns.line_map)
    return ns.line_map[line - 1]


def _json_style(text: str) -> dict[str, Any]:
    """The json.dumps arguments that reproduce how the file was written."""
    match = re.match(r"\s*\{\r?\n([ \t]+)\"", text)
    indent: int | str | None = None
    if match:
        whitespace = match.group(1)
        indent = len(whitespace) if set(whitespace) == {" "} else whitespace
    elif re.match(r"\s*\{\r?\n\"", text):
        indent = 0
    ensure_ascii = not any(ord(c) > 127 for c in text) and "\\u" in text
    return {"indent": indent, "ensure_ascii": ensure_ascii}


def write_back(nb_json_text: str, ns: NotebookSource, new_joined_source: str) -> str:
    """The notebook with its code cells rewritten from a fixed joined source.

    Outputs, metadata, other cells and magics are kept; only cells whose code changed get a
    new `source`, in the form (list of lines or one string) they had.
    """
    if new_joined_source == ns.source:
        return nb_json_text
    notebook = _load(nb_json_text)
    cells = notebook["cells"]
    originals = {number: split_lines(_cell_text(cells[number - 1])) for number in ns.code_cells}

    def original_line(joined_line: int) -> str:
        # the cell's own text of a line (magics restored), with a line ending as in the join
        cell, offset = ns.line_map[joined_line - 1]
        text = originals[cell][offset - 1]
        return text if _ending(text) else text + "\n"

    old_lines = split_lines(ns.source)
    new_lines = split_lines(new_joined_source)
    if new_lines and not _ending(new_lines[-1]):
        new_lines[-1] += "\n"
    placed: dict[int, list[str]] = {number: [] for number in ns.code_cells}

    def place(old_index: int, text: str) -> None:
        cell = ns.line_map[min(max(old_index, 0), len(ns.line_map) - 1)][0]
        placed[cell].append(text)

    matcher = SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                place(i1 + k, original_line(i1 + k + 1))
        elif tag in ("replace", "insert"):
            for k, text in enumerate(new_lines[j1:j2]):
                old_index = i1 + k if i1 + k < i2 else (i2 - 1 if i2 > i1 else i1 - 1)
                if i1 + k < i2 and (i1 + k + 1) in ns.magic_lines and text.strip() == PLACEHOLDER:
                    text = original_line(i1 + k + 1)
                place(old_index, text)
        # "delete": the lines are gone

    changed = False
    for number in ns.code_cells:
        cell = cells[number - 1]
        before = _cell_text(cell)
        text = "".join(placed[number])
        if not _ending(before) and _ending(text):
            text = text[: -len(_ending(text))]
        if text == before:
            continue
        changed = True
        cell["source"] = text if isinstance(cell.get("source"), str) else split_lines(text)
    if not changed:
        return nb_json_text
    out = json.dumps(notebook, **_json_style(nb_json_text))
    return out + "\n" if nb_json_text.endswith("\n") else out
