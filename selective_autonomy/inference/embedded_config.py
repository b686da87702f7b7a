"""Settings of the embedded policy: network sizes, training, and fine-tuning on operator feedback.

Plain pydantic, no torch: the CLI and the learning settings read them without loading a model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.inference.training import TrainConfig


class ModelConfig(BaseModel):
    """Sizes of the network and of what is learned from the training cases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_history: int = Field(default=8, ge=1, description="Most recent actions the GRU reads.")
    action_dim: int = Field(default=32, ge=1)
    gru_hidden: int = Field(default=64, ge=1)
    categorical_dim: int = Field(default=8, ge=1)
    numeric_dim: int = Field(default=16, ge=1)
    chat_dim: int = Field(default=32, ge=1)
    hidden: int = Field(default=128, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    max_tokens: int = Field(default=256, ge=0, description="History tokens (type + discrete arguments) embedded.")
    max_templates: int = Field(default=512, ge=1, description="Argument templates kept (most frequent first).")
    min_count: int = Field(default=2, ge=1, description="Occurrences a token or template needs to be kept.")


class EmbeddedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class UpdateConfig(BaseModel):
    """Fine-tuning settings of :meth:`EmbeddedPolicy.updated_with`; frozen, recorded in the artefact.

    A third of training's learning rate and at most 10 epochs, early-stopped: the update should move
    the trained weights towards what operators endorsed, not re-learn the process from a few
    hundred examples. Small batches because feedback sets are small: at 256 a batch, 160 examples
    are one step an epoch, too few to overturn a confident habit. Chosen on Helpdesk and on the
    synthetic correction of the unit tests; the numbers are in :meth:`EmbeddedPolicy.updated_with`.

    :param max_epochs: passes over the feedback at most (default 10; early stopping usually ends sooner).
    :param learning_rate: AdamW step size (default 1e-3; training uses 3e-3).
    :param weight_decay: AdamW weight decay (default 1e-4, as in training).
    :param batch_size: rows per step (default 32).
    :param patience: epochs without validation improvement before stopping (default 2).
    :param val_fraction: newest share of the examples (by event time) held out to stop on (default 0.2).
    :param seed: seeds batch order and dropout, so the same examples give the same weights (default 0).
    :param progress: show a progress bar (default off: the learning loop runs unattended).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_epochs: int = Field(default=10, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    batch_size: int = Field(default=32, ge=1)
    patience: int = Field(default=2, ge=1)
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = 0
    progress: bool = False
