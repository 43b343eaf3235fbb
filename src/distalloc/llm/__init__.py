"""Pipeline-parallel LLM inference over geographically distributed GPU servers.

Offline: scenarios (:func:`resolve_scenario`, :func:`load_scenario`), the performance
model (:func:`evaluate_routes`), routing (:func:`shortest_routes`), placement by
CG-BPRR (:func:`cg_bprr`), the PETALS baseline (:func:`petals`) and the exact MILP
(:func:`solve_milp`), all behind :func:`plan`.  Chain composition with cache reservation
(SPEC 1.10): :func:`gbp_cr`, :func:`gca`, :func:`jffc_bounds`, :func:`compose_chains`.
Calibration of the model's constants from measurements of a real swarm (SPEC 1.11):
:func:`calibrate`, :func:`apply_profile`.
Online: :class:`Swarm`, the engine a scheduler embeds (route, finish, leave, join,
rebalance; policies WS-RR, PETALS and JFFC on composed chains), which the simulator drives
too; :func:`compiled_dispatch`, a user's chain dispatch rule compiled with Numba (SPEC 5.2).

Reference: T. Sun, T. He, B. Ji, P. Parag, "Optimizing Resource Allocation for
Geographically-Distributed Inference by Large Language Models", arXiv 2512.21884 (2025).
"""
from distalloc.llm.calibrate import (Calibration, Measurement, Profile, apply_profile, calibrate,
                                    load_profile, predict, read_measurements)
from distalloc.llm.chains import Chain, ChainComposition, compose_chains, gbp_cr, gca
from distalloc.llm.dispatch import compiled_dispatch
from distalloc.llm.jffc import jffc_bounds
from distalloc.llm.milp import solve_milp
from distalloc.llm.model import Placement, RouteMetrics, evaluate_routes
from distalloc.llm.methods import METHODS, plan
from distalloc.llm.placement import (CGPlacement, cg_bp_placement, cg_bprr, petals,
                                     petals_placement, theorem2_bound_ms)
from distalloc.llm.result import Plan
from distalloc.llm.routing import Routes, shortest_routes
from distalloc.llm.builtins import (builtin_scenario, clustered, resolve_scenario,
                                    synthetic_scenario, topology_scenario)
from distalloc.llm.scenario import Scenario, load_scenario, scenario_from_dict
from distalloc.llm.simulation import ONLINE_METHODS, SimulationResult, simulate
from distalloc.llm.swarm import Assignment, Rebalance, Swarm

__all__ = ["Scenario", "Placement", "Plan", "Routes", "RouteMetrics", "CGPlacement", "METHODS",
           "builtin_scenario", "clustered", "load_scenario", "resolve_scenario",
           "scenario_from_dict", "synthetic_scenario", "topology_scenario", "evaluate_routes",
           "shortest_routes", "cg_bp_placement", "cg_bprr", "petals", "petals_placement",
           "plan", "solve_milp", "theorem2_bound_ms", "Swarm", "Assignment", "Rebalance",
           # online simulation (SPEC 1.7)
           "simulate", "SimulationResult", "ONLINE_METHODS",
           # chain composition (SPEC 1.10)
           "Chain", "ChainComposition", "compose_chains", "gbp_cr", "gca", "jffc_bounds",
           "compiled_dispatch",
           # calibration (SPEC 1.11)
           "calibrate", "Calibration", "Measurement", "Profile", "apply_profile", "load_profile",
           "predict", "read_measurements"]
