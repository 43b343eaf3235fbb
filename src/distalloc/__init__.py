"""distalloc: resource-allocation decisions for distributed computing on heterogeneous,
straggling servers.

Model families, on one compiled numeric core (``distalloc._kernels``):

* :mod:`distalloc.llm` — pipeline-parallel LLM inference over geographically distributed
  GPU servers: scenarios, performance model, CG-BPRR, PETALS, exact MILP, online simulator.
* :mod:`distalloc.sgd` — distributed SGD waiting for the fastest k of n workers, adaptive k.
* :mod:`distalloc.queueing` — (n, k) fork-join queues with speed levels: latency and energy.

:mod:`distalloc.sweep` runs any of them over parameter grids on local processes or Dask;
``distalloc`` is the command line (``distalloc --help``).
"""
from distalloc._validation import ValidationError

__version__ = "0.1.0"
__all__ = ["ValidationError", "__version__"]
