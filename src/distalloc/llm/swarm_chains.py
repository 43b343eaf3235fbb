"""The online engine on composed chains (SPEC 1.10, 5.1): the ``jffc`` policy's engine,
shared by :class:`~distalloc.llm.Swarm` and the simulator of the chain methods.

The engine (``swarm_kernels.Engine`` with policy 'jffc') holds the chains of a
:class:`~distalloc.llm.chains.ChainComposition` with their reserved slots, dispatches by
JFFC (``llm_core._jffc_*``, the one copy of the rule) with one central FCFS queue, and
re-composes on churn by the chain method's rule: a server that leaves takes every chain
through it away; a server that joins takes GBP-CR's block count m_j(c) at the window where
GCA on the slots no chain reserves adds the most service rate (the chains found are added);
a rebalance re-runs GBP-CR on the servers alive, moves the servers whose blocks change
(their chains go) and runs GCA on the free slots.  Running jobs never move.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from distalloc._compiled import chain_kernels
from distalloc.llm.chain_types import ChainComposition, whole_model_placement
from distalloc.llm.chains import chain_costs
from distalloc.llm.scenario import Scenario

__all__ = ["chain_engine", "chain_join_blocks", "chain_times_ms"]


def chain_times_ms(scenario: Scenario, comp: ChainComposition) -> tuple[np.ndarray, np.ndarray]:
    """(prefill_ms, token_ms), clients x chains: chain k's time to first token and per-token
    time for a job of client c (SPEC 1.1)."""
    C, K = scenario.num_clients, len(comp.chains)
    servers = np.array([j for ch in comp.chains for j in ch.servers], dtype=np.int64)
    blocks = np.array([k for ch in comp.chains for k in ch.blocks], dtype=np.float64)
    starts = np.cumsum([0] + [len(ch.servers) for ch in comp.chains])[:-1]
    pre = scenario.prefill_rtt_ms[:, servers] + blocks * scenario.prefill_ms[servers]
    tok = scenario.rtt_ms[:, servers] + blocks * scenario.decode_ms[servers]
    pre = np.add.reduceat(pre, starts, axis=1) if K else np.zeros((C, 0))
    tok = np.add.reduceat(tok, starts, axis=1) if K else np.zeros((C, 0))
    return np.ascontiguousarray(pre), np.ascontiguousarray(tok)


def chain_join_blocks(scenario: Scenario, comp: ChainComposition) -> np.ndarray:
    """Blocks each server takes when it joins, by the composition's rule: GBP-CR's
    m_j(c) = min(floor(M_j / (s_m + s_c c)), L) at its reservation c; for jffc-whole the
    whole model where it fits with one job's cache; for GCA on a given placement, the
    blocks it had there."""
    if comp.method == "jffc-whole":
        return whole_model_placement(scenario).num_blocks.astype(np.int64)
    if comp.reservation is None:
        return np.asarray(comp.placement.num_blocks, dtype=np.int64).copy()
    out = np.empty(scenario.num_servers, dtype=np.int64)
    chain_kernels.block_counts(scenario.usable_memory_gb, scenario.block_gb, scenario.cache_gb,
                               int(comp.reservation), scenario.num_blocks, out)
    return out


def chain_engine(scenario: Scenario, comp: ChainComposition, *, rank_tokens: float,
                 join_blocks: np.ndarray | None = None, dispatch: Any = None,
                 make_engine=None) -> Any:
    """The engine (policy 'jffc') on ``comp``'s placement and chains.

    Chains are ranked for jobs of ``rank_tokens`` tokens (the composition's job length:
    the workload's mean in simulation); the GCA of later re-compositions uses the
    composition's costs (per client group, or the arrival-weighted mean when chains are
    shared).  ``dispatch``: a :func:`~distalloc.llm.compiled_dispatch` score, or None.
    """
    if make_engine is None:
        from distalloc.llm.swarm import make_engine
    S = scenario.num_servers
    pl = comp.placement
    if join_blocks is None:
        join_blocks = chain_join_blocks(scenario, comp)
    engine = make_engine(scenario, pl, policy="jffc", join_rule="chains",
                         join_blocks=join_blocks, planned_requests=1)
    chains = comp.chains
    servers = np.array([j for ch in chains for j in ch.servers], dtype=np.int64)
    blocks = np.array([k for ch in chains for k in ch.blocks], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum([len(ch.servers) for ch in chains]))).astype(np.int64)
    caps = np.array([ch.capacity for ch in chains], dtype=np.int64)
    cost = np.array([ch.service_s * 1000.0 for ch in chains])
    home = np.array([ch.group for ch in chains], dtype=np.int64)
    pre, tok = chain_times_ms(scenario, comp)
    rank = np.ascontiguousarray(pre + (rank_tokens - 1) * tok)
    groups = comp.client_groups
    owner = getattr(pl, "owner", None)
    labels = (np.ascontiguousarray(groups.labels, dtype=np.int64) if groups is not None
              else np.zeros(0, dtype=np.int64))
    if groups is not None and owner is not None and np.shape(owner) == (S,):
        galpha, salpha, beta = groups.alpha_ms, groups.shared_alpha_ms, groups.beta_ms
        owner = np.asarray(owner, dtype=np.int64)
    else:
        salpha, beta = chain_costs(scenario, comp.client_weights, output_tokens=rank_tokens)
        galpha = np.zeros((0, S))
        owner = np.full(S, -1, dtype=np.int64)
    engine.set_chains(servers, blocks, offsets, caps, cost, home, pre, tok, rank, owner,
                      galpha, salpha, beta, labels, float(rank_tokens))
    if dispatch is not None:
        engine.set_score(dispatch.address, dispatch)
    return engine
