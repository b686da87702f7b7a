"""The from-scratch byte-level BPE: lossless round trip, BOS/EOS/pad, chat template, cheap counting."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the llm extra is not installed")

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from selective_autonomy.inference.llm.prompts import (
    ASSISTANT,
    USER,
    TokenCount,
    critic_prompt,
    policy_prompt,
)
from selective_autonomy.inference.llm.tokenizer import BOS, EOS, PAD, train_tokenizer
from selective_autonomy.schemas.view import render_view

from .conftest import Helpdesk

ODD_TEXTS = [
    '{"chat":[{"speaker":"customer","text":"Привет! Где мой заказ? 🚚"}]}',
    "tabs\tand\nnewlines  and   spaces",
    "日本語のテキスト and ünïcödé",
    "",
]


@pytest.fixture(scope="module")
def tokenizer(helpdesk: Helpdesk) -> PreTrainedTokenizerFast:
    views = [render_view(e, helpdesk.schema).text for e in helpdesk.events(120)]
    return train_tokenizer([policy_prompt(v) for v in views], vocab_size=400)


def test_round_trip_is_lossless(tokenizer: PreTrainedTokenizerFast, helpdesk: Helpdesk) -> None:
    texts = [policy_prompt(render_view(e, helpdesk.schema).text) for e in helpdesk.events(20)] + ODD_TEXTS
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert tokenizer.unk_token_id not in ids or tokenizer.unk_token_id is None


def test_special_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, PAD)
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    ids = tokenizer("hello")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == "hello"


def test_the_chat_markers_are_single_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    ids = tokenizer(policy_prompt("{}"), add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "<|user|>"


def test_the_vocabulary_learns_the_views(tokenizer: PreTrainedTokenizerFast, helpdesk: Helpdesk) -> None:
    text = render_view(helpdesk.events(1)[0], helpdesk.schema).text
    assert len(tokenizer(text)["input_ids"]) < len(text.encode()) / 2


def test_chat_template_renders_the_training_prompt(tokenizer: PreTrainedTokenizerFast) -> None:
    for prompt in (policy_prompt('{"a":1}'), critic_prompt("{}", '{"action_type":"x"}')):
        user = prompt.removeprefix(f"{USER}\n").removesuffix(f"\n{ASSISTANT}\n")
        assert user != prompt
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        assert rendered == prompt


def test_saved_tokenizer_reloads_and_counts_alike(tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    tokenizer.save_pretrained(str(tmp_path))
    again = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    count = TokenCount(tmp_path)
    for text in [policy_prompt('{"step":3}'), *ODD_TEXTS]:
        assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert count(text) == len(tokenizer(text)["input_ids"])
    assert again.chat_template == tokenizer.chat_template
