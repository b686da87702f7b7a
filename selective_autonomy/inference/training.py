"""Shared torch training loop for the embedded models: seeding, chronological hold-out, early stopping.

Every embedded model (policy, critic) trains the same way: minibatch AdamW on the earlier cases,
early stopping on the latest ones, and the best epoch's weights kept. Validating on the *latest*
cases rather than a random sample mirrors deployment (train on the past, serve the future), so
early stopping picks the epoch that generalises forward in time.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm import tqdm

from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_order

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


class TrainConfig(BaseModel):
    """Optimisation settings; frozen so that what trained a model is what its artefact records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    patience: int = Field(default=4, ge=1, description="Epochs without validation improvement before stopping.")
    min_delta: float = Field(default=1e-4, ge=0.0, description="Smallest validation-loss drop that counts.")
    val_fraction: float = Field(default=0.12, gt=0.0, lt=1.0, description="Latest share of cases held out.")
    seed: int = 0
    threads: int = Field(default_factory=lambda: default_threads(), ge=1)
    progress: bool = True


def default_threads() -> int:
    """Intra-op threads for these models: one.

    Batches of a few hundred rows through a model this small leave nothing to parallelise, and on
    a shared machine (a worker next to other workers, CI) OpenMP threads spin-waiting for a busy
    core made a training step 10x slower than single-threaded in our measurements.
    """
    return 1


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a generator for shuffling that nothing else draws from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def chronological_holdout(cases: Sequence[Case], fraction: float) -> tuple[list[Case], list[Case]]:
    """The earliest cases to fit on and the latest ``fraction`` to stop on (at least one each when possible)."""
    ordered = chronological_order(cases)
    if len(ordered) < 2:
        return ordered, []
    n_val = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
    return ordered[: len(ordered) - n_val], ordered[len(ordered) - n_val :]


@dataclass(frozen=True, slots=True)
class TrainReport:
    """What the loop did: epochs run, the epoch kept, its validation loss, and wall time."""

    epochs: int
    best_epoch: int
    best_val_loss: float
    train_loss: float
    seconds: float


def _batches(tensors: Batch, batch_size: int, order: torch.Tensor | None) -> list[Batch]:
    n = int(tensors[0].shape[0])
    index = order if order is not None else torch.arange(n)
    return [tuple(t[index[i : i + batch_size]] for t in tensors) for i in range(0, n, batch_size)]


def _mean_loss(model: nn.Module, loss_fn: LossFn, tensors: Batch, batch_size: int) -> float:
    n = int(tensors[0].shape[0])
    if n == 0:
        return math.nan
    model.eval()
    total = 0.0
    with torch.no_grad():
        for batch in _batches(tensors, batch_size, None):
            total += float(loss_fn(model, batch)) * int(batch[0].shape[0])
    return total / n


def fit(model: nn.Module, loss_fn: LossFn, train: Batch, val: Batch, config: TrainConfig, desc: str) -> TrainReport:
    """Train ``model`` in place and leave it holding the weights of its best validation epoch.

    ``loss_fn(model, batch)`` returns the mean loss of a batch of rows taken from ``train``/``val``
    (tuples of tensors sharing their first dimension). Without validation rows the last epoch is
    kept and the loop runs ``max_epochs``.
    """
    torch.set_num_threads(config.threads)
    generator = seed_everything(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    n = int(train[0].shape[0])
    best_state = copy.deepcopy(model.state_dict())
    best_loss, best_epoch, stale, epoch, train_loss = math.inf, 0, 0, 0, math.nan
    started = time.perf_counter()
    bar = tqdm(range(1, config.max_epochs + 1), desc=desc, unit="epoch", disable=not config.progress, leave=False)
    for epoch in bar:
        model.train()
        total = 0.0
        for batch in _batches(train, config.batch_size, torch.randperm(n, generator=generator)):
            optimiser.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * int(batch[0].shape[0])
        train_loss = total / max(1, n)
        val_loss = _mean_loss(model, loss_fn, val, config.batch_size)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if math.isnan(val_loss) or val_loss < best_loss - config.min_delta:
            best_loss = val_loss if not math.isnan(val_loss) else math.inf
            best_epoch, stale = epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainReport(
        epochs=epoch,
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        train_loss=train_loss,
        seconds=time.perf_counter() - started,
    )
