"""GitHub Actions workflow commands: one `::error ...::message` line per finding, which the
Actions runner turns into an annotation on the file and line of the pull request."""

from __future__ import annotations

from typing import IO

from torchlint.diagnostic import Diagnostic


def escape_data(text: str) -> str:
    """The message part: `%`, CR and LF are percent-encoded (as @actions/core does)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: the message escapes plus `:` and `,`, which delimit properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_line(d: Diagnostic) -> str:
    properties = {
        "file": d.path,
        "line": str(d.line),
        "col": str(d.col),
        "endLine": str(d.end_line),
        "endColumn": str(d.end_col),
        "title": d.code if not (d.context and "cell" in d.context) else f"{d.code} (cell {d.context['cell']})",
    }
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::error {joined}::{escape_data(d.message)}"


def emit(diagnostics: list[Diagnostic], stream: IO[str]) -> None:
    for d in diagnostics:
        stream.write(format_line(d) + "\n")
