"""(n, k) fork-join systems whose cores pick a speed level per job: latency versus energy
by closed-form approximation, exact Markov chain and simulation.

Reference: A. Badita, R. Jinan, B. Vamanan, P. Parag, "Modeling Performance and Energy
trade-offs in Online Data-Intensive Applications", arXiv 2108.08199 (2021).
"""
from distalloc.queueing.approx import approximate
from distalloc.queueing.exact import exact
from distalloc.queueing.model import ForkJoin, QueueMetrics
from distalloc.queueing.simulation import simulate
from distalloc.queueing.tradeoff import OptimalMix, Tradeoff, optimize, tradeoff

__all__ = ["ForkJoin", "QueueMetrics", "OptimalMix", "Tradeoff", "approximate", "exact",
           "optimize", "simulate", "tradeoff"]
