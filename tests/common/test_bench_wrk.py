"""bench/wrk.py's pure parts: the generated Lua holds each user's own list, and wrk's result line is parsed."""

import json

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
