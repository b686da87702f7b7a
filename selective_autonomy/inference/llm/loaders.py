"""Loaders for artefact kinds ``policy-llm`` and ``critic-llm``: server-backed models.

Loading reads only ``artefact.json`` and ``tokenizer.json``; no torch, no weights, no request to
the server, so a worker starts even while vLLM is still warming up (requests then raise
:class:`ModelUnavailable` and the steps are deferred until it answers).
"""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.inference.llm.critic import CRITIC_KIND, LLMCritic
from selective_autonomy.inference.llm.policy import POLICY_KIND, LLMPolicy
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.loaders import ModelLoaders
from selective_autonomy.inference.protocol import Critic, Policy
from selective_autonomy.schemas.process import ProcessSchema


def llm_loaders(policy: LLMClientSettings, critic: LLMClientSettings) -> ModelLoaders:
    """The loaders of both kinds; each model has its own server (one vLLM serves one model)."""

    def load_policy(directory: Path, schema: ProcessSchema) -> Policy:
        return LLMPolicy.load(directory, schema, policy)

    def load_critic(directory: Path, schema: ProcessSchema) -> Critic:
        return LLMCritic.load(directory, schema, critic)

    return ModelLoaders(policies={POLICY_KIND: load_policy}, critics={CRITIC_KIND: load_critic})
