"""gpt-oss-safeguard engine (placeholder while the engine lands; rules are final)."""

from .rules import extract_rules

__all__ = ["extract_rules"]
