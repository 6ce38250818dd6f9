"""wrk as the load generator of `make bench` (SPEC §15): a Lua script written per run, wrk run, output parsed.

wrk (Debian's package, installed by the Makefile) is C with LuaJIT: it spends a small fraction of the server's
CPU per request, where the earlier Python generator spent about as much as the server's Django stack.

How a run maps onto wrk's hooks (https://github.com/wg/wrk/blob/master/SCRIPTING):
- the script holds one Lua table per wrk thread, each a list of users: a user is an Authorization header, a
  method, an optional body and its own list of paths (in the order it must request them);
- setup(thread), in the main state, gives every thread its index (thread:set("id", n)) and keeps the thread;
- init() picks the thread's users (on the first thread it also answers, without using a path, the one
  request() wrk makes there to check the script and never sends); request() takes the users of the thread in
  turn (a counter), each user requesting its next path. wrk does not tell a script which connection asks, but
  a connection asks again only when its answer arrived, so with as many users as connections the requests in
  flight are those of different users (e.g. 32 members acking ascending messages, each its own list);
- a user whose list is used up gives its turn to the next user with paths left; a user marked `cycle`
  starts its list again (sends: one path, forever). When every user of a thread is used up the thread asks
  GET /healthz and counts it as `spare`, so the stored-rows check can leave those out (sizes are chosen so
  this does not happen; the JSON says if it did);
- response(status) counts the statuses per thread; done() adds them up over the threads (thread:get) and
  prints one JSON line: wrk's summary, latency percentiles and the status counts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "BENCH_JSON "
PERCENTILES = (50, 90, 99, 99.9)


@dataclass
class User:
    """One wrk user: its token, method, body, and the paths it requests in order."""

    token: str | None
    paths: list[str]
    method: str = "GET"
    body: str | None = None
    cycle: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def lua_string(text: str) -> str:
    """A Lua string literal for any text (long brackets cannot hold every text; escapes can)."""
    escaped = []
    for char in text:
        code = ord(char)
        if char in '\\"':
            escaped.append("\\" + char)
        elif 32 <= code < 127:
            escaped.append(char)
        else:
            escaped.extend(f"\\{byte}" for byte in char.encode())
    return '"' + "".join(escaped) + '"'


def _user_table(user: User) -> str:
    headers = dict(user.headers)
    if user.token:
        headers["Authorization"] = f"Bearer {user.token}"
    if user.body is not None:
        headers.setdefault("Content-Type", "application/json")
    header_items = ", ".join(f"[{lua_string(k)}]={lua_string(v)}" for k, v in headers.items())
    paths = ",".join(lua_string(p) for p in user.paths)
    body = lua_string(user.body) if user.body is not None else "nil"
    return (f"{{m={lua_string(user.method)}, h={{{header_items}}}, b={body}, "
            f"c={'true' if user.cycle else 'false'}, p={{{paths}}}}}")


LUA_HOOKS = r"""
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local users, turn, verifying

function init(args)
  users = DATA[id] or {}
  DATA = nil
  turn = 0
  -- wrk calls request() once on its first thread right after init, to check the script (script_verify_request),
  -- and never sends that request: answer it without taking a user's path.
  verifying = id == 1
  counts = {}
  spare = 0
  for _, u in ipairs(users) do u.i = 0 end
end

function request()
  if verifying then
    verifying = false
    return wrk.format("GET", "/healthz")
  end
  local n = #users
  for _ = 1, n do
    local u = users[(turn % n) + 1]
    turn = turn + 1
    local i = u.i + 1
    if i > #u.p and u.c then i = 1 end
    if i <= #u.p then
      u.i = i
      return wrk.format(u.m, u.p[i], u.h, u.b)
    end
  end
  spare = spare + 1
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

local function json_value(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do table.insert(parts, string.format("%q:%s", tostring(k), json_value(x))) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if v ~= v then return "null" end
  return tostring(v)
end

function done(summary, latency, requests)
  local statuses, spares = {}, 0
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts") or {}) do
      statuses[tostring(status)] = (statuses[tostring(status)] or 0) + n
    end
    spares = spares + (t:get("spare") or 0)
  end
  local percentiles = {}
  for _, p in ipairs({ {PERCENTILES} }) do percentiles[tostring(p)] = latency:percentile(p) end
  local out = {
    duration_us = summary.duration, requests = summary.requests, bytes = summary.bytes,
    errors = summary.errors, statuses = statuses, spare = spares,
    latency_us = {min = latency.min, max = latency.max, mean = latency.mean, stdev = latency.stdev,
                  percentiles = percentiles},
  }
  io.write("MARKER" .. json_value(out) .. "\n")
end
""".replace("{PERCENTILES}", ", ".join(str(p) for p in PERCENTILES)).replace("MARKER", MARKER)


def lua_script(threads: list[list[User]]) -> str:
    """The whole script: DATA (one list of users per wrk thread, indexed from 1) and the hooks."""
    lines = ["-- written by bench/wrk.py for one run; see its docstring", "DATA = {"]
    for index, users in enumerate(threads, start=1):
        lines.append(f"[{index}] = {{")
        lines.extend(_user_table(user) + "," for user in users)
        lines.append("},")
    lines.append("}")
    return "\n".join(lines) + "\n" + LUA_HOOKS


def spread(users: list[User], threads: int) -> list[list[User]]:
    """Users dealt over `threads` lists in turn (wrk gives each thread connections/threads connections)."""
    return [users[i::threads] for i in range(threads)]


def parse_output(stdout: str) -> dict:
    """The JSON line printed by done(), in friendlier units: requests/s, ms, 2xx and non-2xx counts."""
    line = next((x for x in stdout.splitlines() if x.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{stdout[-2000:]}")
    raw = json.loads(line[len(MARKER):])
    duration_s = raw["duration_us"] / 1e6
    statuses = {int(k): int(v) for k, v in raw["statuses"].items()}
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    errors = {k: int(v) for k, v in raw["errors"].items()}
    percentiles = {float(k): v / 1000 for k, v in raw["latency_us"]["percentiles"].items()}
    return {
        "duration_s": round(duration_s, 3),
        "requests": int(raw["requests"]),
        "requests_per_s": round(raw["requests"] / duration_s, 1) if duration_s else 0.0,
        "ok_2xx": ok,
        "non_2xx": sum(statuses.values()) - ok,
        "statuses": dict(sorted(statuses.items())),
        "socket_errors": {k: v for k, v in errors.items() if k != "status"},
        "spare_requests": int(raw["spare"]),
        "latency": {
            "p50_ms": round(percentiles[50.0], 2), "p90_ms": round(percentiles[90.0], 2),
            "p99_ms": round(percentiles[99.0], 2), "p99.9_ms": round(percentiles[99.9], 2),
            "mean_ms": round(raw["latency_us"]["mean"] / 1000, 2),
            "max_ms": round(raw["latency_us"]["max"] / 1000, 2),
        },
    }


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: `make bench` installs Debian's wrk (apt-get install wrk)")
    return path


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def run(base: str, users: list[User], *, script_dir: Path, name: str, connections: int = 32, threads: int = 2,
        duration_s: float = 20, timeout_s: float = 10) -> dict:
    """Write the script for `users` and run wrk against `base` (http://host:port); the parsed result, plus
    the command and the script's path. Users are dealt over the threads; give as many users as connections."""
    threads = max(1, min(threads, connections))
    script = script_dir / f"wrk-{_SAFE_NAME.sub('_', name)}.lua"
    script.write_text(lua_script(spread(users, threads)))
    command = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s",
               "-s", str(script), base]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + timeout_s + 60)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-2000:]}")
    result = parse_output(completed.stdout)
    result.update({"connections": connections, "threads": threads, "script": str(script),
                   "command": " ".join(command[1:-3] + ["-s", script.name])})
    return result
