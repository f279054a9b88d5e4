"""How long `torchlint server` takes to re-publish diagnostics after an edit.

    python benchmarks/server_latency.py [FILE] [--edits 10]

Starts the server over stdio, opens FILE (default: a 3,000-line file built from the
fixtures), then sends whole-document changes one at a time and measures from each change
to the matching `textDocument/publishDiagnostics`. The server waits DEBOUNCE_SECONDS
(0.15 s) after a change before it checks, so the figure includes that wait. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read(proc: subprocess.Popen[bytes]) -> dict:
    length = 0
    while True:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(proc.stdout.read(length))  # type: ignore[union-attr]


def wait_for(proc: subprocess.Popen[bytes], method: str, request_id: int | None = None) -> dict:
    while True:
        message = read(proc)
        if request_id is not None and message.get("id") == request_id:
            return message
        if message.get("method") == method:
            return message


def sample_file() -> str:
    parts = [p.read_text() for p in sorted((ROOT / "fixtures").glob("TL*/bad_*.py"))]
    text = ""
    while text.count("\n") < 3000:
        text += "\n\n".join(parts) + "\n"
    return "\n".join(text.splitlines()[:3000]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?")
    parser.add_argument("--edits", type=int, default=10)
    args = parser.parse_args()
    text = Path(args.file).read_text() if args.file else sample_file()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.py"
        path.write_text(text)
        (Path(tmp) / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        uri = path.as_uri()
        proc = subprocess.Popen([sys.executable, "-m", "torchlint", "server"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        assert proc.stdin is not None
        send = proc.stdin.write
        send(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"processId": None, "rootUri": Path(tmp).as_uri(), "capabilities": {}}}))
        proc.stdin.flush()
        wait_for(proc, "", 1)
        send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        start = time.perf_counter()
        send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}}}))
        proc.stdin.flush()
        first = wait_for(proc, "textDocument/publishDiagnostics")
        opened = time.perf_counter() - start
        timings = []
        for version in range(2, args.edits + 2):
            edited = text + f"\nx_{version} = {version}\n"
            start = time.perf_counter()
            send(frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": edited}]}}))
            proc.stdin.flush()
            while wait_for(proc, "textDocument/publishDiagnostics")["params"].get("version") != version:
                pass
            timings.append(time.perf_counter() - start)
        send(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        proc.stdin.flush()
        wait_for(proc, "", 2)
        send(frame({"jsonrpc": "2.0", "method": "exit"}))
        proc.stdin.close()
        proc.wait(10)
    lines = text.count("\n")
    print(f"{lines} lines, {len(first['params']['diagnostics'])} findings")
    print(f"open -> diagnostics: {opened:.3f} s")
    print(f"change -> diagnostics (includes the 0.15 s debounce): median {statistics.median(timings):.3f} s, "
          f"max {max(timings):.3f} s over {len(timings)} edits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
