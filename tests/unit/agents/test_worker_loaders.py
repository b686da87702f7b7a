"""The worker is the composition root of the model loaders: LLM kinds only with a server to ask."""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.agents.worker import build_worker, llm_client_settings, model_loaders
from selective_autonomy.config import InferenceSettings, Settings, WorkerSettings
from selective_autonomy.inference.llm import CRITIC_KIND, POLICY_KIND

BUILTIN_POLICIES = {"policy-ngram", "policy-embedded"}


def test_without_an_inference_url_only_the_builtin_kinds_load() -> None:
    loaders = model_loaders(Settings().inference)
    assert set(loaders.policies) == BUILTIN_POLICIES
    assert set(loaders.critics) == {"critic-embedded"}


def test_with_an_inference_url_the_llm_kinds_load_too() -> None:
    settings = Settings(inference=InferenceSettings(url="http://vllm:8000/v1", critic_url="http://critic:8000/v1"))
    loaders = model_loaders(settings.inference)
    assert set(loaders.policies) == {*BUILTIN_POLICIES, POLICY_KIND}
    assert set(loaders.critics) == {"critic-embedded", CRITIC_KIND}
    # Nothing global changed: the next deployment without a URL does not see the LLM kinds.
    assert POLICY_KIND not in model_loaders(Settings().inference).policies


def test_the_decide_agent_and_the_learning_loop_share_one_registry(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        models_dir=tmp_path / "models",
        inference=InferenceSettings(url="http://vllm:8000/v1"),
        worker=WorkerSettings(learning=True),
    )
    worker = build_worker(settings)
    assert worker.feedback is not None and worker.feedback.scheduler is not None
    registry = worker.models.registry
    assert POLICY_KIND in registry.loaders.policies
    assert worker.feedback.traces is not None and worker.feedback.traces.registry is registry
    assert worker.feedback.scheduler.loop_factory().registry is registry


def test_the_critic_is_asked_at_the_policy_url_unless_it_has_its_own() -> None:
    # One LoRA-enabled vLLM serves every process's policy and critic adapters under their versions.
    policy, critic = llm_client_settings(InferenceSettings(url="http://vllm:8000/v1", timeout_s=3.0))
    assert policy.url == critic.url == "http://vllm:8000/v1"
    assert policy.model is None and critic.model is None  # each artefact is asked for by its version
    assert critic.timeout_s == 3.0
    limited = llm_client_settings(InferenceSettings(max_prompts_per_request=32))
    assert [c.max_prompts_per_request for c in limited] == [32, 32]
    policy, critic = llm_client_settings(
        InferenceSettings(url="http://vllm:8000/v1", critic_url="http://critic:8000/v1", critic_model="c")
    )
    assert (policy.url, critic.url, critic.model) == ("http://vllm:8000/v1", "http://critic:8000/v1", "c")
