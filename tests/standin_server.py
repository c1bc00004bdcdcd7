"""A stand-in OpenAI-compatible chat-completions server on 127.0.0.1, for workbench tests and the
benchmark. It answers like gpt-oss-safeguard would, from keywords: a case whose text holds one of
`keywords` violates the rule mapped to it. A policy text holding the marker `LENIENT` makes it
answer "not violating" to everything (a worse policy version, for the gate). Each answer waits
`latency` seconds; requests are served in parallel without limit; the peak is recorded.

With `mode` it answers as one of the second-opinion models (policies/second_opinion/) instead,
in that model's published answer format, after reading the content out of that model's prompt
template (so a prompt that lost its shape gets no verdict): a content holding one of
`categories`' phrases is unsafe under the category mapped to it. `answer` forces the answer's
text (a malformed one), `status` answers every request with that HTTP status, `fail_first`
answers the first n requests with 503; `bodies` keeps every request body."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_KEYWORDS = {"buy gold": "SP2.b", "click here": "SP3.a", "my course": "SP2.a"}

# Second-opinion modes: phrase → the category the model would name.
GUARD_CATEGORIES = {
    "llama_guard": {"buy gold": "S2", "click here": "S2", "hurt you": "S1"},
    "shieldgemma": {"hurt you": "Harassment", "click here": "Dangerous Content"},
    "qwen3guard": {"buy gold": "Unethical Acts", "click here": "Non-violent Illegal Acts"},
    "nemoguard": {"buy gold": "Fraud/Deception", "click here": "Fraud/Deception"},
    "cope": {"buy gold": "violating", "click here": "violating"},
}
# Where each template puts the content (the stand-in reads it back from there).
_CONTENT_BETWEEN = {
    "shieldgemma": ("Human Question: ", "\n<end_of_turn>"),
    "nemoguard": ("\nuser: ", "\n\n<END CONVERSATION>"),
    "cope": ("\nCONTENT\n=======\n\n", "\n\n\nANSWER\n======"),
}


class StandInServer:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        keywords: dict[str, str] | None = None,
        mode: str = "safeguard",
        categories: dict[str, str] | None = None,
        answer: str | None = None,
        status: int = 200,
        fail_first: int = 0,
    ):
        self.latency = latency
        self.keywords = {k.lower(): v for k, v in (keywords or DEFAULT_KEYWORDS).items()}
        assert mode == "safeguard" or mode in GUARD_CATEGORIES, mode
        self.mode = mode
        self.categories = {
            k.lower(): v for k, v in (categories or GUARD_CATEGORIES.get(mode, {})).items()
        }
        self.forced_answer = answer
        self.status = status
        self.fail_first = fail_first
        self.bodies: list[dict] = []
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
                    server.bodies.append(body)
                    failing = server.requests <= server.fail_first
                status = 503 if failing else server.status
                try:
                    if server.latency:
                        time.sleep(server.latency)
                    if status != 200:
                        payload = {"error": {"message": f"stand-in answers {status}"}}
                    elif server.mode == "safeguard":
                        payload = server.answer(body)
                    else:
                        payload = server.guard_answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    return  # the client gave up (a timeout test)

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

    def guard_answer(self, body: dict) -> dict:
        """A chat completion in the second-opinion model's own answer format."""
        prompt = body["messages"][-1]["content"]
        if isinstance(prompt, list):  # Llama Guard 4: typed content parts
            prompt = "".join(part["text"] for part in prompt if part.get("type") == "text")
        content = prompt
        if self.mode in _CONTENT_BETWEEN:
            start, end = _CONTENT_BETWEEN[self.mode]
            if start not in prompt or end not in prompt:
                content = ""  # not the model's template: nothing to judge
            else:
                content = prompt.split(start, 1)[1].rsplit(end, 1)[0]
        found = list(dict.fromkeys(c for k, c in self.categories.items() if k in content.lower()))
        if self.forced_answer is not None:
            text = self.forced_answer
        elif self.mode == "llama_guard":
            text = f"unsafe\n{','.join(found)}" if found else "safe"
        elif self.mode == "shieldgemma":
            harm = prompt.split('* "No ', 1)[1].split('"', 1)[0] if '* "No ' in prompt else ""
            text = "Yes" if harm and harm in found else "No"
        elif self.mode == "qwen3guard":
            text = (
                f"Safety: Unsafe\nCategories: {', '.join(found)}"
                if found
                else "Safety: Safe\nCategories: None"
            )
        elif self.mode == "nemoguard":
            text = json.dumps(
                {"User Safety": "unsafe", "Safety Categories": ", ".join(found)}
                if found
                else {"User Safety": "safe"}
            )
        else:  # cope
            text = "1" if found else "0"
        return {
            "model": body.get("model", self.mode),
            "choices": [
                {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 300, "completion_tokens": 5},
        }

    def __enter__(self) -> StandInServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
