"""A stand-in OpenAI-compatible chat-completions server on 127.0.0.1, for workbench tests and the
benchmark. It answers like gpt-oss-safeguard would, from keywords: a case whose text holds one of
`keywords` violates the rule mapped to it. A policy text holding the marker `LENIENT` makes it
answer "not violating" to everything (a worse policy version, for the gate). Each answer waits
`latency` seconds; requests are served in parallel without limit; the peak is recorded."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_KEYWORDS = {"buy gold": "SP2.b", "click here": "SP3.a", "my course": "SP2.a"}


class StandInServer:
    def __init__(self, *, latency: float = 0.0, keywords: dict[str, str] | None = None):
        self.latency = latency
        self.keywords = {k.lower(): v for k, v in (keywords or DEFAULT_KEYWORDS).items()}
        self.in_flight = 0
        self.peak = 0
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.in_flight += 1
                    server.requests += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    if server.latency:
                        time.sleep(server.latency)
                    payload = server.answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 2048

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, body: dict) -> dict:
        system = body["messages"][0]["content"]
        user = body["messages"][-1]["content"].lower()
        rules = [] if "LENIENT" in system else [r for k, r in self.keywords.items() if k in user]
        verdict = {
            "violation": 1 if rules else 0,
            "policy_category": rules[0] if rules else None,
            "rule_ids": rules,
            "confidence": "high",
            "rationale": f"cites {', '.join(rules)}" if rules else "nothing in the policy applies",
        }
        return {
            "model": "stand-in",
            "choices": [
                {
                    "message": {
                        "content": json.dumps(verdict),
                        "reasoning_content": "The policy's rules were compared with the text.",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 500, "completion_tokens": 40},
        }

    def __enter__(self) -> StandInServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
