"""Compare the runtime verdicts of two `torchlint check --runtime --format json` reports.

    python scripts/compare_runtime.py CPU.json GPU.json

Prints the verdict counts of each, then every finding whose verdict differs (path, line, code,
both verdicts and details). Exit 1 when a finding is confirmed in one report and
not-reproduced in the other: the two machines then disagree about whether the bug is real.
A finding that one side checks and the other skips is listed but is no contradiction.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def verdicts(report: Path) -> dict[tuple[str, int, int, str], tuple[str, str]]:
    out = {}
    for item in json.loads(report.read_text()):
        runtime = item.get("runtime") or {}
        key = (item["path"], item["line"], item["col"], item["code"])
        out[key] = (runtime.get("status", "-"), runtime.get("detail", ""))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    first, second = (verdicts(Path(arg)) for arg in argv)
    for name, table in zip(argv, (first, second)):
        counts = Counter(status for status, _ in table.values())
        print(f"{name}: {len(table)} findings, " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    contradictions = 0
    differ = 0
    for key in sorted(first.keys() | second.keys()):
        a = first.get(key, ("absent", ""))
        b = second.get(key, ("absent", ""))
        if a[0] == b[0]:
            continue
        differ += 1
        clash = {a[0], b[0]} == {"confirmed", "not-reproduced"}
        contradictions += clash
        path, line, col, code = key
        print(f"{'CONTRADICTION ' if clash else ''}{path}:{line}:{col} {code}: {a[0]} -> {b[0]}")
        print(f"    {argv[0]}: {a[1]}")
        print(f"    {argv[1]}: {b[1]}")
    print(f"{differ} verdicts differ, {contradictions} contradictions")
    return 1 if contradictions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
