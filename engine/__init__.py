"""conceptlab's engine: a library with the same verbs as the command line.

from conceptlab.engine import ModelChoice, create, create_config
result = create(create_config("pet", ("cat", "dog"), steps=200), ModelChoice(model="tiny"))
"""

from conceptlab.engine.backend import Backend, ModelInfo, PriorStack
from conceptlab.engine.concept import Concept, check_concept_fits, load_concept, save_concept
from conceptlab.engine.config import CreateConfig, create_config, mix_config
from conceptlab.engine.create import CreateResult, create, resume
from conceptlab.engine.errors import ConceptLabError
from conceptlab.engine.loading import LoadedPrior, ModelChoice, load_prior

__all__ = [
    "Backend",
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
    "load_concept",
    "load_prior",
    "mix_config",
    "resume",
    "save_concept",
]
