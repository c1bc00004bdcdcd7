"""A stand-in OpenAI-compatible server: fixed latency per request, unlimited parallelism.

It answers every `POST /v1/chat/completions` after `latency_s` with a well-formed safeguard
answer (reasoning + the JSON verdict), one thread per connection, and counts the requests in
flight (the peak is what the server-path bench and the worker test check). Nothing else: it
stands for a vLLM/SGLang server whose batch never fills, so the client alone bounds throughput.

    with StandinServer(latency_s=2.0) as server:
        os.environ["SAFEGUARD_BASE_URL"] = server.base_url   # http://127.0.0.1:<port>/v1
        ...
        server.peak_in_flight, server.requests
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = {
    "violation": 0,
    "policy_category": None,
    "rule_ids": [],
    "confidence": "high",
    "rationale": "stand-in server answer",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


class StandinServer:
    def __init__(self, *, latency_s: float = 2.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.latency_s = latency_s
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.spans: list[tuple[float, float]] = []  # (arrived, answered) per request, monotonic
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real server

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                arrived = standin._enter()
                try:
                    time.sleep(standin.latency_s)
                finally:
                    standin._leave(arrived)
                payload = json.dumps(
                    {
                        "id": "standin",
                        "object": "chat.completion",
                        "model": body.get("model", "standin"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {
                                    "role": "assistant",
                                    "reasoning": "The content breaks no rule of the policy.",
                                    "content": json.dumps(ANSWER),
                                },
                            }
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = _Server((host, port), Handler)
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _enter(self) -> float:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return time.monotonic()

    def _leave(self, arrived: float) -> None:
        with self._lock:
            self.in_flight -= 1
            self.spans.append((arrived, time.monotonic()))

    def start(self) -> StandinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = StandinServer(latency_s=args.latency, port=args.port)
    print(f"serving {server.base_url} with {args.latency:g} s per request", flush=True)
    server._httpd.serve_forever()
