"""Model loaders: artefact kind -> the function that loads an artefact of that kind.

A :class:`ModelLoaders` value is built once by a composition root (the worker, a deploy check) and
handed to :class:`~selective_autonomy.inference.registry.ModelRegistry`; nothing registers loaders
into a module-level table at run time, so two registries in one process (a test, the demo) never
see each other's loaders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from selective_autonomy.inference.artefact import ArtefactError, read_meta
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Critic, Policy
from selective_autonomy.schemas.process import ProcessSchema

PolicyLoader = Callable[[Path, ProcessSchema], Policy]
CriticLoader = Callable[[Path, ProcessSchema], Critic]


@dataclass(frozen=True)
class ModelLoaders:
    """The loaders a registry uses, per artefact kind; immutable (:meth:`with_loaders` makes a new one)."""

    policies: Mapping[str, PolicyLoader] = field(default_factory=dict)
    critics: Mapping[str, CriticLoader] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copied and read-only: whoever built the mappings cannot change a registry's loaders later.
        object.__setattr__(self, "policies", MappingProxyType(dict(self.policies)))
        object.__setattr__(self, "critics", MappingProxyType(dict(self.critics)))

    def merged(self, other: ModelLoaders) -> ModelLoaders:
        """These loaders and ``other``'s; a kind both have loads with ``other``'s loader."""
        return ModelLoaders({**self.policies, **other.policies}, {**self.critics, **other.critics})

    def load_policy(self, directory: Path, schema: ProcessSchema) -> Policy:
        kind = read_meta(directory, schema).kind
        if kind not in self.policies:
            raise ArtefactError(f"no policy loader for artefact kind {kind!r} ({directory})")
        return self.policies[kind](directory, schema)

    def load_critic(self, directory: Path, schema: ProcessSchema) -> Critic:
        kind = read_meta(directory, schema).kind
        if kind not in self.critics:
            raise ArtefactError(f"no critic loader for artefact kind {kind!r} ({directory})")
        return self.critics[kind](directory, schema)


def _load_ngram(directory: Path, schema: ProcessSchema) -> Policy:
    return NGramPolicy.load(directory, schema)


def _load_embedded_policy(directory: Path, schema: ProcessSchema) -> Policy:
    # torch is imported only when a torch model is loaded: readers of the registry (console,
    # `selauto status`) never pay for it.
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy

    return EmbeddedPolicy.load(directory, schema)


def _load_embedded_critic(directory: Path, schema: ProcessSchema) -> Critic:
    from selective_autonomy.inference.critic import EmbeddedCritic

    return EmbeddedCritic.load(directory, schema)


def builtin_loaders() -> ModelLoaders:
    """The kinds that load from the artefact alone: n-gram and embedded policies, the embedded critic.

    LLM kinds need the address of their server and are added by the composition root
    (:func:`selective_autonomy.inference.llm.loaders.llm_loaders`).
    """
    return ModelLoaders(
        policies={"policy-ngram": _load_ngram, "policy-embedded": _load_embedded_policy},
        critics={"critic-embedded": _load_embedded_critic},
    )
