"""The primer's snapshot logic (scripts/primer.py) on tiny in-memory data: no downloads, no torchlint run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "scripts" / "primer.py"
_SPEC = importlib.util.spec_from_file_location("primer", _PATH)
primer = importlib.util.module_from_spec(_SPEC)
sys.modules["primer"] = primer
_SPEC.loader.exec_module(primer)

SNAPSHOT = """\
# a comment
[findings]

pkg  a/mod.py:12  TL405  `state = torch.load(path)`
    real: resume path loads a GPU checkpoint without map_location

pkg  a/mod.py:40  TL403  `x = x.cuda()`
    harmless: benchmark script, CUDA only

pkg  a/mod.py:41  TL403#2  `x = x.cuda()`
    false: guarded by `if not torch.cuda.is_available(): return`

other  b.py:3  TL201  `return self.m.forward(x)  # `m` is a `cv2` net`
    ?:

[fixes]

pkg  a/mod.py:12  TL405  `state = torch.load(path)`
    # safe fix: ...
    good: adds map_location="cpu" before load_state_dict
"""


def key(package, path, code, source, occ=0):
    return primer.Key(package, path, code, source, occ)


def test_parse_reads_keys_verdicts_and_occurrences():
    snap = primer.parse_snapshot(SNAPSHOT)
    findings = snap["findings"]
    assert len(findings) == 4
    assert findings[key("pkg", "a/mod.py", "TL405", "state = torch.load(path)")].verdict == "real"
    second = findings[key("pkg", "a/mod.py", "TL403", "x = x.cuda()", 1)]
    assert (second.verdict, second.line) == ("false", 41)
    assert second.reason.startswith("guarded by")
    odd = findings[key("other", "b.py", "TL201", "return self.m.forward(x)  # `m` is a `cv2` net")]
    assert odd.verdict == "?"
    assert snap["fixes"][key("pkg", "a/mod.py", "TL405", "state = torch.load(path)")].verdict == "good"


def test_format_then_parse_round_trips():
    snap = primer.parse_snapshot(SNAPSHOT)
    again = primer.parse_snapshot(primer.format_snapshot(snap))
    assert again == snap


@pytest.mark.parametrize("text, message", [
    ("pkg  a.py:1  TL101  `x`\n    real: r\n", r"before any \[section\]"),
    ("[findings]\npkg  a.py:1  TL101  `x`\n    maybe: r\n", "not one of"),
    ("[fixes]\npkg  a.py:1  TL101  `x`\n    real: r\n", "not one of"),
    ("[findings]\npkg  a.py  TL101  `x`\n", "expected"),
    ("[findings]\n    real: orphan\n", "without an entry"),
    ("[nope]\n", "unknown section"),
    ("[findings]\npkg  a.py:1  TL101  `x`\n    real: r\npkg  a.py:9  TL101  `x`\n    real: r\n", "duplicate"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(primer.SnapshotError, match=r"^line \d+: .*" + message):
        primer.parse_snapshot(text)


def entry(source, line, occ=0, verdict="?", package="pkg", code="TL403"):
    return primer.Entry(key(package, "a/mod.py", code, source, occ), line, verdict)


def test_compare_reports_appeared_vanished_and_untriaged():
    snap = primer.parse_snapshot(SNAPSHOT)["findings"]
    current = [
        primer.Entry(key("pkg", "a/mod.py", "TL405", "state = torch.load(path)"), 15),  # moved 3 lines down
        entry("x = x.cuda()", 43),
        entry("y = y.cuda()", 50),  # new
    ]
    result = primer.compare(current, snap, packages={"pkg"})
    assert [e.key.source for e in result.appeared] == ["y = y.cuda()"]
    # the second `x = x.cuda()` vanished; `other` did not run, so it cannot vanish
    assert [(e.key.source, e.key.occurrence) for e in result.vanished] == [("x = x.cuda()", 1)]
    assert [e.key.source for e in result.untriaged] == ["y = y.cuda()"]
    moved = result.merged[key("pkg", "a/mod.py", "TL405", "state = torch.load(path)")]
    assert (moved.verdict, moved.line) == ("real", 15)

    new = primer.updated(snap, result, {"pkg"})
    assert set(new) == set(result.merged) | {key("other", "b.py", "TL201",
                                                "return self.m.forward(x)  # `m` is a `cv2` net")}
    assert new[key("pkg", "a/mod.py", "TL403", "y = y.cuda()")].verdict == "?"
    assert primer.parse_snapshot(primer.format_snapshot({"findings": new, "fixes": {}}))["findings"] == new


def test_all_triaged_when_every_current_entry_has_a_verdict():
    snap = primer.parse_snapshot(SNAPSHOT)["findings"]
    current = [primer.Entry(k, e.line) for k, e in snap.items() if e.verdict != "?"]
    result = primer.compare(current, snap, packages={"pkg"})
    assert not result.appeared and not result.vanished and not result.untriaged


def test_keys_survive_lines_shifting(tmp_path):
    body = "x = x.cuda()\ny = 1\nx = x.cuda()\nstate = torch.load(path)\n"
    mod = tmp_path / "a" / "mod.py"
    mod.parent.mkdir()

    def keys(prefix, lines):
        mod.write_text(prefix + body)
        report = [{"path": str(mod), "line": n, "code": "TL403", "message": "m", "fix": None} for n in lines]
        entries, fixes = primer.entries_from_report("pkg", tmp_path, report)
        assert fixes == []
        return [(e.key, e.line) for e in entries]

    before = keys("", [3, 1])
    after = keys("import torch\n\n\n", [4, 6])
    assert [k for k, _ in before] == [k for k, _ in after]
    assert [line for _, line in after] == [4, 6]
    assert [(k.source, k.occurrence) for k, _ in after] == [("x = x.cuda()", 0), ("x = x.cuda()", 1)]


def test_safe_fixes_get_their_own_entries(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text("y = self.net.forward(x)\n")
    start = mod.read_text().index("self.net.forward")
    report = [
        {"path": str(mod), "line": 1, "code": "TL201", "message": "m",
         "fix": {"applicability": "safe",
                 "edits": [{"start": start, "end": start + 16, "content": "self.net"}]}},
        {"path": str(mod), "line": 1, "code": "TL999", "message": "m",
         "fix": {"applicability": "unsafe", "edits": []}},
    ]
    entries, fixes = primer.entries_from_report("pkg", tmp_path, report)
    assert len(entries) == 2
    assert [f.key.code for f in fixes] == ["TL201"]
    assert "`self.net.forward` -> `self.net`" in fixes[0].note


def test_summary_counts_per_code():
    snap = primer.parse_snapshot(SNAPSHOT)["findings"]
    table = primer.summary(list(snap.values()), primer.FINDING_VERDICTS)
    assert table["TL403"] == {"harmless": 1, "false": 1}
    lines = primer.format_summary("research", list(snap.values()), primer.FINDING_VERDICTS)
    assert lines[-1].split() == ["total", "1", "1", "1", "1"]
