"""`blip2`: the paper's oracle, a BLIP-2 model asked what the concept's images show.

Loaded lazily on the first question, in half precision on a GPU. `--oracle-model` takes any BLIP-2 hub id or
folder; `tiny` is a small random BLIP-2 built locally for tests. Before loading, it tells how much device memory
it will take (`expected_bytes`), so `create` can decide to offload: BLIP-2 is as big as the prior.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from PIL import Image
from safetensors import SafetensorError, safe_open
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.engine.errors import BackendError, UsageError, short_reason
from conceptlab.engine.models.loading import LoadedPrior
from conceptlab.engine.models.offload import module_bytes
from conceptlab.plugins.tiny import cached_build

DEFAULT_MODEL = "Salesforce/blip2-flan-t5-xl"
MAX_ANSWER_TOKENS = 10
PUBLISHED_PARAMETERS = {
    "Salesforce/blip2-flan-t5-xl": 3_940_000_000,
    "Salesforce/blip2-flan-t5-xl-coco": 3_940_000_000,
    "Salesforce/blip2-opt-2.7b": 3_740_000_000,
    "Salesforce/blip2-opt-6.7b": 7_750_000_000,
    "Salesforce/blip2-flan-t5-xxl": 12_230_000_000,
}
"""Parameter counts of the published BLIP-2 models (ViT-g, Q-Former and language model, as the hub lists them):
the estimate for a model not on this machine yet. Any other model not on disk is assumed the default's size."""


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


def tiny_blip2_folder() -> Path:
    from conceptlab.plugins import clip_vocab, tiny_blip2, tiny_world

    recipe = (Path(tiny_blip2.__file__), Path(tiny_world.__file__), Path(clip_vocab.__file__))  # its tokenizer's
    return cached_build("tiny-blip2", recipe, tiny_blip2.save_tiny_blip2)


class Blip2Oracle:
    name = "blip2"
    default_model = DEFAULT_MODEL

    @staticmethod
    def check_inputs(question: Question, options: OracleOptions) -> None:
        """BLIP-2 answers in its own words: refuse a --vocab it would ignore."""
        if options.vocab_file is not None:
            raise UsageError(
                f"--vocab {options.vocab_file} is a word list for clip-zeroshot; blip2 answers in its own words. "
                "Add --oracle clip-zeroshot or drop --vocab."
            )

    def __init__(self, loaded: LoadedPrior, options: OracleOptions):
        self.model_ref = options.model or DEFAULT_MODEL
        self.revision = options.revision
        self.device = loaded.stack.device
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self._processor: Blip2Processor | None = None
        self._model: Blip2ForConditionalGeneration | None = None

    def _reference(self) -> str:
        return str(tiny_blip2_folder()) if self.model_ref == "tiny" else self.model_ref

    def expected_bytes(self) -> int:
        """What the model takes on the device in `self.dtype`: counted from its weights when they are on disk (a
        folder, a hub download, the tiny one), else estimated from the published parameter count."""
        if self._model is not None:
            return module_bytes([self._model])
        parameters = stored_parameters(self._reference()) or PUBLISHED_PARAMETERS.get(
            self.model_ref, PUBLISHED_PARAMETERS[DEFAULT_MODEL]
        )
        return parameters * self.dtype.itemsize

    def _load(self) -> None:
        reference = self._reference()
        try:
            self._processor = Blip2Processor.from_pretrained(reference, revision=self.revision)
            model = Blip2ForConditionalGeneration.from_pretrained(reference, dtype=self.dtype, revision=self.revision)
        except (OSError, ValueError) as error:
            raise BackendError(
                f"Could not load the BLIP-2 oracle {self.model_ref!r} ({short_reason(error)}); download it, pass a "
                "folder with --oracle-model, or use --oracle clip-zeroshot."
            ) from None
        self._model = model.to(self.device).eval()

    @property
    def model(self) -> Blip2ForConditionalGeneration | None:
        """The loaded model, or None before the first question."""
        return self._model

    def modules(self) -> list[torch.nn.Module]:
        """What a caller may park on the CPU between questions (the next question brings it back)."""
        return [self._model] if self._model is not None else []

    def input_size(self) -> int:
        """The square its processor resizes to (224 for the published models)."""
        if self._model is None:
            self._load()
        return int(self._processor.image_processor.size["height"])

    @torch.inference_mode()
    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        if self._model is None:
            self._load()
        self._model.to(self.device)
        prompt = f"Question: {question.text} Answer:"
        inputs = self._processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self._model.dtype)
        output = self._model.generate(**inputs, max_new_tokens=MAX_ANSWER_TOKENS, do_sample=False)
        if self._model.config.use_decoder_only_language_model:
            output = output[:, inputs["input_ids"].shape[1] :]
        return [answer.strip() for answer in self._processor.batch_decode(output, skip_special_tokens=True)]


blip2_oracle = Blip2Oracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
