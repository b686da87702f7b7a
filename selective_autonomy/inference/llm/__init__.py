"""LLM policy and critic: fine-tuned causal LMs served by vLLM's OpenAI-compatible server.

``settings``, ``prompts``, ``client``, ``policy``, ``critic``, ``loaders``, ``sft_config`` and
``sft_data`` need only pydantic and httpx (``tokenizers`` when prompts are fitted), so workers import
them cheaply. Training (``tokenizer``, ``sft`` with ``sft_models`` and ``sft_loop``; torch,
transformers, peft) and serving (``server``; vLLM in a subprocess) need the ``llm`` extra and are
imported only where used.
"""

from selective_autonomy.inference.llm.critic import CRITIC_KIND, LLMCritic
from selective_autonomy.inference.llm.policy import POLICY_KIND, LLMPolicy
from selective_autonomy.inference.llm.settings import LLMClientSettings

__all__ = ["CRITIC_KIND", "POLICY_KIND", "LLMClientSettings", "LLMCritic", "LLMPolicy"]
