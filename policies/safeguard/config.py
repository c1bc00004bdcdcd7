"""How the engine is configured, and whether it can run at all with that configuration.

`EngineConfig` is a frozen value (hashable, so engines can be cached per config); `from_env`
is the one reader of the `SAFEGUARD_*` variables (the names in the README's configuration table),
for the worker and the web process alike. `unavailable_reason` answers
"can this run here?" cheaply and without side effects: it never imports torch for the server
backend and never loads a model.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BACKENDS = ("auto", "transformers", "openai")
DEVICES = ("auto", "cuda", "cpu")
EFFORTS = ("low", "medium", "high")
# Names the engine once read that the README never listed: refused, so a stale one isn't ignored.
_RENAMED = {"SAFEGUARD_TIMEOUT_S": "SAFEGUARD_TIMEOUT_SECONDS"}


@dataclass(frozen=True)
class EngineConfig:
    backend: str = "auto"  # "auto" | "transformers" | "openai"; auto = openai when base_url is set
    model: str = "openai/gpt-oss-safeguard-20b"  # hub id or local path (transformers); server model name (openai)
    base_url: str = ""  # OpenAI-compatible server, e.g. http://gpu-host:8000/v1
    api_key: str = ""
    reasoning_effort: str = "medium"  # used when the policy version doesn't set one
    max_new_tokens: int = 2048
    timeout_s: float = 120
    max_concurrency: int = 8
    max_retries: int = 3
    device: str = "auto"  # "auto" | "cuda" | "cpu"; CPU only when asked for explicitly
    batch_size: int = 8  # in-process: slots of the in-flight batch (see docs/safeguard-engine.md)

    @property
    def resolved_backend(self) -> str:
        if self.backend == "auto":
            return "openai" if self.base_url else "transformers"
        return self.backend

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """The one reader of the engine's settings: the `SAFEGUARD_*` variables of the README's
        configuration table (unset or empty ones keep the defaults).

        A value that is not valid raises ValueError naming the variable and what it accepts, so a
        worker or web process with a typo fails at start, not on its first draft.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        for old, new in _RENAMED.items():
            if env.get(old, "").strip():
                raise ValueError(f"{old} is not a setting: set {new} instead.")

        def get(name: str, default: object) -> str:
            value = env.get(f"SAFEGUARD_{name}", "")
            return value.strip() if value and value.strip() else str(default)

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = get(name, default).lower()
            if value not in allowed:
                raise ValueError(
                    f"SAFEGUARD_{name} is {value!r}: set it to one of {', '.join(allowed)}."
                )
            return value

        def number(name: str, default: float, minimum: float, kind: type = int) -> Any:
            raw = get(name, default)
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"SAFEGUARD_{name} is {raw!r}: set it to a number.") from None
            if value < minimum:
                raise ValueError(f"SAFEGUARD_{name} is {raw}: it must be at least {minimum}.")
            return value

        return cls(
            backend=choice("BACKEND", defaults.backend, BACKENDS),
            model=get("MODEL", defaults.model),
            base_url=get("BASE_URL", defaults.base_url).rstrip("/"),
            api_key=get("API_KEY", defaults.api_key),
            reasoning_effort=choice("REASONING_EFFORT", defaults.reasoning_effort, EFFORTS),
            max_new_tokens=number("MAX_NEW_TOKENS", defaults.max_new_tokens, 16),
            timeout_s=number("TIMEOUT_SECONDS", defaults.timeout_s, 1, float),
            max_concurrency=number("MAX_CONCURRENCY", defaults.max_concurrency, 1),
            max_retries=number("MAX_RETRIES", defaults.max_retries, 0),
            device=choice("DEVICE", defaults.device, DEVICES),
            batch_size=number("BATCH_SIZE", defaults.batch_size, 1),
        )


def unavailable_reason(config: EngineConfig) -> str | None:
    """None when the engine can run with `config`; otherwise one sentence naming the setting to fix.

    For the server backend this only checks the configuration (a server that is down shows up as
    a BACKEND_ERROR draft instead); it never imports torch there.
    """
    if config.backend not in BACKENDS:
        return f"SAFEGUARD_BACKEND is {config.backend!r}: set it to auto, transformers or openai."
    if config.reasoning_effort not in ("low", "medium", "high"):
        return f"SAFEGUARD_REASONING_EFFORT is {config.reasoning_effort!r}: set it to low, medium or high."
    if config.max_new_tokens < 1 or config.batch_size < 1 or config.max_concurrency < 1:
        return "SAFEGUARD_MAX_NEW_TOKENS, SAFEGUARD_BATCH_SIZE and SAFEGUARD_MAX_CONCURRENCY must be at least 1."
    if config.resolved_backend == "openai":
        if not config.base_url:
            return "The openai backend has no server: set SAFEGUARD_BASE_URL to an OpenAI-compatible server (vLLM, Ollama)."
        if not config.base_url.startswith(("http://", "https://")):
            return f"SAFEGUARD_BASE_URL is {config.base_url!r}: set it to an http:// or https:// URL ending in /v1."
        return None
    if not config.model:
        return "No model is configured: set SAFEGUARD_MODEL to a Hugging Face model id or a local checkpoint path."
    if config.device not in DEVICES:
        return f"SAFEGUARD_DEVICE is {config.device!r}: set it to auto, cuda or cpu."
    if (
        importlib.util.find_spec("torch") is None
        or importlib.util.find_spec("transformers") is None
    ):
        return (
            "The transformers backend needs torch and transformers in the worker: install them "
            "(pip install torch transformers accelerate) or set SAFEGUARD_BASE_URL to a model server."
        )
    if config.device == "cpu":
        return None
    import torch  # lazily: only the in-process backend needs it

    if torch.cuda.is_available():
        return None
    if config.device == "cuda":
        return "SAFEGUARD_DEVICE is cuda but this worker sees no CUDA GPU: run the worker on a CUDA machine or set SAFEGUARD_BASE_URL to a model server."
    return (
        "No GPU and no model server is configured: set SAFEGUARD_BASE_URL to an OpenAI-compatible "
        "server (vLLM, Ollama) or run the worker on a CUDA machine."
    )
