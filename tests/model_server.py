"""A stand-in OpenAI-compatible model server on 127.0.0.1 whose latency the test controls.

It answers `/v1/chat/completions` the way vLLM serves gpt-oss-safeguard (the final channel as
`content`, the analysis channel as `reasoning_content`), after sleeping `latency` seconds. It
counts what it was asked and what it finished answering, and `request_arrived` is set when a
request comes in, so a test can act while the model is "working".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# An answer the spam policy of tests/builders.py accepts: SP2.b is one of its rules.
ANSWER = {
    "violation": 1,
    "policy_category": "SP2",
    "rule_ids": ["SP2.b"],
    "confidence": "high",
    "rationale": "An advert for rings, unrelated to anything asked.",
}
REASONING = "The text sells gold rings to people who did not ask: unsolicited promotion, SP2.b."


class ModelServer:
    def __init__(self, *, latency: float) -> None:
        self.latency = latency
        self.requests = 0
        self.answered = 0
        self.request_arrived = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                server.requests += 1
                server.request_arrived.set()
                time.sleep(server.latency)
                data = json.dumps(server.reply(body)).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    return  # the client (a killed worker) is gone
                server.answered += 1

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @staticmethod
    def reply(body: dict) -> dict:
        return {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "model": body.get("model", "openai/gpt-oss-safeguard-20b"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": json.dumps(ANSWER),
                        "reasoning_content": REASONING,
                    },
                }
            ],
            "usage": {"prompt_tokens": 412, "completion_tokens": 57, "total_tokens": 469},
        }


@contextmanager
def model_server(*, latency: float) -> Iterator[ModelServer]:
    server = ModelServer(latency=latency)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
