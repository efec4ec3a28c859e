"""conceptlab's engine: a library with the same verbs as the command line.

from conceptlab.engine import ModelChoice, create, create_config
result = create(create_config("pet", ("cat", "dog"), steps=200), ModelChoice(model="tiny"))
"""

from conceptlab.engine.batch.plan import read_plan
from conceptlab.engine.batch.runner import BatchResult, run_plan
from conceptlab.engine.concept.file import Concept, check_concept_fits, load_concept, save_concept
from conceptlab.engine.errors import ConceptLabError
from conceptlab.engine.models.backend import Backend, ModelInfo, PriorStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_prior
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
    "LoadedPrior",
    "ModelChoice",
    "ModelInfo",
    "PriorStack",
    "check_concept_fits",
    "create",
    "create_config",
    "evolve",
    "load_concept",
    "load_prior",
    "mix_config",
    "read_plan",
    "resume",
    "run_plan",
    "save_concept",
]
