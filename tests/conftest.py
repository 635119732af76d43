"""Shared fixtures. ``fixture_data`` is a data directory in the official layouts, written by us (tests/fixtures/data);
MMLU-Pro's parquet is built here from tests/fixtures/mmlu_pro_rows.json so no binary file is committed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# The real benchmark files, beside the project as in CI (../shared/data), or wherever MEDRLVR_DATA_DIR says.
REAL_DATA = Path(os.environ.get("MEDRLVR_REAL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def write_mmlu_pro(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads((FIXTURES / "mmlu_pro_rows.json").read_text())
    (root / "mmlu_pro" / "data").mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        pq.write_table(pa.Table.from_pylist(items), root / "mmlu_pro" / "data" / f"{split}-00000-of-00001.parquet")


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(FIXTURES / "data", root, dirs_exist_ok=True)
    write_mmlu_pro(root)
    return root


@pytest.fixture
def data_copy(fixture_data, tmp_path) -> Path:
    """A private copy to corrupt."""
    shutil.copytree(fixture_data, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "README.md").exists():
        pytest.skip(f"real benchmark data not found at {REAL_DATA} (set MEDRLVR_REAL_DATA_DIR)")
    return REAL_DATA


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tiny_tokenizer():
    """A character-level tokenizer built in memory (no download): every printable ASCII character is a token."""
    import string

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    chars = sorted(set(string.printable))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=specials[4:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model(tokenizer, seed: int = 0):
    """A randomly initialised Llama-style model with grouped key/value heads, built from a config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random model saved as a normal checkpoint directory (safetensors), usable as a model reference."""
    path = tmp_path_factory.mktemp("tiny-model")
    tokenizer = make_tiny_tokenizer()
    make_tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
