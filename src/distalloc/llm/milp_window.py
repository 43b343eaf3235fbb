"""The window formulation of BPRR (``formulation="window"`` of :mod:`distalloc.llm.milp`):
the placement as a choice of one window per server, routes as integer flows over block
boundaries.  No big-M, no products; derived in the docstring of :mod:`distalloc.llm.milp`.
"""
from __future__ import annotations

import math

import numpy as np

from distalloc.llm.milp_model import LinearModel, _Clock, _Rows, identical_server_classes
from distalloc.llm.scenario import Scenario

__all__ = ["build_window_model", "room_table", "maximal_loads"]

# a server whose windows hold at most this many (window, entry block) pairs gets one flow
# variable per pair (its sessions' loads are exact per window); larger ones share one flow
# variable per (entry, end) block pair among the windows with that end
DISAGGREGATE_PAIRS = 4000
# a window whose memory can bind gets one variable per maximal load if it has at most this
# many, else its linear rows
MAX_LOADS = 64


def room_table(sc: Scenario, j: int) -> list[int]:
    """room[m] for m = 0..cap_j: the most (session, block) caches that fit beside m hosted
    blocks on server j, with the 1e-9 GB tolerance of the brute force and of
    :class:`~distalloc.llm.milp_model.MemoryRow`."""
    cap = int(min(np.floor(sc.usable_memory_gb[j] / sc.block_gb), sc.num_blocks))
    return [max(int(math.floor((sc.usable_memory_gb[j] - sc.block_gb * m + 1e-9) / sc.cache_gb)), 0)
            for m in range(cap + 1)]


def maximal_loads(room: int, max_len: int, sessions: int, limit: int) -> list[tuple[int, ...]] | None:
    """The maximal vectors x (x[l - 1] sessions of l blocks, l = 1..max_len) with
    sum l x_l <= room and sum x_l <= sessions: every load a window can carry is below one
    of them.  None if there are more than ``limit``."""
    out: list[tuple[int, ...]] = []
    x = [0] * max_len

    def rec(length: int, left: int, count: int) -> bool:
        if length == 0:
            if left == 0 or count == sessions:     # nothing more fits (1-block sessions)
                out.append(tuple(x))
            return len(out) <= limit
        for k in range(min(left // length, sessions - count), -1, -1):
            x[length - 1] = k
            if not rec(length - 1, left - k * length, count + k):
                x[length - 1] = 0
                return False
        x[length - 1] = 0
        return True

    return out if rec(max_len, room, 0) else None


def _kept(m: int, t: int, room: list[int], R: int) -> bool:
    """Whether window [t - m, t) is kept: a window whose memory cannot bind (room(m) >= R m:
    every session fits, however many blocks each processes) is dominated by the longest
    such window with the same end, which admits every entry block it admits and also
    cannot bind; so of those only the longest is kept (m = min(m*, t), m* the largest m
    with room(m) >= R m), and every window whose memory can bind."""
    if room[m] < R * m:
        return True
    return m == min(_longest_unbinding(room, R), t)


def _longest_unbinding(room: list[int], R: int) -> int:
    """m*: the largest m >= 1 with room(m) >= R m (room(m) - R m decreases in m, so these
    m are 1..m*); 0 if there is none."""
    return max((k for k in range(1, len(room)) if room[k] >= R * k), default=0)


class _Cols:
    def __init__(self):
        self.clock = _Clock()
        self.cost: list[float] = []
        self.ub: list[float] = []
        self.integer: list[bool] = []
        self.labels: list[str] = []

    def new(self, label: str, cost=0.0, ub=1.0, integer=True) -> int:
        self.clock.tick()
        self.labels.append(label)
        self.cost.append(cost)
        self.ub.append(ub)
        self.integer.append(integer)
        return len(self.cost) - 1


def build_window_model(sc: Scenario, cuts: bool = True) -> LinearModel:
    """The window model of ``sc``.  ``cuts`` adds the valid inequalities (prefix rows,
    per-window maximal loads); without them the model has only the rows that make it exact."""
    S, L = sc.num_servers, sc.num_blocks
    counts = np.bincount(sc.requests, minlength=sc.num_clients)
    clients = [int(c) for c in np.flatnonzero(counts)]
    R = int(counts.sum())
    rooms = [room_table(sc, j) for j in range(S)]
    cols = _Cols()
    rows = _Rows()
    y_col: dict[tuple[int, int, int], int] = {}
    # flow columns: arcs[(c, j, s, t)] -> list of columns (one per window if disaggregated)
    arc_cols: dict[tuple[int, int, int, int], list[int]] = {}
    win_arcs: dict[tuple[int, int, int], dict[int, list[int]]] = {}   # window -> s -> cols
    load_cols: dict[tuple[int, int, int], list[tuple[int, tuple[int, ...]]]] = {}
    disaggregated = np.zeros(S, dtype=bool)
    for j in range(S):
        room = rooms[j]
        # windows [a, t) with room for one cache at least (a window without carries
        # nothing: the server may as well be unused); a session of k blocks on j needs a
        # window m >= k with room(m) >= k
        ms = [m for m in range(1, len(room)) if room[m] >= 1]
        kmax = max([k for k in ms if room[k] >= k], default=0)
        windows = [(t - m, t) for t in range(1, L + 1) for m in ms if t - m >= 0
                   and _kept(m, t, room, R)]
        for a, t in windows:
            y_col[(j, a, t)] = cols.new(f"y s{j} [{a},{t})")
        pairs = sum(min(t - a, kmax) for a, t in windows)
        disaggregated[j] = cuts and pairs <= DISAGGREGATE_PAIRS
        for c in clients:
            def cost(s, t, c=c, j=j):
                return float(sc.rtt_ms[c, j] + sc.decode_ms[j] * (t - s))
            if disaggregated[j]:
                for a, t in windows:
                    for s in range(max(a, t - min(kmax, room[t - a])), t):
                        col = cols.new(f"x c{c} s{j} [{a},{t}) {s}->{t}", cost(s, t), counts[c])
                        arc_cols.setdefault((c, j, s, t), []).append(col)
                        win_arcs.setdefault((j, a, t), {}).setdefault(s, []).append(col)
            else:
                for t in range(1, L + 1):
                    for s in range(max(t - kmax, 0), t):
                        arc_cols[(c, j, s, t)] = [cols.new(f"x c{c} s{j} {s}->{t}", cost(s, t), counts[c])]

    for j in range(S):                                   # at most one window per server
        ys = [col for (jj, a, t), col in y_col.items() if jj == j]
        if ys:
            rows.add(ys, [1] * len(ys), -np.inf, 1)
    for cls in identical_server_classes(sc):             # (L+1) a + t non-decreasing
        for j1, j2 in zip(cls, cls[1:]):
            w1 = [(k, v) for k, v in y_col.items() if k[0] == j1]
            w2 = [(k, v) for k, v in y_col.items() if k[0] == j2]
            rows.add([v for _, v in w1] + [v for _, v in w2],
                     [(L + 1) * a + t for (_, a, t), _ in w1] + [-((L + 1) * a + t) for (_, a, t), _ in w2],
                     -np.inf, 0)
    rtt_groups = _rtt_groups(sc, clients)                # sessions through j by RTT
    if rtt_groups:
        through: dict[int, list[int]] = {j: [] for j in range(S)}
        for (c, j, s, t), cs in arc_cols.items():
            through[j].extend(cs)
        rtt = sc.rtt_ms[clients[0]]
        for members in rtt_groups:
            levels = sorted({float(rtt[j]) for j in members})
            for low, high in zip(levels, levels[1:]):
                for i in [j for j in members if rtt[j] == low]:
                    for j in [j for j in members if rtt[j] == high]:
                        rows.add(through[j] + through[i],
                                 [1] * len(through[j]) + [-1] * len(through[i]), -np.inf, 0)
    for c in clients:                                    # n_c units from boundary 0 to L
        nc = int(counts[c])
        out_of: list[list[int]] = [[] for _ in range(L + 1)]
        into: list[list[int]] = [[] for _ in range(L + 1)]
        for (cc, j, s, t), cs in arc_cols.items():
            if cc == c:
                out_of[s].extend(cs)
                into[t].extend(cs)
        rows.add(out_of[0], [1] * len(out_of[0]), nc, nc)
        for b in range(1, L):
            rows.add(into[b] + out_of[b], [1] * len(into[b]) + [-1] * len(out_of[b]), 0, 0)

    def new_load_col(label: str) -> int:    # load columns, after the flows
        return cols.new(label, integer=False)

    for j in range(S):
        if disaggregated[j]:
            _window_rows(sc, j, rooms[j], R, counts, clients, y_col, win_arcs, rows,
                         load_cols, new_load_col)
        else:
            _prefix_rows(sc, j, rooms[j], R, counts, clients, y_col, arc_cols, rows, cuts)

    cost = np.array(cols.cost)
    ub = np.array(cols.ub, dtype=float)
    integer = np.array(cols.integer, dtype=bool)
    lb = np.zeros(len(cost))
    n_all = len(cost)

    def decode(x):
        first = np.zeros(S, dtype=np.int64)
        num = np.zeros(S, dtype=np.int64)
        for (j, a, t), col in y_col.items():
            if x[col] > 0.5:
                first[j], num[j] = a, t - a
        paths: dict[int, list[list[int]]] = {}
        for c in clients:
            left: dict[tuple[int, int, int], int] = {}
            for (cc, j, s, t), cs in arc_cols.items():
                v = int(round(sum(x[col] for col in cs)))
                if cc == c and v > 0:
                    left[(j, s, t)] = v
            by_start: dict[int, list[tuple[int, int, int]]] = {}
            for arc in left:
                by_start.setdefault(arc[1], []).append(arc)
            paths[c] = []
            for _ in range(int(counts[c])):
                b, path = 0, []
                while b < L:
                    arc = next(a for a in by_start.get(b, []) if left[a] > 0)
                    left[arc] -= 1
                    path.append(arc[0])
                    b = arc[2]
                paths[c].append(path)
        taken = {c: 0 for c in clients}
        routes = []
        for c in sc.requests:
            routes.append(paths[int(c)][taken[int(c)]])
            taken[int(c)] += 1
        return first, num, routes

    def encode(first, num, routes):
        first = np.asarray(first, dtype=np.int64).copy()
        end = first + np.asarray(num, dtype=np.int64)
        for j in range(S):
            m = int(end[j] - first[j])
            if m > 0 and (j, int(first[j]), int(end[j])) not in y_col and m < len(rooms[j]) \
                    and rooms[j][m] >= R * m:
                # a dominated window (see _kept): its dominating one carries the same
                # sessions at the same cost
                first[j] = end[j] - min(_longest_unbinding(rooms[j], R), int(end[j]))
        # a server without a window of the model (unused, or a window with no room for a
        # cache, which then carries nothing) is unused
        used = np.array([num[j] > 0 and (j, int(first[j]), int(end[j])) in y_col
                         for j in range(S)], dtype=bool)
        relabel = np.arange(S)

        def move(targets, sources):   # the window of server sources[k] goes to targets[k]
            step = np.arange(S)
            step[sources] = targets
            first[targets], end[targets], used[targets] = \
                first[sources].copy(), end[sources].copy(), used[sources].copy()
            relabel[:] = step[relabel]

        through = np.zeros(S, dtype=np.int64)     # sessions through each server
        for path in routes:
            through[list(path)] += 1
        for members in rtt_groups:   # more sessions on lower RTT (cost never increases)
            move(members, sorted(members, key=lambda j: -through[j]))
        for cls in identical_server_classes(sc):
            key = {j: ((L + 1) * first[j] + end[j]) if used[j] else 0 for j in cls}
            move(cls, sorted(cls, key=lambda j: key[j]))
        x = np.zeros(n_all)
        for j in np.flatnonzero(used):
            x[y_col[(int(j), int(first[j]), int(end[j]))]] = 1
        load = {}
        for c, path in zip(sc.requests, routes):
            prev = 0
            for j in path:
                j = int(relabel[j])
                t = int(end[j])
                if disaggregated[j]:
                    w = (j, int(first[j]), t)
                    col = next(cc for cc in arc_cols[(int(c), j, prev, t)] if cc in
                               win_arcs[w][prev])
                    load.setdefault(w, [0] * (t - int(first[j])))[t - prev - 1] += 1
                else:
                    col = arc_cols[(int(c), j, prev, t)][0]
                x[col] += 1
                prev = t
        for w, vec in load.items():
            if w in load_cols:   # a maximal load above this one (exists: loads are down-closed)
                col = next(col for col, p in load_cols[w]
                           if all((p[i] if i < len(p) else 0) >= v for i, v in enumerate(vec)))
                x[col] = 1
        return x

    return LinearModel("window", cost, lb, ub, integer, rows.matrix(n_all), np.array(rows.lb),
                       np.array(rows.ub), [], sc.block_gb, sc.cache_gb,
                       np.array([len(r) - 1 for r in rooms]), np.zeros(0, dtype=np.int64),
                       np.zeros(0, dtype=np.int64), decode, encode,
                       {"windows": len(y_col), "disaggregated": int(disaggregated.sum())},
                       cols.labels)


def _rtt_groups(sc: Scenario, clients: list[int]) -> list[list[int]]:
    """With one client: groups of servers that differ in their RTT only (same usable memory
    and decode time), each sorted by RTT, with two RTTs at least.  Exchanging the windows
    of two of them, with the sessions each carries, changes the cost by
    (rtt_i - rtt_j)(f_j - f_i) (f: sessions through the server) and nothing else, so some
    optimum has f non-increasing in RTT within a group (rows f_i >= f_j for
    rtt_i < rtt_j; equal RTTs are the identical servers of the lexicographic order).
    Several clients: none (an exchange can lower one client's cost and raise another's)."""
    if len(clients) != 1:
        return []
    rtt = sc.rtt_ms[clients[0]]
    groups: dict[tuple[float, float], list[int]] = {}
    for j in range(sc.num_servers):
        groups.setdefault((float(sc.usable_memory_gb[j]), float(sc.decode_ms[j])), []).append(j)
    return [sorted(g, key=lambda j: rtt[j]) for g in groups.values()
            if len({float(rtt[j]) for j in g}) > 1]


def _window_rows(sc, j, room, R, counts, clients, y_col, win_arcs, rows, load_cols, new_col):
    """Rows of a disaggregated server: per window [a, t), its sessions (by entry block s,
    so of t - s blocks) fit its memory.  If the memory can bind and the window has few
    maximal loads, the load is below a convex combination of them (weights lambda summing
    to y): the convex hull of the window's loads; else the linear memory row and the count
    rows (sessions of at least l blocks: at most room // l)."""
    for (jj, a, t), by_s in win_arcs.items():
        if jj != j:
            continue
        y = y_col[(j, a, t)]
        m = t - a
        r = room[m]
        by_len = {t - s: cs for s, cs in by_s.items()}
        all_cols = [col for cs in by_s.values() for col in cs]
        if len(clients) > 1:
            for c in clients:   # a client sends at most n_c sessions through the window
                mine = [cs[clients.index(c)] for cs in by_s.values()]
                rows.add(mine + [y], [1] * len(mine) + [-int(counts[c])], -np.inf, 0)
        if r >= R * m:          # memory cannot bind: at most R sessions
            rows.add(all_cols + [y], [1] * len(all_cols) + [-R], -np.inf, 0)
            continue
        max_len = max(by_len)
        loads = maximal_loads(r, max_len, R, MAX_LOADS)
        if loads is not None:
            lam = []
            for p in loads:
                lam.append(new_col(f"load s{j} [{a},{t}) {p}"))
                load_cols.setdefault((j, a, t), []).append((lam[-1], p))
            rows.add(lam + [y], [1] * len(lam) + [-1], -np.inf, 0)
            for length, cs in by_len.items():
                rows.add(cs + lam, [1] * len(cs) + [-p[length - 1] for p in loads], -np.inf, 0)
            continue
        rows.add([col for ln, cs in by_len.items() for col in cs] + [y],
                 [ln for ln, cs in by_len.items() for _ in cs] + [-r], -np.inf, 0)
        for l0 in range(1, max_len + 1):
            k = min(R, r // l0)
            if l0 > 1 and k == min(R, r // (l0 - 1)):
                continue
            cs = [col for ln, cc in by_len.items() if ln >= l0 for col in cc]
            rows.add(cs + [y], [1] * len(cs) + [-k], -np.inf, 0)


def _prefix_rows(sc, j, room, R, counts, clients, y_col, arc_cols, rows, cuts):
    """Rows of a server with one flow variable per (entry s, end t) pair: per end block t
    and threshold a0, the sessions entering before a0 need a window [a, t) with a < a0,
    so their caches fit its room (prefix memory row), each client sends at most n_c of
    them (prefix linking row), and, processing at least t - a0 + 1 blocks each, at most
    room // (t - a0 + 1) fit (prefix count row).  Without ``cuts``: a0 = t only, and the
    per-arc linking rows."""
    L = sc.num_blocks
    for t in range(1, L + 1):
        starts = [a for a in range(0, t) if (j, a, t) in y_col]
        ss = sorted({s for (c, jj, s, tt) in arc_cols if jj == j and tt == t})
        if not ss:
            continue
        eff = {a: min(room[t - a], R * (t - a)) for a in starts}
        for a0 in (range(ss[0] + 1, t + 1) if cuts else [t]):
            xs = [s for s in ss if s < a0]
            ys = [a for a in starts if a < a0]
            ycols = [y_col[(j, a, t)] for a in ys]
            xc = [arc_cols[(c, j, s, t)][0] for c in clients for s in xs]
            rows.add(xc + ycols, [t - s for c in clients for s in xs] + [-eff[a] for a in ys],
                     -np.inf, 0)
            if cuts:
                rows.add(xc + ycols, [1] * len(xc) + [-min(R, eff[a] // (t - a0 + 1)) for a in ys],
                         -np.inf, 0)
            if cuts and len(clients) > 1:
                for c in clients:
                    mine = [arc_cols[(c, j, s, t)][0] for s in xs]
                    rows.add(mine + ycols, [1] * len(mine) + [-int(counts[c])] * len(ys),
                             -np.inf, 0)
        if not cuts:   # per-arc linking: x_(s,t) <= n_c (windows [a, t) with a <= s)
            for c in clients:
                for s in ss:
                    ys = [a for a in starts if a <= s]
                    rows.add([arc_cols[(c, j, s, t)][0]] + [y_col[(j, a, t)] for a in ys],
                             [1] + [-int(counts[c])] * len(ys), -np.inf, 0)


def estimate_window_size(sc: Scenario, cuts: bool = True,
                         stop_above: float = math.inf) -> tuple[float, float]:
    """(variables, nonzeros) of :func:`build_window_model` without building it: the
    windows and flow columns are counted exactly per server (servers of equal usable
    memory share the count), the nonzeros per flow column estimated from the rows each
    sits in (conservation, its window's load/memory rows; the prefix rows counted per end
    block).  Stops once the nonzeros pass ``stop_above``."""
    L = sc.num_blocks
    counts = np.bincount(sc.requests, minlength=sc.num_clients)
    C = int(np.count_nonzero(counts))
    R = int(counts.sum())
    per_memory: dict[float, tuple[float, float]] = {}
    n_vars = n_nz = 0.0
    for j in range(sc.num_servers):
        key = float(sc.usable_memory_gb[j])
        if key not in per_memory:
            room = room_table(sc, j)
            ms = [m for m in range(1, len(room)) if room[m] >= 1]
            kmax = max([k for k in ms if room[k] >= k], default=0)
            windows = [(t - m, t) for t in range(1, L + 1) for m in ms if t - m >= 0
                       and _kept(m, t, room, R)]
            pairs = sum(min(t - a, kmax) for a, t in windows)
            v = float(len(windows))
            nz = 2.0 * len(windows)
            if cuts and pairs <= DISAGGREGATE_PAIRS:
                flows = C * sum(t - max(a, t - min(kmax, room[t - a])) for a, t in windows)
                v += flows
                nz += flows * (3 + (C > 1)) + 3 * len(windows) * kmax
            else:
                per_t = [len([m for m in ms if m <= t and _kept(m, t, room, R)])
                         for t in range(L + 1)]
                flows = C * sum(min(kmax, t) for t in range(1, L + 1))
                v += flows
                nz += 2 * flows
                for t in range(1, L + 1):
                    k = min(kmax, t)
                    thresholds = range(t - k + 1, t + 1) if cuts else [t]
                    for a0 in thresholds:
                        xs = a0 - (t - k)
                        ys = min(per_t[t], a0)
                        nz += (C * xs + ys) * (1 + cuts) + (C > 1 and cuts) * (xs + ys) * C
                    if not cuts:
                        nz += C * k * (1 + per_t[t])
            per_memory[key] = (v, nz)
        v, nz = per_memory[key]
        n_vars += v
        n_nz += nz
        if n_nz > stop_above:
            break
    return n_vars, n_nz
