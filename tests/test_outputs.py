"""Tier 5: the CI formats. SARIF against the official 2.1.0 schema; GitHub and GitLab shapes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from torchlint.diagnostic import Diagnostic, Edit, Fix
from torchlint.output import emitters, github, gitlab, sarif
from torchlint.registry import all_codes

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text("utf-8"))

BAD = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.Linear(2, 2)]

    def forward(self, x):
        return x
"""


def diag(**kw: object) -> Diagnostic:
    base: dict[str, object] = {"path": "pkg/mod.py", "line": 3, "col": 5, "end_line": 3, "end_col": 20,
                               "code": "TL104", "name": "module-in-plain-container",
                               "message": "self.x keeps Modules in a list"}
    base.update(kw)
    return Diagnostic(**base)  # type: ignore[arg-type]


def render(emit, diagnostics: list[Diagnostic]) -> str:
    out = io.StringIO()
    emit(diagnostics, out)
    return out.getvalue()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "torchlint.cli", *args], cwd=cwd, capture_output=True, check=False,
                          text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "model.py").write_text(BAD)
    return tmp_path


def test_every_format_is_registered() -> None:
    assert {"sarif", "github", "gitlab"} <= set(emitters())


# ---- SARIF ------------------------------------------------------------------------------------

def test_sarif_validates_against_the_official_schema() -> None:
    fix = Fix("unsafe", (Edit(10, 20, "nn.ModuleList([a])"),), "wrap in nn.ModuleList")
    diagnostics = [
        diag(fix=fix, context={"class": "Net"}),
        diag(path="other file.py", code="TL000", name="cannot-check", message="cannot parse: x",
             line=1, col=1, end_line=1, end_col=1),
        diag(path="/elsewhere/abs.py", runtime={"status": "confirmed"}),
    ]
    log = json.loads(render(sarif.emit, diagnostics))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    run = log["runs"][0]
    assert log["version"] == "2.1.0"
    assert run["columnKind"] == "unicodeCodePoints"
    driver = run["tool"]["driver"]
    assert driver["name"] == "torchlint" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == all_codes()
    for rule in driver["rules"]:
        assert rule["name"] and rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["helpUri"] == f"https://github.com/torchlint/torchlint/blob/main/rules/{rule['id']}.md"
    first, broken, absolute = run["results"]
    assert first["ruleId"] == "TL104" and first["level"] == "error"
    assert driver["rules"][first["ruleIndex"]]["id"] == "TL104"
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "pkg/mod.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 20}
    replacement = first["fixes"][0]["artifactChanges"][0]["replacements"][0]
    assert replacement == {"deletedRegion": {"charOffset": 10, "charLength": 10},
                           "insertedContent": {"text": "nn.ModuleList([a])"}}
    assert first["fixes"][0]["properties"]["applicability"] == "unsafe"
    assert broken["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "other%20file.py"
    assert "fixes" not in broken
    assert absolute["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "file:///elsewhere/abs.py"}


def test_sarif_with_no_findings_still_lists_the_rules() -> None:
    log = json.loads(render(sarif.emit, []))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["runs"][0]["results"] == []
    assert len(log["runs"][0]["tool"]["driver"]["rules"]) == len(all_codes())


def test_sarif_columns_count_code_points_like_the_text_output(project: Path) -> None:
    (project / "model.py").write_text("# é 😀\n" + BAD.replace("self.layers", "self.lαyers"))
    text = run_cli("check", "--no-cache", "model.py", cwd=project)
    done = run_cli("check", "--no-cache", "--format", "sarif", "--output-file", "out.sarif", "model.py", cwd=project)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    log = json.loads((project / "out.sarif").read_text("utf-8"))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    (result,) = log["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    line, col = text.stdout.split(":")[1:3]
    assert (region["startLine"], region["startColumn"]) == (int(line), int(col)) == (8, 9)


# ---- GitHub -----------------------------------------------------------------------------------

def test_github_annotation_shape() -> None:
    line = render(github.emit, [diag()]).rstrip("\n")
    assert line == ("::error file=pkg/mod.py,line=3,col=5,endLine=3,endColumn=20,title=TL104"
                    "::self.x keeps Modules in a list")


def test_github_escapes_data_and_properties() -> None:
    d = diag(path="a,b:c%.py", message="100% sure\r\nsecond: line, ok")
    line = render(github.emit, [d]).rstrip("\n")
    assert line.startswith("::error file=a%2Cb%3Ac%25.py,line=3,")
    assert line.endswith("::100%25 sure%0D%0Asecond: line, ok")
    assert "\n" not in line and "\r" not in line


def test_github_from_the_cli_with_exit_zero(project: Path) -> None:
    done = run_cli("check", "--no-cache", "--format", "github", "--exit-zero", ".", cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("::error file=model.py,line=7,col=9,endLine=7,")
    assert ",title=TL104::self.layers" in done.stdout


# ---- GitLab -----------------------------------------------------------------------------------

def test_gitlab_code_climate_shape() -> None:
    twins = [diag(line=3), diag(line=9, end_line=9)]
    issues = json.loads(render(gitlab.emit, [*twins, diag(code="TL000", name="cannot-check", message="x")]))
    assert isinstance(issues, list) and len(issues) == 3
    for issue in issues:
        assert set(issue) >= {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert issue["location"]["path"] == "pkg/mod.py"
        assert isinstance(issue["location"]["lines"]["begin"], int)
    assert issues[0]["check_name"] == "TL104" and issues[0]["description"].startswith("TL104 ")
    assert issues[1]["location"]["lines"] == {"begin": 9, "end": 9}
    assert len({i["fingerprint"] for i in issues}) == 3  # GitLab needs them unique


def test_gitlab_fingerprint_is_stable_when_lines_move() -> None:
    before = json.loads(render(gitlab.emit, [diag(line=3, end_line=3)]))
    after = json.loads(render(gitlab.emit, [diag(line=30, end_line=30)]))
    assert before[0]["fingerprint"] == after[0]["fingerprint"]
    moved_file = json.loads(render(gitlab.emit, [diag(path="pkg/other.py")]))
    assert moved_file[0]["fingerprint"] != before[0]["fingerprint"]


def test_gitlab_from_the_cli(project: Path) -> None:
    done = run_cli("check", "--no-cache", "--format", "gitlab", "-o", "gl-code-quality.json", ".", cwd=project)
    assert done.returncode == 1, done.stderr
    (issue,) = json.loads((project / "gl-code-quality.json").read_text("utf-8"))
    assert issue["check_name"] == "TL104"
    assert issue["location"] == {"path": "model.py", "lines": {"begin": 7, "end": 7}}


def test_notebook_findings_name_their_cell_everywhere() -> None:
    fix = Fix("safe", (Edit(10, 20, "x"),), "")
    d = diag(context={"cell": 3, "cell_line": 3}, fix=fix)
    log = json.loads(render(sarif.emit, [d]))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    (result,) = log["runs"][0]["results"]
    assert result["properties"]["cell"] == 3 and "(cell 3, line 3)" in result["message"]["text"]
    assert "fixes" not in result  # offsets into the joined cells mean nothing in the .ipynb file
    assert ",title=TL104 (cell 3)::" in render(github.emit, [d])
    assert json.loads(render(gitlab.emit, [d]))[0]["description"].endswith("(cell 3, line 3)")
