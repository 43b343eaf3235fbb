"""distalloc: resource-allocation decisions for distributed computing on heterogeneous,
straggling servers.

Model families: :mod:`distalloc.llm` (pipeline-parallel LLM inference over
geographically distributed GPU servers).
"""
from distalloc._validation import ValidationError

__version__ = "0.1.0"
__all__ = ["ValidationError", "__version__"]
