"""The embedded policy's network: a GRU over the action history plus field, time and chat
embeddings, into an MLP with a type head and a template head."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from selective_autonomy.inference.embedded_config import ModelConfig
from selective_autonomy.inference.feature_encoder import FeatureEncoder

PAD = 0
"""Padding index of the action and token embeddings."""


def _type_log_probs(logits: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.masked_fill(invalid, -math.inf), dim=-1)


def _grouped_log_softmax(logits: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """log-softmax of each template among the templates of its own action type.

    Stabilised with each group's max (detached: the shift cancels, so gradients are unchanged);
    every group holds its maximum, so no sum is ever zero.
    """
    batch = logits.shape[0]
    index = groups.expand(batch, -1)
    shift = torch.full((batch, n_groups), -math.inf, dtype=logits.dtype)
    shift = shift.scatter_reduce(1, index, logits.detach(), reduce="amax", include_self=True)
    shifted = logits - shift.gather(1, index)
    sums = torch.zeros((batch, n_groups), dtype=logits.dtype).index_add(1, groups, shifted.exp())
    return shifted - sums.gather(1, index).log()


class PolicyNet(nn.Module):
    """History GRU + field/time/chat embeddings -> MLP -> (type log-probs, template log-probs given type)."""

    def __init__(
        self,
        encoder: FeatureEncoder,
        config: ModelConfig,
        n_tokens: int,
        template_types: Sequence[int],
    ) -> None:
        super().__init__()
        dims = encoder.dims
        self.n_actions = dims["action_vocab"]
        self.action_embedding = nn.Embedding(self.n_actions, config.action_dim, padding_idx=PAD)
        self.token_embedding = nn.Embedding(n_tokens, config.action_dim, padding_idx=PAD)
        self.gru = nn.GRU(config.action_dim, config.gru_hidden, batch_first=True)
        self.categorical = nn.ModuleList(nn.Embedding(size, config.categorical_dim) for size in encoder.cardinalities)
        self.numeric = nn.Sequential(nn.Linear(dims["numeric"], config.numeric_dim), nn.ReLU())
        self.chat = nn.EmbeddingBag(dims["chat_vocab"], config.chat_dim, mode="mean", padding_idx=PAD)
        width = (
            config.gru_hidden
            + config.action_dim
            + config.categorical_dim * len(encoder.cardinalities)
            + config.numeric_dim
            + config.chat_dim
        )
        self.trunk = nn.Sequential(
            nn.Linear(width, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
        )
        self.type_head = nn.Linear(config.hidden, self.n_actions)
        self.template_head = nn.Linear(config.hidden, len(template_types))
        self.invalid: torch.Tensor
        self.template_type: torch.Tensor
        self.register_buffer("invalid", torch.from_numpy(~encoder.valid_action_mask()), persistent=False)
        self.register_buffer("template_type", torch.tensor(list(template_types), dtype=torch.long), persistent=False)

    def forward(
        self,
        history: torch.Tensor,
        tokens: torch.Tensor,
        categorical: torch.Tensor,
        numeric: torch.Tensor,
        chat: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.action_embedding(history) + self.token_embedding(tokens)
        _, last_hidden = self.gru(steps)
        parts = [last_hidden[-1], steps[:, -1]]
        parts += [embedding(categorical[:, i]) for i, embedding in enumerate(self.categorical)]
        parts += [self.numeric(numeric), self.chat(chat)]
        hidden = self.trunk(torch.cat(parts, dim=1))
        type_lp = _type_log_probs(self.type_head(hidden), self.invalid)
        template_lp = _grouped_log_softmax(self.template_head(hidden), self.template_type, self.n_actions)
        return type_lp, template_lp


def policy_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    *inputs, type_target, template_target = batch
    type_lp, template_lp = model(*inputs)
    loss = F.nll_loss(type_lp, type_target)
    known = template_target >= 0
    if bool(known.any()):
        loss = loss + F.nll_loss(template_lp[known], template_target[known])
    return loss
