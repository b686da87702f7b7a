"""Which base an adapter belongs to: a fingerprint of the base's weights, recorded at training and at export.

A LoRA adapter is a small correction to one particular set of weights. Served on another base (a
newer release under the same directory name, another quantisation), vLLM accepts it as long as the
module names and the rank fit, and the policy and the critic then answer with confidence from weights
they were never trained on: the critic's scores, and so what the gate executes, would no longer be
what certification measured. The fingerprint is taken over the float32 weights training starts from
(after a GGUF is dequantised), so the GGUF and the checkpoint ``export_base`` writes from it share one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch

from selective_autonomy.inference.artefact import ArtefactError, ArtefactMeta

BASE_FILE = "selauto_base.json"
"""Written by ``export_base`` beside the checkpoint: the fingerprint of the weights it holds."""


def weights_fingerprint(model: torch.nn.Module) -> str:
    """``sha256:`` and 16 hex digits over every distinct weight tensor (name, dtype, shape, bytes).

    Tied weights (the output layer sharing the embedding) are counted once, under their first name,
    so a model and its saved copy, which stores tied weights once, agree.
    """
    digest = hashlib.sha256()
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for name, tensor in sorted(model.state_dict().items()):
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key in seen:
            continue
        seen.add(key)
        data = tensor.detach().contiguous().cpu()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    return f"sha256:{digest.hexdigest()[:16]}"


def write_base_file(out: Path, source: Path, fingerprint: str) -> None:
    (out / BASE_FILE).write_text(json.dumps({"source": source.name, "fingerprint": fingerprint}, indent=2) + "\n")


def recorded_fingerprint(base: Path) -> str | None:
    """The fingerprint ``export_base`` wrote beside a checkpoint, if it did."""
    recorded = base / BASE_FILE
    return str(json.loads(recorded.read_text())["fingerprint"]) if recorded.is_file() else None


def mismatched_adapters(metas: Iterable[ArtefactMeta], fingerprint: str) -> list[str]:
    """Versions of the adapters trained on other weights than ``fingerprint`` (adapters that recorded none,
    trained before fingerprints were kept, are let through: nothing says they are wrong)."""
    return [meta.version for meta in metas if meta.params.get("base_fingerprint") not in (None, fingerprint)]


def check_adapters(metas: Iterable[ArtefactMeta], fingerprint: str) -> None:
    """Refuse adapters that belong to another base (see the module's docstring)."""
    wrong = mismatched_adapters(metas, fingerprint)
    if wrong:
        raise ArtefactError(
            f"adapters {wrong} were trained on another base than the one served (fingerprint {fingerprint}): "
            "serve the base they were trained on (selauto llm export-base --base <their base>)"
        )
