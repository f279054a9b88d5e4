"""The primer: torchlint on pinned real packages, compared with a triaged snapshot.

    python scripts/primer.py [--update] [--packages a,b] [--no-fix-check] [--cache DIR] [-j N]
    make primer PRIMER_ARGS="--update"

Like ruff's ecosystem check and pylint's primer, this measures precision on code the project
did not write. It

1. downloads the pinned research packages (wheels; torchreid is an sdist) and the library corpus
   (`../shared/tools/corpus.sh`) into a cache outside the repository (default
   ~/.cache/torchlint-primer, or $TORCHLINT_PRIMER_CACHE, or --cache); what is already unpacked
   is not downloaded again. d2l 1.0.3 is pinned in both lists; it comes once, with the corpus,
   and is reported with the library group;
2. runs `torchlint check --no-cache --format json` on each package (in parallel), with the
   default selection, the findings a user sees (opt-in rules are left out)
   and compares the findings with `benchmarks/primer/findings.txt`, where every finding carries
   a verdict (`real`, `harmless`, `false`) and a one-line reason;
3. applies every fix to a copy of each research package (`--fix` alone first: the safe set;
   then `--fix --unsafe-fixes`), checks that every changed file parses and byte-compiles and
   that a second run changes nothing, and keeps the diffs. Each safe fix has its own verdict
   (`good`, `bad`) in the snapshot's [fixes] section.

It prints what appeared and vanished since the snapshot and the per-code summary, and exits 1
while a current finding or safe fix has no verdict, or a fix breaks a file. `--update` rewrites
the snapshot: existing verdicts are kept, new entries get `?` for a human to fill in, vanished
ones are dropped. Not part of `make test` (it downloads).

Snapshot entries are keyed by (package, path in the package, code, the stripped text of the
flagged line, occurrence index among equal keys), not by line number, so that an edit elsewhere
in a file does not lose a verdict. The line number is written for reading only.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "benchmarks" / "primer" / "findings.txt"
DIFF_DIR = ROOT / "benchmarks" / "primer"
DEFAULT_CACHE = Path.home() / ".cache" / "torchlint-primer"
# a fix diff larger than this stays in the cache (summarised) instead of being committed
MAX_COMMITTED_DIFF = 200_000

# research, tutorial and example code: (distribution, version, kind)
RESEARCH = [
    ("labml-nn", "0.5.1", "wheel"),
    ("denoising-diffusion-pytorch", "2.3.4", "wheel"),
    ("stylegan2-pytorch", "1.9.0", "wheel"),
    ("dalle-pytorch", "1.6.6", "wheel"),
    ("torchgan", "0.1.0", "wheel"),
    ("pytorch-tabnet", "4.1.0", "wheel"),
    ("lightning-bolts", "0.7.0", "wheel"),
    ("taming-transformers", "0.0.1", "wheel"),
    ("tsai", "1.0.1", "wheel"),
    ("pytorch-widedeep", "1.7.0", "wheel"),
    ("torchreid", "0.2.5", "sdist"),
]
# unpacked by ../shared/tools/corpus.sh (its own pins)
LIBRARY = ["timm", "transformers", "torchvision", "diffusers", "d2l"]

FINDING_VERDICTS = ("real", "harmless", "false")
FIX_VERDICTS = ("good", "bad")
SECTIONS = {"findings": FINDING_VERDICTS, "fixes": FIX_VERDICTS}
UNKNOWN = "?"


def dist_dir(dist: str) -> str:
    return dist.replace("-", "_")


RESEARCH_NAMES = [dist_dir(d) for d, _, _ in RESEARCH]


# --------------------------------------------------------------------------- snapshot logic


@dataclasses.dataclass(frozen=True)
class Key:
    package: str
    path: str  # posix, relative to the package directory
    code: str
    source: str  # the flagged line, stripped
    occurrence: int = 0  # 0 for the first finding with this key, 1 for the second, ...


@dataclasses.dataclass
class Entry:
    key: Key
    line: int  # information only: not part of the key
    verdict: str = UNKNOWN
    reason: str = ""
    note: str = ""  # regenerated on every write (e.g. what a fix does); not read back


class SnapshotError(ValueError):
    pass


def number_occurrences(raw: list[tuple[str, str, str, str, int, str]]) -> list[tuple[Key, int, str]]:
    """(package, path, code, source, line, note) in line order -> keys with occurrence indexes."""
    seen: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
    out = []
    for package, path, code, source, line, note in sorted(raw, key=lambda r: (r[0], r[1], r[4], r[2])):
        base = (package, path, code, source)
        out.append((Key(package, path, code, source, seen[base]), line, note))
        seen[base] += 1
    return out


_HEADER = re.compile(r"^(?P<package>\S+)\s+(?P<path>\S+):(?P<line>\d+)"
                     r"\s+(?P<code>[A-Z]+\d+)(?:#(?P<occ>\d+))?"
                     r"\s+`(?P<source>.*)`\s*$")


def parse_snapshot(text: str) -> dict[str, dict[Key, Entry]]:
    """Read the snapshot text: `[section]` headers, then two-line blocks

        package  path/in/package.py:LINE  CODE[#N]  `stripped source line`
            verdict: one-line reason

    `#N` (N >= 2) numbers repeated keys. Lines starting with `#` are comments.
    """
    sections: dict[str, dict[Key, Entry]] = {name: {} for name in SECTIONS}
    section: str | None = None
    current: Entry | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            if section not in SECTIONS:
                raise SnapshotError(f"line {number}: unknown section [{section}]")
            current = None
            continue
        if section is None:
            raise SnapshotError(f"line {number}: entry before any [section]")
        if not line[0].isspace():
            match = _HEADER.match(line)
            if not match:
                raise SnapshotError(f"line {number}: expected `package path:line CODE `source``, "
                                    f"got {line!r}")
            occ = int(match["occ"]) - 1 if match["occ"] else 0
            key = Key(match["package"], match["path"], match["code"], match["source"], occ)
            if key in sections[section]:
                raise SnapshotError(f"line {number}: duplicate entry {key}")
            current = Entry(key, int(match["line"]))
            sections[section][key] = current
            continue
        if current is None:
            raise SnapshotError(f"line {number}: verdict line without an entry above it")
        verdict, _, reason = stripped.partition(":")
        verdict = verdict.strip()
        allowed = SECTIONS[section]
        if verdict not in (*allowed, UNKNOWN):
            raise SnapshotError(f"line {number}: verdict {verdict!r} is not one of {', '.join(allowed)} or ?")
        current.verdict, current.reason = verdict, reason.strip()
        current = None
    return sections


def format_entry(entry: Entry, with_note: bool = False) -> str:
    key = entry.key
    occ = f"#{key.occurrence + 1}" if key.occurrence else ""
    head = f"{key.package}  {key.path}:{entry.line}  {key.code}{occ}  `{key.source}`"
    lines = [head]
    if with_note and entry.note:
        lines.append(f"    # {entry.note}")
    lines.append(f"    {entry.verdict}: {entry.reason}".rstrip())
    return "\n".join(lines)


SNAPSHOT_PREAMBLE = """\
# torchlint primer snapshot (scripts/primer.py, `make primer`).
# One block per finding: `package  path:line  CODE[#N]  `flagged line``, then `verdict: reason`.
# The key is package, path, code, the flagged line's text and #N among equal ones; the line
# number is information only. Verdicts: [findings] real | harmless | false; [fixes] (every safe
# fix, read in the diff) good | bad; `?` = not triaged yet (the primer exits 1).
# `make primer PRIMER_ARGS=--update` rewrites this file and keeps the verdicts.
"""


def format_snapshot(sections: dict[str, dict[Key, Entry]]) -> str:
    out = [SNAPSHOT_PREAMBLE]
    for name in SECTIONS:
        out.append(f"[{name}]\n")
        entries = sorted(sections.get(name, {}).values(),
                         key=lambda e: (e.key.package, e.key.path, e.line, e.key.code, e.key.occurrence))
        for entry in entries:
            out.append(format_entry(entry, with_note=name == "fixes") + "\n")
    return "\n".join(out)


@dataclasses.dataclass
class Comparison:
    appeared: list[Entry]  # current, not in the snapshot
    vanished: list[Entry]  # in the snapshot (for the packages run), no longer reported
    untriaged: list[Entry]  # current, no verdict (new ones and `?` ones)
    merged: dict[Key, Entry]  # the current entries with the snapshot's verdicts


def compare(current: list[Entry], snapshot: dict[Key, Entry], packages: set[str] | None = None) -> Comparison:
    """Match the current entries to the snapshot by key; `packages` limits what can vanish."""
    merged: dict[Key, Entry] = {}
    appeared, untriaged = [], []
    for entry in current:
        old = snapshot.get(entry.key)
        new = dataclasses.replace(entry, verdict=old.verdict if old else UNKNOWN,
                                  reason=old.reason if old else "")
        merged[entry.key] = new
        if old is None:
            appeared.append(new)
        if new.verdict == UNKNOWN:
            untriaged.append(new)
    vanished = [e for k, e in snapshot.items()
                if k not in merged and (packages is None or k.package in packages)]
    return Comparison(appeared, vanished, untriaged, merged)


def updated(snapshot: dict[Key, Entry], comparison: Comparison,
            packages: set[str] | None) -> dict[Key, Entry]:
    """The new snapshot section: the packages that ran are replaced, the others kept."""
    kept = {k: e for k, e in snapshot.items() if packages is not None and k.package not in packages}
    kept.update(comparison.merged)
    return kept


def summary(entries: list[Entry], verdicts: tuple[str, ...]) -> dict[str, collections.Counter[str]]:
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for entry in entries:
        table[entry.key.code][entry.verdict] += 1
    return dict(sorted(table.items()))


def format_summary(title: str, entries: list[Entry], verdicts: tuple[str, ...]) -> list[str]:
    table = summary(entries, verdicts)
    cols = [*verdicts, UNKNOWN]
    lines = [f"{title}: {len(entries)}", "  " + "code".ljust(8) + "".join(c.rjust(10) for c in cols)]
    total: collections.Counter[str] = collections.Counter()
    for code, counts in table.items():
        total.update(counts)
        lines.append("  " + code.ljust(8) + "".join(str(counts[c]).rjust(10) for c in cols))
    lines.append("  " + "total".ljust(8) + "".join(str(total[c]).rjust(10) for c in cols))
    return lines


# --------------------------------------------------------------------------- findings from torchlint

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def source_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return _LINE_BREAK.split(data.decode("utf-8", errors="replace"))


def short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def fix_note(fix: dict, text: str) -> str:
    parts = []
    for edit in fix.get("edits", []):
        old = text[edit["start"]:edit["end"]]
        parts.append(f"`{short(old, 60)}` -> `{short(edit['content'], 80)}`")
    return f"{fix.get('applicability', '?')} fix: " + "; ".join(parts)


def torchlint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "torchlint.cli", "check", "--no-cache",
                           "--quiet", "--jobs", "1", *args],
                          capture_output=True, text=True, cwd=tempfile.gettempdir())


def findings_of(package: str, directory: Path) -> tuple[list[Entry], list[Entry], list[dict]]:
    """Run torchlint on one package: (finding entries, safe-fix entries, raw diagnostics)."""
    proc = torchlint("--format", "json", "--exit-zero", str(directory))
    if proc.returncode != 0:
        raise RuntimeError(f"torchlint failed on {package} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout or "[]")
    entries, fixes = entries_from_report(package, directory, report)
    return entries, fixes, report


def entries_from_report(package: str, directory: Path, report: list[dict]) -> tuple[list[Entry], list[Entry]]:
    """Key torchlint's JSON diagnostics by the flagged line's text (read from the files)."""
    texts: dict[Path, list[str]] = {}
    raw, raw_fixes = [], []
    for diag in report:
        path = Path(diag["path"])
        if not path.is_absolute():
            path = directory / path
        if path not in texts:
            try:
                texts[path] = source_lines(path)
            except OSError:
                texts[path] = []
        lines = texts[path]
        line = diag["line"]
        source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        rel = path.resolve().relative_to(directory.resolve()).as_posix()
        raw.append((package, rel, diag["code"], source, line, short(diag["message"], 160)))
        fix = diag.get("fix")
        if fix and fix.get("applicability") == "safe":
            note = fix_note(fix, read_text(path))  # the file is read again only for safe fixes
            raw_fixes.append((package, rel, diag["code"], source, line, note))
    entries = [Entry(k, line, note=note) for k, line, note in number_occurrences(raw)]
    fixes = [Entry(k, line, note=note) for k, line, note in number_occurrences(raw_fixes)]
    return entries, fixes


def read_text(path: Path) -> str:
    data = path.read_bytes()
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- fixes on copies


@dataclasses.dataclass
class FixCheck:
    package: str
    safe_diff: str
    unsafe_diff: str
    broken: list[str]
    not_idempotent: list[str]

    @property
    def ok(self) -> bool:
        return not self.broken and not self.not_idempotent


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py")) if p.is_file()}


def unified(package: str, before: dict[str, bytes], after: dict[str, bytes]) -> tuple[str, list[str]]:
    out, changed = [], []
    for rel in sorted(after):
        if before.get(rel) == after[rel]:
            continue
        changed.append(rel)
        a = before.get(rel, b"").decode("utf-8", errors="replace").splitlines(keepends=True)
        b = after[rel].decode("utf-8", errors="replace").splitlines(keepends=True)
        out.extend(difflib.unified_diff(a, b, f"a/{package}/{rel}", f"b/{package}/{rel}"))
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)
    return text, changed


def compiles(rel: str, data: bytes) -> str | None:
    import libcst  # the venv's; only needed here

    try:
        libcst.parse_module(data)
        compile(data, rel, "exec", dont_inherit=True)
    except Exception as exc:  # noqa: BLE001 - every kind of breakage is reported
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def check_fixes(package: str, source: Path, work: Path) -> FixCheck:
    original = tree_files(source)
    copy = work / package
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    broken, not_idempotent = [], []
    torchlint("--fix", "--exit-zero", str(copy))
    safe = tree_files(copy)
    safe_diff, safe_changed = unified(package, original, safe)
    if torchlint("--diff", str(copy)).stdout.strip():
        not_idempotent.append("second --fix (safe) would change more")
    torchlint("--fix", "--unsafe-fixes", "--exit-zero", str(copy))
    final = tree_files(copy)
    unsafe_diff, _ = unified(package, safe, final)
    all_changed = set(safe_changed) | {rel for rel in final if final[rel] != original.get(rel)}
    for rel in sorted(all_changed):
        for state, files in (("safe", safe), ("all", final)):
            error = compiles(rel, files[rel])
            if error:
                broken.append(f"{package}/{rel} after {state} fixes: {error}")
    second = torchlint("--diff", "--unsafe-fixes", str(copy)).stdout
    if second.strip():
        not_idempotent.append(f"second --fix --unsafe-fixes would change {second.count(chr(10))} diff lines")
    shutil.rmtree(copy, ignore_errors=True)
    return FixCheck(package, safe_diff, unsafe_diff, broken, not_idempotent)


# --------------------------------------------------------------------------- downloads


def pip_download(spec: str, dest: Path, sdist: bool) -> None:
    binary = ["--no-binary=:all:"] if sdist else ["--only-binary=:all:"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *binary, spec, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"could not download {spec}:\n{proc.stderr[-2000:]}")


def ensure_research(cache: Path, selected: set[str] | None = None) -> None:
    src, wheels = cache / "primer" / "src", cache / "primer" / "wheels"
    for dist, version, kind in RESEARCH:
        if selected is not None and dist_dir(dist) not in selected:
            continue
        target = src / dist_dir(dist)
        if target.is_dir() and any(target.iterdir()):
            continue
        wheels.mkdir(parents=True, exist_ok=True)
        stem = dist_dir(dist)
        pattern = f"{stem}-{version}.tar.gz" if kind == "sdist" else f"{stem}-{version}-*.whl"
        found = sorted(wheels.glob(pattern)) or sorted(wheels.glob(pattern.replace(stem, dist)))
        if not found:
            print(f"downloading {dist}=={version} ({kind})", file=sys.stderr)
            pip_download(f"{dist}=={version}", wheels, kind == "sdist")
            found = sorted(wheels.glob(pattern)) or sorted(wheels.glob(pattern.replace(stem, dist)))
        if not found:
            raise RuntimeError(f"pip downloaded no file matching {pattern} into {wheels}")
        partial = src / f".{stem}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if kind == "sdist":
            with tarfile.open(found[0]) as archive:
                archive.extractall(partial, filter="data")
        else:
            with zipfile.ZipFile(found[0]) as archive:
                archive.extractall(partial)
        partial.rename(target)


def ensure_library(cache: Path, shared: Path, selected: set[str] | None = None) -> None:
    lib = cache / "lib"
    if all((lib / name).is_dir() for name in LIBRARY if selected is None or name in selected):
        return
    script = shared / "tools" / "corpus.sh"
    if not script.is_file():
        raise RuntimeError(f"the library corpus needs {script}, which is missing: the shared folder "
                           f"sits beside the repository as ../shared "
                           f"(or pass --shared DIR / set TORCHLINT_SHARED)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    print(f"fetching the library corpus with {script}", file=sys.stderr)
    proc = subprocess.run(["bash", str(script), str(lib)], env=env)
    missing = [name for name in LIBRARY if not (lib / name).is_dir()]
    if proc.returncode != 0 or missing:
        raise RuntimeError(f"{script} failed (exit {proc.returncode}); "
                           f"missing: {', '.join(missing) or 'none'}")


# --------------------------------------------------------------------------- main


def package_dirs(cache: Path, selected: set[str] | None) -> dict[str, tuple[str, Path]]:
    dirs = {name: ("research", cache / "primer" / "src" / name) for name in RESEARCH_NAMES}
    dirs.update({name: ("library", cache / "lib" / name) for name in LIBRARY})
    return {n: v for n, v in dirs.items() if selected is None or n in selected}


def print_entries(title: str, entries: list[Entry]) -> None:
    if not entries:
        return
    print(f"\n{title} ({len(entries)}):")
    for entry in sorted(entries, key=lambda e: (e.key.package, e.key.path, e.line)):
        k = entry.key
        occ = f"#{k.occurrence + 1}" if k.occurrence else ""
        print(f"  {k.package}/{k.path}:{entry.line} {k.code}{occ} [{entry.verdict}] `{short(k.source, 80)}`")
        if entry.note:
            print(f"      {entry.note}")
        if entry.reason:
            print(f"      was: {entry.reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=os.environ.get("TORCHLINT_PRIMER_CACHE", str(DEFAULT_CACHE)),
                        help="download cache: research packages in CACHE/primer/src, the corpus in CACHE/lib")
    parser.add_argument("--shared", default=os.environ.get("TORCHLINT_SHARED", str(ROOT.parent / "shared")),
                        help="the shared folder with tools/corpus.sh (default ../shared)")
    parser.add_argument("--snapshot", default=str(SNAPSHOT))
    parser.add_argument("--packages", help="comma-separated package directory names (default: all)")
    parser.add_argument("--update", action="store_true", help="rewrite the snapshot, keeping verdicts")
    parser.add_argument("--no-fix-check", action="store_true", help="skip applying fixes to copies")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    cache = Path(args.cache).expanduser().resolve()
    selected = set(args.packages.split(",")) if args.packages else None
    known = set(RESEARCH_NAMES) | set(LIBRARY)
    if selected and selected - known:
        parser.error(f"unknown packages {sorted(selected - known)}; known: {', '.join(sorted(known))}")
    snapshot_path = Path(args.snapshot)
    try:
        snapshot = parse_snapshot(snapshot_path.read_text()) if snapshot_path.exists() else \
            {name: {} for name in SECTIONS}
    except SnapshotError as exc:
        print(f"{snapshot_path}: {exc}", file=sys.stderr)
        return 2
    try:
        if selected is None or selected & set(RESEARCH_NAMES):
            ensure_research(cache, selected)
        if selected is None or selected & set(LIBRARY):
            ensure_library(cache, Path(args.shared), selected)
    except RuntimeError as exc:
        print(f"primer: {exc}", file=sys.stderr)
        return 2

    dirs = package_dirs(cache, selected)
    group_of = {name: group for name, (group, _) in dirs.items()}
    findings: list[Entry] = []
    fixes: list[Entry] = []
    checks: list[FixCheck] = []
    work = cache / "fixwork"
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        # the biggest first, so that the pool ends together
        order = sorted(dirs, key=lambda n: -sum(1 for _ in dirs[n][1].rglob("*.py")))
        runs = {name: pool.submit(findings_of, name, dirs[name][1]) for name in order}
        fix_runs = {} if args.no_fix_check else {
            name: pool.submit(check_fixes, name, dirs[name][1], work)
            for name in order if group_of[name] == "research"}
        for name in order:
            entries, safe_fixes, _ = runs[name].result()
            findings.extend(entries)
            fixes.extend(safe_fixes)
        checks = [fix_runs[name].result() for name in order if name in fix_runs]

    ran = set(dirs)
    result = compare(findings, snapshot["findings"], ran)
    # safe fixes are judged only where the fix check ran (it shows the diff they are read in)
    fix_ran = ran & set(RESEARCH_NAMES) if not args.no_fix_check else set()
    fix_result = compare([f for f in fixes if f.key.package in fix_ran], snapshot["fixes"], fix_ran)

    print_entries("appeared since the snapshot (no verdict yet)", result.appeared)
    print_entries("vanished since the snapshot", result.vanished)
    still = [e for e in result.untriaged if e not in result.appeared]
    print_entries("in the snapshot without a verdict", still)
    print_entries("safe fixes appeared since the snapshot", fix_result.appeared)
    print_entries("safe fixes vanished since the snapshot", fix_result.vanished)
    print_entries("safe fixes without a verdict",
                  [e for e in fix_result.untriaged if e not in fix_result.appeared])

    print()
    for group in ("research", "library"):
        entries = [e for e in result.merged.values() if group_of[e.key.package] == group]
        if any(g == group for g in group_of.values()):
            print("\n".join(format_summary(f"{group} findings", entries, FINDING_VERDICTS)))
    if fix_ran:
        fix_entries = list(fix_result.merged.values())
        print("\n".join(format_summary("safe fixes (research)", fix_entries, FIX_VERDICTS)))

    failed_fix = False
    if checks:
        work.mkdir(parents=True, exist_ok=True)
        safe_diff = "".join(c.safe_diff for c in checks)
        unsafe_diff = "".join(c.unsafe_diff for c in checks)
        (work / "fixes.diff").write_text(safe_diff)
        (work / "fixes-unsafe.diff").write_text(unsafe_diff)
        print(f"\nfixes on copies of {len(checks)} research packages: safe diff "
              f"{safe_diff.count(chr(10))} lines, unsafe (on top) {unsafe_diff.count(chr(10))} lines "
              f"-> {work}")
        for check in checks:
            for problem in check.broken + check.not_idempotent:
                failed_fix = True
                print(f"  FIX PROBLEM {check.package}: {problem}")
        if not failed_fix:
            print("  every changed file parses and compiles; a second fix run changes nothing")

    if args.update:
        new = {"findings": updated(snapshot["findings"], result, ran),
               "fixes": updated(snapshot["fixes"], fix_result, fix_ran) if fix_ran else snapshot["fixes"]}
        snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot_path.write_text(format_snapshot(new))
        print(f"\nwrote {snapshot_path}")
        if checks and selected is None:
            for name, text in (("fixes.diff", safe_diff), ("fixes-unsafe.diff", unsafe_diff)):
                target = DIFF_DIR / name
                if len(text) <= MAX_COMMITTED_DIFF:
                    target.write_text(text)
                    print(f"wrote {target}")
                else:
                    print(f"{name} is {len(text)} bytes: kept in {work} only")

    untriaged = len(result.untriaged) + len(fix_result.untriaged)
    if untriaged:
        print(f"\n{untriaged} current entries have no verdict: edit {snapshot_path} "
              f"({'filled with ? by --update' if args.update else 'run with --update to add them'})")
    elif not result.vanished and not fix_result.vanished:
        print("\nsnapshot matches: every finding and safe fix has a verdict")
    return 1 if untriaged or failed_fix else 0


if __name__ == "__main__":
    sys.exit(main())
