"""The shared training loop and the example builders."""

from __future__ import annotations

import torch
from torch import nn

from selective_autonomy.inference.datasets import ProcessCases, case_examples, log_label, split_processes
from selective_autonomy.inference.training import TrainConfig, chronological_holdout, fit, seed_everything

from .support import synthetic_cases, synthetic_schema


def test_holdout_is_the_latest_cases() -> None:
    cases = synthetic_cases(20)
    early, late = chronological_holdout(list(reversed(cases)), 0.15)
    assert [c.case_id for c in late] == [c.case_id for c in cases[-3:]]
    assert max(c.started_at for c in early) < min(c.started_at for c in late)
    assert chronological_holdout(cases[:1], 0.5) == (cases[:1], [])


def test_fit_stops_early_and_keeps_the_best_epoch() -> None:
    seed_everything(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    model = nn.Linear(3, 1)

    def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return nn.functional.mse_loss(m(batch[0]).squeeze(1), batch[1])

    # Validation targets the model cannot fit: it stops once they stop improving.
    config = TrainConfig(max_epochs=200, patience=3, learning_rate=0.05, progress=False)
    report = fit(model, loss, (x, y), (x, -y), config, desc="test")
    assert report.epochs < 200
    assert report.best_epoch == report.epochs - config.patience
    assert report.best_val_loss < float("inf")


def test_examples_pair_each_state_with_its_action() -> None:
    cases = synthetic_cases(3)
    examples = case_examples(cases)
    assert len(examples) == 12
    assert examples.events[1].ui_state.recent_actions == [examples.targets[0]]
    assert examples.events[4].session_id == cases[1].case_id


def test_split_per_process() -> None:
    processes = [
        ProcessCases(schema=synthetic_schema(), cases=synthetic_cases(10)),
        ProcessCases(schema=synthetic_schema(), cases=synthetic_cases(1)),
    ]
    (split,) = split_processes(processes)
    assert (len(split.train), len(split.val), len(split.test)) == (6, 2, 2)
    assert log_label("sgd-dev") == "sgd-dev"
    assert log_label("/x/Helpdesk.xes.gz") == "Helpdesk"
