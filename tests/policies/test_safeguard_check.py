"""`manage.py safeguard_check`, as a policy author runs it, against a stand-in model server.

The stand-in is a small HTTP server on loopback that answers `/v1/chat/completions` the way vLLM
serves gpt-oss-safeguard (the final channel as `content`, the analysis channel as
`reasoning_content`). It records what it was sent, so the test also sees the policy and the text
reach the model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import builders, workers
from tests.test_management_commands import manage

pytestmark = pytest.mark.django_db(transaction=True)  # the subprocess reads committed rows

REASONING = "The text sells gold rings to people who did not ask: unsolicited promotion, SP2.b."
ANSWER = {
    "violation": 1,
    "policy_category": "SP2",
    "rule_ids": ["SP2.b"],
    "confidence": "high",
    "rationale": "An advert for rings, unrelated to anything asked.",
}


@pytest.fixture
def stand_in_server() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            received.append(body)
            reply = {
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
                            "tool_calls": [],
                        },
                    }
                ],
                "usage": {"prompt_tokens": 412, "completion_tokens": 57, "total_tokens": 469},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()


def _check(base_url: str, *args: str):
    return manage(
        "safeguard_check",
        *args,
        env={
            "DATABASE_URL": workers.test_database_url(),
            "MIGRATION_DATABASE_URL": "",
            "SAFEGUARD_BASE_URL": base_url,
            "SAFEGUARD_BACKEND": "openai",
            "SAFEGUARD_MODEL": "openai/gpt-oss-safeguard-20b",
            "SAFEGUARD_MAX_RETRIES": "0",
        },
    )


def test_safeguard_check_prints_the_parsed_answer_and_the_cited_rules_with_their_text(
    stand_in_server, spam_policy
):
    base_url, received = stand_in_server
    result = _check(base_url, "--policy", "spam", "--text", "Buy gold rings here!")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Prompt: 412 tokens" in out
    assert REASONING in out
    assert "Answer: VIOLATES; category SP2; confidence high" in out
    assert "Rationale: An advert for rings, unrelated to anything asked." in out
    assert "Cited rules:\n  SP2.b: " in out
    assert 'Irrelevant ads - "Buy gold rings here!"' in out  # the rule's own text
    # What the model was sent: this policy version's text, and the author's text as the case.
    [request] = received
    sent = "\n".join(str(message.get("content")) for message in request["messages"])
    assert "SP2.b Irrelevant ads" in sent and "Buy gold rings here!" in sent


def test_policy_version_picks_an_older_version(stand_in_server, spam_policy):
    base_url, received = stand_in_server
    builders.make_policy(text=spam_policy.text + '\nSP4.a Chain letters - "forward this"\n')
    result = _check(base_url, "--policy", "spam", "--policy-version", "1", "--text", "Hi")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SP4.a" not in "\n".join(str(m.get("content")) for m in received[0]["messages"])
    result = _check(base_url, "--policy", "spam", "--text", "Hi")
    assert "SP4.a Chain letters" in "\n".join(
        str(m.get("content")) for m in received[1]["messages"]
    )


@pytest.mark.parametrize(
    "args, problem",
    [
        (("--policy", "nope", "--text", "x"), "no policy with slug 'nope' (policies: spam)"),
        (("--policy", "spam", "--policy-version", "9", "--text", "x"), "has no version 9"),
        (("--policy", "spam"), "give exactly one of --text or --file"),
    ],
)
def test_safeguard_check_names_the_problem(stand_in_server, spam_policy, args, problem):
    base_url, received = stand_in_server
    result = _check(base_url, *args)
    assert result.returncode == 1
    assert problem in result.stderr
    assert "Traceback" not in result.stderr
    assert received == []
