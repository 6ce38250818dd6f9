"""docs/API.md runs as written (issue 16): its shell examples, taken from the file in order, against gunicorn.

What runs: every ```sh block of docs/API.md (indented ones too), top to bottom, as one bash script (`set -euo
pipefail`, so an undefined variable or a failing command stops it), so variables a block defines (`$BASE`,
`$OPERATOR_TOKEN`, `$GROUP`…) carry over to the next. An example that must not run as written (say a stream that
never ends) is fenced as ```text instead. `$BASE` is set to the test server; the doc defines it as
`BASE=${BASE:-http://127.0.0.1:8000}`. The database holds the demo data of `make run` (`load_demo`, without the
14 days of history, which no example reads), as the doc assumes.

What is checked: inside a block, a comment line `# NNN` documents the HTTP status of a curl call, optionally
followed by its JSON answer, which may continue on the next comment lines (`# 201 {"username": "dana"}`). The
comments of one run of consecutive such lines document, in order, the last answers of the commands since the
previous run (three comments after a loop of three calls). Other comments are prose and not checked.
To see each call, the script's `curl` is a shell function that runs the real curl with `-D`/`-o` into numbered
files and prints the body as curl would.

The shape rule (`differences`): objects have the same keys, recursively; lists the same length, element by
element; scalars the same JSON type (`true` is not `1`, `null` only where the doc shows `null`) and the same
value, except volatile values, checked by type only: those under a key in VOLATILE (tokens, secrets, cursors,
timestamps, generated ids) and any string of 19 digits (a message or group id; the answer must hold one too).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import ROOT, database_url, server

DOC = ROOT / "docs" / "API.md"
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
RESPONSE = re.compile(r"^#\s(\d{3})(?:\s+(.*))?$")
ID = re.compile(r"^\d{19}$")
VOLATILE = frozenset({
    "access_token", "client_id", "client_secret", "secret", "next_cursor", "id", "message_id", "group_id",
    "last_message_id", "timestamp", "last_timestamp", "created_at", "at",
})
NO_BODY = object()


@dataclass
class Expected:
    line: int  # of docs/API.md, 1-based
    status: int
    body: object = NO_BODY


@dataclass
class Step:
    line: int
    code: list[str] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)


def sh_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the first line, lines without the fence's indentation) of every ```sh block."""
    blocks, lines, current, indent = [], text.splitlines(), None, ""
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if current is None:
            if fence and fence[2] == "sh":
                current, indent = (number + 1, []), fence[1]
        elif fence and not fence[2]:
            blocks.append(current)
            current = None
        else:
            current[1].append(line[len(indent):] if line.startswith(indent) else line.lstrip())
    assert current is None, f"docs/API.md: the ```sh block at line {current[0] - 1} is never closed"
    return blocks


def steps(text: str) -> list[Step]:
    """The blocks cut into steps: the code up to a run of response comments, and what those document."""
    result: list[Step] = []
    for start, lines in sh_blocks(text):
        step, i = None, 0
        while i < len(lines):
            number, line = start + i, lines[i]
            match = RESPONSE.match(line.strip())
            if match is None:
                if step is None or step.expected:
                    step = Step(number)
                    result.append(step)
                step.code.append(line)
                i += 1
                continue
            assert step is not None and any(c.strip() and not c.lstrip().startswith("#") for c in step.code), (
                f"docs/API.md line {number}: a documented answer with no command before it")
            answer = (match[2] or "").strip()
            expected = Expected(number, int(match[1]))
            i += 1
            if answer[:1] in ("{", "["):
                while True:
                    try:
                        expected.body, _ = json.JSONDecoder().raw_decode(answer)
                        break
                    except json.JSONDecodeError as error:
                        more = lines[i].strip() if i < len(lines) else ""
                        assert more.startswith("#") and not RESPONSE.match(more), (
                            f"docs/API.md line {number}: the documented answer is not JSON ({error}): {answer}")
                        answer += "\n" + more[1:]
                        i += 1
            step.expected.append(expected)
    return result


def differences(doc, real, path: str = "$", key: str | None = None) -> list[str]:
    """How `real` (an answer) departs from `doc` (its documented example), by the rule of the module docstring."""
    if isinstance(doc, dict):
        if not isinstance(real, dict):
            return [f"{path}: the doc shows an object, the answer is {real!r}"]
        found = []
        if missing := sorted(doc.keys() - real.keys()):
            found.append(f"{path}: keys in the doc but not in the answer: {missing}")
        if extra := sorted(real.keys() - doc.keys()):
            found.append(f"{path}: keys in the answer but not in the doc: {extra} ({ {k: real[k] for k in extra} })")
        for name in doc.keys() & real.keys():
            found += differences(doc[name], real[name], f"{path}.{name}", name)
        return found
    if isinstance(doc, list):
        if not isinstance(real, list):
            return [f"{path}: the doc shows a list, the answer is {real!r}"]
        if len(doc) != len(real):
            return [f"{path}: the doc shows {len(doc)} elements, the answer has {len(real)}: {real!r}"]
        pairs = enumerate(zip(doc, real, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{path}[{i}]", key)]
    if type(doc) is not type(real):
        return [f"{path}: the doc shows {doc!r}, the answer is {real!r} (another JSON type)"]
    if isinstance(doc, str) and ID.match(doc):
        return [] if ID.match(real) else [f"{path}: the doc shows an id, the answer is {real!r}"]
    if key in VOLATILE or doc == real:
        return []
    return [f"{path}: the doc shows {doc!r}, the answer is {real!r}"]


CURL = r"""
curl() {  # the real curl, each call's status line and body kept in numbered files
  local n
  n=$(( $(<"$WALK/count") + 1 )); echo "$n" > "$WALK/count"
  command curl -D "$WALK/$n.head" -o "$WALK/$n.body" "$@" || return
  if [ -f "$WALK/$n.body" ]; then cat "$WALK/$n.body"; fi
}
"""


def script(all_steps: list[Step]) -> str:
    parts = ["set -euo pipefail", 'echo 0 > "$WALK/count"', CURL]
    for index, step in enumerate(all_steps):
        parts.append(f"# docs/API.md line {step.line}")
        parts.extend(step.code)
        parts.append(f'echo; echo "--- end of step {index} (docs/API.md line {step.line})"; '
                     f'cat "$WALK/count" >> "$WALK/steps"')
    return "\n".join(parts) + "\n"


def status_of(head: Path) -> int:
    return int(re.findall(r"^HTTP/\S+ (\d{3})", head.read_text(), re.M)[-1])


def check(all_steps: list[Step], walk: Path) -> list[str]:
    ends = [int(n) for n in (walk / "steps").read_text().split()] if (walk / "steps").exists() else []
    found, previous = [], 0
    for step, end in zip(all_steps, ends, strict=False):
        calls = list(range(previous + 1, end + 1))
        previous = end
        if len(calls) < len(step.expected):
            found.append(f"line {step.line}: {len(step.expected)} documented answers, {len(calls)} curl calls")
            continue
        for expected, call in zip(step.expected, calls[-len(step.expected):] if step.expected else [], strict=True):
            status = status_of(walk / f"{call}.head")
            raw = (walk / f"{call}.body").read_bytes() if (walk / f"{call}.body").exists() else b""
            if status != expected.status:
                found.append(f"line {expected.line}: status {status}, the doc shows {expected.status}: {raw[:300]!r}")
            if expected.body is NO_BODY:
                continue
            try:
                body = json.loads(raw)
            except ValueError:
                found.append(f"line {expected.line}: the answer is not JSON: {raw[:300]!r}")
                continue
            found += [f"line {expected.line}: {d}" for d in differences(expected.body, body)]
    if len(ends) < len(all_steps):
        found.append(f"the script stopped in the step at line {all_steps[len(ends)].line}")
    return found


# --------------------------------------------------------------------------- the rule itself


@pytest.mark.parametrize(("doc", "real", "problem"), [
    ({"a": 1}, {"a": 1, "b": 2}, "keys in the answer but not in the doc: ['b']"),
    ({"a": 1, "b": 2}, {"a": 1}, "keys in the doc but not in the answer: ['b']"),
    ({"a": 1}, {"a": "1"}, "another JSON type"),
    ({"a": True}, {"a": 1}, "another JSON type"),
    ({"a": None}, {"a": "x"}, "another JSON type"),
    ({"a": 2}, {"a": 3}, "the doc shows 2, the answer is 3"),
    ({"detail": "x"}, {"detail": "y"}, "the doc shows 'x'"),
    ({"r": [{"a": 1}]}, {"r": [{"a": 1}, {"a": 1}]}, "the doc shows 1 elements, the answer has 2"),
    ({"r": [{"a": 1}]}, {"r": [{"b": 1}]}, "$.r[0]: keys in the doc"),
    ({"to": "0384194372696219048"}, {"to": "dana"}, "the doc shows an id"),
    ({"next_cursor": None}, {"next_cursor": "cDI"}, "another JSON type"),
])
def test_differences__departures__named(doc, real, problem):
    assert any(problem in d for d in differences(doc, real)), differences(doc, real)


@pytest.mark.parametrize(("doc", "real"), [
    ({"access_token": "Zk3…", "expires_in": 86400}, {"access_token": "other", "expires_in": 86400}),
    ({"message_id": "0384194397078461844", "to": "0384194372696219048"},
     {"message_id": "0386583421079534571", "to": "0386583421079534999"}),
    ({"results": [{"at": "2026-11-26T04:01:00+00:00", "new": 500}], "next_cursor": "cDI"},
     {"results": [{"at": "2026-12-02T18:00:00+00:00", "new": 500}], "next_cursor": "cDQ"}),
])
def test_differences__volatile_values__checked_by_type_only(doc, real):
    assert differences(doc, real) == []


def test_steps__answers_documented_after_commands__parsed_with_their_lines():
    text = "\n".join([
        "x", "```sh", "curl -s $BASE/a", "# 200 {\"a\": [1,", "#   2]}  (prose after it)", "# note",
        "curl -s $BASE/b", "curl -s $BASE/c", "# 204", "# 404 {\"error\": \"not_found\"}", "```",
        "  ```sh", "  echo tail", "  ```",
    ])
    parsed = steps(text)

    assert [(s.line, s.code) for s in parsed] == [
        (3, ["curl -s $BASE/a"]), (6, ["# note", "curl -s $BASE/b", "curl -s $BASE/c"]), (13, ["echo tail"])]
    assert [(e.line, e.status, e.body) for e in parsed[0].expected] == [(4, 200, {"a": [1, 2]})]
    assert [(e.status, e.body) for e in parsed[1].expected] == [(204, NO_BODY), (404, {"error": "not_found"})]


def test_api_md__every_documented_answer_is_json():
    assert steps(DOC.read_text())  # the parser's asserts name the line of an answer that does not parse


# --------------------------------------------------------------------------- the walk-through


@pytest.mark.integration
# serialized_rollback: the seeded plans, roles and content types are restored for the tests after it (its flush
# otherwise breaks the next serialized_rollback test's setup: duplicate content types)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_api_md__shell_examples__run_in_order_against_gunicorn__answers_as_documented(tmp_path):
    all_steps = steps(DOC.read_text())
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "receipts_console.settings"}
    # The demo data loads while the server starts (both take seconds; neither needs the other).
    demo = subprocess.Popen([sys.executable, "manage.py", "load_demo", "--no-history"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with server("gunicorn", threads=8) as running:
        loaded, _ = demo.communicate(timeout=120)
        assert demo.returncode == 0, loaded.decode()
        walk = tmp_path / "walk"
        walk.mkdir()
        started = time.monotonic()
        ran = subprocess.run(["bash", "-c", script(all_steps)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=300,
                             env={**os.environ, "BASE": running.base, "WALK": str(walk)})
        seconds = time.monotonic() - started
        log = running.output()
    output = ran.stdout.decode(errors="replace")

    problems = check(all_steps, walk)
    assert not problems, "docs/API.md departs from the server:\n" + "\n".join(problems) + f"\n\n{output[-3000:]}"
    assert ran.returncode == 0, f"{output[-3000:]}\n\nserver:\n{log}"
    assert "Traceback" not in log, log
    # No step waits: each long-poll has its event already (else its answer is empty and differs from the doc).
    # Most of the time is password hashing (every sign-in and user creation); the subprocess timeout bounds it.
    print(f"docs/API.md walk-through: {len(all_steps)} steps in {seconds:.1f} s")
