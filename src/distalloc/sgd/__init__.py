"""Distributed SGD that waits for the fastest k of n workers, with k adapted over time.

References: S. Kas Hanna, R. Bitar, P. Parag, V. Dasari, S. El Rouayheb, "Adaptive
Distributed Stochastic Gradient Descent for Minimizing Delay in the Presence of
Stragglers" (ICASSP 2020); "Adaptive Stochastic Gradient Descent for Fast and
Communication-Efficient Distributed Learning" (arXiv 2208.03134).
"""
from distalloc.sgd.aggregate import fastest_k_average
from distalloc.sgd.fit import FitResult, fit_response_model, read_times
from distalloc.sgd.models import (Empirical, Exponential, Heterogeneous, LogNormal, Pareto,
                                  ResponseModel, ShiftedExponential, WithOverhead,
                                  parse_model)
from distalloc.sgd.order_stats import expected_order_statistics
from distalloc.sgd.policies import (CompiledPolicy, KController, KPOLICY_SIGNATURE,
                                    compiled_policy, parse_policy)
from distalloc.sgd.problems import (Problem, diabetes, digits, from_arrays, load_problem,
                                    synthetic_regression)
from distalloc.sgd.run import DivergenceError, SGDResult, run
from distalloc.sgd.schedule import Schedule, bound_schedule
from distalloc.sgd.cluster import TrainResult, train

__all__ = ["ResponseModel", "Exponential", "ShiftedExponential", "Pareto", "LogNormal",
           "Heterogeneous", "Empirical", "WithOverhead", "parse_model", "Problem",
           "synthetic_regression", "diabetes", "digits", "from_arrays", "load_problem",
           "SGDResult", "run",
           "DivergenceError", "parse_policy", "Schedule", "bound_schedule",
           "fastest_k_average", "KController", "CompiledPolicy", "compiled_policy",
           "KPOLICY_SIGNATURE", "expected_order_statistics", "FitResult",
           "fit_response_model", "read_times", "train", "TrainResult"]
