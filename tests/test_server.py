"""The language server, end to end: a real LSP client (pytest-lsp) drives `torchlint server`
over stdio, as an editor does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from torchlint.server import minimal_edit, noqa_edit

# non-ASCII text before the findings: UTF-16 columns differ from code points there
MODEL = '''\
import torch.nn as nn


class Net(nn.Module):
    """Réseau 😀 de démonstration."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return x


def run(x):
    net = Net()
    s = "😀😀"; return net.forward(x)
'''
FORWARD_LINE = 16  # 0-based line of `net.forward(x)`
FORWARD_COL_UTF16 = len('    s = "😀😀"; return '.encode("utf-16-le")) // 2

PLAIN_LIST = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2)]
"""


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "torchlint", "server"]))
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(),
    ))
    lsp_client.root = root  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def open_doc(client: LanguageClient, name: str, text: str, version: int = 1) -> str:
    path: Path = client.root / name  # type: ignore[attr-defined]
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
    ))
    await wait_for_diagnostics(client, uri)
    return uri


async def wait_for_diagnostics(client: LanguageClient, uri: str, timeout: float = 30) -> list[lsp.Diagnostic]:
    async def arrive() -> None:
        while True:
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if uri in client.diagnostics:
                return
    client.diagnostics.pop(uri, None)
    await asyncio.wait_for(arrive(), timeout)
    return list(client.diagnostics[uri])


async def wait_for_diagnostics_until(client: LanguageClient, uri: str, done, timeout: float = 30) -> list[lsp.Diagnostic]:
    """The first publication for `uri` that satisfies `done` (or the last one at the timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout
    found = list(client.diagnostics.get(uri, [None]))
    while not done(found):
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        try:
            found = await wait_for_diagnostics(client, uri, remaining)
        except asyncio.TimeoutError:
            break
    return found


async def change(client: LanguageClient, uri: str, text: str, version: int) -> list[lsp.Diagnostic]:
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
    ))
    return await wait_for_diagnostics(client, uri)


def apply(text: str, edit: lsp.WorkspaceEdit, uri: str) -> str:
    """Apply a workspace edit's text edits (UTF-16 positions) to a document."""
    assert edit.changes is not None
    lines = text.splitlines(keepends=True)

    def offset(pos: lsp.Position) -> int:
        before = sum(len(line) for line in lines[: pos.line])
        line = lines[pos.line] if pos.line < len(lines) else ""
        units = 0
        for index, char in enumerate(line):
            if units >= pos.character:
                return before + index
            units += len(char.encode("utf-16-le")) // 2
        return before + len(line)

    for e in sorted(edit.changes[uri], key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end):]
    return text


async def actions(client: LanguageClient, uri: str, diagnostics: list[lsp.Diagnostic],
                  only: list[str] | None = None) -> list[lsp.CodeAction]:
    rng = diagnostics[0].range if diagnostics else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    result = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=rng,
        context=lsp.CodeActionContext(diagnostics=diagnostics, only=only),
    ))
    return [a for a in result or [] if isinstance(a, lsp.CodeAction)]


@pytest.mark.asyncio(loop_scope="function")
async def test_diagnostics_on_open_with_utf16_positions_and_rule_links(client: LanguageClient) -> None:
    uri = await open_doc(client, "model.py", MODEL)
    found = await wait_for_diagnostics(client, uri) if uri not in client.diagnostics else list(client.diagnostics[uri])
    forward = [d for d in found if d.code == "TL201"]
    assert len(forward) == 1, found
    d = forward[0]
    assert (d.range.start.line, d.range.start.character) == (FORWARD_LINE, FORWARD_COL_UTF16)
    assert d.severity == lsp.DiagnosticSeverity.Warning and d.source == "torchlint"
    assert d.code_description is not None and d.code_description.href.endswith("TL201.md")
    # the same position the CLI prints (1-based code points), converted
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "torchlint", "check", "--no-cache", "model.py"],
        cwd=client.root, capture_output=True, text=True, check=False,  # type: ignore[attr-defined]
    )
    line = next(x for x in done.stdout.splitlines() if " TL201 " in x)
    assert line.split(":")[1:3] == [str(FORWARD_LINE + 1), str(len('    s = "😀😀"; return ') + 1)]
    assert d.message in line


@pytest.mark.asyncio(loop_scope="function")
async def test_quick_fix_applied_and_the_diagnostic_gone(client: LanguageClient) -> None:
    uri = await open_doc(client, "plain.py", PLAIN_LIST)
    found = list(client.diagnostics[uri])
    assert [d.code for d in found] == ["TL104"]
    offered = await actions(client, uri, found, only=[lsp.CodeActionKind.QuickFix])
    fixes = [a for a in offered if "TL104" in a.title and "noqa" not in a.title]
    assert len(fixes) == 1 and "unsafe" in fixes[0].title and not fixes[0].is_preferred
    assert fixes[0].edit is not None
    fixed = apply(PLAIN_LIST, fixes[0].edit, uri)
    assert "nn.ModuleList([nn.Linear(2, 2)])" in fixed
    assert await change(client, uri, fixed, 2) == []


@pytest.mark.asyncio(loop_scope="function")
async def test_noqa_action_silences_the_line(client: LanguageClient) -> None:
    uri = await open_doc(client, "noqa.py", PLAIN_LIST)
    found = list(client.diagnostics[uri])
    offered = await actions(client, uri, found)
    ignore = [a for a in offered if a.title.startswith("Ignore TL104")]
    assert len(ignore) == 1 and ignore[0].edit is not None
    silenced = apply(PLAIN_LIST, ignore[0].edit, uri)
    assert "self.layers = [nn.Linear(2, 2)]  # noqa: TL104\n" in silenced
    assert await change(client, uri, silenced, 2) == []


@pytest.mark.asyncio(loop_scope="function")
async def test_fix_all_applies_every_safe_fix(client: LanguageClient) -> None:
    text = MODEL + "\n\ndef again(x):\n    net = Net()\n    return net.forward(x) + net.forward(x)\n"
    uri = await open_doc(client, "all.py", text)
    found = list(client.diagnostics[uri])
    assert sum(d.code == "TL201" for d in found) == 3, found
    offered = await actions(client, uri, [], only=["source.fixAll.torchlint"])
    assert [a.kind for a in offered] == ["source.fixAll.torchlint"]
    assert offered[0].edit is not None
    fixed = apply(text, offered[0].edit, uri)
    assert ".forward(" not in fixed.split("class Net")[1].split("def run")[1]
    remaining = await change(client, uri, fixed, 2)
    assert not any(d.code == "TL201" for d in remaining)


@pytest.mark.asyncio(loop_scope="function")
async def test_pyproject_change_is_picked_up_without_restart(client: LanguageClient) -> None:
    uri = await open_doc(client, "cfg.py", PLAIN_LIST)
    assert [d.code for d in client.diagnostics[uri]] == ["TL104"]
    pyproject: Path = client.root / "pyproject.toml"  # type: ignore[attr-defined]
    pyproject.write_text("[project]\nname = 'demo'\n\n[tool.torchlint]\nignore = ['TL104']\n")
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        changes=[lsp.FileEvent(uri=pyproject.as_uri(), type=lsp.FileChangeType.Changed)]
    ))
    # a publication sent before the server read the notice (the background index's re-check)
    # may still be on its way: wait for the one the new configuration produces
    assert await wait_for_diagnostics_until(client, uri, lambda found: found == []) == []


def test_noqa_edit_extends_an_existing_list_and_refuses_a_continuation() -> None:
    text = "x = [a]  # noqa: E501\ny = 1 + \\\n    2\n"
    edit = noqa_edit(text, 1, "TL104")
    assert edit is not None and text[: edit.start] + edit.content + text[edit.end:] == (
        "x = [a]  # noqa: E501, TL104\ny = 1 + \\\n    2\n"
    )
    assert noqa_edit(text, 2, "TL104") is None  # a comment after `\` would not parse
    assert noqa_edit("x = [a]  # noqa\n", 1, "TL104") is None  # already silenced


def test_minimal_edit_covers_only_the_change() -> None:
    edit = minimal_edit("net.forward(x)\nrest\n", "net(x)\nrest\n")
    assert (edit.start, edit.end, edit.content) == (3, 11, "")


def test_server_without_pygls_exits_2_with_how_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "pygls"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test', name='pygls')\n")
    done = subprocess.run([sys.executable, "-m", "torchlint", "server"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert done.returncode == 2
    assert "pip install 'torchlint[server]'" in done.stderr
