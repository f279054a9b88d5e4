"""`torchlint server`: the Language Server Protocol on stdio (pygls).

The same engine as the CLI and the flake8 plugin, fed with the editor's buffers:
- diagnostics on open, change (debounced) and save, with the CLI's codes, messages and
  positions (converted to the client's position encoding, UTF-16 by default);
- code actions: each finding's fix (safe ones preferred, unsafe ones labelled), "ignore TLxxx
  on this line" (`# noqa`), and `source.fixAll.torchlint` (every safe fix of the document);
- configuration from each document's nearest pyproject.toml, reloaded when it changes;
- the project's Module class index, built once in the background and refreshed on save.

Checks run one at a time in a worker thread; a result whose document changed meanwhile is
dropped. The runtime checker is never run here: it imports and runs project code.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from torchlint import __version__
from torchlint.config import Config, ConfigError, find_pyproject, load_config, per_file_ignored
from torchlint.diagnostic import Diagnostic, Edit
from torchlint.engine import Options, check_source
from torchlint.files import discover
from torchlint.fix import applicable, apply_edits, fix_source, parses
from torchlint.project import ProjectIndex, module_name_for, summarize
from torchlint.registry import select_codes
from torchlint.suppress import is_suppressed

DEBOUNCE_SECONDS = 0.15
FIX_ALL_KIND = "source.fixAll.torchlint"
SOURCE = "torchlint"


@dataclass
class Checked:
    """The findings of one version of one document (kept for code actions)."""

    version: int | None
    text: str
    diagnostics: list[Diagnostic]


class Settings:
    """Each document's configuration, from its nearest pyproject.toml, reloaded on change."""

    def __init__(self) -> None:
        self._cache: dict[Path | None, tuple[int, Config]] = {}
        self.errors: dict[Path, str] = {}

    def for_path(self, path: str) -> Config:
        pyproject = find_pyproject(Path(path).parent)
        try:
            stamp = pyproject.stat().st_mtime_ns if pyproject is not None else 0
        except OSError:
            stamp = 0
        cached = self._cache.get(pyproject)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            config = load_config(pyproject)
            if pyproject is not None:
                self.errors.pop(pyproject, None)
        except ConfigError as exc:
            config = Config()
            if pyproject is not None:
                self.errors[pyproject] = str(exc)
        self._cache[pyproject] = (stamp, config)
        return config

    def forget(self) -> None:
        """Read every pyproject.toml again (the client said one changed: a rewrite within the
        same timestamp tick would not show in the stamp)."""
        self._cache.clear()


class Indexes:
    """One project class index per project root, built in the background."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: dict[Path, ProjectIndex] = {}
        self._building: set[Path] = set()

    def get(self, config: Config, on_ready: Any) -> ProjectIndex | None:
        """The index of the config's project, or None while it is being built."""
        root = config.root
        if root is None:
            return None
        with self._lock:
            index = self._ready.get(root)
            if index is not None or root in self._building:
                return index
            self._building.add(root)
        threading.Thread(target=self._build, args=(config, on_ready), daemon=True).start()
        return None

    def _build(self, config: Config, on_ready: Any) -> None:
        from torchlint.runner import build_index

        assert config.root is not None
        try:
            files, _ = discover([str(config.root)], [*config.exclude, *config.extend_exclude], config.root)
            index = build_index(files, tuple(config.module_bases), config.max_file_size)
        except Exception:  # noqa: BLE001 - a broken tree must not take the server down
            index = ProjectIndex(module_bases=tuple(config.module_bases))
        with self._lock:
            self._ready[config.root] = index
            self._building.discard(config.root)
        on_ready()

    def refresh(self, path: str, text: str, config: Config) -> None:
        """A saved file's classes replace what the index knew of it."""
        with self._lock:
            index = self._ready.get(config.root) if config.root is not None else None
            if index is not None:
                index.add(summarize(text, module_name_for(path), path.endswith("__init__.py")))

    def forget(self) -> None:
        with self._lock:
            self._ready.clear()


class TorchlintServer(LanguageServer):
    """The server's state: last results per document, pending checks, settings, indexes."""

    def __init__(self) -> None:
        super().__init__("torchlint", __version__)
        self.results: dict[str, Checked] = {}
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.settings = Settings()
        self.indexes = Indexes()
        # one check at a time: the engine's per-file state and the indexes are not shared safely
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-check")
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- checking -----------------------------------------------------------------------------
    def options_for(self, config: Config) -> Options:
        enabled = select_codes(config.select, config.ignore, config.extend_select)
        return Options(enabled=enabled, max_file_size=config.max_file_size, module_bases=tuple(config.module_bases),
                       torch_version=config.torch_version)

    def check_text(self, text: str, path: str) -> list[Diagnostic]:
        """The CLI's findings for one buffer (per-file ignores applied, noqa honoured)."""
        config = self.settings.for_path(path)
        options = self.options_for(config)
        module_name = module_name_for(path)
        is_package = path.endswith("__init__.py")
        index = self.indexes.get(config, self.recheck_all_soon)
        if index is not None:
            with self.indexes._lock:
                index.add(summarize(text, module_name, is_package))
                result = check_source(text, path, options, index, module_name, is_package)
        else:
            result = check_source(text, path, options, None, module_name, is_package)
        return [d for d in result.diagnostics if not per_file_ignored(path, d.code, config)]

    def schedule(self, uri: str, delay: float = DEBOUNCE_SECONDS) -> None:
        """Check a document after `delay`, replacing a check still waiting for it."""
        waiting = self.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        self.pending[uri] = asyncio.ensure_future(self._check_later(uri, delay))

    async def _check_later(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        document = self.workspace.get_text_document(uri)
        path = to_fs_path(uri) or uri
        if not checkable(uri, path, document.language_id):
            return
        version, text = document.version, document.source
        loop = asyncio.get_running_loop()
        try:
            diagnostics = await loop.run_in_executor(self.checker, self.check_text, text, path)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            self.window_log_message(lsp.LogMessageParams(lsp.MessageType.Error, f"torchlint: {exc!r}"))
            return
        current = self.workspace.get_text_document(uri)
        if current.version != version or current.source != text:
            return  # stale: a newer check is on its way
        self.results[uri] = Checked(version, text, diagnostics)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[self.to_lsp(d, text) for d in diagnostics],
        ))
        self._report_config_errors(path)

    def _report_config_errors(self, path: str) -> None:
        pyproject = find_pyproject(Path(path).parent)
        message = self.settings.errors.get(pyproject) if pyproject is not None else None
        if message:
            self.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Error, f"torchlint: {message}"))

    def recheck_all_soon(self) -> None:
        """Re-check every open document (thread-safe: the index or the config changed)."""
        if self.loop is None:
            return
        self.loop.call_soon_threadsafe(self._recheck_all)

    def _recheck_all(self) -> None:
        for uri in list(self.results) or list(self.workspace.text_documents):
            if uri in self.workspace.text_documents:
                self.schedule(uri, 0)

    # ---- positions --------------------------------------------------------------------------
    def to_lsp(self, d: Diagnostic, text: str) -> lsp.Diagnostic:
        lines = text.splitlines(keepends=True) or [""]
        codec = self.workspace.position_codec
        start = codec.position_to_client_units(lines, lsp.Position(d.line - 1, d.col - 1))
        end = codec.position_to_client_units(lines, lsp.Position(d.end_line - 1, d.end_col - 1))
        return lsp.Diagnostic(
            range=lsp.Range(start, end),
            message=d.message,
            severity=lsp.DiagnosticSeverity.Warning,
            code=d.code,
            code_description=lsp.CodeDescription(href=rule_page(d.code)),
            source=SOURCE,
            data={"name": d.name, "fixable": d.fixable},
        )

    def offset_range(self, text: str, start: int, end: int) -> lsp.Range:
        """An LSP range for code-point offsets into `text`."""
        lines = text.splitlines(keepends=True) or [""]
        codec = self.workspace.position_codec
        return lsp.Range(
            codec.position_to_client_units(lines, _position_of(text, start)),
            codec.position_to_client_units(lines, _position_of(text, end)),
        )

    def text_edits(self, uri: str, text: str, edits: tuple[Edit, ...] | list[Edit]) -> lsp.WorkspaceEdit:
        changes = [lsp.TextEdit(self.offset_range(text, e.start, e.end), e.content) for e in edits]
        return lsp.WorkspaceEdit(changes={uri: changes})


def checkable(uri: str, path: str, language_id: str | None) -> bool:
    """Python files only: notebook cells and other languages are left to other tools."""
    if not uri.startswith(("file:", "untitled:")):
        return False  # e.g. vscode-notebook-cell: (see docs/editors.md)
    return path.endswith((".py", ".pyi")) or (language_id == "python" and not path.endswith(".ipynb"))


def _position_of(text: str, offset: int) -> lsp.Position:
    """A code-point offset as a (0-based line, code-point column) position."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return lsp.Position(line, offset - start)


def rule_page(code: str) -> str:
    """The rule's page as shipped with the package (a file: URI editors can open)."""
    from torchlint.cli import rule_page_path

    path = rule_page_path(code)
    if path is None:
        return f"https://pypi.org/project/torchlint/#{code.lower()}"
    return from_fs_path(str(path)) or path.as_uri()


def minimal_edit(old: str, new: str) -> Edit:
    """One edit turning `old` into `new`: the span between their common prefix and suffix."""
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]:
        suffix += 1
    return Edit(prefix, len(old) - suffix, new[prefix:len(new) - suffix])


def noqa_edit(text: str, line: int, code: str) -> Edit | None:
    """The edit that makes `# noqa` cover `code` on a 1-based line, or None when it cannot."""
    lines = text.splitlines(keepends=True)
    if not 0 < line <= len(lines):
        return None
    raw = lines[line - 1]
    body = raw.rstrip("\r\n")
    if is_suppressed(body, code) or body.rstrip().endswith("\\"):
        return None
    start = sum(len(x) for x in lines[: line - 1])
    marker = body.rfind("# noqa:")
    if marker != -1:
        new_body = body.rstrip() + f", {code}"
    else:
        new_body = body.rstrip() + f"  # noqa: {code}"
    edit = Edit(start, start + len(body), new_body)
    fixed, _ = apply_edits(text, [_as_fix(edit)])
    return edit if parses(fixed) else None


def _as_fix(edit: Edit) -> Any:
    from torchlint.diagnostic import Fix

    return Fix("safe", (edit,))


def build_server() -> TorchlintServer:
    server = TorchlintServer()

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: TorchlintServer, params: lsp.InitializedParams) -> None:
        ls.loop = asyncio.get_running_loop()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TorchlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.loop = ls.loop or asyncio.get_running_loop()
        ls.schedule(params.text_document.uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TorchlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TorchlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = to_fs_path(uri) or uri
        if os.path.basename(path) == "pyproject.toml":
            ls.settings.forget()
            ls.indexes.forget()
            ls._recheck_all()
            return
        if uri in ls.workspace.text_documents:
            document = ls.workspace.get_text_document(uri)
            ls.indexes.refresh(path, document.source, ls.settings.for_path(path))
        ls.schedule(uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TorchlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        waiting = ls.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        ls.results.pop(uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(ls: TorchlintServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        if any(change.uri.endswith("pyproject.toml") for change in params.changes):
            ls.settings.forget()
            ls.indexes.forget()
        ls._recheck_all()

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL_KIND]),
    )
    def code_action(ls: TorchlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        checked = ls.results.get(uri)
        document = ls.workspace.get_text_document(uri)
        if checked is None or checked.text != document.source:
            return []  # the findings are being recomputed; the editor asks again
        only = params.context.only
        actions: list[lsp.CodeAction] = []
        wants_quickfix = not only or any(str(kind).startswith("quickfix") for kind in only)
        wants_fix_all = not only or any(FIX_ALL_KIND.startswith(str(kind)) for kind in only)
        if wants_quickfix:
            actions.extend(_quick_fixes(ls, uri, checked, params))
        if wants_fix_all:
            action = _fix_all(ls, uri, checked)
            if action is not None:
                actions.append(action)
        return actions

    return server


def _quick_fixes(ls: TorchlintServer, uri: str, checked: Checked, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    wanted = {(d.code, d.range.start.line) for d in params.context.diagnostics if d.source == SOURCE}
    lines = checked.text.splitlines(keepends=True) or [""]
    codec = ls.workspace.position_codec
    req = codec.range_from_client_units(lines, params.range)
    actions: list[lsp.CodeAction] = []
    ignored: set[tuple[str, int]] = set()
    for d in checked.diagnostics:
        in_range = d.line - 1 <= req.end.line and d.end_line - 1 >= req.start.line
        if (d.code, d.line - 1) not in wanted and not in_range:
            continue
        lsp_diagnostic = ls.to_lsp(d, checked.text)
        if d.fix is not None:
            unsafe = d.fix.applicability != "safe"
            title = d.fix.description or f"Fix {d.code}"
            actions.append(lsp.CodeAction(
                title=f"{title} ({d.code}{', unsafe: may change behaviour' if unsafe else ''})",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[lsp_diagnostic],
                edit=ls.text_edits(uri, checked.text, d.fix.edits),
                is_preferred=not unsafe,
            ))
        if (d.code, d.line) not in ignored:
            ignored.add((d.code, d.line))
            edit = noqa_edit(checked.text, d.line, d.code)
            if edit is not None:
                actions.append(lsp.CodeAction(
                    title=f"Ignore {d.code} on this line (# noqa)",
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[lsp_diagnostic],
                    edit=ls.text_edits(uri, checked.text, [edit]),
                ))
    return actions


def _fix_all(ls: TorchlintServer, uri: str, checked: Checked) -> lsp.CodeAction | None:
    if not any(applicable(d, unsafe=False) for d in checked.diagnostics):
        return None
    path = to_fs_path(uri) or uri
    outcome = fix_source(checked.text, lambda text: ls.check_text(text, path), unsafe=False)
    if outcome.source == checked.text:
        return None
    return lsp.CodeAction(
        title="Fix all safe torchlint findings",
        kind=FIX_ALL_KIND,
        edit=ls.text_edits(uri, checked.text, [minimal_edit(checked.text, outcome.source)]),
    )


def serve() -> None:
    """Run the server on stdio until the client disconnects."""
    build_server().start_io()
