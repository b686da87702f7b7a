"""A byte-level BPE tokenizer trained on the traces' own text, for the from-scratch development model.

Byte-level, so any text (Cyrillic chat, odd symbols) encodes without an unknown token. The
post-processor prepends ``<s>``, so ``tokenizer(prompt)``, ``tokenizer.json`` read by the
``tokenizers`` library and vLLM's own tokenization all count the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from selective_autonomy.inference.llm.prompts import ASSISTANT, CHAT_TEMPLATE, USER

PAD = "<pad>"
BOS = "<s>"
EOS = "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS, USER, ASSISTANT)


def train_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 1024, min_frequency: int = 2, model_max_length: int = 1024
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it for transformers (bos/eos/pad, chat template).

    :param vocab_size: at most this many tokens, the 256 byte symbols and the specials included; default 1024.
    :param min_frequency: a merge needs this many occurrences; default 2.
    :param model_max_length: recorded in the tokenizer config; default 1024.
    """
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    bos_id = core.token_to_id(BOS)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def prepare_base_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Make a pretrained model's tokenizer fit for training and serving with this package's prompts.

    It gets a pad token (its EOS when it has none), prepends BOS when it has one (a base model such
    as Gemma degenerates without it), and gets :data:`CHAT_TEMPLATE` when it has no template.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.bos_token_id is not None:
        ids = tokenizer("x")["input_ids"]
        if not ids or ids[0] != tokenizer.bos_token_id:
            tokenizer.add_bos_token = True
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer
