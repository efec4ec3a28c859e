"""`imagine`: creative sampling without training, by VLM-guided adaptive negative prompting (arXiv 2510.10715)."""

from conceptlab.engine.imagine.request import ImageRecord, ImagineProgress, ImagineRequest, ImagineResult
from conceptlab.engine.imagine.run import Loaded, imagine, load

__all__ = ["ImageRecord", "ImagineProgress", "ImagineRequest", "ImagineResult", "Loaded", "imagine", "load"]
