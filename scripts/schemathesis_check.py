"""Fuzz the live API with schemathesis against its own OpenAPI schema (run by .ci/run).

What it does, in order:
1. migrates the database named by DATABASE_URL (CI passes its PostgreSQL one; without
   it a fresh temporary SQLite file is used) and loads the demo data;
2. starts the real server (gunicorn with gunicorn.conf.py, on a free 127.0.0.1 port);
3. through the API itself, gets a staff token (superuser `admin`), an app token and user
   tokens (alice, bob) of the demo app `demo#pro`, makes two groups (one whose members the
   fuzzer may add and remove, one for the receipts) and sends the messages the read-ack
   endpoints need (bob -> alice, and a group message with group acks), and registers a webhook endpoint of
   `demo#ultimate` with a test delivery (WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE_NETWORKS on: CI
   resolves no public name, and no worker posts);
4. runs `schemathesis run <server>/api/schema/` with every check (`--checks all`; the built-in
   positive_data_acceptance is replaced by the same check with documented exceptions, see
   scripts/schemathesis_hooks.py) and every phase, the stateful one included (links inferred by
   schemathesis from the responses and path parameters), with the right token per operation and
   the path parameters pinned to those real rows, so the requests reach the success paths and not
   only the 404 of an unknown app; the admin API's per-app operations (PATCH policy among them) work
   on `demo#enterprise`, so the fuzzed policy never switches off the receipts of `demo#pro`;
5. stops the server and prints, per operation, how many requests it answered and how many got a
   2xx (from the server's access log). Exit status is non-zero on any failed check (so on any
   500), if the server log shows an internal error, or if a read-ack or list operation never
   answered a 2xx.

Bounded: --max-time for the whole schemathesis run (170 s by default; under 4 minutes in all
with migrations and start-up on the 2-core CI machine).
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEMO_ORG, DEMO_APP = "demo", "pro"
DEMO_PASSWORD = "demo-password"

# Every check schemathesis has. Two run as wrappers (scripts/schemathesis_hooks.py), the built-in check itself
# with a stated exception: positive_data_acceptance_documented (refusals the schema states in words) and
# use_after_free_of_resources (a group's receipt settings, which DELETE resets rather than removes).
HOOKS = Path(__file__).resolve().parent / "schemathesis_hooks.py"
EXCLUDED_CHECKS = ["positive_data_acceptance", "use_after_free"]

# Endpoints of the app API and the token each needs (SPEC §5); the admin API takes the staff token.
APP_TOKEN_PATHS = (
    r"^/api/v1/\{org_name\}/\{app_name\}/(users($|/\{username\})|groups($|/\{group_id\}/(members|admins))"
    r"|messages/receipts$)"
)
USER_TOKEN_PATHS = (
    r"^/api/v1/\{org_name\}/\{app_name\}/"
    r"(messages|events|conversations|me/|groups/\{group_id\}/(messages|read_ack))"
)
# The app whose policy the fuzzer may change, whose secret it may rotate and which it may suspend (SPEC §13):
# the app API runs on DEMO_APP, so a suspended or rotated ADMIN_TARGET_APP refuses nothing the run still calls
# (its app token is used once, in demo_state, before the fuzzing starts).
ADMIN_TARGET_APP = "enterprise"
# The app whose webhook deliveries are listed and redelivered (its endpoint is out of the fuzzer's reach).
WEBHOOKS_APP = "ultimate"


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
    users = {name: call(base, "POST", f"{app_path}/token", {"grant_type": "password", "username": name,
                                                            "password": DEMO_PASSWORD})["access_token"]
             for name in ("alice", "bob")}
    app_token = app["access_token"]
    # Members of this one come and go as the fuzzer adds and removes them; the receipts group stays as made.
    members_group = call(base, "POST", f"{app_path}/groups",
                         {"name": "fuzz members", "owner": "bob", "members": ["alice", "carol"]}, token=app_token)
    acks_group = call(base, "POST", f"{app_path}/groups",
                      {"name": "fuzz receipts", "owner": "bob", "members": ["alice", "carol"]}, token=app_token)
    single = call(base, "POST", f"{app_path}/messages", {"chat_type": "single", "to": "alice", "body": {"t": "hi"}},
                  token=users["bob"])
    grouped = call(base, "POST", f"{app_path}/messages", {"chat_type": "group", "to": acks_group["group_id"],
                                                          "body": {"t": "all"}, "need_group_ack": True},
                   token=users["bob"])
    if not grouped["need_group_ack"]:
        raise SystemExit(f"setup: the group message got no group ack ({grouped['group_ack_reason']})")
    # One reader already, so the ack list has a page to show.
    call(base, "POST", f"{app_path}/groups/{acks_group['group_id']}/messages/{grouped['message_id']}/read_ack",
         token=users["alice"])
    # A webhook endpoint with a delivery, whose deliveries are listed and redelivered: on an app of its own, so no
    # fuzzed operation (all on ADMIN_TARGET_APP) can delete it. No worker runs: nothing is posted.
    hooks = f"/api/v1/admin/apps/{DEMO_ORG}/{WEBHOOKS_APP}/webhooks"
    listed_hook = call(base, "POST", hooks, {"url": "http://127.0.0.1:9/receipts", "event_types": ["message.read"]},
                       token=staff["access_token"])
    test_delivery = call(base, "POST", f"{hooks}/{listed_hook['id']}/test", token=staff["access_token"])
    # A group of the admin-fuzzed app, for its per-group receipt settings (SPEC §12).
    target = call(base, "POST", f"/api/v1/{DEMO_ORG}/{ADMIN_TARGET_APP}/token", {
        "grant_type": "client_credentials", "client_id": f"demo-{ADMIN_TARGET_APP}",
        "client_secret": f"demo-secret-{ADMIN_TARGET_APP}"})["access_token"]
    call(base, "POST", f"/api/v1/{DEMO_ORG}/{ADMIN_TARGET_APP}/users", {"username": "fuzz-owner", "password": "x"},
         token=target)
    target_group = call(base, "POST", f"/api/v1/{DEMO_ORG}/{ADMIN_TARGET_APP}/groups",
                        {"name": "fuzz settings", "owner": "fuzz-owner", "members": []}, token=target)
    return {
        "target_group_id": target_group["group_id"],
        "listed_webhook_id": listed_hook["id"],
        "delivery_id": test_delivery["delivery_id"],
        "staff_token": staff["access_token"],
        "app_token": app_token,
        "alice_token": users["alice"],
        "bob_token": users["bob"],
        "members_group_id": members_group["group_id"],
        "acks_group_id": acks_group["group_id"],
        "single_message_id": single["message_id"],
        "group_message_id": grouped["message_id"],
    }


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def _operation(include: str, *, exclude: str | None = None, token: str | None = None, **parameters) -> list[str]:
    lines = ["[[operations]]", f"include-path-regex = {toml_string(include)}"]
    if exclude:
        lines.append(f"exclude-path-regex = {toml_string(exclude)}")
    if token:
        lines.append(f"headers = {{ Authorization = {toml_string('Bearer ' + token)} }}")
    if parameters:
        # JSON literals are TOML literals: strings stay strings, numbers numbers (a query `timeout` is a number).
        lines.append("parameters = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in parameters.items()) + " }")
    return [*lines, ""]


def write_config(path: Path, state: dict) -> None:
    """Per-operation tokens and pinned path parameters, as a schemathesis.toml.

    Of the [[operations]] entries that match an operation, the first one that sets an option
    (headers, parameters) decides it: the most specific entries come first, each carrying its
    token and all of its parameters.
    """
    app_base = r"^/api/v1/\{org_name\}/\{app_name\}"
    lines = [
        # The tokens are set per operation below; no sign-up flow of schemathesis' own.
        "[auth]",
        "auto-signup = false",
        "",
        "[parameters]",
        f"org_name = {toml_string(DEMO_ORG)}",
        f"app_name = {toml_string(DEMO_APP)}",
        "",
        # The ack list is the sender's to read (count visibility `sender`): bob's token.
        *_operation(app_base + r"/groups/\{group_id\}/messages/\{message_id\}/acks$", token=state["bob_token"],
                    group_id=state["acks_group_id"], message_id=state["group_message_id"]),
        *_operation(app_base + r"/groups/\{group_id\}/messages/\{message_id\}/read_ack$",
                    token=state["alice_token"], group_id=state["acks_group_id"],
                    message_id=state["group_message_id"]),
        *_operation(app_base + r"/messages/\{message_id\}/read_ack$", token=state["alice_token"],
                    message_id=state["single_message_id"]),
        *_operation(app_base + r"/conversations/\{peer\}/read_ack$", token=state["alice_token"], peer="bob"),
        *_operation(app_base + r"/groups/\{group_id\}/read_ack$", token=state["alice_token"],
                    group_id=state["acks_group_id"]),
        # The server's reads and a user's settings (SPEC §11, §12): the app token; carol is in no fuzzed receipt.
        *_operation(app_base + r"/messages/receipts$", token=state["app_token"]),
        *_operation(app_base + r"/users/\{username\}$", token=state["app_token"], username="carol"),
        # The long-poll waits up to `timeout` seconds when no event comes: pinned to 0 so the
        # run stays bounded (the timeout rules are covered by tests/events).
        *_operation(app_base + r"/events$", token=state["alice_token"], timeout=0),
        *_operation(USER_TOKEN_PATHS, token=state["alice_token"]),
        *_operation(r"/groups/\{group_id\}/(members|admins)", token=state["app_token"],
                    group_id=state["members_group_id"]),
        *_operation(APP_TOKEN_PATHS, token=state["app_token"]),
        # The admin API's per-app operations work on another demo app: a fuzzed PATCH may switch receipts off.
        # The other webhook operations take the ids the fuzzer finds (or a POST /webhooks it made answered): a
        # pinned id it could delete would make every later 404 look like a created resource gone missing.
        *_operation(r"^/api/v1/admin/apps/\{org_name\}/\{app_name\}/webhooks/\{webhook_id\}/deliveries",
                    token=state["staff_token"], org_name=DEMO_ORG, app_name=WEBHOOKS_APP,
                    webhook_id=state["listed_webhook_id"], delivery_id=state["delivery_id"]),
        # A group's receipt settings (SPEC §12): use_after_free_of_resources leaves them out (a DELETE resets them).
        *_operation(r"^/api/v1/admin/apps/\{org_name\}/\{app_name\}/groups/\{group_id\}/receipt_policy$",
                    token=state["staff_token"], org_name=DEMO_ORG, app_name=ADMIN_TARGET_APP,
                    group_id=state["target_group_id"]),
        *_operation(r"^/api/v1/admin/apps/\{org_name\}/\{app_name\}", token=state["staff_token"],
                    org_name=DEMO_ORG, app_name=ADMIN_TARGET_APP),
        *_operation(r"^/api/v1/admin/", token=state["staff_token"]),
    ]
    path.write_text("\n".join(lines))


def operation_matchers(schema: dict) -> list[tuple[str, str, re.Pattern]]:
    """(method, path template, regex) per documented operation; templates with more fixed segments first,
    as Django's routes would take /api/v1/admin/apps before /api/v1/{org_name}/{app_name}."""
    matchers = []
    for template, item in schema["paths"].items():
        regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        fixed = sum(1 for part in template.split("/") if part and not part.startswith("{"))
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                matchers.append((fixed, method.upper(), template, regex))
    return [(m, t, r) for _, m, t, r in sorted(matchers, key=lambda row: -row[0])]


def summarize_access_log(text: str, schema: dict) -> list[str]:
    """Requests and 2xx answers per documented operation, from the server's own access log.

    Returns the read-ack and list operations (POST .../read_ack, and every GET with a `limit`)
    that never answered a 2xx: the run must reach their success paths, not only their refusals.
    """
    matchers = operation_matchers(schema)
    counts: dict[str, Counter] = {f"{method} {template}": Counter() for method, template, _ in matchers}
    for line in text.splitlines():
        # gunicorn logs as JSON (gunicorn.conf.py): the access line is the object's message.
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            line = str(record.get("message", ""))
        match = re.fullmatch(r"ACCESS (\S+) (/api/v1/\S*) (\d{3})", line)
        if not match:
            continue
        method, path, status = match.groups()
        for op_method, template, regex in matchers:
            if op_method == method and regex.match(path):
                counts[f"{method} {template}"][status[0] + "xx"] += 1
                break
    log("requests per operation (all / 2xx / 4xx / 5xx):")
    for name, counter in sorted(counts.items(), key=lambda row: row[0].split(" ", 1)[::-1]):
        print(f"    {name:82} {sum(counter.values()):6} {counter['2xx']:6} {counter['4xx']:6} {counter['5xx']:4}")
    must_succeed = []
    for method, template, _ in matchers:
        parameters = [p.get("name") for p in schema["paths"][template][method.lower()].get("parameters", [])]
        if (method == "POST" and template.endswith("/read_ack")) or (method == "GET" and "limit" in parameters):
            must_succeed.append(f"{method} {template}")
    return sorted(name for name in must_succeed if not counts[name]["2xx"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", 40)))
    parser.add_argument("--max-time", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_TIME", 170)))
    parser.add_argument("--seed", type=int, default=None, help="replay a run (printed by schemathesis)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="schemathesis-"))
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    env.setdefault("DEBUG", "false")
    # Webhook URLs (SPEC §10) to any host: CI has no network to resolve public names, and no worker runs to post
    # (the suite tests the https-only rule and the address guard, tests/webhooks).
    env.update(WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_PRIVATE_NETWORKS="true")
    env["PYTHONUNBUFFERED"] = "1"
    # GET /events/stream answers for EVENT_STREAM_MAX_SECONDS (300 s by default): end each stream at once, so the
    # run stays bounded and every fuzzed stream still gets its answer (the stream itself: tests/events).
    env.update(EVENT_STREAM_MAX_SECONDS="0.3", EVENT_STREAM_HEARTBEAT_SECONDS="0.1")
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
        # gunicorn.conf.py's logging turns the access log on only with WEB_ACCESS_LOG (its lines are JSON).
        cwd=ROOT, env={**env, "WEB_ACCESS_LOG": "-"}, stdout=server_log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    schema = {"paths": {}}
    try:
        wait_healthy(base, server)
        log(f"server up on {base} (gunicorn, pid {server.pid})")
        state = demo_state(base)
        config = work / "schemathesis.toml"
        write_config(config, state)
        command = [
            str(VENV_BIN / "schemathesis"), "--config-file", str(config), "run", f"{base}/api/schema/",
            "--checks", "all",
            "--exclude-checks", ",".join(EXCLUDED_CHECKS),
            "--max-examples", str(args.max_examples),
            "--max-time", str(args.max_time),
            "--phases", "examples,coverage,fuzzing,stateful",
            "--request-timeout", "20",
            # One worker thread: with two, hypothesis parses lambdas' source (ast) on both at once, and CPython
            # 3.11.7's AST constructor then fails at random ("AST constructor recursion depth mismatch",
            # cpython gh-106905), an error of the tool, not of the server.
            "--workers", "1",
            "--suppress-health-check", "all",
            # The token is this header of each operation (per-operation auth takes only `basic`): schemathesis
            # must not also generate, or leave out as a "negative" case, the Authorization it then cannot remove.
            # ignored_auth still sends every operation without and with a wrong token.
            "--generation-with-security-parameters", "false",
            "--warnings", "off",
            "--no-color",
        ]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        log("running: " + shlex.join(command).replace(str(config), "<generated schemathesis.toml>"))
        with urllib.request.urlopen(f"{base}/api/schema/", timeout=30) as response:
            schema = yaml.safe_load(response.read())  # served as YAML (drf-spectacular's default)
        result = subprocess.run(command, cwd=work, env=env | {"SCHEMATHESIS_HOOKS": str(HOOKS)})
        status = result.returncode
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    server_text = server_log.read_text(errors="replace")
    never_succeeded = summarize_access_log(server_text, schema)
    if never_succeeded:
        log("these read-ack and list operations never answered a 2xx: " + ", ".join(never_succeeded))
        status = status or 1
    if "Internal Server Error" in server_text or "Traceback" in server_text:
        log("the server logged an internal error:")
        print(server_text[-20000:])
        status = status or 1
    log(f"finished in {time.monotonic() - started:.0f} s with status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
