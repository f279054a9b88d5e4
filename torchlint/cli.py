"""Command-line interface: argument parsing only; the engine and emitters do the work."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path
from typing import IO

from torchlint import __version__
from torchlint.cache import Cache, settings_key
from torchlint.config import Config, ConfigError, find_pyproject, load_config, per_file_ignored
from torchlint.diagnostic import Diagnostic
from torchlint.engine import Options
from torchlint.files import discover, project_root
from torchlint.output import FORMATS, emitters
from torchlint.registry import TL000, all_rules, is_valid_pattern, select_codes
from torchlint.runner import FixMode, build_index, run


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""


def _codes_arg(value: str) -> list[str]:
    return [v.strip().upper() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchlint",
        description="A linter for PyTorch code: nn.Module pitfalls, training loops and devices.",
    )
    parser.add_argument("--version", action="version", version=f"torchlint {__version__}")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="check files or directories (default: .)")
    check.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    check.add_argument("--select", type=_codes_arg, help="codes or prefixes to enable (TL1,TL201)")
    check.add_argument("--extend-select", type=_codes_arg, default=[], help="codes to enable in addition")
    check.add_argument("--ignore", type=_codes_arg, help="codes or prefixes to disable")
    check.add_argument("--format", choices=FORMATS, default="text")
    check.add_argument("--output-file", "-o", help="write the report here instead of stdout")
    check.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    check.add_argument("--unsafe-fixes", action="store_true", help="with --fix/--diff: apply unsafe fixes too")
    check.add_argument("--diff", action="store_true", help="print fixes as a unified diff; write nothing")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are left")
    check.add_argument("--config", help="the pyproject.toml to read (default: nearest)")
    check.add_argument("--jobs", "-j", type=int, default=0, help="worker processes (default: all cores)")
    check.add_argument("--force-exclude", action="store_true", help="apply `exclude` to files named on the command line too")
    check.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    check.add_argument("--cache-dir", help="cache directory (default: .torchlint_cache in the project root)")
    check.add_argument("--max-file-size", type=int, help="bytes; larger files are TL000 and not parsed")
    check.add_argument("--quiet", "-q", action="store_true", help="no summary line on stderr")
    check.add_argument("--runtime", action="store_true", help="confirm findings by running the Modules (needs torch)")
    check.add_argument("--runtime-scope", choices=("flagged", "all"), default="flagged")
    check.add_argument("--runtime-timeout", type=float, help="seconds for each step of the runtime check: importing a file, building and probing one class (default 60)")
    sub.add_parser("rules", help="list every rule")
    rule = sub.add_parser("rule", help="show one rule's page")
    rule.add_argument("code")
    sub.add_parser("server", help="run the language server on stdio (needs torchlint[server])")
    return parser


def rule_page_path(code: str) -> Path | None:
    """Where a rule's Markdown page is: the installed package, or the source tree."""
    name = f"{code.upper()}.md"
    try:
        page = resources.files("torchlint.ruledocs").joinpath(name)
        if page.is_file():
            return Path(str(page))
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        pass
    fallback = Path(__file__).resolve().parent.parent / "rules" / name
    return fallback if fallback.is_file() else None


def rule_page(code: str) -> str | None:
    """The Markdown page of a rule."""
    path = rule_page_path(code)
    return path.read_text("utf-8") if path is not None else None


def cmd_rules(out: IO[str]) -> int:
    rows = [(TL000[0], TL000[1], "", TL000[2])]
    rows += [(r.code, r.name, r.fix_safety or "", r.summary) for r in all_rules()]
    width = max(len(r[1]) for r in rows)
    for code, name, fix, summary in rows:
        fix_label = f"[fix: {fix}]" if fix else ""
        out.write(f"{code}  {name:<{width}}  {fix_label:<14} {summary}\n")
    return 0


def _validate_codes(values: list[str] | None, flag: str) -> None:
    for value in values or []:
        if not is_valid_pattern(value):
            raise UsageError(f"{flag}: unknown rule code {value!r} (see `torchlint rules`)")




def cmd_check(args: argparse.Namespace) -> int:
    if args.unsafe_fixes and not (args.fix or args.diff):
        raise UsageError("--unsafe-fixes needs --fix or --diff")
    if args.jobs < 0:
        raise UsageError("--jobs must be a positive number")
    if args.max_file_size is not None and args.max_file_size <= 0:
        raise UsageError("--max-file-size must be a positive number of bytes")
    _validate_codes(args.select, "--select")
    _validate_codes(args.ignore, "--ignore")
    _validate_codes(args.extend_select, "--extend-select")

    pyproject = Path(args.config) if args.config else find_pyproject(Path(args.paths[0]) if args.paths else Path("."))
    if args.config and not pyproject.is_file():
        raise UsageError(f"--config: no such file: {args.config}")
    config = load_config(pyproject)
    select = args.select if args.select is not None else config.select
    ignore = (config.ignore or []) + (args.ignore or [])
    if args.ignore is not None or args.select is not None:
        # command-line flags override the file: a CLI --select resets the file's ignore only
        # for codes it names more specifically (handled by select_codes' specificity)
        pass
    enabled = select_codes(select, ignore, [*config.extend_select, *args.extend_select])
    max_size = args.max_file_size or config.max_file_size

    files, missing = discover(args.paths, [*config.exclude, *config.extend_exclude], config.root, args.force_exclude)
    if missing:
        for path in missing:
            sys.stderr.write(f"torchlint: error: {path}: no such file or directory\n")
        return 2

    root = config.root or project_root(args.paths)
    options = Options(enabled=enabled, max_file_size=max_size, module_bases=tuple(config.module_bases),
                      torch_version=config.torch_version)
    cache = None
    if not args.no_cache:
        cache_dir = Path(args.cache_dir) if args.cache_dir else root / ".torchlint_cache"
        cache = Cache(cache_dir, settings_key(options, config.findings_key()))
    project_files, _ = discover([str(root)], [*config.exclude, *config.extend_exclude], root)
    index_files = sorted(set(project_files) | set(files))
    jobs = args.jobs or os.cpu_count() or 1
    index = build_index(index_files, tuple(config.module_bases), max_size, cache, jobs)
    fix_mode = None
    if args.fix or args.diff:
        fix_mode = FixMode(unsafe=args.unsafe_fixes, write=not args.diff)
    outcomes = run(files, options, index, jobs, fix_mode, cache)

    diagnostics: list[Diagnostic] = []
    errors: list[str] = []
    applied = 0
    diffs: list[str] = []
    for outcome in outcomes:
        diagnostics.extend(d for d in outcome.result.diagnostics if not per_file_ignored(d.path, d.code, config))
        errors.extend(outcome.result.errors)
        applied += outcome.applied
        if outcome.diff:
            diffs.append(outcome.diff)
        for dropped in outcome.dropped:
            errors.append(f"{dropped.path}:{dropped.line}:{dropped.col}: fix for {dropped.code} "
                          "was not applied: the result did not parse")
    diagnostics.sort(key=Diagnostic.sort_key)

    if args.runtime:
        diagnostics = _runtime(args, config, diagnostics, files, str(root), jobs)
        if diagnostics is None:
            return 2

    stream: IO[str] = sys.stdout
    handle = None
    if args.output_file:
        try:
            handle = open(args.output_file, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output-file: cannot write {args.output_file}: {exc.strerror}") from None
        stream = handle
    try:
        if args.diff:
            stream.write("".join(diffs))
        else:
            emitters()[args.format](diagnostics, stream)
    finally:
        if handle is not None:
            handle.close()

    for error in errors:
        sys.stderr.write(f"torchlint: error: {error}\n")
    if not args.quiet:
        sys.stderr.write(_summary(diagnostics, applied, args) + "\n")
    if args.runtime:
        _runtime_summary(args, diagnostics)
    if errors:
        return 2
    if args.diff:
        return 1 if diffs and not args.exit_zero else 0
    return 1 if diagnostics and not args.exit_zero else 0


def _runtime(args: argparse.Namespace, config: Config, diagnostics: list[Diagnostic], files: list[str],
             root: str, jobs: int) -> list[Diagnostic] | None:
    try:
        from torchlint import runtime
        available = runtime.runtime_available()
    except (ImportError, AttributeError):
        available = False
    if not available:
        sys.stderr.write("torchlint: error: the runtime checker needs torch: pip install 'torchlint[runtime]'\n")
        return None
    timeout = args.runtime_timeout or config.runtime.timeout
    return runtime.confirm(
        diagnostics, paths=files, scope=args.runtime_scope, timeout=timeout,
        construct=config.runtime.construct, inputs=config.runtime.inputs, jobs=jobs,
        progress=sys.stderr.isatty(), project_root=root,
    )


def _runtime_summary(args: argparse.Namespace, diagnostics: list[Diagnostic]) -> None:
    """The runtime summary, last: on stdout after the text findings (its last line), on
    stderr for the machine-readable formats (stdout stays one document) or --output-file."""
    from torchlint.runtime.summary import summarize

    line = summarize(diagnostics) + "\n"
    if args.format == "text" and not args.output_file and not args.diff:
        sys.stderr.flush()
        sys.stdout.write(line)
        sys.stdout.flush()
    elif not args.quiet:
        sys.stderr.write(line)


def _summary(diagnostics: list[Diagnostic], applied: int, args: argparse.Namespace) -> str:
    files = len({d.path for d in diagnostics})
    fixable = sum(1 for d in diagnostics if d.fix is not None and (d.fix.applicability == "safe" or args.unsafe_fixes))
    parts = []
    if args.fix and applied:
        parts.append(f"Fixed {applied} problem{'s' if applied != 1 else ''}.")
    if diagnostics:
        text = f"Found {len(diagnostics)} problem{'s' if len(diagnostics) != 1 else ''} in {files} file{'s' if files != 1 else ''}"
        if fixable and not args.fix:
            text += f" ({fixable} fixable{' with --fix' if not args.diff else ''})"
        parts.append(text + ".")
    elif not args.diff:
        parts.append("All checks passed.")
    return " ".join(parts) if parts else ""


def cmd_server() -> int:
    """The language server on stdio; exit 2 with how to install it when pygls is missing."""
    try:
        from torchlint.server import serve
    except ImportError as exc:
        raise UsageError(
            f"the language server needs pygls ({exc.name or exc} is not installed): "
            "pip install 'torchlint[server]'"
        ) from None
    serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "rules":
            return cmd_rules(sys.stdout)
        if args.command == "rule":
            page = rule_page(args.code)
            if page is None:
                raise UsageError(f"unknown rule code {args.code!r} (see `torchlint rules`)")
            sys.stdout.write(page)
            return 0
        if args.command == "check":
            return cmd_check(args)
        if args.command == "server":
            return cmd_server()
        parser.print_help()
        return 2
    except (UsageError, ConfigError) as exc:
        sys.stderr.write(f"torchlint: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("torchlint: interrupted\n")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug of ours: say so in one line, never a traceback
        sys.stderr.write(f"torchlint: internal error: {type(exc).__name__}: {exc}\n")
        if os.environ.get("TORCHLINT_DEBUG"):
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())
