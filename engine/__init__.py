"""conceptlab's engine: a library with the same verbs as the command line.

from conceptlab.engine import ModelChoice, create, create_config
result = create(create_config("pet", ("cat", "dog"), steps=200), ModelChoice(model="tiny"))
images = sample(SampleRequest((result.concept_path,), "a plush toy {}", model="tiny")).images
"""

from conceptlab.engine.batch.plan import read_plan
from conceptlab.engine.batch.runner import BatchResult, run_plan
from conceptlab.engine.concept.file import Concept, check_concept_fits, load_concept, save_concept
from conceptlab.engine.errors import ConceptLabError
from conceptlab.engine.evaluation.request import EvaluateRequest, EvaluateResult, evaluate
from conceptlab.engine.models.backend import Backend, ModelInfo, PriorStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, default_model, load_prior
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.portability.load_into import load_into
from conceptlab.engine.rendering.embed import EmbedRequest, EmbedResult, embed
from conceptlab.engine.rendering.sample import SampleRequest, SampleResult, sample
from conceptlab.engine.training.config import CreateConfig, create_config, mix_config
from conceptlab.engine.training.create import CreateResult, create, resume
from conceptlab.engine.training.evolve import evolve

__all__ = [
    "Backend",
    "BatchResult",
    "Concept",
    "ConceptLabError",
    "CreateConfig",
    "CreateResult",
    "EmbedRequest",
    "EmbedResult",
    "EvaluateRequest",
    "EvaluateResult",
    "LoadedPrior",
    "ModelCache",
    "ModelChoice",
    "ModelInfo",
    "PriorStack",
    "SampleRequest",
    "SampleResult",
    "check_concept_fits",
    "create",
    "create_config",
    "default_model",
    "embed",
    "evaluate",
    "evolve",
    "load_concept",
    "load_into",
    "load_prior",
    "mix_config",
    "read_plan",
    "resume",
    "run_plan",
    "sample",
    "save_concept",
]
