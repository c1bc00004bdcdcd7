"""How the engine is configured, and whether it can run at all with that configuration.

`EngineConfig` is a frozen value (hashable, so engines can be cached per config); `from_env`
reads the `SAFEGUARD_*` variables the worker is started with. `unavailable_reason` answers
"can this run here?" cheaply and without side effects: it never imports torch for the server
backend and never loads a model.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass

BACKENDS = ("auto", "transformers", "openai")
DEVICES = ("auto", "cuda", "cpu")


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
    batch_size: int = 8

    @property
    def resolved_backend(self) -> str:
        if self.backend == "auto":
            return "openai" if self.base_url else "transformers"
        return self.backend

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """Read SAFEGUARD_BACKEND, _MODEL, _BASE_URL, _API_KEY, _REASONING_EFFORT, _MAX_NEW_TOKENS,
        _TIMEOUT_S, _MAX_CONCURRENCY, _MAX_RETRIES, _DEVICE, _BATCH_SIZE; unset ones keep defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default: str) -> str:
            value = env.get(f"SAFEGUARD_{name}", "")
            return value.strip() if value and value.strip() else default

        return cls(
            backend=get("BACKEND", defaults.backend).lower(),
            model=get("MODEL", defaults.model),
            base_url=get("BASE_URL", defaults.base_url).rstrip("/"),
            api_key=get("API_KEY", defaults.api_key),
            reasoning_effort=get("REASONING_EFFORT", defaults.reasoning_effort).lower(),
            max_new_tokens=int(get("MAX_NEW_TOKENS", str(defaults.max_new_tokens))),
            timeout_s=float(get("TIMEOUT_S", str(defaults.timeout_s))),
            max_concurrency=int(get("MAX_CONCURRENCY", str(defaults.max_concurrency))),
            max_retries=int(get("MAX_RETRIES", str(defaults.max_retries))),
            device=get("DEVICE", defaults.device).lower(),
            batch_size=int(get("BATCH_SIZE", str(defaults.batch_size))),
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
