"""Session fixtures for the safeguard engine's tests: the offline tokenizer and tiny checkpoints.

The builders live in `tests/safeguard_fixtures.py` so the Django integration tests and the
benchmark use the very same cached artefacts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) doesn't add the cwd
    sys.path.insert(0, str(REPO_ROOT))

from tests import safeguard_fixtures  # noqa: E402


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """The tiny models run many small ops: on a shared 2-core CI machine a second intra-op thread
    mostly waits for a descheduled peer (10x slower decoding). Outputs don't depend on it."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiktoken_dir() -> Path:
    return safeguard_fixtures.use_offline_tiktoken()


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return safeguard_fixtures.build_tokenizer_dir()


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path):  # noqa: ANN201 - a transformers tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def harmony_encoding(tiktoken_dir: Path):  # noqa: ANN201
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    return safeguard_fixtures.build_tiny_checkpoint()


@pytest.fixture(scope="session")
def tiny_mxfp4_checkpoint() -> Path:
    return safeguard_fixtures.build_tiny_mxfp4_checkpoint()
