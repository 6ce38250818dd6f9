"""bench/wrk.py: the generated Lua holds each user's own list, wrk's result line is parsed, and a real wrk run
(Debian's, installed by `make test`) against a recording server sends each user's paths in order."""

import http.server
import json
import threading

from bench import wrk


def test_script_deals_users_over_threads_with_their_own_paths_and_escaped_bodies():
    users = [wrk.User(token=f"t{i}", paths=[f"/a/{i}/1", f"/a/{i}/2"], method="POST") for i in range(4)]
    users.append(wrk.User(token="t4", paths=["/m"], method="POST", cycle=True, body='{"text": "é\\"x"}'))
    threads = wrk.spread(users, 2)
    assert [[u.token for u in t] for t in threads] == [["t0", "t2", "t4"], ["t1", "t3"]]
    script = wrk.lua_script(threads)
    assert '[1] = {' in script and '[2] = {' in script
    assert 'p={"/a/2/1","/a/2/2"}' in script
    assert '["Authorization"]="Bearer t3"' in script
    assert 'b="{\\"text\\": \\"\\195\\169\\\\\\"x\\"}"' in script  # UTF-8 bytes and quotes escaped for Lua
    assert "c=true" in script and "function done(summary, latency, requests)" in script


def test_result_line_is_parsed_into_requests_per_second_percentiles_and_status_counts():
    line = wrk.MARKER + json.dumps({
        "duration_us": 2_000_000, "requests": 1000, "bytes": 1, "spare": 0,
        "errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 0},
        "statuses": {"200": 997, "409": 3},
        "latency_us": {"min": 100, "max": 90_000, "mean": 20_000.5, "stdev": 1,
                       "percentiles": {"50": 15_000, "90": 30_000, "99": 60_000, "99.9": 80_000}}})
    result = wrk.parse_output("Running 2s test\n" + line + "\n")
    assert result["requests_per_s"] == 500.0
    assert (result["ok_2xx"], result["non_2xx"]) == (997, 3)
    assert result["socket_errors"]["read"] == 1
    assert (result["latency"]["p50_ms"], result["latency"]["p99_ms"]) == (15.0, 60.0)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request (409 for a path ending in /conflict) and records who asked what, in order."""

    protocol_version = "HTTP/1.1"  # keep-alive, as wrk's connections expect
    seen: list[tuple[str, str, str, str]] = []

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.seen.append((self.headers.get("Authorization", ""), self.command, self.path, body))
        self.send_response(409 if self.path.endswith("/conflict") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def test_run__real_wrk__each_user_its_own_paths_in_order__then_spare__a_cycling_user_repeats(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        once = wrk.User(token="once", method="POST", body='{"n": 1}', paths=["/a/1", "/a/2", "/a/conflict"])
        cycling = wrk.User(token="loop", method="POST", body='{"n": 2}', paths=["/m"], cycle=True)
        result = wrk.run(f"http://127.0.0.1:{server.server_address[1]}", [once, cycling], script_dir=tmp_path,
                         name="recorder", connections=2, threads=2, duration_s=1)
    finally:
        server.shutdown()
        server.server_close()
    by_user = {token: [(method, path, body) for auth, method, path, body in _Recorder.seen
                       if auth == f"Bearer {token}"] for token in ("once", "loop")}
    assert by_user["once"] == [("POST", path, '{"n": 1}') for path in once.paths]
    assert len(by_user["loop"]) > 1 and set(by_user["loop"]) == {("POST", "/m", '{"n": 2}')}
    spare = [path for auth, _, path, _ in _Recorder.seen if not auth]
    assert spare and set(spare) == {"/healthz"}  # the used-up thread asks /healthz, counted apart
    assert result["statuses"][409] == 1
    assert result["spare_requests"] <= len(spare)  # wrk counts answers; the last requests may be in flight
    assert result["ok_2xx"] + result["non_2xx"] <= len(_Recorder.seen)
