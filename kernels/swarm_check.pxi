# The online engine's consistency check (Engine.check, for tests): session lists against
# the sessions and their chains, cache booked against the lists, JFFC's chains, slots and
# queue against the rule's state.  A module-level function on swarm_kernels.Engine,
# included into swarm_kernels.pyx.

cdef object _check(Engine self):
    """Engine.check (see its docstring)."""
    cdef Py_ssize_t j, i, s, q
    cdef int64_t tot, e, prev
    cdef SessionList* sl
    count = {}
    for j in range(self.S):
        sl = &self.lists[j]
        tot = 0
        for i in range(sl.head, sl.head + sl.size):
            tot += sl.blocks[i]
            if i > sl.head and sl.end[i] < sl.end[i - 1]:
                return f"server {j}: session list not sorted by end"
            s = sl.req[i]
            if self.ss[s].state != ST_ACTIVE:
                return f"server {j}: lists session slot {s} that is not in progress"
            if sl.end[i] != self.ss[s].end:
                return f"server {j}: slot {s} listed with end {sl.end[i]} != {self.ss[s].end}"
            count[(j, s)] = count.get((j, s), 0) + sl.blocks[i]
        if tot != self.used[j]:
            return f"server {j}: booked {self.used[j]} != listed {tot}"
        if not self.alv[j] and (self.num[j] or self.capb[j] or self.used[j]):
            return f"server {j} left but holds blocks or cache"
    n = 0
    busy = {}
    for s in range(self.ncap):
        if self.ss[s].state != ST_ACTIVE:
            continue
        n += 1
        if self.ss[s].queued:
            if self.ss[s].len or self.ss[s].chain >= 0:
                return f"queued session slot {s} holds a chain"
            continue
        if self.policy == POLICY_JFFC:
            k = self.ss[s].chain
            if k < 0 or self.ch_cap[k] <= 0:
                return f"session slot {s} runs on no live chain ({k})"
            if [self.arena[q] for q in range(self.ss[s].off, self.ss[s].off + self.ss[s].len)] \
                    != [self.ch_srv[q] for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k])]:
                return f"session slot {s} is not on the servers of chain {k}"
            busy[k] = busy.get(k, 0) + 1
        prev = 0
        for q in range(self.ss[s].off, self.ss[s].off + self.ss[s].len):
            j = self.arena[q]
            e = self.first[j] + self.num[j]
            if count.pop((j, s), None) != e - prev:
                return f"session slot {s}: not listed with k = {e - prev} on server {j}"
            prev = e
    if count:
        return f"stray list entries {sorted(count)[:3]}"
    if n != self.nactive:
        return f"{n} sessions in progress, counter says {self.nactive}"
    if self.policy == POLICY_JFFC and self.js_ready:
        res = [0] * self.S
        for k in range(self.K):
            if self.js.cap[k] != self.ch_cap[k]:
                return f"chain {k}: capacity {self.ch_cap[k]} != the rule's {self.js.cap[k]}"
            if self.js.busy[k] != busy.get(k, 0):
                return f"chain {k}: {busy.get(k, 0)} jobs, the rule counts {self.js.busy[k]}"
            if self.ch_cap[k] <= 0:
                continue
            for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k]):
                j = self.ch_srv[q]
                if not self.alv[j]:
                    return f"chain {k} runs through server {j}, which left"
                res[j] += self.ch_cap[k] * self.ch_blk[q]
        for j in range(self.S):
            if res[j] != self.reserved[j]:
                return f"server {j}: reserved {self.reserved[j]} != chains' {res[j]}"
            if res[j] > self.capb[j]:
                return f"server {j}: chains reserve {res[j]} slots > its {self.capb[j]}"
            if self.used[j] > res[j]:
                return f"server {j}: jobs hold {self.used[j]} slots > reserved {res[j]}"
        if self.js.qsize:
            for k in range(self.K):
                if self.js.busy[k] < self.js.cap[k]:
                    return f"jobs queue while chain {k} has a free slot"
        qd = sum(1 for s in range(self.ncap)
                 if self.ss[s].state == ST_ACTIVE and self.ss[s].queued)
        if qd != self.js.qsize:
            return f"{qd} sessions marked queued, the queue holds {self.js.qsize}"
    return None
