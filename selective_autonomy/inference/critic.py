"""The embedded critic: P(an operator accepts this action in this state), learned from feedback.

Inputs: the view's feature encoding (action history, fields, cluster, step, time, chat), the
proposed action's type and tier, and the policy's own signals (top-1 probability, margin,
entropy, rank and probability of the proposed action). A small torch MLP gives a logit; Platt
scaling fitted on held-out feedback makes the score a calibrated probability, which the
risk-controlled thresholds then act on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from selective_autonomy.inference.artefact import ArtefactMeta, new_version, read_meta, write_meta
from selective_autonomy.inference.feature_encoder import FeatureEncoder
from selective_autonomy.inference.feature_layout import EncodedBatch
from selective_autonomy.inference.protocol import Critic, CriticInput
from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.process import ProcessSchema

KIND = "critic-embedded"
TIERS = list(ActionTier)
N_SIGNALS = 6


def _signal_rows(items: Sequence[CriticInput]) -> np.ndarray:
    rows = []
    for item in items:
        s = item.signals
        rows.append(
            [
                s.top1_probability,
                s.margin,
                s.entropy,
                min(s.rank, 10) / 10.0,
                s.probability,
                math.log(max(s.probability, 1e-6)),
            ]
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(items), N_SIGNALS)


@dataclass(frozen=True)
class CriticConfig:
    embed_dim: int = 16
    hidden: int = 64
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 5e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 7


class CriticNet(nn.Module):
    def __init__(self, encoder: FeatureEncoder, config: CriticConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.action = nn.Embedding(encoder.n_actions, d, padding_idx=0)
        self.history = nn.Embedding(encoder.n_actions, d, padding_idx=0)
        self.categorical = nn.ModuleList(nn.Embedding(c, d) for c in encoder.cardinalities)
        self.chat = nn.EmbeddingBag(encoder.chat_buckets, d, mode="mean", padding_idx=0)
        self.tier = nn.Embedding(len(TIERS), d)
        width = d * (4 + len(encoder.cardinalities)) + len(encoder.numeric_names) + N_SIGNALS
        self.mlp = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history = self.history(batch["history"])
        mask = (batch["history"] > 0).unsqueeze(-1).float()
        pooled = (history * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        parts = [self.action(batch["action"]), pooled, self.tier(batch["tier"]), self.chat(batch["chat"])]
        parts += [emb(batch["categorical"][:, i]) for i, emb in enumerate(self.categorical)]
        parts += [batch["numeric"], batch["signals"]]
        out: torch.Tensor = self.mlp(torch.cat(parts, dim=1)).squeeze(1)
        return out


class EmbeddedCritic:
    """Scores (state, action) pairs; see the module docstring."""

    computes_locally: ClassVar[bool] = True
    """Torch or counting in this process: a call ends in milliseconds (see ``protocol.computes_locally``)."""

    def __init__(
        self,
        schema: ProcessSchema,
        encoder: FeatureEncoder,
        net: CriticNet,
        platt: tuple[float, float] = (1.0, 0.0),
        meta: ArtefactMeta | None = None,
        config: CriticConfig | None = None,
    ) -> None:
        self.schema = schema
        self.encoder = encoder
        self.net = net
        self.platt = platt
        self.meta = meta
        self.config = config or CriticConfig()

    @property
    def version(self) -> str:
        return self.meta.version if self.meta else f"{KIND}-untrained"

    def tensors(self, items: Sequence[CriticInput]) -> dict[str, torch.Tensor]:
        encoded: EncodedBatch = self.encoder.transform([item.event for item in items])
        return {
            "history": torch.from_numpy(encoded.history),
            "categorical": torch.from_numpy(encoded.categorical),
            "numeric": torch.from_numpy(encoded.numeric),
            "chat": torch.from_numpy(encoded.chat_tokens),
            "action": torch.tensor([self.encoder.action_index(i.action.action_type) for i in items]),
            "tier": torch.tensor([TIERS.index(i.tier) for i in items]),
            "signals": torch.from_numpy(_signal_rows(items)),
        }

    def logits(self, items: Sequence[CriticInput]) -> torch.Tensor:
        if self.net.training:  # eval() walks every submodule: about 0.1 ms on each decided batch
            self.net.eval()
        with torch.inference_mode():
            out: torch.Tensor = self.net(self.tensors(items))
        return out

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        if not items:
            return []
        a, b = self.platt
        return torch.sigmoid(a * self.logits(items) + b).tolist()

    def save(self, directory: Path, meta: ArtefactMeta) -> None:
        write_meta(directory, meta)
        torch.save(self.net.state_dict(), directory / "critic.pt")
        (directory / "encoder.json").write_text(self.encoder.to_json())
        (directory / "critic.json").write_text(json.dumps({"platt": list(self.platt), "config": self.config.__dict__}))
        self.meta = meta

    @classmethod
    def load(cls, directory: Path, schema: ProcessSchema) -> EmbeddedCritic:
        meta = read_meta(directory, schema, kind_prefix=KIND)
        encoder = FeatureEncoder.from_json((directory / "encoder.json").read_text(), schema)
        extra = json.loads((directory / "critic.json").read_text())
        config = CriticConfig(**extra["config"])
        net = CriticNet(encoder, config)
        net.load_state_dict(torch.load(directory / "critic.pt", weights_only=True))
        a, b = extra["platt"]
        return cls(schema, encoder, net, (float(a), float(b)), meta, config)

    def new_meta(
        self,
        train_examples: int,
        metrics: dict[str, float],
        train_from: datetime | None = None,
        train_to: datetime | None = None,
    ) -> ArtefactMeta:
        """``train_to``: the newest evidence the fit saw (training, early stopping, Platt): a
        certificate may only use evidence after it."""
        return ArtefactMeta(
            kind=KIND,
            version=new_version(KIND, f"{self.schema.schema_hash()}:{train_examples}:{sorted(metrics.items())}"),
            process_id=self.schema.process_id,
            schema_hash=self.schema.schema_hash(),
            train_from=train_from,
            train_to=train_to,
            train_examples=train_examples,
            metrics=metrics,
            params=dict(self.config.__dict__),
        )


def train_critic(
    schema: ProcessSchema,
    train: Sequence[CriticInput],
    train_labels: Sequence[bool],
    holdout: Sequence[CriticInput],
    holdout_labels: Sequence[bool],
    config: CriticConfig | None = None,
) -> EmbeddedCritic:
    """Fit the network on ``train`` with early stopping on ``holdout``, then Platt-scale on ``holdout``."""
    config = config or CriticConfig()
    torch.manual_seed(config.seed)
    encoder = FeatureEncoder.fit(schema, [item.event for item in [*train, *holdout]])
    net = CriticNet(encoder, config)
    critic = EmbeddedCritic(schema, encoder, net, config=config)
    x_train = critic.tensors(train)
    y_train = torch.tensor([float(v) for v in train_labels])
    x_hold = critic.tensors(holdout) if holdout else x_train
    y_hold = torch.tensor([float(v) for v in holdout_labels]) if holdout else y_train
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(config.seed)
    best_loss, best_state, stale = math.inf, {k: v.clone() for k, v in net.state_dict().items()}, 0
    for _epoch in range(config.epochs):
        net.train()
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(net({k: v[index] for k, v in x_train.items()}), y_train[index])
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.inference_mode():
            held = float(loss_fn(net(x_hold), y_hold))
        if held < best_loss - 1e-4:
            best_loss, best_state, stale = held, {k: v.clone() for k, v in net.state_dict().items()}, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    net.load_state_dict(best_state)
    critic.platt = _fit_platt(critic.logits(holdout) if holdout else critic.logits(train), y_hold)
    return critic


PLATT_MIN_SPREAD = 1e-6
"""Held-out logits closer together than this carry no order to keep: the fit is the base rate alone."""


def _fit_platt(logits: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> tuple[float, float]:
    """Platt scaling (a, b) by minimising the log loss of sigmoid(a * logit + b) on held-out data.

    Fitted on the logits standardised, then mapped back. Fixed-step LBFGS on raw logits diverged
    whenever they were nearly constant (a critic that says 0.99999 for everything: every scaled
    score exactly 0 or 1), wide or far from zero (NaN, or a slope of 1e13); docs/llm-critic.md has
    the measurements. Logits with no spread at all give a = 0 and b = the held-out base rate's
    logit: a constant critic, which is what such a critic is.
    """
    logits = logits.detach().clone().float()
    labels = labels.float()
    mean, spread = logits.mean(), logits.std(unbiased=False) if len(logits) > 1 else torch.zeros(())
    if float(spread) < PLATT_MIN_SPREAD:
        rate = float(labels.mean().clamp(1e-6, 1 - 1e-6)) if len(labels) else 0.5
        return 0.0, math.log(rate / (1 - rate))
    z = (logits - mean) / spread
    a = torch.ones(1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([a, b], lr=0.5, max_iter=steps)
    loss_fn = nn.BCEWithLogitsLoss()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss: torch.Tensor = loss_fn(a * z + b, labels)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    # a * (x - mean) / spread + b  ==  (a / spread) * x + (b - a * mean / spread)
    slope = float(a.item()) / float(spread)
    return slope, float(b.item()) - slope * float(mean)


class PlattScaled:
    """Another critic's scores recalibrated: ``sigmoid(a * logit(score) + b)``, fitted on held-out labels.

    For a critic whose raw score is a probability of its own making (the LLM critic's P(accept) from
    two answers' logprobs), so that its scores mean what the embedded critic's do before certification.
    Monotone for ``a > 0``, so it changes which threshold certifies, never the order of steps; a critic
    whose held-out scores do not vary gets ``a = 0``, the held-out accept rate for every step.
    """

    def __init__(self, inner: Critic, platt: tuple[float, float]) -> None:
        self.inner = inner
        self.platt = platt

    @property
    def version(self) -> str:
        return self.inner.version

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        a, b = self.platt
        logits = _logit(self.inner.score(items))
        return torch.sigmoid(a * logits + b).tolist()

    @classmethod
    def fit(cls, inner: Critic, items: Sequence[CriticInput], labels: Sequence[bool]) -> PlattScaled:
        """Platt-scale ``inner`` on ``items`` and their ``labels`` (identity when there are none)."""
        if not items:
            return cls(inner, (1.0, 0.0))
        scores = _logit(inner.score(items))
        return cls(inner, _fit_platt(scores, torch.tensor([float(v) for v in labels])))


def _logit(probabilities: Sequence[float], eps: float = 1e-6) -> torch.Tensor:
    p = torch.tensor(list(probabilities), dtype=torch.float32).clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)
