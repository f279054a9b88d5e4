"""Refuse, in well under a second, input that would crash or stall libcst's native parser.

The native parser crashes the process on deep nesting and is superlinear on some shapes that
generated code produces (LibCST issue 619): long operator chains, long chains of `.attr`,
`[i]` or `(...)` trailers, huge literals. CPython's own parser handles all of them in
milliseconds, so a cheap byte-level screen picks the files that could hold such a shape, and
`ast` measures them. What the screen misses, the worker's per-file deadline catches.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from itertools import accumulate

# CPython itself refuses more than 200 nested brackets; libcst's native parser crashes the
# process at about 1,100.
MAX_NESTING = 200


@dataclass(frozen=True)
class Limit:
    """One shape the native parser handles badly, and the size from which it is refused."""

    what: str
    threshold: int


# Thresholds keep the parse of the largest accepted shape well under a second on a 2-core
# machine (measured on libcst 1.9: a 1,000-operand `+` chain takes 1.7 s, 250 `.f()` trailers
# 0.6 s, and `and` chains of 10,000 crash it). Literals are linear but dense: 30,000 elements
# take as long as 300 KB of ordinary code.
OPERATOR_CHAIN = Limit("operands in one chain of binary operators", 500)
TRAILER_CHAIN = Limit("trailers (`.name`, `(...)`, `[...]`) in one chain", 300)
BOOLEAN_CHAIN = Limit("operands in one `and`/`or` chain", 500)
COMPARISON_CHAIN = Limit("operands in one comparison chain", 5_000)
LITERAL_SIZE = Limit("elements in one literal or call", 20_000)

_BRACKETS = {ord("("): 1, ord("["): 1, ord("{"): 1, ord(")"): -1, ord("]"): -1, ord("}"): -1}
_NON_BRACKETS = bytes(b for b in range(256) if b not in b"([{)]}")
# a line that ends in a binary operator, or starts with `.name` or `+`/`|`/`&`/`and`/`or`: the
# lines of a multi-line chain (docstring bullets, sentences and decorators do not match)
_CONTINUED = re.compile(rb"[-+*/%&|^@][ \t]*\\?\n|\n[ \t]*(?:\.[A-Za-z_]|[+|&] |and |or )")
# one long line with that many operators, dots, brackets or commas may hold a long chain
SCREEN_LONG_LINE = 500
SCREEN_PUNCTUATION = 250
_CHAIN_PUNCTUATION = (".", "[", "(", ",", "+", "-", "*", "/", "%", "&", "|", "^", "@", "<", ">",
                      " and ", " or ")
SCREEN_CONTINUED_LINES = 200
SCREEN_COMMAS = LITERAL_SIZE.threshold


class Refused(Exception):
    """The file would crash or stall the parser; the message says why."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


def precheck(source: str, path: str) -> None:
    """Raise Refused for input the native parser must not see; cheap for ordinary files."""
    if "\x00" in source:
        raise Refused("cannot parse: file contains a NUL byte (binary file?)")
    data = source.encode("utf-8", "surrogatepass")
    brackets = data.translate(None, _NON_BRACKETS)
    deepest = max(accumulate(map(_BRACKETS.__getitem__, brackets)), default=0)
    if not _worth_measuring(source, data, brackets, deepest):
        return
    try:
        tree = ast.parse(source, path)
    except SyntaxError as exc:
        if "too many nested" in str(exc) or "too complex" in str(exc):
            raise Refused(f"nested too deeply for the parser: {exc.msg}", exc.lineno or 1) from None
        return  # an ordinary syntax error: libcst reports it
    except (RecursionError, MemoryError):
        raise Refused("nested too deeply for the parser (expression too complex)") from None
    except ValueError:
        return
    found = measure(tree)
    if found is not None:
        limit, size, line = found
        raise Refused(
            f"too slow to parse: at least {size:,} {limit.what} (the limit is {limit.threshold - 1:,}), "
            "a shape on which libcst's parser slows down sharply; exclude the file "
            "(extend-exclude in [tool.torchlint]) if it is generated",
            line,
        )


def _worth_measuring(source: str, data: bytes, brackets: bytes, deepest: int) -> bool:
    """The byte-level screen: could this file hold a shape worth measuring? (C-speed scans only)"""
    if deepest > MAX_NESTING or len(brackets) > 20_000 and deepest > 50:
        return True
    if data.count(b",") > SCREEN_COMMAS:
        return True
    for line in source.splitlines():
        if len(line) > SCREEN_LONG_LINE and sum(map(line.count, _CHAIN_PUNCTUATION)) > SCREEN_PUNCTUATION:
            return True
    return len(_CONTINUED.findall(data)) > SCREEN_CONTINUED_LINES


def measure(tree: ast.AST) -> tuple[Limit, int, int] | None:
    """The first shape over its limit, with its size and line, else None.

    Iterative (no recursion), and linear in the number of nodes.
    """
    # (node, binop chain length so far, trailer chain length so far)
    stack: list[tuple[ast.AST, int, int]] = [(tree, 0, 0)]
    while stack:
        node, binops, trailers = stack.pop()
        line = getattr(node, "lineno", 1)
        if isinstance(node, ast.BinOp):
            binops += 1
            if binops + 1 >= OPERATOR_CHAIN.threshold:  # operands
                return OPERATOR_CHAIN, binops + 1, line
            stack.append((node.left, binops, 0))
            stack.append((node.right, binops, 0))
            continue
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
            trailers += 1
            if trailers >= TRAILER_CHAIN.threshold:
                return TRAILER_CHAIN, trailers, line
            head = node.func if isinstance(node, ast.Call) else node.value
            stack.append((head, 0, trailers))
            rest: list[ast.AST] = []
            if isinstance(node, ast.Call):
                rest = [*node.args, *(k.value for k in node.keywords)]
                size = len(rest)
            else:
                size = 0
                if isinstance(node, ast.Subscript):
                    rest = [node.slice]
            if size >= LITERAL_SIZE.threshold:
                return LITERAL_SIZE, size, line
            stack.extend((child, 0, 0) for child in rest)
            continue
        size = 0
        if isinstance(node, ast.BoolOp):
            if len(node.values) >= BOOLEAN_CHAIN.threshold:
                return BOOLEAN_CHAIN, len(node.values), line
        elif isinstance(node, ast.Compare):
            if len(node.ops) + 1 >= COMPARISON_CHAIN.threshold:
                return COMPARISON_CHAIN, len(node.ops) + 1, line
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            size = len(node.elts)
        elif isinstance(node, ast.Dict):
            size = len(node.keys)
        if size >= LITERAL_SIZE.threshold:
            return LITERAL_SIZE, size, line
        stack.extend((child, 0, 0) for child in ast.iter_child_nodes(node))
    return None
