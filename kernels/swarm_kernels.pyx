# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""The online engine of pipeline-parallel LLM serving (SPEC 1.7, 5.1), and the discrete-event
simulator built around it.

What this module computes, and for whom (callers: ``distalloc.llm.swarm.Swarm``, the object a
scheduler embeds, and ``distalloc.llm.simulation.simulate``; never user code):

* ``Engine``   — the state of a swarm (placement, cache budget and cache booked per server,
  the sessions in progress with their chains, per-server session lists sorted by end time,
  the routing DAG's end-block buckets, each client's cached static chain) and every online
  decision on it, in ``cdef ... nogil`` code: route a session (WS-RR or PETALS's Dijkstra
  costs, one dispatch per policy; JFFC's slot is reserved), finish it, a server leaving (its
  sessions reported), a server joining (CG-BP's or PETALS's window rule against the current
  coverage), PETALS's periodic re-choice of blocks, and the late-finish rule (sessions
  booked behind a late session move, so started sessions are never over-booked).  Its
  ``def`` methods are the thin door ``Swarm`` calls; they never validate user input.
* ``simulate`` — the event loop of ``distalloc.llm.simulate``: arrivals, completions,
  PETALS's back-off retries and server churn, each event one call of the same ``cdef``
  code ``Swarm`` uses, without the GIL.  What a user measures in simulation is what they
  embed.

Layering: ``llm_core.pxd`` (routing DP, session lists, event heap, window rules), then the
engine's ``cdef`` code on raw pointers, then the ``def`` doors.  Times are in ms; blocks
0-based; a server j hosts [first[j], first[j] + num[j]), num[j] == 0 means no blocks.

Files.  One module, compiled as one (``include``d at the end of this file).  Cython allows
``include`` only at module level, so the engine's concerns beyond its core are module-level
``cdef`` functions taking the ``Engine`` (direct C calls, as its ``cdef`` methods are), and
the engine's ``def`` doors for them delegate there:

* ``swarm_kernels.pyx`` (this file) — the engine's data structures (session slots, chain
  arena, heap of predicted ends, session lists, id map), its placement state, booking,
  release and the late-finish rule, routing (the dispatch per policy; WS-RR and PETALS),
  finish, and the Python door.
* ``swarm_churn.pxi`` — server churn: leave, join (CG-BP's and PETALS's window rules),
  PETALS's re-choice of blocks (``rebalance_petals``), a re-plan (``set_placement``),
  WS-RR's re-routing of waiting bookings.
* ``swarm_jffc.pxi`` — the 'jffc' policy's dispatch: route, late finishes, a queued job's
  start, the queued sessions' predicted chains and starts.
* ``swarm_chains.pxi`` — JFFC's chains: installing them (``set_chains``), and their churn
  (leave; join and re-plan by GCA on the slots no chain reserves).
* ``swarm_check.pxi`` — ``Engine.check``, the consistency check the tests call.
* ``swarm_simulate.pxi`` — ``simulate``, the event loop.

Late finishes.  A session's ``end`` is its predicted finish.  At every call at time ``now``
(clock ``p`` before the call) a session not finished although its end < now is late: its
end becomes +inf (it holds its cache until ``finish``), and every session not yet confirmed
started (start >= p) is re-booked in booking order on its chain, starting as soon as the
cache it needs is released but never before it was planned nor before ``p``; late sessions
are handled one predicted end at a time, in time order.  A late ``finish`` holds the
session's cache until ``now`` the same way.  A session whose start < the clock of some call
is confirmed started and never moves.  Re-booking in booking order keeps the invariant of
WS-RR booking: at every instant, the sessions holding cache on a server fit its budget.
"""
from libc.math cimport INFINITY, floor, log
from libc.stdint cimport int64_t, int32_t, int8_t, uint8_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memmove, memcpy, memset

from llm_core cimport *

cimport cython
import numpy as np

cdef enum:
    POLICY_WSRR = 0
    POLICY_PETALS = 1
    POLICY_JFFC = 2          # join the fastest free chain (SPEC 1.10), chains composed by GCA
    JOIN_CG = 0
    JOIN_PETALS = 1
    JOIN_CHAINS = 2          # the chain method's join: GCA on the slots no chain reserves
    ROUTE_BOOKED = 0
    ROUTE_NO_CHAIN = 1       # no live chain covers every block (or one larger than a budget)
    ROUTE_BUSY = 2           # PETALS: the chosen chain lacks free cache now (back off)
    ROUTE_UNSUPPORTED = 3
    ROUTE_QUEUED = 4         # JFFC: every chain is full; the session waits in the central queue
    PETALS_MAX_PASSES = 64   # cap on the passes of PETALS's simulated re-choices
    ST_FREE = 0
    ST_ACTIVE = 1
    ST_DONE = 2

#: policy name -> engine code; routing outcomes, for the Python door
POLICIES = {"ws-rr": POLICY_WSRR, "petals": POLICY_PETALS, "jffc": POLICY_JFFC}
JOIN_RULES = {"cg-bp": JOIN_CG, "petals": JOIN_PETALS, "chains": JOIN_CHAINS}
ROUTE_QUEUED_CODE = ROUTE_QUEUED
ROUTE_STATUS = {ROUTE_BOOKED: "booked", ROUTE_NO_CHAIN: "no chain",
                ROUTE_BUSY: "no free cache", ROUTE_UNSUPPORTED: "unsupported",
                ROUTE_QUEUED: "queued"}


cdef struct Session:
    # one session slot; times in ms (counts that fit 32 bits are 32 bits: the simulator
    # keeps one slot per request, so the struct's size is its memory traffic)
    double start          # current start (may move while not confirmed started)
    double planned        # start given at booking (a start never moves before it)
    double end            # predicted end (+inf: late, holds its cache until finished)
    double service        # end - start
    double pre            # prefill part of the service (first token at start + pre)
    double routed         # when it was routed (its wait counts from there)
    double noise          # service-time factor
    int64_t off           # chain: arena[off:off + len]
    int64_t seq           # booking order
    int64_t id            # the Python door's session id (-1: none)
    int64_t lo            # output tokens
    int32_t len           # chain length (<= L + 1 <= 2^30 + 1)
    int32_t client
    int32_t chain         # JFFC: the chain it runs on (-1: none, or queued)
    int32_t pchain        # JFFC, queued: the predicted chain (-1: unknown)
    int8_t queued         # JFFC: waiting in the central queue (no cache held)
    int8_t state          # ST_FREE, ST_ACTIVE, ST_DONE


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t _next_u64(uint64_t* state) noexcept nogil:
    """The next draw of a splitmix64 stream."""
    state[0] += <uint64_t> 0x9E3779B97F4A7C15
    return _mix64(state[0])


cdef inline void _shuffle(int64_t* a, Py_ssize_t n, uint64_t* state) noexcept nogil:
    """Fisher-Yates shuffle of a[0:n] from a splitmix64 stream (i = n-1 .. 1 swaps a[i]
    with a[draw % (i + 1)])."""
    cdef Py_ssize_t i, r
    cdef int64_t x
    for i in range(n - 1, 0, -1):
        r = <Py_ssize_t> (_next_u64(state) % <uint64_t> (i + 1))
        x = a[i]
        a[i] = a[r]
        a[r] = x


cdef inline double _exp_draw(uint64_t* state, double mean) noexcept nogil:
    """Exponential with the given mean from a splitmix64 stream (u in (0, 1])."""
    state[0] += <uint64_t> 0x9E3779B97F4A7C15
    cdef uint64_t x = _mix64(state[0])
    cdef double u = ((x >> 11) + 1) * (1.0 / 9007199254740992.0)
    return -log(u) * mean


@cython.final
cdef class Engine:
    """One swarm's state and its online decisions (see the module docstring)."""
    cdef readonly Py_ssize_t S, L, C
    cdef readonly int policy, join_rule
    cdef readonly int64_t planned
    cdef readonly double clock_ms
    cdef readonly int64_t interrupted
    cdef readonly double lost_ms
    cdef readonly int64_t dp_runs           # routes that needed the DP (static chain full)
    cdef readonly int64_t static_runs       # static-chain DPs (placement changed, new client)
    cdef double prev_clock
    cdef public bint reroute_waiting    # WS-RR: re-route waiting bookings at a join (opt-in)
    cdef double block_gb, cache_gb, penalty_ms, balance_quality, cg_tmax
    cdef object _keep
    cdef const double* rtt
    cdef const double* prtt
    cdef const double* dec
    cdef const double* pre
    cdef const double* palpha
    cdef const double* pbeta
    cdef const double* usable
    cdef const double* maxrtt
    cdef const double* fwd
    cdef const double* net
    cdef const int64_t* join_blocks
    cdef const double* join_rank
    # placement state; Python reads the numpy arrays
    cdef readonly object first_block, num_blocks, cache_budget, cache_used, alive
    cdef int64_t* first
    cdef int64_t* num
    cdef int64_t* capb
    cdef int64_t* used
    cdef uint8_t* alv
    cdef SessionList* lists
    cdef RouteGraph g
    cdef RouteCost rc
    # scratch
    cdef double* D
    cdef int64_t* arg_server
    cdef int64_t* arg_prev
    cdef double* W
    cdef int64_t* path
    cdef double* wbuf
    cdef double* wbest
    cdef double* blockval
    cdef double* T
    cdef int64_t* under_prefix
    cdef int64_t* tmp_first
    cdef int64_t* perm              # PETALS's shuffled order of the holders
    cdef KeyIndex* holders          # servers holding blocks, by the join rule's key
    cdef Py_ssize_t nholders
    # each client's static cheapest chain (valid while the placement is unchanged)
    cdef int64_t* ckey
    cdef int64_t* clen
    cdef int64_t* cpath
    cdef double* cD                 # its DP's prefix costs D[0..L] (a join's lower bound)
    cdef double* cmin               # per client: the cheapest per-visit and per-block cost
    # sessions, by slot
    cdef Py_ssize_t ncap
    cdef Session* ss
    cdef readonly Py_ssize_t nactive
    cdef int64_t seq
    cdef bint need_rebook
    # chains of the sessions, appended to one arena
    cdef int64_t* arena
    cdef Py_ssize_t arena_size, arena_cap, arena_live
    cdef bint keep_chains
    # predicted ends of sessions in progress (lazy deletion)
    cdef double* ht
    cdef int64_t* hc
    cdef Py_ssize_t nheap, heap_cap
    # the Python door's session ids: id -> slot for ids in [id_base, next_id)
    cdef readonly int64_t next_id
    cdef int64_t id_base
    cdef int64_t* slot_of
    cdef Py_ssize_t slot_head, slot_size, slot_cap
    cdef int64_t* free_slots
    cdef Py_ssize_t nfree
    # sessions whose chain or start a later decision set (JFFC starts from the queue, WS-RR
    # waiting bookings re-routed when capacity appears): (slot, id) pairs until drained
    cdef int64_t* upd
    cdef Py_ssize_t nupd, updcap
    # PETALS's random re-choice order (splitmix64)
    cdef uint64_t shuffle_state
    # JFFC (policy 'jffc'): the chains (dead ones keep their index with capacity 0), the
    # slots they reserve per server, the composition's costs for GCA, the central queue
    cdef readonly Py_ssize_t K
    cdef Py_ssize_t kcap
    cdef int64_t* ch_off
    cdef int64_t* ch_len
    cdef int64_t* ch_cap
    cdef int64_t* ch_home
    cdef double* ch_cost
    cdef double* ch_pre           # kcap * C, chain-major: prefill time of client c's job
    cdef double* ch_tok           # per-token time
    cdef double* ch_rank          # ranking time (at the composition's job length)
    cdef int64_t* ch_srv          # chain arena: servers
    cdef int64_t* ch_blk          # and the blocks processed on each
    cdef Py_ssize_t ch_size, ch_arena_cap, ch_live
    cdef int64_t* reserved        # slots reserved by live chains, per server
    cdef int64_t* owner           # client group each server was placed for (-1 none)
    cdef int64_t* cgroup          # client group of each client (NULL: no groups)
    cdef double* galpha           # G x S per-visit times of each group (GCA)
    cdef double* salpha           # S shared per-visit times (GCA)
    cdef double* cbeta            # S per-block times (GCA)
    cdef Py_ssize_t G
    cdef double rank_tokens
    cdef JFFCState js
    cdef bint js_ready
    cdef object score_owner
    cdef bint pred_valid          # queued sessions' predicted chains/starts are current
    cdef double* pht              # the prediction replay's heap of predicted ends
    cdef int64_t* phc
    cdef Py_ssize_t pn, pcap

    def __cinit__(self):
        self.lists = NULL
        memset(&self.js, 0, sizeof(JFFCState))

    def __init__(self, first_block, num_blocks, int64_t L, rtt_ms, prefill_rtt_ms, decode_ms,
                 prefill_ms, petals_alpha, petals_beta, usable_memory_gb, max_rtt_ms,
                 forward_rps, network_rps, join_blocks, join_rank, double block_gb,
                 double cache_gb, int64_t planned, int policy, int join_rule,
                 double penalty_ms, double balance_quality):
        cdef Py_ssize_t S = len(num_blocks), C = rtt_ms.shape[0], j
        # preconditions (llm_core.pxd): shapes and every index taken from data, before any
        # buffer is sized or written
        _require(0 <= L <= KERNEL_MAX_BLOCKS, "L out of range")
        _require(rtt_ms.shape[0] < 2**31, "clients beyond 32 bits")
        _require(len(first_block) == S and np.shape(rtt_ms) == (C, S)
                 and np.shape(prefill_rtt_ms) == (C, S) and np.shape(petals_alpha) == (C, S)
                 and all(np.shape(x) == (S,) for x in (
                     decode_ms, prefill_ms, petals_beta, usable_memory_gb, max_rtt_ms,
                     forward_rps, network_rps, join_blocks, join_rank)), "array shapes")
        self.S, self.L, self.C = S, L, C
        self.policy, self.join_rule, self.planned = policy, join_rule, planned
        self.block_gb, self.cache_gb = block_gb, cache_gb
        self.penalty_ms, self.balance_quality = penalty_ms, balance_quality
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in
                  (rtt_ms, prefill_rtt_ms, decode_ms, prefill_ms, petals_alpha, petals_beta,
                   usable_memory_gb, max_rtt_ms, forward_rps, network_rps, join_rank)]
        jb = np.ascontiguousarray(join_blocks, dtype=np.int64)
        _require(bool(np.all((jb >= 0) & (jb <= L))), "join_blocks out of [0, L]")
        self._keep = (arrays, jb)
        cdef double[:, ::1] m2
        cdef double[::1] m1
        m2 = arrays[0]; self.rtt = &m2[0, 0]
        m2 = arrays[1]; self.prtt = &m2[0, 0]
        m1 = arrays[2]; self.dec = &m1[0]
        m1 = arrays[3]; self.pre = &m1[0]
        m2 = arrays[4]; self.palpha = &m2[0, 0]
        m1 = arrays[5]; self.pbeta = &m1[0]
        m1 = arrays[6]; self.usable = &m1[0]
        m1 = arrays[7]; self.maxrtt = &m1[0]
        m1 = arrays[8]; self.fwd = &m1[0]
        m1 = arrays[9]; self.net = &m1[0]
        m1 = arrays[10]; self.join_rank = &m1[0]
        cdef int64_t[::1] i1 = jb
        self.join_blocks = &i1[0]
        self.first_block = np.zeros(S, dtype=np.int64)
        self.num_blocks = np.zeros(S, dtype=np.int64)
        self.cache_budget = np.zeros(S, dtype=np.int64)
        self.cache_used = np.zeros(S, dtype=np.int64)
        self.alive = np.ones(S, dtype=np.uint8)
        i1 = self.first_block; self.first = &i1[0]
        i1 = self.num_blocks; self.num = &i1[0]
        i1 = self.cache_budget; self.capb = &i1[0]
        i1 = self.cache_used; self.used = &i1[0]
        cdef uint8_t[::1] u1 = self.alive
        self.alv = &u1[0]
        self.lists = <SessionList*> calloc(S + 1, sizeof(SessionList))
        self.D = <double*> malloc((L + 1) * sizeof(double))
        self.arg_server = <int64_t*> malloc((L + 1) * sizeof(int64_t))
        self.arg_prev = <int64_t*> malloc((L + 1) * sizeof(int64_t))
        self.W = <double*> malloc((L + 2) * sizeof(double))
        self.path = <int64_t*> malloc((L + 1) * sizeof(int64_t))
        self.wbuf = <double*> malloc(2 * (L + 1) * sizeof(double))
        self.wbest = <double*> malloc(2 * (L + 1) * sizeof(double))
        self.blockval = <double*> malloc((L + 1) * sizeof(double))
        self.T = <double*> malloc((L + 1) * sizeof(double))
        self.under_prefix = <int64_t*> malloc((L + 2) * sizeof(int64_t))
        self.tmp_first = <int64_t*> malloc((S + 1) * sizeof(int64_t))
        self.perm = <int64_t*> malloc((S + 1) * sizeof(int64_t))
        self.holders = <KeyIndex*> malloc((S + 1) * sizeof(KeyIndex))
        self.ckey = <int64_t*> malloc((C + 1) * sizeof(int64_t))
        self.clen = <int64_t*> malloc((C + 1) * sizeof(int64_t))
        self.cpath = <int64_t*> malloc((C + 1) * (L + 1) * sizeof(int64_t))
        self.cD = <double*> malloc((C + 1) * (L + 1) * sizeof(double))
        self.cmin = <double*> malloc(2 * (C + 1) * sizeof(double))
        cdef int ok = _graph_init(&self.g, self.first, self.num, S, L)
        if not (self.lists and self.D and self.arg_server and self.arg_prev and self.W
                and self.path and self.wbuf and self.wbest and self.blockval and self.T
                and self.under_prefix and self.tmp_first and self.perm and self.holders
                and self.ckey
                and self.clen and self.cpath and self.cD and self.cmin) or ok < 0:
            raise MemoryError()
        # CG-BP's dummy amortised time: the slowest server that could ever hold blocks
        self.cg_tmax = -INFINITY
        for j in range(S):
            if self.join_blocks[j] > 0:
                self.cg_tmax = max(self.cg_tmax, self.dec[j] + self.maxrtt[j] / self.join_blocks[j])
        self.rc.capb = self.capb
        self.rc.used = self.used
        self.rc.lists = self.lists
        self.rc.penalty = penalty_ms
        a = np.ascontiguousarray(first_block, dtype=np.int64)
        m = np.ascontiguousarray(num_blocks, dtype=np.int64)
        cdef int64_t[::1] av = a, mv = m
        _require(S == 0 or _placement_ok(&av[0], &mv[0], S, L), "placement out of [0, L]")
        for j in range(S):
            self._set_blocks(j, a[j], m[j])
        self._placement_changed()
        self.clock_ms = 0.0
        self.prev_clock = 0.0

    def __dealloc__(self):
        cdef Py_ssize_t j
        if self.lists:
            for j in range(self.S):
                free(self.lists[j].end); free(self.lists[j].blocks); free(self.lists[j].req)
        free(self.lists); free(self.D); free(self.arg_server); free(self.arg_prev)
        free(self.W); free(self.path); free(self.wbuf); free(self.wbest); free(self.blockval)
        free(self.T); free(self.under_prefix); free(self.tmp_first); free(self.perm)
        free(self.holders)
        free(self.ckey); free(self.clen); free(self.cpath); free(self.cD); free(self.cmin)
        free(self.g.bucket); free(self.g.by_end)
        free(self.ss)
        free(self.arena); free(self.ht); free(self.hc); free(self.slot_of)
        free(self.free_slots); free(self.upd)
        free(self.ch_off); free(self.ch_len); free(self.ch_cap); free(self.ch_home)
        free(self.ch_cost); free(self.ch_pre); free(self.ch_tok); free(self.ch_rank)
        free(self.ch_srv); free(self.ch_blk); free(self.reserved); free(self.owner)
        free(self.cgroup); free(self.galpha); free(self.salpha); free(self.cbeta)
        free(self.pht); free(self.phc)
        _jffc_release(&self.js)

    # ----------------------------------------------------------------------------------
    # storage
    # ----------------------------------------------------------------------------------
    cdef int _grow_slots(self, Py_ssize_t n) noexcept nogil:
        """Room for slots [0, n); new slots are free."""
        cdef Py_ssize_t s, old = self.ncap
        cdef void* p
        if n <= old:
            return 0
        p = realloc(self.ss, n * sizeof(Session))
        if not p:
            return -1
        self.ss = <Session*> p
        for s in range(old, n):
            self.ss[s].state = ST_FREE
            self.ss[s].off = -1
            self.ss[s].len = 0
            self.ss[s].id = -1
            self.ss[s].chain = -1
            self.ss[s].pchain = -1
            self.ss[s].queued = 0
        self.ncap = n
        return 0

    cdef int _heap_add(self, double t, int64_t code) noexcept nogil:
        cdef Py_ssize_t cap
        cdef void* p
        if self.nheap == self.heap_cap:
            cap = 2 * self.heap_cap + 64
            p = realloc(self.ht, cap * sizeof(double))
            if not p: return -1
            self.ht = <double*> p
            p = realloc(self.hc, cap * sizeof(int64_t))
            if not p: return -1
            self.hc = <int64_t*> p
            self.heap_cap = cap
        _heap_push(self.ht, self.hc, &self.nheap, t, code)
        return 0

    cdef double _next_end(self, int64_t* slot) noexcept nogil:
        """The earliest predicted end of a session in progress (inf if none); stale heap
        entries (finished, interrupted or moved sessions) are dropped on the way."""
        cdef int64_t s
        while self.nheap > 0:
            s = self.hc[0] >> 1
            if self.ss[s].state == ST_ACTIVE and self.ss[s].end == self.ht[0]:
                slot[0] = s
                return self.ht[0]
            _heap_pop(self.ht, self.hc, &self.nheap)
        slot[0] = -1
        return INFINITY

    cdef int _arena_reserve(self, Py_ssize_t n) noexcept nogil:
        """Room for n more chain entries; compacts the chains of finished sessions away
        unless they are kept (the simulator reports every chain)."""
        cdef Py_ssize_t cap, s, pos = 0
        cdef int64_t* fresh
        cdef void* p
        if self.arena_size + n <= self.arena_cap:
            return 0
        if not self.keep_chains and self.arena_live + n <= self.arena_cap // 2:
            fresh = <int64_t*> malloc(self.arena_cap * sizeof(int64_t))
            if not fresh: return -1
            for s in range(self.ncap):
                if self.ss[s].state == ST_ACTIVE:
                    memcpy(fresh + pos, self.arena + self.ss[s].off, self.ss[s].len * sizeof(int64_t))
                    self.ss[s].off = pos
                    pos += self.ss[s].len
            free(self.arena)
            self.arena = fresh
            self.arena_size = pos
            return 0
        cap = 2 * self.arena_cap + n + 256
        p = realloc(self.arena, cap * sizeof(int64_t))
        if not p: return -1
        self.arena = <int64_t*> p
        self.arena_cap = cap
        return 0

    # ----------------------------------------------------------------------------------
    # placement state (a server's blocks and budget, the holder order, the routing DAG);
    # moving servers is churn: swarm_churn.pxi
    # ----------------------------------------------------------------------------------
    cdef void _set_blocks(self, Py_ssize_t j, int64_t a, int64_t m) noexcept nogil:
        """Server j hosts [a, a + m) (m = 0: none); its cache budget follows (SPEC 1.1)."""
        cdef double spare
        cdef int64_t b = 0
        if m <= 0:
            a = 0
            m = 0
        self.first[j] = a
        self.num[j] = m
        if self.alv[j]:
            spare = self.usable[j] - self.block_gb * m
            if self.policy == POLICY_JFFC:
                b = _floor_count(spare / self.cache_gb)     # GCA's slot count (SPEC 1.10)
            else:
                b = <int64_t> floor(spare / self.cache_gb)
            if b < 0:
                b = 0
        self.capb[j] = b

    cdef double _holder_key(self, Py_ssize_t j) noexcept nogil:
        # CG-BP visits servers by amortised time t~_j = tau_j + t*_j / m_j; PETALS by join rank
        if self.join_rule == JOIN_CG:
            return self.dec[j] + self.maxrtt[j] / self.num[j]
        if self.join_rule == JOIN_PETALS:
            return self.join_rank[j]
        return <double> j

    cdef void _placement_changed(self) noexcept nogil:
        """Rebuild the routing DAG's buckets and the ordered holder list; drop every
        client's static chain.  O(S log S + L)."""
        cdef Py_ssize_t j, n = 0
        for j in range(self.S):
            if self.num[j] > 0:
                self.holders[n].key = self._holder_key(j)
                self.holders[n].index = j
                n += 1
        qsort(self.holders, n, sizeof(KeyIndex), _cmp_key_index)
        self.nholders = n
        _graph_build(&self.g, self.S)
        for j in range(self.C):
            self.ckey[j] = -1

    # ----------------------------------------------------------------------------------
    # sessions: booking, release, late finishes
    # ----------------------------------------------------------------------------------
    cdef int _list(self, int64_t s) noexcept nogil:
        """Put session s on the session list of every server of its chain, booking its
        cache there."""
        cdef Py_ssize_t q
        cdef int64_t j, e, prev = 0
        cdef int fail = 0
        for q in range(self.ss[s].off, self.ss[s].off + self.ss[s].len):
            j = self.arena[q]
            e = self.first[j] + self.num[j]
            if _sl_insert(&self.lists[j], self.ss[s].end, e - prev, s) < 0:
                fail = -1
            self.used[j] += e - prev
            prev = e
        return fail

    cdef void _unlist(self, int64_t s) noexcept nogil:
        cdef Py_ssize_t q
        cdef int64_t j, e, prev = 0
        for q in range(self.ss[s].off, self.ss[s].off + self.ss[s].len):
            j = self.arena[q]
            e = self.first[j] + self.num[j]
            _sl_remove(&self.lists[j], s)
            self.used[j] -= e - prev
            prev = e

    cdef int _book(self, int64_t s, int64_t c, int64_t lo, double start, double pre,
                   double tok, double noise, const int64_t* path, Py_ssize_t plen) noexcept nogil:
        """Book a new session s on ``path``: cache on every server from now to its end."""
        self.ss[s].client = c
        self.ss[s].lo = lo
        self.ss[s].noise = noise
        self.ss[s].chain = -1
        self.ss[s].pchain = -1
        self.ss[s].queued = 0
        self.ss[s].seq = self.seq
        self.seq += 1
        self.ss[s].state = ST_ACTIVE
        self.nactive += 1
        return self._book_path(s, start, pre, tok, path, plen)

    cdef int _book_path(self, int64_t s, double start, double pre, double tok,
                        const int64_t* path, Py_ssize_t plen) noexcept nogil:
        """Session s (client, lo, noise set; not listed) holds cache on ``path`` from now
        to its end, starting at ``start``; ``pre``/``tok``: the path's prefill and
        per-token times for its client."""
        if self._arena_reserve(plen) < 0:
            return -1
        memcpy(self.arena + self.arena_size, path, plen * sizeof(int64_t))
        self.ss[s].off = self.arena_size
        self.ss[s].len = plen
        self.arena_size += plen
        self.arena_live += plen
        self.ss[s].pre = pre * self.ss[s].noise
        self.ss[s].service = (pre + (self.ss[s].lo - 1) * tok) * self.ss[s].noise
        self.ss[s].start = start
        self.ss[s].planned = start
        self.ss[s].end = start + self.ss[s].service
        if self._list(s) < 0:
            return -1
        return self._heap_add(self.ss[s].end, 2 * s)

    cdef int _note(self, int64_t s) noexcept nogil:
        """A decision after routing set session s's chain or start (drained by the door's
        take_updates and by the simulator)."""
        cdef void* p
        if self.nupd + 2 > self.updcap:
            self.updcap = 2 * self.updcap + 64
            p = realloc(self.upd, self.updcap * sizeof(int64_t))
            if not p: return -1
            self.upd = <int64_t*> p
        self.upd[self.nupd] = s
        self.upd[self.nupd + 1] = self.ss[s].id
        self.nupd += 2
        return 0

    cdef void _release(self, int64_t s) noexcept nogil:
        """Free session s's cache on its chain, exactly once."""
        self._unlist(s)
        if self.ss[s].end == INFINITY and self.policy != POLICY_JFFC:
            self.need_rebook = True       # sessions may be blocked behind it
        self.ss[s].state = ST_DONE
        self.nactive -= 1
        self.arena_live -= self.ss[s].len

    cdef int _set_end(self, int64_t s, double end) noexcept nogil:
        self._unlist(s)
        self.ss[s].end = end
        if self._list(s) < 0:
            return -1
        if end < INFINITY:
            return self._heap_add(end, 2 * s)
        return 0

    cdef int _rebook(self, int64_t skip) noexcept nogil:
        """Re-book, in booking order, every session in progress not yet confirmed started
        (start >= p, the clock before this call; a late session counts as started): each
        starts as soon as the cache it needs on every server of its chain is released, the
        sessions booked before it holding theirs until their (current) ends, but never
        before it was planned nor before p."""
        cdef double p = self.prev_clock, w, t
        cdef Py_ssize_t s, n = 0, i, q
        cdef int64_t j, e, k, prev
        cdef KeyIndex* mv = <KeyIndex*> malloc((self.nactive + 1) * sizeof(KeyIndex))
        if not mv:
            return -1
        self.need_rebook = False
        for s in range(self.ncap):
            if (self.ss[s].state == ST_ACTIVE and s != skip and self.ss[s].start >= p
                    and not (self.ss[s].start < INFINITY and self.ss[s].end == INFINITY)):
                mv[n].key = <double> self.ss[s].seq
                mv[n].index = s
                n += 1
        qsort(mv, n, sizeof(KeyIndex), _cmp_key_index)
        for i in range(n):
            self._unlist(mv[i].index)
        for i in range(n):
            s = mv[i].index
            t = self.ss[s].planned if self.ss[s].planned > p else p
            prev = 0
            for q in range(self.ss[s].off, self.ss[s].off + self.ss[s].len):
                j = self.arena[q]
                e = self.first[j] + self.num[j]
                k = e - prev
                prev = e
                if k > self.capb[j] - self.used[j]:
                    w = _release_at(&self.lists[j], self.used[j], self.capb[j], k)
                    if w > t:
                        t = w
            self.ss[s].start = t
            self.ss[s].end = t + self.ss[s].service
            if self._list(s) < 0 or (self.ss[s].end < INFINITY
                                     and self._heap_add(self.ss[s].end, 2 * s) < 0):
                free(mv)
                return -1
        free(mv)
        return 0

    cdef int _advance(self, double now, int64_t finishing) noexcept nogil:
        """Move the clock to ``now`` (>= the clock) and apply the late-finish rule (module
        docstring), one predicted end at a time in time order, since re-booking may move
        a later session out of the way.  ``finishing``: the session finished at this call
        (-1: none); if it was late it holds its cache until ``now``, and if it had not
        been confirmed started it is re-booked like the others first (finishing a session
        that was still blocked cancels it).  O(1) when no session is late (always in the
        simulator)."""
        cdef int64_t s, skip = -1
        cdef double t
        cdef bint found
        if self.policy == POLICY_JFFC:
            return _jffc_advance(self, now)
        self.prev_clock = self.clock_ms
        self.clock_ms = now
        if finishing >= 0 and self.ss[finishing].start < self.prev_clock:
            skip = finishing               # confirmed started: its start cannot move
            if self.ss[finishing].end < now or self.ss[finishing].end == INFINITY:
                if self._set_end(finishing, now) < 0 or self._rebook(skip) < 0:
                    return -1
        while True:
            found = False
            t = INFINITY
            while self.nheap > 0 and self.ht[0] < now and (not found or self.ht[0] == t):
                s = self.hc[0] >> 1
                if self.ss[s].state == ST_ACTIVE and self.ss[s].end == self.ht[0] and s != skip:
                    t = self.ht[0]
                    _heap_pop(self.ht, self.hc, &self.nheap)
                    if self._set_end(s, INFINITY) < 0:
                        return -1
                    found = True
                else:
                    _heap_pop(self.ht, self.hc, &self.nheap)
            if not found:
                break
            if self._rebook(skip) < 0:
                return -1
        if finishing >= 0 and skip < 0 and self.ss[finishing].start < now and (
                self.ss[finishing].end == INFINITY):
            # started between calls and late: it held its cache until now
            if self._set_end(finishing, now) < 0 or self._rebook(finishing) < 0:
                return -1
        return 0

    # ----------------------------------------------------------------------------------
    # routing: one dispatch per policy
    # ----------------------------------------------------------------------------------
    cdef int _route(self, int64_t s, int64_t c, int64_t lo, double now,
                    double noise) noexcept nogil:
        """Route and book session s of client c (lo output tokens) at ``now``; its service
        time is the performance model's times ``noise``.  Returns ROUTE_*; -1 if out of
        memory."""
        self.ss[s].routed = now
        if self.policy == POLICY_WSRR or self.policy == POLICY_PETALS:
            return self._route_shortest(s, c, lo, now, noise)
        if self.policy == POLICY_JFFC:
            return _jffc_route(self, s, c, lo, now, noise)
        return ROUTE_UNSUPPORTED

    cdef int _route_shortest(self, int64_t s, int64_t c, int64_t lo, double now,
                             double noise) noexcept nogil:
        """WS-RR (SPEC 1.7): cheapest chain where server j costs its share of the request
        time plus the wait until it has cache for this request's k_j blocks; booked at
        once, starting when every server of the chain has the cache.  PETALS (SPEC 1.6):
        Dijkstra costs plus a penalty where j lacks free cache now; ROUTE_BUSY if the
        chosen chain lacks it."""
        cdef int64_t plen = 0
        cdef double start, pre, tok
        cdef int st = self._choose_shortest(c, lo, now, &plen, &start)
        if st != ROUTE_BOOKED:
            return st
        self._path_times(c, plen, &pre, &tok)
        if self._book(s, c, lo, start, pre, tok, noise, self.path, plen) < 0:
            return -1
        return ROUTE_BOOKED

    cdef void _path_times(self, int64_t c, int64_t plen, double* pre_out,
                          double* tok_out) noexcept nogil:
        """Prefill and per-token time of client c on the chain in self.path (SPEC 1.1)."""
        cdef Py_ssize_t q, S = self.S
        cdef int64_t j, k, prev = 0
        cdef double pre = 0.0, tok = 0.0
        for q in range(plen):
            j = self.path[q]
            k = self.first[j] + self.num[j] - prev
            prev = self.first[j] + self.num[j]
            pre += self.prtt[c * S + j] + self.pre[j] * k
            tok += self.rtt[c * S + j] + self.dec[j] * k
        pre_out[0] = pre
        tok_out[0] = tok

    cdef void _link_cost(self, Py_ssize_t c, Py_ssize_t j, double w, double* base,
                         double* per_block) noexcept nogil:
        """Client c's static link cost of server j (per visit, per block), as the DP sums
        it (llm_core._route_dp): WS-RR's request time, or PETALS's Dijkstra costs."""
        cdef Py_ssize_t S = self.S
        if self.policy == POLICY_WSRR:
            base[0] = self.prtt[c * S + j]
            per_block[0] = self.pre[j]
            if w != 0.0:
                base[0] = base[0] + w * self.rtt[c * S + j]
                per_block[0] = per_block[0] + w * self.dec[j]
        else:
            base[0] = self.palpha[c * S + j]
            per_block[0] = self.pbeta[j]

    cdef int _choose_shortest(self, int64_t c, int64_t lo, double now, int64_t* plen_out,
                              double* start_out) noexcept nogil:
        """The chain WS-RR or PETALS's Dijkstra gives client c now, into self.path, and its
        start (WS-RR: when every server has the cache).  A chain that is cheapest without
        waits and has free cache now is optimal with them, so each client's static cheapest
        chain is cached and the DP runs only on contention.  Returns ROUTE_BOOKED (a chain
        to book), ROUTE_NO_CHAIN or ROUTE_BUSY."""
        cdef RouteCost* rc = &self.rc
        cdef Py_ssize_t L = self.L, S = self.S, q
        cdef int64_t j, k, prev, plen = 0
        cdef int64_t* cp = &self.cpath[c * (L + 1)]
        cdef double start, t, pre, tok
        cdef bint fits, use_cached, wsrr = self.policy == POLICY_WSRR
        if wsrr:
            rc.a1 = &self.prtt[c * S]
            rc.a2 = &self.rtt[c * S]
            rc.b1 = self.pre
            rc.b2 = self.dec
            rc.w = <double> (lo - 1)
        else:
            rc.a1 = &self.palpha[c * S]
            rc.a2 = NULL
            rc.b1 = self.pbeta
            rc.b2 = NULL
            rc.w = 0.0
        rc.now = now
        if self.ckey[c] != lo:
            rc.mode = 0
            self.static_runs += 1
            _route_dp(&self.g, rc, self.D, self.arg_server, self.arg_prev, self.W, cp,
                      &self.clen[c])
            memcpy(&self.cD[c * (L + 1)], self.D, (L + 1) * sizeof(double))
            self.cmin[2 * c] = INFINITY
            self.cmin[2 * c + 1] = INFINITY
            for q in range(S):
                self._link_cost(c, q, <double> (lo - 1), &pre, &tok)
                if pre < self.cmin[2 * c]:
                    self.cmin[2 * c] = pre
                if tok < self.cmin[2 * c + 1]:
                    self.cmin[2 * c + 1] = tok
            self.ckey[c] = lo
        # does the static chain have free cache now?
        use_cached = self.clen[c] > 0
        prev = 0
        for q in range(self.clen[c]):
            j = cp[q]
            k = self.first[j] + self.num[j] - prev
            prev = self.first[j] + self.num[j]
            if k > self.capb[j] - self.used[j]:
                use_cached = False
                break
        start = now
        fits = True
        if use_cached:
            plen = self.clen[c]
            for q in range(plen):
                self.path[q] = cp[q]
        else:
            rc.mode = 2 if wsrr else 1
            self.dp_runs += 1
            _route_dp(&self.g, rc, self.D, self.arg_server, self.arg_prev, self.W, self.path,
                      &plen)
            if plen == 0:
                return ROUTE_NO_CHAIN
            prev = 0
            for q in range(plen):
                j = self.path[q]
                k = self.first[j] + self.num[j] - prev
                prev = self.first[j] + self.num[j]
                if k > self.capb[j] - self.used[j]:
                    fits = False
                    if wsrr:
                        t = _release_at(&self.lists[j], self.used[j], self.capb[j], k)
                        if t > start:
                            start = t
            if wsrr and start == INFINITY:
                return ROUTE_NO_CHAIN      # larger than some server's whole budget
        if not wsrr and not fits:
            return ROUTE_BUSY
        plen_out[0] = plen
        start_out[0] = start
        return ROUTE_BOOKED

    # ----------------------------------------------------------------------------------
    # finish (JFFC's side of routing and finishing: swarm_jffc.pxi)
    # ----------------------------------------------------------------------------------
    cdef int _finish(self, int64_t s, double now) noexcept nogil:
        """Session s ended at ``now`` (after _advance): its cache is released; under JFFC
        its slot goes to the queue's head, which starts now (noted), and a queued session
        that finishes is cancelled (it leaves the queue).  0, or -1 if out of memory."""
        cdef int64_t k, h
        if self.policy != POLICY_JFFC:
            self._release(s)
            return 0
        self.pred_valid = False
        if self.ss[s].queued:
            _jffc_cancel(&self.js, s)
            self.ss[s].queued = 0
            self.ss[s].state = ST_DONE
            self.nactive -= 1
            return 0
        k = self.ss[s].chain
        self._release(s)
        self.ss[s].chain = -1
        h = _jffc_complete(&self.js, k)
        if h >= 0:
            if _jffc_start_job(self, h, k, now) < 0 or self._note(h) < 0:
                return -1
        return 0

    # ----------------------------------------------------------------------------------
    # the Python door (Swarm validates; nothing here does)
    # ----------------------------------------------------------------------------------
    cdef int64_t _slot(self, int64_t sid) noexcept nogil:
        if sid < self.id_base or sid >= self.next_id:
            return -1
        return self.slot_of[self.slot_head + (sid - self.id_base)]

    cdef int _forget(self, int64_t sid) noexcept nogil:
        """Session id sid is over: its slot is reused; ids stay unique."""
        cdef int64_t s = self.slot_of[self.slot_head + (sid - self.id_base)]
        self.slot_of[self.slot_head + (sid - self.id_base)] = -1
        self.free_slots[self.nfree] = s
        self.nfree += 1
        self.ss[s].id = -1
        while self.slot_size > 0 and self.slot_of[self.slot_head] == -1:
            self.slot_head += 1
            self.slot_size -= 1
            self.id_base += 1
        return 0

    cdef int64_t _new_slot(self) noexcept nogil:
        """A free session slot (the smallest freed first); grows the slots when none."""
        cdef Py_ssize_t old = self.ncap, n = 2 * self.ncap + 16, s
        cdef void* p
        if self.nfree == 0:
            p = realloc(self.free_slots, n * sizeof(int64_t))
            if not p: return -1
            self.free_slots = <int64_t*> p
            if self._grow_slots(n) < 0:
                return -1
            for s in range(n - 1, old - 1, -1):
                self.free_slots[self.nfree] = s
                self.nfree += 1
        self.nfree -= 1
        return self.free_slots[self.nfree]

    cdef int _new_id(self, int64_t s) noexcept nogil:
        cdef void* p
        if self.slot_head + self.slot_size == self.slot_cap:
            if self.slot_head > 0:
                memmove(self.slot_of, self.slot_of + self.slot_head, self.slot_size * sizeof(int64_t))
                self.slot_head = 0
            else:
                self.slot_cap = 2 * self.slot_cap + 64
                p = realloc(self.slot_of, self.slot_cap * sizeof(int64_t))
                if not p: return -1
                self.slot_of = <int64_t*> p
        self.slot_of[self.slot_head + self.slot_size] = s
        self.slot_size += 1
        self.ss[s].id = self.next_id
        self.next_id += 1
        return 0

    def session_state(self, int64_t sid):
        """0: never issued; 1: in progress; 2: over (finished or interrupted)."""
        if sid < 0 or sid >= self.next_id:
            return 0
        return 1 if self._slot(sid) >= 0 else 2

    def route(self, int64_t client, int64_t output_tokens, double now_ms):
        """(status, session id, chain, start_ms, end_ms); id -1 unless booked or queued.
        A queued session (JFFC) shows its predicted chain and start ([] and inf when
        unknown)."""
        cdef int64_t s = self._new_slot()
        cdef int st
        if s < 0:
            raise MemoryError()
        with nogil:
            st = self._advance(now_ms, -1)
            if st == 0:
                st = self._route(s, client, output_tokens, now_ms, 1.0)
            if st == ROUTE_BOOKED or st == ROUTE_QUEUED:
                if self._new_id(s) < 0:
                    st = -1
        if st < 0:
            raise MemoryError()
        if (st != ROUTE_BOOKED and st != ROUTE_QUEUED) or self.ss[s].state != ST_ACTIVE:
            self.free_slots[self.nfree] = s
            self.nfree += 1
            return st, -1, None, 0.0, 0.0
        _, start, end, chain = self.session(self.ss[s].id)
        return st, self.ss[s].id, chain, start, end

    def advance(self, double now_ms):
        cdef int st
        with nogil:
            st = self._advance(now_ms, -1)
        if st < 0:
            raise MemoryError()

    def finish(self, int64_t sid, double now_ms):
        """Returns the session's start (ms; inf if it never started: a cancellation)."""
        cdef int64_t s = self._slot(sid)
        cdef int st
        cdef double start
        with nogil:
            st = self._advance(now_ms, s)
            start = self.ss[s].start if not self.ss[s].queued else INFINITY
            if st == 0:
                st = self._finish(s, now_ms)
            self._forget(sid)
            if st == 0 and self.need_rebook:
                st = self._rebook(-1)
        if st < 0:
            raise MemoryError()
        return start

    def _ids(self, int64_t[::1] slots, Py_ssize_t n):
        out = np.empty(n, dtype=np.int64)
        cdef Py_ssize_t i
        for i in range(n):
            out[i] = self.ss[slots[i]].id
            self._forget(out[i])
        return np.sort(out)

    def leave(self, Py_ssize_t server, double now_ms):
        """Server leaves; returns the ids of the sessions that lost it."""
        cdef int64_t[::1] buf = np.empty(self.lists[server].size + 1, dtype=np.int64)
        cdef Py_ssize_t n
        cdef int st
        with nogil:
            st = self._advance(now_ms, -1)
            n = _leave(self, server, now_ms, &buf[0])
            if st == 0 and self.need_rebook:
                st = self._rebook(-1)
        if st < 0:
            raise MemoryError()
        return self._ids(buf, n)

    def join(self, Py_ssize_t server, double now_ms):
        cdef int64_t a, m
        cdef int st
        with nogil:
            st = self._advance(now_ms, -1)
            if st == 0:
                st = _join(self, server, &a, &m)
        if st < 0:
            raise MemoryError()
        return int(a), int(m)

    def take_updates(self):
        """Sessions whose chain or start a decision after routing set, since the last call
        (JFFC: a queued session that started; WS-RR: a waiting booking re-routed), each
        once, as (id, chain, start_ms, end_ms), in the order of the decisions; sessions
        over since are left out."""
        cdef Py_ssize_t i
        cdef int64_t s
        rows = []
        for i in range(0, self.nupd, 2):
            s = self.upd[i]
            if self.ss[s].state == ST_ACTIVE and self.ss[s].id == self.upd[i + 1] \
                    and self.upd[i + 1] >= 0:
                rows.append(self.upd[i + 1])
        self.nupd = 0
        out, done = [], set()
        for sid in reversed(rows):           # the latest state of each, in decision order
            if sid not in done:
                done.add(sid)
                _, start, end, chain = self.session(sid)
                out.append((sid, chain, start, end))
        return out[::-1]

    def drop_updates(self):
        self.nupd = 0

    # ---- JFFC (set_chains' body: swarm_chains.pxi) ---------------------------------------
    def set_chains(self, servers, blocks, offsets, capacities, cost_ms, home, prefill_ms,
                   token_ms, rank_ms, owner, group_alpha_ms, shared_alpha_ms, beta_ms,
                   client_group, double rank_tokens):
        """Install the composed chains (GCA order; chain q is servers[offsets[q]:
        offsets[q + 1]] processing blocks[...]), their capacities, GCA costs and home
        groups, each client's prefill/per-token/ranking times on them (C x K), and the
        composition's GCA costs for later re-compositions: owner (S), group_alpha_ms
        (G x S), shared_alpha_ms (S), beta_ms (S), client_group (C, or empty: no groups),
        rank_tokens (the job length chains are ranked for).  Policy 'jffc' only, on a
        fresh engine."""
        return _set_chains(self, servers, blocks, offsets, capacities, cost_ms, home,
                           prefill_ms, token_ms, rank_ms, owner, group_alpha_ms,
                           shared_alpha_ms, beta_ms, client_group, rank_tokens)

    def set_score(self, size_t address, owner):
        """A user's dispatch score (SPEC 5.2; distalloc.llm.compiled_dispatch), called
        through its C function pointer; 0: the built-in rule.  ``owner`` keeps the
        compiled code alive."""
        _require(self.js_ready, "set_score: no chains")
        _jffc_set_score(&self.js, <chain_score_fn> address if address else NULL)
        self.score_owner = owner

    def chains(self):
        """The live chains: (index, servers, blocks, capacity, busy, cost_ms, home)."""
        cdef Py_ssize_t k, q
        out = []
        for k in range(self.K):
            if self.ch_cap[k] > 0:
                out.append((k, [self.ch_srv[q] for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k])],
                            [self.ch_blk[q] for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k])],
                            self.ch_cap[k], self.js.busy[k], self.ch_cost[k], self.ch_home[k]))
        return out

    def chain_times(self, Py_ssize_t k):
        """(prefill_ms, token_ms, rank_ms) of chain k for each client."""
        cdef Py_ssize_t c, C = self.C
        return ([self.ch_pre[k * C + c] for c in range(C)],
                [self.ch_tok[k * C + c] for c in range(C)],
                [self.ch_rank[k * C + c] for c in range(C)])

    def queue(self):
        """Session ids in the central queue, head first."""
        cdef Py_ssize_t i
        return [self.ss[_jffc_queued(&self.js, i)].id for i in range(self.js.qsize)] \
            if self.js_ready else []

    def join_blocks_of(self, Py_ssize_t j):
        return self.join_blocks[j]

    def reserved_slots(self):
        cdef Py_ssize_t j
        return [self.reserved[j] if self.reserved else 0 for j in range(self.S)]

    # ---- PETALS's re-choice of blocks, a re-plan (swarm_churn.pxi) -----------------------
    def seed_shuffle(self, uint64_t key):
        """Seed the stream of PETALS's random orders (rebalance)."""
        self.shuffle_state = _mix64(key)

    def rebalance_petals(self, double now_ms):
        """Each server holding blocks runs PETALS's check and moves if it says so, in a
        random order (the holders by index, shuffled from the seeded stream: PETALS's
        servers check on their own timers).  Returns (moves [(server, first, num)],
        interrupted session ids)."""
        return _rebalance_petals(self, now_ms)

    def set_placement(self, first_block, num_blocks, double now_ms, owner=None):
        """Move every server whose blocks change (CG-BP's or GBP-CR's re-plan); returns
        (moves, interrupted session ids).  WS-RR: the sessions still waiting are then
        routed again.  JFFC: the chains through a moved server go (their jobs interrupted),
        the others stay, ``owner`` (S) replaces the servers' client groups and GCA on the
        slots no chain reserves adds chains, whose slots the queue's head jobs take."""
        return _set_placement(self, first_block, num_blocks, now_ms, owner)

    def session_lists(self):
        """Per server, its sessions as (end_ms, blocks) sorted by end (for baselines)."""
        cdef Py_ssize_t j, i
        return [[(self.lists[j].end[i], self.lists[j].blocks[i])
                 for i in range(self.lists[j].head, self.lists[j].head + self.lists[j].size)]
                for j in range(self.S)]

    cdef list _chain_of(self, int64_t s):
        cdef Py_ssize_t q
        cdef int64_t k
        if self.ss[s].queued:
            k = self.ss[s].pchain
            if k < 0:
                return []
            return [self.ch_srv[q] for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k])]
        return [self.arena[q] for q in range(self.ss[s].off, self.ss[s].off + self.ss[s].len)]

    def sessions(self):
        """Sessions in progress by id: (ids, clients, start_ms, end_ms, chains); a queued
        session (JFFC) shows its predicted chain and start ([] and inf when unknown)."""
        cdef Py_ssize_t s
        rows = []
        if self.policy == POLICY_JFFC:
            _predict_all(self)
        for s in range(self.ncap):
            if self.ss[s].state == ST_ACTIVE:
                rows.append((self.ss[s].id, self.ss[s].client, self.ss[s].start,
                             self.ss[s].end, self._chain_of(s)))
        rows.sort()
        return rows

    def session(self, int64_t sid):
        """(client, start_ms, end_ms, chain) of a session in progress (queued: predicted)."""
        cdef int64_t s = self._slot(sid)
        if self.policy == POLICY_JFFC and self.ss[s].queued:
            _predict_all(self)
        return (self.ss[s].client, self.ss[s].start, self.ss[s].end, self._chain_of(s))

    def is_queued(self, int64_t sid):
        cdef int64_t s = self._slot(sid)
        return bool(self.ss[s].queued)

    def routed_ms(self, int64_t sid):
        return self.ss[self._slot(sid)].routed

    def check(self):
        """Internal consistency (for tests): every server's booked cache equals the sum of
        its listed sessions' blocks, each list is sorted by end, every session in progress
        sits on exactly the lists of its chain with its k_j.  Returns None or a message."""
        return _check(self)

    def nbytes(self):
        """Bytes of the engine's C buffers (session lists, sessions, chains, heap, id map,
        scratch) and of the per-server numpy arrays it holds."""
        cdef Py_ssize_t j, tot = 0, S = self.S, L = self.L, C = self.C
        for j in range(S):
            tot += self.lists[j].cap * (sizeof(double) + 2 * sizeof(int64_t))
        tot += (S + 1) * (sizeof(SessionList) + sizeof(KeyIndex) + sizeof(int64_t))
        tot += (L + 2) * sizeof(int64_t) + (S + 1) * sizeof(int64_t)      # DAG buckets
        tot += (L + 1) * (4 * sizeof(double) + 4 * sizeof(int64_t)) + (L + 2) * sizeof(double)
        tot += 2 * (C + 1) * sizeof(int64_t) + (C + 1) * (L + 1) * sizeof(int64_t)
        tot += self.ncap * (sizeof(Session) + sizeof(int64_t))           # slots, free list
        tot += self.arena_cap * sizeof(int64_t) + self.heap_cap * (sizeof(double) + sizeof(int64_t))
        tot += self.slot_cap * sizeof(int64_t)
        tot += 4 * S * sizeof(int64_t) + S                                # numpy state arrays
        tot += (S + 1) * sizeof(int64_t)                                  # shuffle order
        if self.js_ready:                                                 # JFFC
            tot += self.kcap * (5 * sizeof(int64_t) + 3 * C * sizeof(double))
            tot += 2 * self.ch_arena_cap * sizeof(int64_t)
            tot += (3 * S + self.G * S + 2 * S) * sizeof(double)
            tot += self.js.K * (3 * sizeof(int64_t) + 2 * C * sizeof(int64_t) + C * sizeof(double))
            tot += self.js.C * self.js.words * 8 + self.js.qcap * sizeof(int64_t)
            tot += self.pcap * (sizeof(double) + sizeof(int64_t))
        tot += self.updcap * sizeof(int64_t)
        return int(tot)


# --------------------------------------------------------------------------------------
# The engine's other concerns and the simulator (see "Files" in the module docstring)
# --------------------------------------------------------------------------------------
include "swarm_churn.pxi"
include "swarm_jffc.pxi"
include "swarm_chains.pxi"
include "swarm_check.pxi"
include "swarm_simulate.pxi"
