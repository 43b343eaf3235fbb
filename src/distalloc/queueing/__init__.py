"""(n, k) fork-join systems whose cores pick a speed level per job: latency versus energy
by closed-form approximation, exact Markov chain and simulation.

Reference: A. Badita, R. Jinan, B. Vamanan, P. Parag, "Modeling Performance and Energy
trade-offs in Online Data-Intensive Applications", arXiv 2108.08199 (2021).
"""
from distalloc.queueing.approx import approximate
from distalloc.queueing.exact import exact
from distalloc.queueing.grid import approximate_grid
from distalloc.queueing.model import ForkJoin, QueueMetrics
from distalloc.queueing.rules import SpeedRule, compiled_speed_rule
from distalloc.queueing.simulation import simulate
from distalloc.queueing.stability import Stability, UnstableError, stability
from distalloc.queueing.tradeoff import OptimalMix, Tradeoff, optimize, tradeoff

__all__ = ["ForkJoin", "QueueMetrics", "OptimalMix", "SpeedRule", "Stability", "Tradeoff",
           "UnstableError", "approximate", "approximate_grid", "compiled_speed_rule", "exact", "optimize",
           "simulate", "stability", "tradeoff"]
