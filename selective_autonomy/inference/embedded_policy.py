"""The embedded policy: a compact torch model over :class:`FeatureEncoder` output (the default policy).

What it sees that the n-gram baseline cannot: field values (categorical and numeric), the time of
the case, the chat tail (hashed word bag) and a longer action history. A GRU reads the history of
action types (each position also embeds the action with its enum and boolean arguments, when that is
frequent), and the other inputs are embedded and concatenated into an MLP with two heads:

* **type head**, logits over the encoder's action index space, schema-invalid indices (padding,
  unknown) masked to ``-inf``: ``P(action type)``;
* **template head**, ``P(argument template | action type)`` over the argument templates seen in
  training. A template keeps each argument either as a constant or as "copy the value of field X
  from the screen", so a service call is proposed with the values the user gave, not the values of
  some earlier case. Argument-free actions have exactly one template, so on event logs this is a
  pure next-activity model.

A candidate's probability is ``P(type) * P(template | type)``; templates are filled from the
event's fields and each filled action is checked with :func:`is_valid_action` before it is
returned, so nothing the grammar rejects is ever proposed (``template_filler``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch

from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.inference.action_templates import (
    ActionTemplate,
    discrete_arguments,
    frequent,
    history_key,
    select_templates,
)
from selective_autonomy.inference.artefact import ArtefactError, ArtefactMeta, read_meta, write_meta
from selective_autonomy.inference.datasets import Examples, case_examples
from selective_autonomy.inference.embedded_config import EmbeddedConfig, ModelConfig, UpdateConfig
from selective_autonomy.inference.feature_encoder import FeatureEncoder
from selective_autonomy.inference.feature_layout import EncodedBatch
from selective_autonomy.inference.policy_net import PolicyNet, policy_loss
from selective_autonomy.inference.protocol import EndorsedExample, Proposal
from selective_autonomy.inference.template_filler import TemplateFiller
from selective_autonomy.inference.training import (
    TrainConfig,
    TrainReport,
    chronological_holdout,
    fit,
    seed_everything,
)
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import is_valid_action
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case

# The settings are imported from here by the CLI, the learning loop and the benchmarks.
__all__ = ["KIND", "EmbeddedConfig", "EmbeddedPolicy", "ModelConfig", "UpdateConfig"]

KIND = "policy-embedded"
WEIGHTS_FILE = "weights.pt"
ENCODER_FILE = "encoder.json"
CONFIG_FILE = "config.json"
ARTEFACT_FORMAT = 1

OTHER = 1
"""History token of an action outside the token vocabulary (its type is still embedded)."""

FloatArray = npt.NDArray[np.float32]


# -- network ----------------------------------------------------------------------------------


def _valid_examples(schema: ProcessSchema, cases: Sequence[Case]) -> Examples:
    examples = case_examples(cases)
    keep = [i for i, action in enumerate(examples.targets) if is_valid_action(schema, action)]
    return Examples(events=[examples.events[i] for i in keep], targets=[examples.targets[i] for i in keep])


def _endorsed(examples: Sequence[EndorsedExample]) -> Examples:
    return Examples(events=[e.event for e in examples], targets=[e.action for e in examples])


# -- the policy -------------------------------------------------------------------------------


class EmbeddedPolicy:
    """Torch next-action policy; build with :meth:`train` or :meth:`load`, then :meth:`propose`."""

    computes_locally: ClassVar[bool] = True
    """Torch or counting in this process: a call ends in milliseconds (see ``protocol.computes_locally``)."""

    def __init__(
        self,
        schema: ProcessSchema,
        encoder: FeatureEncoder,
        config: EmbeddedConfig,
        tokens: Sequence[str],
        templates: Sequence[ActionTemplate],
        meta: ArtefactMeta | None = None,
    ) -> None:
        self.schema = schema
        self.encoder = encoder
        self.config = config
        self.meta = meta
        self.tokens = list(tokens)
        self.templates = list(templates)
        self.report: TrainReport | None = None
        self.dropped_examples = 0
        self._token_index = {key: i + 2 for i, key in enumerate(self.tokens)}
        self._discrete = discrete_arguments(schema)
        self._template_index = {t: i for i, t in enumerate(self.templates)}
        types = [encoder.action_index(t.action_type) for t in self.templates]
        self.net = PolicyNet(encoder, config.model, len(self.tokens) + 2, types)
        self.net.eval()
        self._filler = TemplateFiller(schema, self.templates)

    @property
    def version(self) -> str:
        return self.meta.version if self.meta else f"{KIND}-untrained"

    # -- inputs ---------------------------------------------------------------------------------

    def _token_ids(self, events: Sequence[UIStateChanged]) -> npt.NDArray[np.int64]:
        width = self.encoder.max_history
        rows = np.zeros((len(events), width), dtype=np.int64)
        lookup, discrete = self._token_index, self._discrete
        for b, event in enumerate(events):
            recent = event.ui_state.recent_actions[-width:]
            offset = width - len(recent)
            for j, action in enumerate(recent):
                rows[b, offset + j] = lookup.get(history_key(action, discrete), OTHER)
        return rows

    def inputs(self, events: Sequence[UIStateChanged]) -> tuple[torch.Tensor, ...]:
        """The network's input tensors for a batch of events (encoding only, no forward pass)."""
        batch: EncodedBatch = self.encoder.transform(events)
        return (
            torch.from_numpy(batch.history),
            torch.from_numpy(self._token_ids(events)),
            torch.from_numpy(batch.categorical),
            torch.from_numpy(batch.numeric),
            torch.from_numpy(batch.chat_tokens),
        )

    def scores(self, events: Sequence[UIStateChanged]) -> FloatArray:
        """``P(type) * P(template | type)`` for every template: float32 [len(events), n_templates]."""
        with torch.inference_mode():
            type_lp, template_lp = self.net(*self.inputs(events))
            joint = (type_lp[:, self.net.template_type] + template_lp).exp()
        scores: FloatArray = joint.numpy()
        return scores

    # -- proposing ------------------------------------------------------------------------------

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        if not events:
            return []
        joint = self.scores(events)
        # Look a little beyond top_k: templates can fail to fill, and two can fill to the same action.
        depth = min(joint.shape[1], 2 * top_k + 6) if top_k > 0 else 0
        order = np.argsort(-joint, axis=1, kind="stable")[:, :depth]
        ranked = np.take_along_axis(joint, order, axis=1).tolist()
        return [
            Proposal(
                candidates=self._filler.candidates(indices, ranked[b], event.ui_state.fields, top_k),
                policy_version=self.version,
            )
            for b, (indices, event) in enumerate(zip(order.tolist(), events, strict=True))
        ]

    # -- training -------------------------------------------------------------------------------

    @classmethod
    def train(
        cls, schema: ProcessSchema, cases: Sequence[Case], config: EmbeddedConfig | None = None
    ) -> EmbeddedPolicy:
        """Fit encoder, vocabularies and weights on ``cases``; the latest ones are held out to stop early.

        Steps whose recorded action the grammar rejects are left out: a policy must never learn to
        propose them.
        """
        config = config or EmbeddedConfig()
        fit_cases, val_cases = chronological_holdout(cases, config.train.val_fraction)
        fit_part, val_part = _valid_examples(schema, fit_cases), _valid_examples(schema, val_cases)
        events, targets = fit_part.events + val_part.events, fit_part.targets + val_part.targets
        encoder = FeatureEncoder.fit(schema, events, max_history=config.model.max_history)
        discrete = discrete_arguments(schema)
        token_counts = Counter(history_key(a, discrete) for a in targets)
        tokens = frequent(token_counts, config.model.max_tokens, config.model.min_count)
        pairs = [(action, event.ui_state.fields) for event, action in zip(events, targets, strict=True)]
        templates = select_templates(schema, pairs, config.model.max_templates, config.model.min_count)
        seed_everything(config.train.seed)  # the initial weights too, not only the batch order
        policy = cls(schema, encoder, config, tokens, templates)
        policy.report = fit(
            policy.net,
            policy_loss,
            policy._tensors(fit_part),
            policy._tensors(val_part),
            config.train,
            desc=f"train {KIND} {schema.process_id}",
        )
        policy.dropped_examples = sum(len(c.steps) for c in cases) - len(events)
        return policy

    def _tensors(self, examples: Examples) -> tuple[torch.Tensor, ...]:
        """Inputs, type targets and template targets (-1: a template that is not a class)."""
        pairs = zip(examples.targets, examples.events, strict=True)
        return (
            *self.inputs(examples.events),
            torch.tensor([self.encoder.action_index(a.action_type) for a in examples.targets], dtype=torch.long),
            torch.tensor(
                [self._template_index.get(ActionTemplate.of(a, e.ui_state.fields), -1) for a, e in pairs],
                dtype=torch.long,
            ),
        )

    def updated_with(self, examples: Sequence[EndorsedExample], config: UpdateConfig | None = None) -> EmbeddedPolicy:
        """A new version fine-tuned from this one's weights on operator-endorsed (state, action) pairs.

        This policy is left untouched. The encoder, history tokens and argument templates are kept,
        so every index means in the new version what it meant in this one (and an action type or
        template never seen in training stays one the policy cannot propose). Endorsed actions the
        grammar rejects are left out, as in :meth:`train`; those whose template is not one of the
        classes still teach the type head (template target -1, as in :meth:`_tensors`). Both are
        counted in the new version's ``meta.params``. The newest ``val_fraction`` of the examples by
        event time is held out to stop early, with the shared :func:`fit` loop.

        Measured on Helpdesk (``bench/bench_policy_update.py``; 2 shared cores, one torch thread):
        trained on the first 40% of cases, the policy has top-1 0.788 on the last 30%; updated with
        the defaults on every step of the middle 30% (7,248 examples) it has 0.848, in 7.6 to 10 s
        over three runs (5 epochs, best 3), where retraining from scratch on the first 70% gives
        0.807 in 18 to 21 s. Helpdesk drifts (a policy trained on the middle 30% alone has 0.847),
        so most of that gain is recency. On the first 100 and 1,000 of those examples the defaults
        reach 0.847 and 0.848 in 0.2 s and 1.3 s. Training's learning rate (3e-3) lost up to 0.008
        top-1 on 1,000 examples; 3e-4 for 3 epochs of 64-row batches barely moved on 100 (0.791);
        64-row batches would halve the time on 7,248 at the same top-1, but the unit tests'
        synthetic correction (160 examples against a confident habit) then needs more epochs.

        :param examples: the endorsed pairs, in any order; the caller chooses which (nothing else is
            mixed in).
        :param config: fine-tuning settings (default :class:`UpdateConfig`).
        """
        config = config or UpdateConfig()
        # Chronological, ties broken by session and step, so the hold-out never depends on input order.
        usable = sorted(
            (e for e in examples if is_valid_action(self.schema, e.action)),
            key=lambda e: (e.event.timestamp, e.event.session_id, e.event.state_version),
        )
        n_val = min(len(usable) - 1, max(1, round(len(usable) * config.val_fraction))) if len(usable) >= 2 else 0
        fit_part, val_part = usable[: len(usable) - n_val], usable[len(usable) - n_val :]
        updated = EmbeddedPolicy(self.schema, self.encoder, self.config, self.tokens, self.templates)
        updated.net.load_state_dict(self.net.state_dict())  # copies the tensors: this policy keeps its own
        updated.dropped_examples = len(examples) - len(usable)
        if fit_part:
            train_config = TrainConfig(
                max_epochs=config.max_epochs,
                batch_size=config.batch_size,
                learning_rate=config.learning_rate,
                weight_decay=config.weight_decay,
                patience=config.patience,
                val_fraction=config.val_fraction,
                seed=config.seed,
                threads=self.config.train.threads,
                progress=config.progress,
            )
            updated.report = fit(
                updated.net,
                policy_loss,
                updated._tensors(_endorsed(fit_part)),
                updated._tensors(_endorsed(val_part)),
                train_config,
                desc=f"update {KIND} {self.schema.process_id}",
            )
        untemplated = sum(
            ActionTemplate.of(e.action, e.event.ui_state.fields) not in self._template_index for e in usable
        )
        updated.meta = self._update_meta(examples, usable, untemplated, config, updated.report)
        return updated

    def _update_meta(
        self,
        examples: Sequence[EndorsedExample],
        usable: Sequence[EndorsedExample],
        untemplated: int,
        config: UpdateConfig,
        report: TrainReport | None,
    ) -> ArtefactMeta:
        base = self.meta
        digest = hashlib.sha256()
        for example in usable:
            digest.update(f"{example.event.event_id}\x1f{example.action.canonical_json()}\n".encode())
        params: dict[str, Any] = {
            "config": self.config.model_dump(mode="json"),
            "tokens": len(self.tokens),
            "templates": len(self.templates),
            "base_version": self.version,
            "feedback_examples": len(examples),
            "rejected_examples": len(examples) - len(usable),
            "untemplated_examples": untemplated,
            "feedback_from": usable[0].event.timestamp.isoformat() if usable else None,
            "feedback_to": usable[-1].event.timestamp.isoformat() if usable else None,
            "update_config": config.model_dump(mode="json"),
        }
        if report is not None:
            params.update(
                update_epochs=report.epochs,
                update_best_epoch=report.best_epoch,
                update_seconds=round(report.seconds, 3),
            )
        return ArtefactMeta.of_update(
            KIND,
            self.schema,
            base,
            examples=len(usable),
            digest=f"{self.version}:{len(examples)}:{digest.hexdigest()}:{config.model_dump_json()}",
            params=params,
        )

    def train_meta(self, cases: Sequence[Case], metrics: dict[str, float] | None = None) -> ArtefactMeta:
        examples = sum(len(c.steps) for c in cases)
        report = self.report
        params: dict[str, Any] = {
            "config": self.config.model_dump(mode="json"),
            "tokens": len(self.tokens),
            "templates": len(self.templates),
            "dropped_examples": self.dropped_examples,
        }
        if report is not None:
            params.update(epochs=report.epochs, best_epoch=report.best_epoch, train_seconds=round(report.seconds, 3))
        return ArtefactMeta.of_cases(
            KIND,
            self.schema,
            cases,
            examples=examples,
            digest=f":{self.config.train.seed}",
            metrics=metrics,
            params=params,
        )

    # -- artefacts ------------------------------------------------------------------------------

    def save(self, directory: Path, meta: ArtefactMeta) -> None:
        """Write weights, encoder, config and metadata (metadata last is not needed: loaders read it first)."""
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        (directory / ENCODER_FILE).write_text(self.encoder.to_json())
        payload = {
            "format": ARTEFACT_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "tokens": self.tokens,
            "templates": [t.to_json() for t in self.templates],
        }
        (directory / CONFIG_FILE).write_text(json.dumps(payload, sort_keys=True))
        write_meta(directory, meta)
        self.meta = meta

    @classmethod
    def load(cls, directory: Path, schema: ProcessSchema) -> EmbeddedPolicy:
        """Load an artefact written by :meth:`save`; refuses one trained for another schema."""
        meta = read_meta(directory, schema, kind_prefix=KIND)
        try:
            payload = json.loads((directory / CONFIG_FILE).read_text())
            if payload["format"] != ARTEFACT_FORMAT:
                raise ArtefactError(f"{directory}: artefact format {payload['format']!r}, expected {ARTEFACT_FORMAT}")
            config = EmbeddedConfig.model_validate(payload["config"])
            templates = [ActionTemplate.from_json(t) for t in payload["templates"]]
            tokens = [str(t) for t in payload["tokens"]]
            encoder = FeatureEncoder.from_json((directory / ENCODER_FILE).read_text(), schema)
            state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise ArtefactError(f"{directory}: unreadable {KIND} artefact: {error}") from error
        # Process-wide, but a worker serves these models only: see training.default_threads for why 1.
        torch.set_num_threads(config.train.threads)
        policy = cls(schema, encoder, config, tokens, templates, meta=meta)
        policy.net.load_state_dict(state)
        policy.net.eval()
        return policy
