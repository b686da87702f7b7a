"""Model loaders are injected into the registry: each registry loads the kinds it was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.inference.artefact import ArtefactError, ArtefactMeta, write_meta
from selective_autonomy.inference.loaders import ModelLoaders, builtin_loaders
from selective_autonomy.inference.protocol import Policy, PolicyConfidenceCritic
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.process import ProcessSchema

SCHEMA = ProcessSchema(process_id="helpdesk")


class _Marker:
    """Stands in for a loaded model: the test only asks which loader made it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory


def _registry_with_artefact(tmp_path: Path, kind: str, loaders: ModelLoaders | None = None) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models", loaders)
    registry.save_schema(SCHEMA)
    directory = registry.process_dir(SCHEMA.process_id) / "policy" / "v1"
    write_meta(
        directory, ArtefactMeta(kind=kind, version="v1", process_id="helpdesk", schema_hash=SCHEMA.schema_hash())
    )
    registry.publish(SCHEMA.process_id, ServicePointer(policy="policy/v1"))
    return registry


def _custom(directory: Path, schema: ProcessSchema) -> Policy:
    return _Marker(directory)  # type: ignore[return-value]


def test_a_registry_loads_the_kinds_it_was_given(tmp_path: Path) -> None:
    loaders = builtin_loaders().merged(ModelLoaders(policies={"policy-custom": _custom}))
    models = _registry_with_artefact(tmp_path, "policy-custom", loaders).load(SCHEMA.process_id)
    assert isinstance(models.policy, _Marker) and models.policy.directory.name == "v1"
    assert isinstance(models.critic, PolicyConfidenceCritic)


def test_another_registry_does_not_see_them(tmp_path: Path) -> None:
    # What one composition root injected is not global: a default registry still refuses the kind.
    builtin_loaders().merged(ModelLoaders(policies={"policy-custom": _custom}))
    registry = _registry_with_artefact(tmp_path, "policy-custom")
    with pytest.raises(ArtefactError, match="no policy loader for artefact kind 'policy-custom'"):
        registry.load(SCHEMA.process_id)


def test_loaders_are_read_only_copies() -> None:
    table = {"policy-custom": _custom}
    loaders = ModelLoaders(policies=table)
    table["policy-other"] = _custom
    assert set(loaders.policies) == {"policy-custom"}
    with pytest.raises(TypeError):
        loaders.policies["policy-other"] = _custom  # type: ignore[index]


def test_merged_prefers_the_other_loaders() -> None:
    builtin = builtin_loaders()
    merged = builtin.merged(ModelLoaders(policies={"policy-ngram": _custom}))
    assert merged.policies["policy-ngram"] is _custom
    assert builtin.policies["policy-ngram"] is not _custom
    assert set(merged.critics) == {"critic-embedded"}
