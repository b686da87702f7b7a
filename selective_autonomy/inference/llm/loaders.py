"""Loaders for artefact kinds ``policy-llm`` and ``critic-llm``: server-backed models.

Loading reads only ``artefact.json`` and ``tokenizer.json``; no torch, no weights. A whole model
needs no request to the server, so a worker starts even while vLLM is still warming up (requests
then raise :class:`ModelUnavailable` and the steps are deferred until it answers). A LoRA adapter
(trained with ``merge_lora=False``) is loaded into the running server as the worker loads the
artefact (a promoted version is served before its first request, with no server restart); when the
server cannot take it yet, the load is logged and retried by the first request that finds it missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from selective_autonomy.inference.llm.client import VLLMClient
from selective_autonomy.inference.llm.critic import CRITIC_KIND, LLMCritic
from selective_autonomy.inference.llm.policy import POLICY_KIND, LLMPolicy
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.loaders import ModelLoaders
from selective_autonomy.inference.protocol import Critic, ModelUnavailable, Policy
from selective_autonomy.schemas.process import ProcessSchema

log = logging.getLogger(__name__)


def llm_loaders(
    policy: LLMClientSettings, critic: LLMClientSettings, *, transport: httpx.BaseTransport | None = None
) -> ModelLoaders:
    """The loaders of both kinds. Whole models each have a server of their own; adapters of one base
    share a server (both settings may name the same url).

    :param transport: an httpx transport instead of the network (tests); default None.
    """

    def load_policy(directory: Path, schema: ProcessSchema) -> Policy:
        model = LLMPolicy.load(directory, schema, policy, transport=transport)
        load_adapter_if_any(model.client)
        return model

    def load_critic(directory: Path, schema: ProcessSchema) -> Critic:
        model = LLMCritic.load(directory, schema, critic, transport=transport)
        load_adapter_if_any(model.client)
        return model

    return ModelLoaders(policies={POLICY_KIND: load_policy}, critics={CRITIC_KIND: load_critic})


def load_adapter_if_any(client: VLLMClient) -> None:
    """Load the client's adapter into its server now; a server that cannot take it yet is logged,
    not fatal (the first request that finds the adapter missing loads it)."""
    if client.adapter is None:
        return
    try:
        client.load_adapter()
    except ModelUnavailable as error:
        log.warning("adapter %s not loaded yet, the first request will try again: %s", client.model, error)
