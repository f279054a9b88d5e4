"""Benchmark torchlint against the bare libcst parse and TorchFix on pinned real code.

    python benchmarks/run.py [--jobs 2] [--work DIR] [--skip-torchfix] [--only timm] [--repeat 5]

Downloads the pinned wheels of timm and transformers (pip download, no deps), unpacks them
into the work directory, and prints a Markdown table: files, lines, bare libcst parse,
torchlint cold (no cache), torchlint warm (cache present, nothing changed), TorchFix
(installed into its own venv), each in seconds and as a ratio to the parse; plus the peak
memory of the whole torchlint process tree and the flake8-plugin timing on one large file.
Each of `--repeat` rounds runs the parse, the cold and the warm run back to back; the median
round is reported, and every round's cold/parse ratio (wall and CPU time) goes to stderr.
Not part of `make test`: run it with `make bench`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from multiprocessing import Pool
from pathlib import Path

PINS = {"timm": "timm==1.0.31", "transformers": "transformers==5.23.0"}
TORCHFIX = "torchfix==0.7.0"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def fetch(work: Path, name: str) -> Path:
    """The unpacked package directory (downloaded once)."""
    target = work / name
    if target.is_dir():
        return target / name
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    PINS[name], "-d", str(wheels)], check=True)
    wheel = next(wheels.glob(f"{name}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target / name


def _parse_one(path: str) -> None:
    import libcst

    try:
        libcst.parse_module(Path(path).read_bytes())
    except Exception:  # noqa: BLE001 - the floor counts the attempt, not the outcome
        pass


def bare_parse(files: list[str], jobs: int) -> float:
    start = time.perf_counter()
    with Pool(jobs) as pool:
        pool.map(_parse_one, files, chunksize=4)
    return time.perf_counter() - start


class PeakRss:
    """Samples the summed RSS of a process and all its descendants (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                    children.setdefault(parent, []).append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def _rss(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(self._rss(p) for p in self._tree()))
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def children_cpu() -> float:
    """User + system CPU seconds of every finished child process (and theirs) so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, int]:
    """(seconds, exit code, peak RSS of the process tree in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = PeakRss(proc.pid) if sys.platform.startswith("linux") else None
    code = proc.wait()
    elapsed = time.perf_counter() - start
    return elapsed, code, sampler.stop() if sampler else 0


def torchfix_venv(work: Path) -> Path | None:
    venv = work / "torchfix-venv"
    binary = venv / "bin" / "torchfix"
    if binary.exists():
        return binary
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", TORCHFIX], check=True)
    except subprocess.CalledProcessError:
        return None
    return binary if binary.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    # outside the repository: its .gitignore would hide the corpus from torchlint
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "torchlint-bench"))
    parser.add_argument("--skip-torchfix", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median round is reported")
    parser.add_argument("--only", choices=sorted(PINS), action="append")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torchlint = [sys.executable, "-m", "torchlint.cli"]
    torchfix = None if args.skip_torchfix else torchfix_venv(work)
    rows = []
    for name in args.only or sorted(PINS):
        package = fetch(work, name)
        files = sorted(str(p) for p in package.rglob("*.py"))
        lines = sum(Path(f).read_bytes().count(b"\n") for f in files)
        cache = work / f"cache-{name}"
        base = [*torchlint, "check", "-q", "--exit-zero", "-j", str(args.jobs), "--cache-dir", str(cache), str(package)]
        # rounds of (parse, cold, warm) back to back: on a shared machine the speed drifts by
        # 10-20% within minutes, so each round's cold/parse ratio is taken, and the median round
        rounds = []
        cpu_ratios = []
        for _ in range(max(1, args.repeat)):
            before = children_cpu()
            parse = bare_parse(files, args.jobs)
            middle = children_cpu()
            shutil.rmtree(cache, ignore_errors=True)
            cold, _, peak = timed(base)
            after = children_cpu()
            warm, _, _ = timed(base)
            rounds.append((cold / parse, parse, cold, warm, peak))
            cpu_ratios.append((after - middle) / (middle - before))
        rounds.sort()
        cpu_ratios.sort()
        _, parse, cold, warm, peak = rounds[len(rounds) // 2]
        print(f"{name}: cold/parse per round, wall: " + ", ".join(f"{r[0]:.2f}" for r in rounds)
              + "; CPU time (all processes): " + ", ".join(f"{r:.2f}" for r in cpu_ratios), file=sys.stderr)
        fix_time = None
        if torchfix is not None:
            fix_time, _, _ = timed([str(torchfix), "-j", str(args.jobs), "--select", "ALL", str(package)])
        rows.append((name, len(files), lines, parse, cold, warm, fix_time, peak))
    print(f"Date: {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; jobs: {args.jobs}\n")
    print("| package | files | lines | bare parse | torchlint cold | torchlint warm | TorchFix | peak RSS (cold) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, nfiles, lines, parse, cold, warm, fix_time, peak in rows:
        fix_cell = f"{fix_time:.1f} s ({fix_time / parse:.1f}x)" if fix_time else "n/a"
        print(f"| {name} | {nfiles:,} | {lines:,} | {parse:.1f} s (1.0x) | {cold:.1f} s ({cold / parse:.2f}x) | "
              f"{warm:.2f} s ({warm / cold:.1%} of cold) | {fix_cell} | {peak / 2**20:,.0f} MiB |")
    if "transformers" in (args.only or PINS):
        target = fetch(work, "transformers") / "modeling_utils.py"
        flake8 = [sys.executable, "-m", "flake8", "--isolated"]
        f_time, _, _ = timed([*flake8, "--select=F", str(target)])
        t_time, _, _ = timed([*flake8, "--select=TL", str(target)])
        print(f"\nflake8 on transformers/modeling_utils.py: --select=F {f_time:.2f} s; "
              f"--select=TL {t_time:.2f} s ({t_time / f_time:.2f}x)")


if __name__ == "__main__":
    main()
