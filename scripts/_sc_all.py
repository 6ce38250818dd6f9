"""Fuzz the live API with schemathesis against its own OpenAPI schema (run by .ci/run).

What it does, in order:
1. migrates the database named by DATABASE_URL (CI passes its PostgreSQL one; without
   it a fresh temporary SQLite file is used) and loads the demo data;
2. starts the real server (gunicorn with gunicorn.conf.py, on a free 127.0.0.1 port);
3. through the API itself, gets a staff token (superuser `admin`), an app token and a
   user token (alice) of the demo app `demo#pro`, and sends the messages that the
   read-ack endpoints need (bob -> alice, and a group message with group acks);
4. runs `schemathesis run <server>/api/schema/` with those tokens per operation and with
   the path parameters pinned to that real app, group and those messages, so the
   generated requests reach the real code and not only the 404 of an unknown app;
5. stops the server. Exit status is schemathesis' (non-zero on any failed check, so on
   any 500), and non-zero too if the server log shows an internal error.

Bounded: --max-examples per operation and --max-time for the fuzzing (100 s by default; about
2.5 minutes in all with migrations and start-up).
Usage: .venv/bin/python scripts/schemathesis_check.py [--max-examples N] [--max-time S] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEMO_ORG, DEMO_APP = "demo", "pro"
DEMO_PASSWORD = "demo-password"

# Checks that must hold for every generated request. The schema documents every error
# response the API really gives (status, JSON content type, the Error envelope), so the
# conformance checks run too, not only "no 5xx".
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "ignored_auth",
]

# Endpoints of the app API and the token each needs (SPEC §5); the admin API takes the staff token.
APP_TOKEN_PATHS = r"^/api/v1/\{org_name\}/\{app_name\}/(users|groups)($|/\{group_id\}/(members|admins))"
USER_TOKEN_PATHS = r"^/api/v1/\{org_name\}/\{app_name\}/(messages|events|conversations|groups/\{group_id\}/messages)"


def log(message: str) -> None:
    print(f"[schemathesis_check] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"setup call {method} {path} failed: {error.code} {error.read()[:500]!r}") from None


def wait_healthy(base: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited early with status {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not become healthy in time")


def demo_state(base: str) -> dict:
    """Tokens and ids of real rows, all obtained through the API as a client would."""
    app_path = f"/api/v1/{DEMO_ORG}/{DEMO_APP}"
    staff = call(base, "POST", "/api/v1/admin/token", {"username": "admin", "password": DEMO_PASSWORD})
    app = call(base, "POST", f"{app_path}/token", {"grant_type": "client_credentials",
                                                   "client_id": f"demo-{DEMO_APP}",
                                                   "client_secret": f"demo-secret-{DEMO_APP}"})
    alice = call(base, "POST", f"{app_path}/token", {"grant_type": "password", "username": "alice",
                                                     "password": DEMO_PASSWORD})
    bob = call(base, "POST", f"{app_path}/token", {"grant_type": "password", "username": "bob",
                                                   "password": DEMO_PASSWORD})
    group = call(base, "POST", f"{app_path}/groups", {"name": "fuzz", "owner": "bob", "members": ["alice", "carol"]},
                 token=app["access_token"])
    single = call(base, "POST", f"{app_path}/messages", {"chat_type": "single", "to": "alice", "body": {"t": "hi"}},
                  token=bob["access_token"])
    grouped = call(base, "POST", f"{app_path}/messages", {"chat_type": "group", "to": group["group_id"],
                                                          "body": {"t": "all"}, "need_group_ack": True},
                   token=bob["access_token"])
    return {
        "staff_token": staff["access_token"],
        "app_token": app["access_token"],
        "user_token": alice["access_token"],
        "group_id": group["group_id"],
        "single_message_id": single["message_id"],
        "group_message_id": grouped["message_id"],
    }


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def write_config(path: Path, state: dict) -> None:
    """Per-operation tokens and pinned path parameters, as a schemathesis.toml."""
    lines = [
        # The tokens come from the headers below; no sign-up flow of schemathesis' own.
        "[auth]",
        "auto-signup = false",
        "",
        "[parameters]",
        f"org_name = {toml_string(DEMO_ORG)}",
        f"app_name = {toml_string(DEMO_APP)}",
        f"group_id = {toml_string(state['group_id'])}",
        "",
        "[[operations]]",
        'include-path-regex = "^/api/v1/admin/"',
        f"headers = {{ Authorization = {toml_string('Bearer ' + state['staff_token'])} }}",
        "",
        "[[operations]]",
        f"include-path-regex = {toml_string(APP_TOKEN_PATHS)}",
        f"headers = {{ Authorization = {toml_string('Bearer ' + state['app_token'])} }}",
        "",
        "[[operations]]",
        f"include-path-regex = {toml_string(USER_TOKEN_PATHS)}",
        f"headers = {{ Authorization = {toml_string('Bearer ' + state['user_token'])} }}",
        "",
        # The long-poll waits up to `timeout` seconds when no event comes: pinned to 0 so the
        # run stays bounded (the timeout rules are covered by tests/events).
        "[[operations]]",
        'include-path-regex = "/events$"',
        'parameters = { timeout = "0" }',
        "",
        "[[operations]]",
        'include-path-regex = "/messages/\\\\{message_id\\\\}/read_ack$"',
        'exclude-path-regex = "/groups/"',
        f"parameters = {{ message_id = {toml_string(state['single_message_id'])} }}",
        "",
        "[[operations]]",
        'include-path-regex = "/groups/\\\\{group_id\\\\}/messages/\\\\{message_id\\\\}/"',
        f"parameters = {{ message_id = {toml_string(state['group_message_id'])} }}",
        "",
        "[[operations]]",
        'include-path-regex = "/conversations/\\\\{peer\\\\}/read_ack$"',
        'parameters = { peer = "bob" }',
        "",
    ]
    path.write_text("\n".join(lines))


STATIC_SEGMENTS = {"admin", "apps", "policy", "audit", "staff", "token", "users", "groups", "members", "admins",
                   "messages", "read_ack", "acks", "events", "conversations"}


def summarize_access_log(text: str) -> None:
    """Status codes per endpoint: evidence that the requests reached real code, not only 404s."""
    endpoints: dict[str, Counter] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"ACCESS (\S+) (/api/v1/\S*) (\d{3})", line)
        if not match:
            continue
        method, path, status = match.groups()
        parts = path.split("/")[3:]
        if parts[:1] != ["admin"]:
            parts = ["{org}", "{app}", *parts[2:]]
        shape = "/".join(p if p in STATIC_SEGMENTS else "{…}" if p else "" for p in parts)
        endpoints.setdefault(f"{method} {shape}", Counter())[status] += 1
    probes = [name for name, statuses in endpoints.items() if set(statuses) <= {"405"}]
    log(f"responses per endpoint (status: count); {len(probes)} unsupported-method probes got 405, not listed:")
    for name in sorted(set(endpoints) - set(probes)):
        print(f"    {name:52} " + ", ".join(f"{k}: {v}" for k, v in sorted(endpoints[name].items())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", 40)))
    parser.add_argument("--max-time", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_TIME", 100)))
    parser.add_argument("--seed", type=int, default=None, help="replay a run (printed by schemathesis)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="schemathesis-"))
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    env.setdefault("DEBUG", "false")
    env["PYTHONUNBUFFERED"] = "1"
    log(f"database: {env['DATABASE_URL'].split('@')[-1]}")

    python = str(VENV_BIN / "python")
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "load_demo"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = work / "server.log"
    server = subprocess.Popen(
        # The production configuration (gunicorn.conf.py), on a free port, with an access log to summarise.
        [str(VENV_BIN / "gunicorn"), "receipts_console.wsgi:application", "-c", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--graceful-timeout", "5",
         "--access-logfile", "-", "--access-logformat", "ACCESS %(m)s %(U)s %(s)s"],
        cwd=ROOT, env=env, stdout=server_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    started = time.monotonic()
    try:
        wait_healthy(base, server)
        log(f"server up on {base} (gunicorn, pid {server.pid})")
        state = demo_state(base)
        config = work / "schemathesis.toml"
        write_config(config, state)
        command = [
            str(VENV_BIN / "schemathesis"), "--config-file", str(config), "run", f"{base}/api/schema/",
            "--checks", "all",
            "--max-examples", str(args.max_examples),
            "--max-time", str(args.max_time),
            "--phases", "examples,coverage,fuzzing,stateful",
            "--request-timeout", "20",
            "--workers", "2",
            "--suppress-health-check", "all",
            "--warnings", "off",
            "--no-color",
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        log("running: " + shlex.join(command).replace(str(config), "<generated schemathesis.toml>"))
        result = subprocess.run(command, cwd=work, env=env)
        status = result.returncode
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    server_text = server_log.read_text(errors="replace")
    summarize_access_log(server_text)
    if "Internal Server Error" in server_text or "Traceback" in server_text:
        log("the server logged an internal error:")
        print(server_text[-20000:])
        status = status or 1
    log(f"finished in {time.monotonic() - started:.0f} s with status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
