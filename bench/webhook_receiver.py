"""A fast webhook receiver for bench/webhooks_bench.py: HTTP/1.1 keep-alive on asyncio, no framework.

    .venv/bin/python bench/webhook_receiver.py --port 8765

- `POST <any path>`: answered `204 No Content` at once; what it records is the time it answered (`time.time()`,
  the wall clock the bench compares with its own), the `webhook-id` header and the body (parsed only when asked).
- `GET /stats`: `{"count": n}`; `GET /stats?full=1`: also `records`, one `[answered_at, webhook_id, type,
  message_id, from]` per post; `POST /reset` forgets them (the bench's only non-webhook POST path).

It does not verify signatures (tests/webhooks does, with the standardwebhooks library): here it must cost as little
CPU as possible, so that the worker that posts is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

records: list[tuple[float, str, bytes]] = []


def _record_rows() -> list[list]:
    rows = []
    for answered, webhook_id, body in records:
        try:
            event = json.loads(body)
            data = event.get("data", {})
            rows.append([answered, webhook_id, event.get("type"), data.get("message_id"), data.get("from")])
        except ValueError:
            rows.append([answered, webhook_id, None, None, None])
    return rows


def _response(status: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n"
    if body:
        head += f"content-type: {content_type}\r\n"
    return head.encode() + b"\r\n" + body


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ", 2)[:2]
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            if method == "POST" and target != "/reset":
                writer.write(_response("204 No Content"))
                records.append((time.time(), headers.get("webhook-id", ""), body))
            elif method == "POST":
                records.clear()
                writer.write(_response("204 No Content"))
            elif target.startswith("/stats"):
                stats = {"count": len(records)}
                if "full=1" in target:
                    stats["records"] = _record_rows()
                writer.write(_response("200 OK", json.dumps(stats).encode()))
            else:
                writer.write(_response("404 Not Found"))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
