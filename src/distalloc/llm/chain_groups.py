"""Client groups for chain composition with several clients (SPEC 1.10; beyond the paper).

The paper (2604.14993) has one orchestrator: a server's communication time tau^c_j is one
number.  With several clients it depends on the client: client c's job on chain k takes

    T_c(k) = sum_{j in k} (alpha_cj + beta_j k_j),
    alpha_cj = prefill_rtt_ms[c, j] + (l_out - 1) rtt_ms[c, j],   beta_j = tau^p_j,

and one chain cannot be the fastest for clients far apart.  Chain composition therefore
works on **client groups**: each group g of clients (arrival weight w_g = sum of its
clients' weights) gets its own chains, composed with the group's arrival-weighted per-visit
times alpha_g = sum_{c in g} w_c alpha_c / w_g and sized for its own arrival rate w_g λ;
JFFC sends a job to its group's chains first and to the others only when they are full
(``kernels/llm_core.pxd``).  The two ends of the range:

* one group holding every client: alpha = the arrival-weighted mean over all clients, the
  reading the paper's single-orchestrator model gives (and exactly its algorithm with one
  client);
* one group per client: every client has chains composed from its own point of view.

Which grouping is best depends on the swarm: with servers to spare (large swarms) every
client should get chains near it; where servers are scarce (two clients sharing the only
fast chain), separate groups cannot each be served and one group is right.  The search over
the reservation c (:func:`distalloc.llm.chains.search_reservation`) therefore also scans a
small nested family of groupings and keeps the (grouping, c) with the lowest objective.

The family (:func:`client_groupings`): Ward's agglomerative clustering of the clients with
arrivals on their per-visit time vectors alpha_c (scipy.cluster.hierarchy; clients with
equal vectors count as one), cut into 1, 2, 4, ... groups and into one group per distinct
client.  Ward merges the two groups whose merge
least increases sum_c ||alpha_c - mean of its group||^2, i.e. the clients that lose least
by sharing chains composed for their group's mean come together first (clients at one
place merge at zero cost).  O(log C) groupings, so the search costs O(log C) times the
single-group search.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, describe
from distalloc.llm.scenario import Scenario

__all__ = ["ClientGroups", "client_costs", "make_groups", "client_groupings", "GROUPINGS"]

#: the values of ``client_groups`` besides an explicit list of labels
GROUPINGS = ("auto", "one", "each")


@dataclass(frozen=True, eq=False)
class ClientGroups:
    """One grouping of the clients for composition.

    ``labels[c]``: group of client c (-1: a client without arrivals, in no group);
    ``weight[g]``: arrival weight of group g (sums to 1); ``alpha_ms[g]`` its per-visit
    times (G x S, arrival-weighted over its clients); ``shared_alpha_ms`` the same over all
    clients (the paper's reading, used for chains no group owns); ``beta_ms`` the per-block
    times (S).
    """

    labels: np.ndarray
    weight: np.ndarray
    alpha_ms: np.ndarray
    shared_alpha_ms: np.ndarray
    beta_ms: np.ndarray

    @property
    def num_groups(self) -> int:
        return int(self.weight.size)

    def to_list(self) -> list[int | None]:
        """The group of each client, None for clients in no group."""
        return [int(g) if g >= 0 else None for g in self.labels]


def client_costs(scenario: Scenario, output_tokens: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) in ms: client c's job on a chain visiting j and processing k_j blocks
    there takes sum_j alpha[c, j] + beta[j] k_j (SPEC 1.1's request time for jobs of
    ``output_tokens`` tokens, default the scenario's static length); alpha is C x S."""
    n = (scenario.output_tokens if output_tokens is None else output_tokens) - 1
    alpha = scenario.prefill_rtt_ms + n * scenario.rtt_ms
    beta = scenario.prefill_ms + n * scenario.decode_ms
    return np.ascontiguousarray(alpha, dtype=np.float64), np.ascontiguousarray(beta,
                                                                              dtype=np.float64)


def make_groups(labels: np.ndarray, weights: np.ndarray, alpha: np.ndarray,
                beta: np.ndarray) -> ClientGroups:
    """The :class:`ClientGroups` of ``labels`` (groups 0..G-1, -1 none) for clients with
    arrival ``weights`` (sum 1) and per-visit times ``alpha`` (C x S)."""
    labels = np.asarray(labels, dtype=np.int64)
    G = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    w = np.asarray(weights, dtype=np.float64)
    member = np.zeros((G, labels.size))
    member[labels[labels >= 0], np.flatnonzero(labels >= 0)] = 1.0
    wg = member @ w
    shared = np.ascontiguousarray(w @ alpha)
    if G == 1 and np.all(w[labels < 0] == 0):
        # one group of every client (weights sum to 1): exactly the weighted mean
        wg = np.ones(1)
        alpha_g = shared[None, :]
    else:
        share = member * w / np.where(wg > 0, wg, 1.0)[:, None]   # w_c / w_g (1 alone)
        alpha_g = share @ alpha
    return ClientGroups(labels, wg, np.ascontiguousarray(alpha_g), shared, beta)


def _relabel(raw: np.ndarray) -> np.ndarray:
    """Groups numbered 0, 1, ... in order of their first client (deterministic)."""
    out = np.full(raw.size, -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, x in enumerate(raw.tolist()):
        out[i] = seen.setdefault(x, len(seen))
    return out


def client_groupings(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                     client_groups: Any = "auto") -> list[ClientGroups]:
    """The groupings the composition considers, the one-group reading first.

    ``client_groups``: 'auto' (the nested Ward family of the module docstring), 'one' (one
    group: the paper's reading), 'each' (one group per client with arrivals, even for
    clients with equal times) or a sequence
    of one label per client (>= 0; clients without arrivals are dropped from their group).
    With at most one client with arrivals every choice is the one group.

    Raises
    ------
    ValidationError
        an unknown string, or labels of the wrong length or not non-negative integers.
    """
    w = np.asarray(weights, dtype=np.float64)
    C = w.size
    active = np.flatnonzero(w > 0)

    def grouping(active_labels):
        labels = np.full(C, -1, dtype=np.int64)
        labels[active] = _relabel(np.asarray(active_labels))
        return make_groups(labels, w, alpha, beta)

    one = grouping(np.zeros(active.size, dtype=np.int64))
    if isinstance(client_groups, str):
        if client_groups not in GROUPINGS:
            raise ValidationError(f"The 'client_groups' parameter must be one of "
                                  f"{', '.join(GROUPINGS)} or a list of one group per client. "
                                  f"Got {client_groups!r} instead.")
        if client_groups == "one" or active.size <= 1:
            return [one]
        each = grouping(np.arange(active.size))
        if client_groups == "each":
            return [each]
        from scipy.cluster.hierarchy import fcluster, linkage
        # clients with equal per-visit times are one point (splitting them only fragments
        # the same chains); cluster the distinct points
        rows, point = np.unique(alpha[active], axis=0, return_inverse=True)
        point = point.ravel()
        n = rows.shape[0]
        if n == 1:
            return [one]
        tree = linkage(rows, method="ward")
        counts = sorted({1, n} | {2 ** i for i in range(1, int(np.ceil(np.log2(n))))})
        out, seen = [], set()
        for k in counts:
            g = one if k == 1 else grouping(fcluster(tree, k, criterion="maxclust")[point])
            key = tuple(g.labels.tolist())
            if key not in seen:
                seen.add(key)
                out.append(g)
        return out
    try:
        raw = list(client_groups)
    except TypeError:
        raw = None
    if raw is None:
        raise ValidationError(f"The 'client_groups' parameter must be one of "
                              f"{', '.join(GROUPINGS)} or a list of one group per client. "
                              f"Got {describe(client_groups)} instead.")
    if len(raw) != C or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                                and x >= 0 for x in raw):
        raise ValidationError(f"The 'client_groups' parameter must list one group (int >= 0) "
                              f"per client ({C}). Got {raw!r} instead.")
    if active.size == 0:
        return [one]
    return [grouping(np.asarray(raw, dtype=np.int64)[active])]
