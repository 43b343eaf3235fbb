"""Slow, obviously-correct reference implementations: the oracles of the compiled kernels,
and the pure-Python baselines of the benchmarks.  Plain Python lists and loops on purpose.
"""
from __future__ import annotations

import heapq
import math

import numpy as np


# ------------------------------------------------------------------------------------------
# Performance model
# ------------------------------------------------------------------------------------------
def route_blocks(first, num, L, route):
    """[(server, k_j)] of a route, or None if it is not a feasible chain covering [0, L)."""
    if not route:
        return None
    prev, out = 0, []
    for j in route:
        if not (0 <= j < len(num)) or num[j] <= 0:
            return None
        a, e = first[j], first[j] + num[j]
        if not (a <= prev <= e - 1):
            return None
        out.append((j, e - prev))
        prev = e
    return out if prev == L else None


def evaluate_route(sc, first, num, route, client):
    """(token_ms, ttft_ms, request_ms) by SPEC 1.1, or None for an invalid route."""
    blocks = route_blocks(first, num, sc.num_blocks, route)
    if blocks is None:
        return None
    tok = sum(sc.rtt_ms[client][j] + sc.decode_ms[j] * k for j, k in blocks)
    pre = sum(sc.prefill_rtt_ms[client][j] + sc.prefill_ms[j] * k for j, k in blocks)
    return tok, pre, pre + (sc.output_tokens - 1) * tok


def memory_use(sc, first, num, routes):
    mem = [sc.block_gb * m for m in num]
    for route in routes:
        for j, k in route_blocks(first, num, sc.num_blocks, route) or []:
            mem[j] += sc.cache_gb * k
    return mem


# ------------------------------------------------------------------------------------------
# Routing: Dijkstra on the explicit feasible-link DAG
# ------------------------------------------------------------------------------------------
def dijkstra_route(first, num, L, alpha_row, beta, free_blocks=None, penalty=0.0):
    """Shortest start->end path on the explicit DAG with heapq.  Returns (cost, path)."""
    S = len(num)
    ends = {"s": 0}
    for j in range(S):
        if num[j] > 0:
            ends[j] = first[j] + num[j]
    dist = {"s": 0.0}
    prev = {}
    heap = [(0.0, -1, "s")]
    done = set()
    best_end, best_node = math.inf, None
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        e_u = ends[u]
        if e_u == L and u != "s" and d < best_end:
            best_end, best_node = d, u
        for j in range(S):
            if num[j] <= 0 or j in done:
                continue
            if first[j] <= e_u <= first[j] + num[j] - 1:
                k = first[j] + num[j] - e_u
                w = alpha_row[j] + beta[j] * k
                if free_blocks is not None and k > free_blocks[j]:
                    w += penalty
                if d + w < dist.get(j, math.inf):
                    dist[j] = d + w
                    prev[j] = u
                    heapq.heappush(heap, (d + w, j, j))
    if best_node is None:
        return math.inf, []
    path, u = [], best_node
    while u != "s":
        path.append(u)
        u = prev[u]
    return best_end, path[::-1]


def dp_route(first, num, L, alpha_row, beta):
    """Block-ordered dynamic program in pure Python (the benchmark's baseline routing)."""
    D = [math.inf] * (L + 1)
    D[0] = 0.0
    arg = [None] * (L + 1)
    order = sorted((first[j] + num[j], j) for j in range(len(num)) if num[j] > 0)
    for e, j in order:
        for p in range(first[j], e):
            c = D[p] + alpha_row[j] + beta[j] * (e - p)
            if c < D[e]:
                D[e], arg[e] = c, (j, p)
    if D[L] == math.inf:
        return math.inf, []
    path, e = [], L
    while e > 0:
        j, e = arg[e]
        path.append(j)
    return D[L], path[::-1]


# ------------------------------------------------------------------------------------------
# CG-BPRR and PETALS placement, pure Python
# ------------------------------------------------------------------------------------------
def cg_bp(usable_memory, decode_ms, rtt_max, block_gb, cache_gb, R, L):
    """Steps 1-2 of CG-BPRR exactly as SPEC 1.5 states them.
    Returns (first, num, capacity, amortised, order)."""
    S = len(usable_memory)
    num = [min(math.floor(usable_memory[j] / (block_gb + cache_gb * R)), L) for j in range(S)]
    used = [j for j in range(S) if num[j] > 0]
    amort = [math.inf] * S
    for j in used:
        amort[j] = decode_ms[j] + rtt_max[j] / num[j]
    order = sorted(used, key=lambda j: amort[j])  # stable: ties by index
    sessions = [0] * S
    for j in used:
        sessions[j] = min(math.floor((usable_memory[j] - block_gb * num[j]) / (cache_gb * num[j])), R)
    first = [0] * S
    C = [0] * L
    if sum(num) < L:
        return first, [0] * S, C, amort, order
    tmax = max(amort[j] for j in used)
    dummy = tmax + 1.0
    T = [R * dummy] * L
    for j in order:
        m = num[j]
        if any(c < R for c in C):
            best_a, best_sum = -1, -math.inf
            for a in range(L - m + 1):
                if not any(C[b] < R for b in range(a, a + m)):
                    continue
                wsum = 0.0
                for b in range(a, a + m):
                    wsum = wsum + T[b]
                if wsum > best_sum:
                    best_a, best_sum = a, wsum
        else:
            best_a = min(range(L - m + 1), key=lambda a: (sorted(C[a:a + m]), a))
        first[j] = best_a
        for b in range(best_a, best_a + m):
            T[b] -= (dummy - amort[j]) * min(max(R - C[b], 0), sessions[j])
            C[b] += sessions[j]
    return first, num, C, amort, order


def cg_bprr(sc):
    """The whole CG-BPRR in pure Python: placement, per-client routing and the mean
    per-token time.  Returns (first, num, routes, mean_token_ms) or None if infeasible."""
    M = [float(x) for x in sc.usable_memory_gb]
    rtt = [list(map(float, row)) for row in sc.rtt_ms]
    rtt_max = [max(rtt[c][j] for c in range(len(rtt))) for j in range(len(M))]
    tau = [float(x) for x in sc.decode_ms]
    R, L = sc.num_requests, sc.num_blocks
    first, num, C, _, _ = cg_bp(M, tau, rtt_max, sc.block_gb, sc.cache_gb, R, L)
    if sum(num) < L or any(c < R for c in C):
        return None
    best = [dp_route(first, num, L, rtt[c], tau) for c in range(len(rtt))]
    routes = [best[int(c)][1] for c in sc.requests]
    mean_token_ms = sum(best[int(c)][0] for c in sc.requests) / R
    return first, num, routes, mean_token_ms


def petals_place(num, throughput, join_order, L):
    thr = [0.0] * L
    first = [0] * len(num)
    for j in join_order:
        m = num[j]
        if m <= 0:
            continue
        a = min(range(L - m + 1), key=lambda a: (sorted(thr[a:a + m]), a))
        first[j] = a
        for b in range(a, a + m):
            thr[b] += throughput[j]
    return first


# ------------------------------------------------------------------------------------------
# Brute-force BPRR for tiny instances
# ------------------------------------------------------------------------------------------
def _paths(first, num, L):
    """All feasible chains as lists of (server, k)."""
    out = []

    def dfs(pos, acc):
        if pos == L:
            out.append(list(acc))
            return
        for j in range(len(num)):
            if num[j] > 0 and first[j] <= pos <= first[j] + num[j] - 1:
                e = first[j] + num[j]
                acc.append((j, e - pos))
                dfs(e, acc)
                acc.pop()
    dfs(0, [])
    return out


def brute_force_bprr(sc, tol=1e-9):
    """Optimal mean per-token time over all placements and route assignments, or None if
    no plan fits in memory.  Exhaustive with lower-bound pruning."""
    S, L, R = sc.num_servers, sc.num_blocks, sc.num_requests
    M = [float(x) for x in sc.usable_memory_gb]
    rtt = [list(map(float, row)) for row in sc.rtt_ms]
    tau = [float(x) for x in sc.decode_ms]
    s_m, s_c = sc.block_gb, sc.cache_gb
    reqs = [int(c) for c in sc.requests]
    clients = sorted(set(reqs))
    options = []
    for j in range(S):
        cap = min(L, math.floor(M[j] / s_m))
        opts = [(0, 0)] + [(a, m) for m in range(1, cap + 1) for a in range(L - m + 1)]
        options.append(opts)
    best = [math.inf]

    def evaluate(first, num):
        paths = _paths(first, num, L)
        if not paths:
            return
        costs = {c: [sum(rtt[c][j] + tau[j] * k for j, k in p) for p in paths] for c in clients}
        lb = sum(min(costs[c]) for c in reqs)
        if lb >= best[0] * R - tol:
            return
        free = [M[j] - s_m * num[j] for j in range(S)]
        order_by_client = {c: sorted(range(len(paths)), key=lambda i: costs[c][i]) for c in clients}
        min_cost = {c: min(costs[c]) for c in clients}
        suffix_lb = [0.0] * (R + 1)
        for r in range(R - 1, -1, -1):
            suffix_lb[r] = suffix_lb[r + 1] + min_cost[reqs[r]]

        def assign(r, acc, last_idx):
            if acc + suffix_lb[r] >= best[0] * R - tol:
                return
            if r == R:
                best[0] = acc / R
                return
            c = reqs[r]
            start = last_idx if r > 0 and reqs[r - 1] == c else 0
            ordered = order_by_client[c]
            for pos in range(start, len(ordered)):
                i = ordered[pos]
                p = paths[i]
                if all(free[j] - s_c * k >= -tol for j, k in p):
                    for j, k in p:
                        free[j] -= s_c * k
                    assign(r + 1, acc + costs[c][i], pos)
                    for j, k in p:
                        free[j] += s_c * k

        assign(0, 0.0, 0)

    # requests of one client are interchangeable: sort them so the symmetry cut is valid
    reqs.sort()

    def rec(j, first, num):
        if j == S:
            covered = [False] * L
            for i in range(S):
                for b in range(first[i], first[i] + num[i]):
                    covered[b] = True
            if all(covered):
                evaluate(first, num)
            return
        for a, m in options[j]:
            first.append(a)
            num.append(m)
            rec(j + 1, first, num)
            first.pop()
            num.pop()

    rec(0, [], [])
    return None if best[0] == math.inf else best[0]


# ------------------------------------------------------------------------------------------
# Online serving: a straightforward heapq simulator with the semantics of the kernel
# ------------------------------------------------------------------------------------------
def _wait_for(sessions, used, budget, k, now):
    """ms until k more caches are free, releasing sessions (sorted by end) in order."""
    if k > budget:
        return math.inf
    need = used + k - budget
    if need <= 0:
        return 0.0
    released = 0
    for end, blocks, _ in sessions:
        released += blocks
        if released >= need:
            return max(end - now, 0.0)
    return math.inf


def _release_at(sessions, used, budget, k):
    """Time at which k more caches are free (inf: never), releasing in end order."""
    if k > budget:
        return math.inf
    need = used + k - budget
    released = 0
    for end, blocks, _ in sessions:
        released += blocks
        if released >= need:
            return end
    return math.inf


def _dp_extra(first, num, L, alpha, beta, extra, prefix_costs=False):
    """Block-ordered DP with link cost alpha[j] + beta[j] k + extra(j, k); with
    ``prefix_costs`` also returns D (cheapest cost to have processed [0, e))."""
    D = [math.inf] * (L + 1)
    D[0] = 0.0
    arg = [None] * (L + 1)
    for e, j in sorted((first[j] + num[j], j) for j in range(len(num)) if num[j] > 0):
        for p in range(first[j], e):
            if D[p] == math.inf:
                continue
            c = D[p] + alpha[j] + beta[j] * (e - p) + extra(j, e - p)
            if c < D[e]:
                D[e], arg[e] = c, (j, p)
    path, e = [], L
    while D[L] < math.inf and e > 0:
        j, e = arg[e]
        path.append(j)
    return (path[::-1], D) if prefix_costs else path[::-1]


_MASK = (1 << 64) - 1


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class ShuffleStream:
    """The engine's stream of PETALS's random orders (splitmix64 seeded by _mix64(key)):
    Fisher-Yates, i = n-1 .. 1 swapping a[i] with a[draw % (i + 1)]."""

    def __init__(self, key):
        self.state = _mix64(key & _MASK)

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        return _mix64(self.state)

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            r = self.next() % (i + 1)
            a[i], a[r] = a[r], a[i]
        return a


class _Stream:
    """A server's failure/repair times: splitmix64, exponential by inversion."""

    def __init__(self, key, server):
        self.state = _mix64(key ^ (((server + 1) * 0xD1B54A32D192ED03) & _MASK))

    def exp(self, mean):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        u = ((_mix64(self.state) >> 11) + 1) * 2.0 ** -53
        return -math.log(u) * mean


def simulate(sc, first, num, arrival_ms, client, out_tokens, noise, delay_ms, budget, mode,
             penalty_ms=10_000.0, base_ms=1000.0, cap_ms=60_000.0, max_attempts=10_000,
             churn=None):
    """Pure-Python twin of the simulator (distalloc._kernels.swarm_kernels.simulate driving
    the engine): same semantics, same tie-breaking.  Returns (start, end, first_token,
    retries, routes, events), plus a dict of churn outputs when ``churn`` is given:
    dict(mtbf_ms, mttr_ms, key, rule 'cg-bp'|'petals', counts, R, rank)."""
    import bisect
    S, L, N = len(num), sc.num_blocks, len(arrival_ms)
    first, num, budget = list(first), list(num), list(budget)
    rtt = [list(map(float, row)) for row in sc.rtt_ms]
    prtt = [list(map(float, row)) for row in sc.prefill_rtt_ms]
    dec, pre = list(map(float, sc.decode_ms)), list(map(float, sc.prefill_ms))
    p_alpha = [[x / 2 + 18.0 for x in row] for row in rtt]
    sessions = [[] for _ in range(S)]
    used = [0] * S
    start = [math.nan] * N
    end = [math.nan] * N
    ftok = [math.nan] * N
    retries = [0] * N
    interruptions = [0] * N
    routes = [[] for _ in range(N)]
    active = [False] * N
    comp, retry_heap, churn_heap = [], [], []
    events = 0
    cache = {}
    alive = [True] * S
    seq = [0] * N
    booked = [0]

    def blocks_of(path):
        prev, out = 0, []
        for j in path:
            out.append((j, first[j] + num[j] - prev))
            prev = first[j] + num[j]
        return out

    def route(r, now):
        c, lo = int(client[r]), int(out_tokens[r])
        if mode == 0:
            alpha = [prtt[c][j] + (lo - 1) * rtt[c][j] for j in range(S)]
            beta = [pre[j] + (lo - 1) * dec[j] for j in range(S)]
        else:
            alpha, beta = p_alpha[c], dec
        if cache.get(c, (None,))[0] != lo:
            cache[c] = (lo, *_dp_extra(first, num, L, alpha, beta, lambda j, k: 0.0,
                                       prefix_costs=True))
        static = cache[c][1]
        if static and all(k <= budget[j] - used[j] for j, k in blocks_of(static)):
            return static, now, True
        if mode == 0:
            extra = lambda j, k: (0.0 if k <= budget[j] - used[j]
                                  else _wait_for(sessions[j], used[j], budget[j], k, now))
        else:
            extra = lambda j, k: penalty_ms if k > budget[j] - used[j] else 0.0
        path = _dp_extra(first, num, L, alpha, beta, extra)
        if not path:
            return None, None, False
        short = [(j, k) for j, k in blocks_of(path) if k > budget[j] - used[j]]
        # the session starts when the last server of its chain has released enough cache
        start = max([now] + [_release_at(sessions[j], used[j], budget[j], k) for j, k in short])
        return path, (start if mode == 0 else now), not short

    def times(r, path):
        c, lo = int(client[r]), int(out_tokens[r])
        bl = blocks_of(path)
        p = sum(prtt[c][j] + pre[j] * k for j, k in bl)
        t = sum(rtt[c][j] + dec[j] * k for j, k in bl)
        return p, t, lo

    def book(r, path, begin, new=True):
        if new:
            seq[r] = booked[0]
            booked[0] += 1
        p, t, lo = times(r, path)
        bl = blocks_of(path)
        start[r] = begin
        ftok[r] = start[r] + p * noise[r]
        end[r] = start[r] + (p + (lo - 1) * t) * noise[r]
        routes[r] = path
        active[r] = True
        for j, k in bl:
            bisect.insort(sessions[j], (end[r], k, r), key=lambda s: s[0])
            used[j] += k
        heapq.heappush(comp, (end[r], r))

    def release(r):
        for j, k in blocks_of(routes[r]):
            sessions[j] = [s for s in sessions[j] if s[2] != r]
            used[j] -= k
        active[r] = False

    def back_off(r, now):
        retries[r] += 1
        if retries[r] <= max_attempts:
            heapq.heappush(retry_heap, (now + min(base_ms * 2 ** (retries[r] - 1), cap_ms), r))

    def attempt(r, now, rerouted=False):
        path, begin, fits = route(r, now)
        if path is None or (mode == 0 and begin == math.inf):
            if churn is not None:
                back_off(r, now)
            return
        if mode == 1 and not fits:
            back_off(r, now)
            return
        book(r, path, begin)

    def link(c, lo, j):
        if mode == 0:
            return prtt[c][j] + (lo - 1) * rtt[c][j], pre[j] + (lo - 1) * dec[j]
        return p_alpha[c][j], dec[j]

    def beaten(c, lo, j, D):
        """Could a chain through j cost client c no more than its cached chain?  Lower
        bound: prefix into j's window + j's link + one visit and the cheapest per-block
        cost of any server for the blocks after it."""
        alpha, beta = link(c, lo, j)
        e = first[j] + num[j]
        rest = 0.0
        if e < L:
            costs = [link(c, lo, h) for h in range(S)]
            rest = min(a for a, _ in costs) + min(b for _, b in costs) * (L - e)
        return any(D[p] + alpha + beta * (e - p) + rest <= D[L] * (1.0 + 1e-9)
                   for p in range(first[j], e) if D[p] < math.inf)

    def place(j, a, m):
        lost = num[j] > 0
        first[j], num[j] = (a, m) if m > 0 else (0, 0)
        spare = float(sc.usable_memory_gb[j]) - sc.block_gb * num[j]
        budget[j] = max(math.floor(spare / sc.cache_gb), 0) if alive[j] else 0
        # a client's cached static chain stays unless j left it or could now beat it
        for c, (lo, path, D) in list(cache.items()):
            if (lost and j in path) or (num[j] > 0 and beaten(c, lo, j, D)):
                del cache[c]

    out = dict(interruptions=interruptions, lost_ms=0.0, lost_tokens=0, log=[], moved=0)
    if churn is not None:
        streams = [_Stream(churn["key"], j) for j in range(S)]
        up_since = [0.0] * S
        up = 0.0
        for j in range(S):
            heapq.heappush(churn_heap, (streams[j].exp(churn["mtbf_ms"]), 2 * j))
    i = 0
    last = 0.0
    while True:
        if i >= N and not any(active) and not retry_heap:
            break
        while comp and not (active[comp[0][1]] and end[comp[0][1]] == comp[0][0]):
            heapq.heappop(comp)
        t_c = comp[0][0] if comp else math.inf
        t_a = arrival_ms[i] + delay_ms if i < N else math.inf
        t_r = retry_heap[0][0] if retry_heap else math.inf
        t_ch = churn_heap[0][0] if churn_heap else math.inf
        if t_c <= t_a and t_c <= t_r and t_c <= t_ch:
            if t_c == math.inf:
                break
            now, r = heapq.heappop(comp)
            events += 1
            last = now
            release(r)
            continue
        if t_a <= t_r and t_a <= t_ch:
            now, r = t_a, i
            i += 1
        elif t_r <= t_ch:
            now, r = heapq.heappop(retry_heap)
        else:
            now, code = heapq.heappop(churn_heap)
            j, kind = code >> 1, code & 1
            events += 1
            last = now
            out["log"].append((now, j, kind))
            if kind == 0:
                up += now - up_since[j]
                lost = sorted(s[2] for s in sessions[j])
                for r in lost:
                    interruptions[r] += 1
                    lo = int(out_tokens[r])
                    if now > start[r]:
                        out["lost_ms"] += now - start[r]
                    if now >= ftok[r]:
                        ntok = lo
                        if lo > 1:
                            ntok = min(lo, 1 + math.floor((now - ftok[r]) / ((end[r] - ftok[r]) / (lo - 1))))
                        out["lost_tokens"] += ntok
                    release(r)
                    start[r] = end[r] = ftok[r] = math.nan
                    routes[r] = []
                alive[j] = False
                place(j, 0, 0)
                heapq.heappush(churn_heap, (now + streams[j].exp(churn["mttr_ms"]), 2 * j + 1))
                for r in lost:
                    attempt(r, now)
            else:
                alive[j] = True
                m = int(churn["counts"][j])
                a = 0
                if m > 0:
                    if churn["rule"] == "cg-bp":
                        a = cg_join_window(sc, first, num, j, m, churn["R"], used)
                    else:
                        a = petals_join_start(sc, first, num, m, churn["rank"])
                place(j, a, m)
                if mode == 0 and churn.get("reroute"):
                    # WS-RR: sessions still waiting are routed again, booking order, and
                    # move if they finish strictly earlier
                    for _, r in sorted((seq[r], r) for r in range(N)
                                       if active[r] and start[r] > now):
                        old_path, old_begin, old_end = routes[r], start[r], end[r]
                        release(r)
                        path, begin, _ = route(r, now)
                        new_end = math.inf
                        if path is not None and begin < math.inf:
                            p, t, lo = times(r, path)
                            new_end = begin + (p + (lo - 1) * t) * noise[r]
                        if new_end < old_end:
                            book(r, path, begin, new=False)
                            out["moved"] += 1
                        else:
                            book(r, old_path, old_begin, new=False)
                up_since[j] = now
                heapq.heappush(churn_heap, (now + streams[j].exp(churn["mtbf_ms"]), 2 * j))
            continue
        events += 1
        last = now
        attempt(r, now)
    if churn is None:
        return start, end, ftok, retries, routes, events
    up += sum(last - up_since[j] for j in range(S) if alive[j])
    out.update(up_ms=up, horizon_ms=last)
    return start, end, ftok, retries, routes, events, out


# ------------------------------------------------------------------------------------------
# (n, k) fork-join with purging: a straightforward heapq event simulator
# ------------------------------------------------------------------------------------------
def fork_join_simulate(n, k, lam, speeds, probs, num_jobs, seed=0, warmup=0):
    """Per-core FCFS deques, a heap of (time, core, job, version) completion events,
    purging of the n - k remaining tasks at the k-th completion.  Returns (mean response
    time of the jobs after ``warmup``, share of completions per speed level)."""
    import random
    from collections import deque
    rnd = random.Random(seed)
    queues = [deque() for _ in range(n)]
    serving = [None] * n          # job in service on each core
    version = [0] * n             # bumps when a core's service is cancelled
    done = {}                     # job -> completed tasks
    arrival = {}
    heap = []
    t = 0.0
    next_arrival = rnd.expovariate(lam)
    arrived = finished = 0
    total_resp = 0.0
    wins = [0] * len(speeds)
    cum = [sum(probs[:i + 1]) for i in range(len(probs))]

    def start(core, now):
        while queues[core]:
            job = queues[core].popleft()
            if job in done:               # not purged yet
                u = rnd.random()
                lev = next(i for i, c in enumerate(cum) if u < c or i == len(cum) - 1)
                serving[core] = (job, lev)
                heapq.heappush(heap, (now + rnd.expovariate(speeds[lev]), core, job, version[core]))
                return
        serving[core] = None

    while finished < num_jobs:
        if arrived < num_jobs and (not heap or next_arrival < heap[0][0]):
            t = next_arrival
            job = arrived
            arrived += 1
            done[job] = 0
            arrival[job] = t
            for core in range(n):
                queues[core].append(job)
                if serving[core] is None:
                    start(core, t)
            next_arrival = t + rnd.expovariate(lam)
            continue
        t, core, job, ver = heapq.heappop(heap)
        if ver != version[core] or serving[core] is None or serving[core][0] != job:
            continue                       # cancelled by a purge
        wins[serving[core][1]] += 1
        done[job] += 1
        if done[job] == k:                 # departure: purge the other tasks
            del done[job]
            finished += 1
            if job >= warmup:
                total_resp += t - arrival[job]
            for other in range(n):
                if other != core and serving[other] is not None and serving[other][0] == job:
                    version[other] += 1
                    start(other, t)
        start(core, t)
    return total_resp / (num_jobs - warmup), [w / sum(wins) for w in wins]


# ------------------------------------------------------------------------------------------
# Fastest-k SGD: numpy-per-iteration reference loop
# ------------------------------------------------------------------------------------------
def fastest_k_reference(times, grads, k):
    """Average of the k fastest workers' gradients, ties broken by worker index."""
    order = np.argsort(times, axis=1, kind="stable")
    out = np.empty((times.shape[0], grads.shape[2]))
    for b in range(times.shape[0]):
        out[b] = grads[b, order[b, : k[b]]].mean(axis=0)
    return out, order


def sgd_reference(X, y, n, times, lr, horizon, k_of_time, loss="least_squares", reg=0.0,
                  error=None, dbw=None):
    """Fastest-k SGD one iteration at a time in numpy.  Returns (w, t, iterations, ks,
    errors) with errors = [error(w_0), error(w_1), ...] when ``error`` is given.

    ``dbw`` = dict(k0, k_max, mu, smoothness, decay) replaces ``k_of_time`` by dynamic
    backup workers: after each iteration, k = argmax over 1..k_max of
    (lr G - L lr^2 (G + V_k) / 2) / mu_k (k_max if none is positive), with V_k =
    v / k (n - k) / (n - 1), v the sample variance of the received workers' mean gradients
    and G = |g|^2 - V_k, both moving averages."""
    m, d = X.shape
    s = m // n
    w = np.zeros(d)
    t, it, ks = 0.0, 0, []
    errors = [error(w)] if error else []
    k = dbw["k0"] if dbw else None
    est = None
    while it < times.shape[0] and t < horizon:
        if not dbw:
            k = k_of_time(t)
        order = np.argsort(times[it], kind="stable")[:k]
        parts = []
        for i in order:
            Xi, yi = X[i * s:(i + 1) * s], y[i * s:(i + 1) * s]
            z = Xi @ w
            r = z - yi if loss == "least_squares" else 1 / (1 + np.exp(-z)) - yi
            parts.append(Xi.T @ r)
        g = np.sum(parts, axis=0) / (k * s) + reg * w
        if dbw and (k >= 2 or est is not None):
            v = (np.var(np.array(parts) / s, axis=0, ddof=1).sum() if k >= 2 else est[0])
            grad2 = max(g @ g - v / k * (n - k) / (n - 1), 0.0)
            est = (v, grad2) if est is None else tuple(
                dbw["decay"] * a + (1 - dbw["decay"]) * b for a, b in zip(est, (v, grad2)))
        w = w - lr * g
        t += times[it, order[-1]]
        it += 1
        ks.append(k)
        if error:
            errors.append(error(w))
        if dbw and est is not None:
            v, G = est
            kk = np.arange(1, dbw["k_max"] + 1)
            rate = (lr * G - 0.5 * dbw["smoothness"] * lr ** 2 * (G + v / kk * (n - kk) / (n - 1))
                    ) / dbw["mu"][:dbw["k_max"]]
            k = int(kk[np.argmax(rate)]) if rate.max() > 0 else dbw["k_max"]
    return w, t, it, ks, errors


# ------------------------------------------------------------------------------------------
# Online join and rebalance rules (the engine's, SPEC 5.1), pure Python
# ------------------------------------------------------------------------------------------
def _best_start(values, m):
    """PETALS's _choose_best_start: the window whose sorted values are smallest."""
    return min(range(len(values) - m + 1), key=lambda a: (sorted(values[a:a + m]), a))


def cg_join_window(sc, first, num, j, m, R, used=None):
    """CG-BP's window for server j of m blocks, the holders credited in CG-BP's amortised
    order with the dummy time of every server that could hold blocks (SPEC 1.5 step 2),
    each with its free session slots: s_h - ceil(used_h / m_h), at least 0."""
    from distalloc.llm.placement import conservative_block_counts
    L = sc.num_blocks
    M, tau = list(map(float, sc.usable_memory_gb)), list(map(float, sc.decode_ms))
    tmax_c = list(map(float, sc.max_rtt_ms))
    counts = [int(x) for x in conservative_block_counts(sc, R)]
    amort = lambda h, mm: tau[h] + tmax_c[h] / mm
    holders = sorted((amort(h, num[h]), h) for h in range(len(num)) if num[h] > 0)
    tmax = max([amort(h, counts[h]) for h in range(len(num)) if counts[h] > 0]
               + [amort(j, m)] + [k for k, _ in holders])
    dummy = tmax + 1.0
    C, T, under = [0.0] * L, [R * dummy] * L, L
    for key, h in holders:
        s = min(math.floor((M[h] - sc.block_gb * num[h]) / (sc.cache_gb * num[h])), R)
        s = max(s, 0)
        if used is not None:
            s = max(s - (-(-used[h] // num[h])), 0)
        for b in range(first[h], first[h] + num[h]):
            deficit = min(max(R - int(C[b]), 0), s)
            T[b] -= (dummy - key) * deficit
            if C[b] < R and C[b] + s >= R:
                under -= 1
            C[b] += s
    if under > 0:
        best_a, best_sum = -1, -math.inf
        for a in range(L - m + 1):
            if not any(C[b] < R for b in range(a, a + m)):
                continue
            wsum = 0.0
            for b in range(a, a + m):
                wsum = wsum + T[b]
            if wsum > best_sum:
                best_a, best_sum = a, wsum
        return best_a
    return _best_start(C, m)


def _block_throughput(first, num, thr, L, order):
    t = [0.0] * L
    for h in order:
        if num[h] > 0:
            for b in range(first[h], first[h] + num[h]):
                t[b] += thr[h]
    return t


def petals_join_start(sc, first, num, m, rank):
    """PETALS's join rule: the weakest window of m blocks, the holders' throughputs (at
    their current block counts) summed in join-rank order."""
    order = sorted(range(len(num)), key=lambda h: (rank[h], h))
    thr = list(map(float, sc.server_throughput(np.array(num))))
    return _best_start(_block_throughput(first, num, thr, sc.num_blocks, order), m)


def join_window(sc, first, num, j, method, R, rank, used=None):
    """(first_block, num_blocks) the engine's join rule gives server j."""
    from distalloc.llm.placement import conservative_block_counts, petals_block_counts
    if method == "cg-bprr":
        m = int(conservative_block_counts(sc, R)[j])
        return (cg_join_window(sc, first, num, j, m, R, used), m) if m > 0 else (0, 0)
    m = int(petals_block_counts(sc)[j])
    return (petals_join_start(sc, first, num, m, rank), m) if m > 0 else (0, 0)


def petals_should_move(first, num, thr, L, order, j, quality, rng, max_passes=64):
    """PETALS's should_choose_other_blocks for server j (petals/server/block_selection.py,
    eps 1e-3), each pass of the simulated re-choices over the holders (by index) shuffled
    by ``rng`` (a ShuffleStream); returns the new start or None."""
    eps = 1e-3
    t = _block_throughput(first, num, thr, L, order)
    initial = min(t)
    tf = list(first)
    for b in range(first[j], first[j] + num[j]):
        t[b] -= thr[j] * (1 + eps)
    if initial > eps and min(t) <= 0:
        return None
    ns = _best_start(t, num[j])
    if ns == first[j]:
        return None
    for b in range(first[j], first[j] + num[j]):
        t[b] += thr[j] * eps
    tf[j] = ns
    for b in range(ns, ns + num[j]):
        t[b] += thr[j]
    moved, passes = True, 0
    while moved and passes < max_passes:
        moved, passes = False, passes + 1
        for h in rng.shuffle([h for h in range(len(num)) if num[h] > 0]):
            for b in range(tf[h], tf[h] + num[h]):
                t[b] -= thr[h] * (1 + eps)
            ns = _best_start(t, num[h])
            for b in range(tf[h], tf[h] + num[h]):
                t[b] += thr[h] * eps
            if ns != tf[h]:
                tf[h], moved = ns, True
            for b in range(tf[h], tf[h] + num[h]):
                t[b] += thr[h]
    new = min(t)
    if new < initial or new < eps or not (initial / new < quality - eps):
        return None
    ns = _best_start(_block_throughput(first, num, thr, L, [h for h in order if h != j]), num[j])
    return ns if ns != first[j] else None


def petals_rebalance(first, num, thr, L, order, quality, rng):
    """Every server holding blocks, in an order shuffled by ``rng`` (then each check's
    passes), runs the check and moves: [(j, start)]."""
    first, moves = list(first), []
    for j in rng.shuffle([j for j in range(len(num)) if num[j] > 0]):
        if num[j] > 0:
            ns = petals_should_move(first, num, thr, L, order, j, quality, rng)
            if ns is not None:
                first[j] = ns
                moves.append((j, ns))
    return moves


def dijkstra_wsrr(first, num, L, alpha_row, beta, budget, used, lists, now):
    """WS-RR routing in plain Python: Dijkstra with heapq over the explicit feasible-link
    DAG, link cost alpha[j] + beta[j] k + the wait until j has cache for k blocks
    (``lists[j]``: its sessions as (end, blocks) sorted by end).  The benchmark's baseline
    for one ``Swarm.route``.  Returns (cost, path)."""
    def extra(j, k):
        if k <= budget[j] - used[j]:
            return 0.0
        t = _release_at([(e, b, None) for e, b in lists[j]], used[j], budget[j], k)
        return max(t - now, 0.0)
    S = len(num)
    ends = {"s": 0}
    for j in range(S):
        if num[j] > 0:
            ends[j] = first[j] + num[j]
    dist, prev, done = {"s": 0.0}, {}, set()
    heap = [(0.0, -1, "s")]
    best_end, best_node = math.inf, None
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        e_u = ends[u]
        if e_u == L and u != "s" and d < best_end:
            best_end, best_node = d, u
        for j in range(S):
            if num[j] <= 0 or j in done or not (first[j] <= e_u <= first[j] + num[j] - 1):
                continue
            k = first[j] + num[j] - e_u
            w = alpha_row[j] + beta[j] * k + extra(j, k)
            if d + w < dist.get(j, math.inf):
                dist[j], prev[j] = d + w, u
                heapq.heappush(heap, (d + w, j, j))
    if best_node is None:
        return math.inf, []
    path, u = [], best_node
    while u != "s":
        path.append(u)
        u = prev[u]
    return best_end, path[::-1]


def networkx_wsrr(first, num, L, alpha_row, beta, budget, used, lists, now):
    """The same route with networkx: build this request's weighted DAG, then
    ``networkx.shortest_path`` (Dijkstra).  Returns (cost, path)."""
    import networkx as nx
    G = nx.DiGraph()
    S = len(num)
    ends = {"s": 0, **{j: first[j] + num[j] for j in range(S) if num[j] > 0}}
    for u, e_u in ends.items():
        for j in range(S):
            if num[j] > 0 and first[j] <= e_u <= first[j] + num[j] - 1:
                k = first[j] + num[j] - e_u
                w = alpha_row[j] + beta[j] * k
                if k > budget[j] - used[j]:
                    t = _release_at([(e, b, None) for e, b in lists[j]], used[j], budget[j], k)
                    w += max(t - now, 0.0)
                G.add_edge(u, j, weight=w)
        if u != "s" and e_u == L:
            G.add_edge(u, "t", weight=0.0)
    path = nx.shortest_path(G, "s", "t", weight="weight")[1:-1]
    return nx.path_weight(G, ["s", *path, "t"], weight="weight"), path
