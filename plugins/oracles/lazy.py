"""What every oracle with weights of its own shares (BLIP-2, ViLT, Qwen2.5-VL): its `--oracle-model` (else its
published default, `tiny` for the tiny world's stand-in), loading on the first question with one line when the
weights are absent, what it may park on the CPU, and how many weights it has on disk before it loads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache
from safetensors import SafetensorError, safe_open

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.engine.errors import BackendError, UsageError, short_reason
from conceptlab.engine.models.offload import module_bytes
from conceptlab.plugins import tiny


class LazyOracle:
    """A subclass names itself (`name`, `title`), its `default_model`, how it answers (`answers`), and loads its
    processor and model in `load_weights`; this class loads them once, on the first question."""

    name: str
    title: str
    """How messages call the model: "BLIP-2"."""
    default_model: str
    answers = "in its own words"
    """How it answers, for the message refusing a --vocab it would ignore."""
    offline = "use --oracle-model tiny offline"
    """What a message suggests when its weights cannot be loaded."""
    dtype = torch.float32

    @classmethod
    def check_inputs(cls, question: Question, options: OracleOptions) -> None:
        """It answers on its own: refuse a --vocab it would ignore."""
        if options.vocab_file is not None:
            raise UsageError(
                f"--vocab {options.vocab_file} is a word list for clip-zeroshot; {cls.name} answers {cls.answers}. "
                "Add --oracle clip-zeroshot or drop --vocab."
            )

    def __init__(self, loaded: Any, options: OracleOptions):
        self.model_ref = options.model or self.default_model
        self.revision = options.revision
        self.device = loaded.stack.device
        self._model: Any = None

    def reference(self) -> str:
        """What `from_pretrained` loads: `--oracle-model`, the default, or the tiny stand-in's folder."""
        return tiny.reference(self.name, self.model_ref)

    def load_weights(self, reference: str) -> torch.nn.Module:
        """Load the processor (kept on `self`) and return the model, on the CPU; may raise OSError or ValueError."""
        raise NotImplementedError

    def loaded(self) -> Any:
        """The model, loaded on the first call."""
        if self._model is None:
            try:
                model = self.load_weights(self.reference())
            except (OSError, ValueError) as error:
                raise BackendError(
                    f"Could not load the {self.title} oracle {self.model_ref!r} ({short_reason(error)}); download "
                    f"it, pass a folder with --oracle-model, or {self.offline}."
                ) from None
            self._model = model.to(self.device).eval()
        return self._model

    @property
    def model(self) -> Any:
        """The loaded model, or None before the first question."""
        return self._model

    def modules(self) -> list[torch.nn.Module]:
        """What a caller may park on the CPU between questions (the next question brings it back)."""
        return [self._model] if self._model is not None else []

    def expected_bytes(self) -> int:
        """What the model takes on the device in `self.dtype`: counted from its weights when they are on disk (a
        folder, a hub download, the tiny one), else estimated from the published parameter count."""
        if self._model is not None:
            return module_bytes([self._model])
        return (stored_parameters(self.reference()) or self.published_parameters()) * self.dtype.itemsize

    def published_parameters(self) -> int:
        """The parameter count the hub lists for `model_ref`: the estimate before its weights are on disk."""
        raise NotImplementedError


def _local_folder(reference: str) -> Path | None:
    """A folder holding the model's files: `reference` itself, or its hub download in the local cache."""
    if Path(reference).is_dir():
        return Path(reference)
    try:
        config = try_to_load_from_cache(reference, "config.json")
    except ValueError:  # not a hub id either
        return None
    return Path(config).parent if isinstance(config, str) else None


def _stored_element_size(folder: Path) -> int:
    """Bytes per stored weight, from the config's dtype (transformers writes `torch_dtype` or `dtype`)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    name = config.get("torch_dtype") or config.get("dtype") or "float32"
    return getattr(torch, name).itemsize


def stored_parameters(reference: str) -> int | None:
    """How many weights a model on disk has, read without loading it: a sharded checkpoint's index `total_size`
    (in the config's dtype), else the tensor shapes in its safetensors headers. None when it is not on disk."""
    folder = _local_folder(reference)
    if folder is None:
        return None
    try:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            total_size = json.loads(index.read_text(encoding="utf-8"))["metadata"]["total_size"]
            return int(total_size) // _stored_element_size(folder)
        count = 0
        for path in sorted(folder.glob("*.safetensors")):
            with safe_open(path, "pt") as weights:
                names = list(weights.keys())
                count += sum(math.prod(weights.get_slice(name).get_shape()) for name in names)
        return count or None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError):
        return None
