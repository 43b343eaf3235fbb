"""matplotlib figures (SPEC 4.3), written as PNG.  Imported lazily by the CLI so that
plain runs never pay for matplotlib."""
from __future__ import annotations

from typing import Sequence

__all__ = ["placement_map", "token_time_cdf", "tradeoff_curve", "sgd_error", "chain_map",
           "response_vs_reservation"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def placement_map(scenario, plans: Sequence, path: str) -> None:
    """One panel per plan: which server hosts which blocks; servers on client 0's route
    are drawn dark."""
    plt = _pyplot()
    S = scenario.num_servers
    fig, axes = plt.subplots(1, len(plans), figsize=(5 * len(plans), 0.25 * S + 1.5),
                             squeeze=False, sharey=True)
    for ax, p in zip(axes[0], plans):
        on_route = set(p.routes[0]) if p.routes else set()
        if p.placement is not None:
            for j in range(S):
                m = int(p.placement.num_blocks[j])
                if m:
                    ax.barh(j, m, left=int(p.placement.first_block[j]), height=0.7,
                            color="tab:blue" if j in on_route else "tab:gray", alpha=0.9)
        title = p.method if p.mean_token_ms is None else f"{p.method}: {p.mean_token_ms:,.0f} ms/token"
        ax.set_title(title if p.feasible else f"{p.method}: {p.status}")
        ax.set_xlim(0, scenario.num_blocks)
        ax.set_xlabel("block")
        ax.invert_yaxis()
    axes[0][0].set_yticks(range(S))
    axes[0][0].set_yticklabels(scenario.server_names, fontsize=7 if S > 20 else 9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def token_time_cdf(samples: dict, path: str, title: str = "") -> None:
    """Empirical CDF of the average per-token time (s) of each method."""
    import numpy as np
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, x in samples.items():
        x = np.sort(np.asarray(x))
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("average per-token time (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tradeoff_curve(t, path: str, title: str = "") -> None:
    """E[N] against energy per job along the fast-level probability p (colour)."""
    import numpy as np
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ok = np.isfinite(t.mean_jobs)
    ax.plot(t.energy_per_job[ok], t.mean_jobs[ok], "-", color="0.6", zorder=1)
    sc = ax.scatter(t.energy_per_job[ok], t.mean_jobs[ok], c=t.switch_prob[ok], cmap="viridis",
                    zorder=2)
    fig.colorbar(sc, ax=ax, label="probability of the fast level")
    ax.set_yscale("log")
    ax.set_xlabel("energy per job")
    ax.set_ylabel("mean number of jobs E[N]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sgd_error(results, path: str, title: str = "") -> None:
    """Error F(w) - F* against wall-clock time, one line per run (top), and the k each run
    waits for (bottom); the k steps of runs with few switches are also marked and labelled
    on their error curve."""
    import numpy as np
    plt = _pyplot()
    fig, (ax, axk) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for res in results:
        line, = ax.semilogy(res.time, res.error, label=res.policy, lw=1.2)
        axk.step(res.time, res.k, where="post", lw=1.0, color=line.get_color())
        steps = np.flatnonzero(np.diff(res.k)) + 1
        if 0 < steps.size <= 60 and len(results) <= 8:
            ax.scatter(res.time[steps], res.error[steps], marker="|", s=80, color=line.get_color())
            for i in steps[:: max(1, steps.size // 8)]:
                ax.annotate(f"k={res.k[i]}", (res.time[i], res.error[i]), fontsize=7,
                            color=line.get_color(), xytext=(2, 4), textcoords="offset points")
    axk.set_xlabel("wall-clock time")
    axk.set_ylabel("k")
    axk.grid(alpha=0.3)
    ax.set_ylabel("F(w) - F*")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------
# Chain composition (SPEC 1.10)
# ------------------------------------------------------------------------------------------
def chain_map(scenario, plans: Sequence, path: str, max_chains: int = 12) -> None:
    """One panel per plan: the placement (which server hosts which blocks) with, for the
    chain methods, each chain drawn as a line through the blocks it processes on each of
    its servers (the fastest ``max_chains``, darker = faster, width ~ capacity)."""
    import numpy as np
    plt = _pyplot()
    S = scenario.num_servers
    fig, axes = plt.subplots(1, len(plans), figsize=(5.5 * len(plans), 0.25 * S + 2.0),
                             squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, p in zip(axes[0], plans):
        if p.placement is not None:
            for j in range(S):
                m = int(p.placement.num_blocks[j])
                if m:
                    ax.barh(j, m, left=int(p.placement.first_block[j]), height=0.7,
                            color="0.82", edgecolor="0.6")
        chains = p.extra.get("chains", []) if p.feasible else []
        cap_max = max([ch["capacity"] for ch in chains] or [1])
        shown = chains[:max_chains]
        for q, ch in enumerate(shown):
            xs, ys, prev = [], [], 0
            for j in ch["servers"]:
                end = int(p.placement.first_block[j] + p.placement.num_blocks[j])
                xs += [prev, end]
                ys += [j, j]
                prev = end
            colour = cmap(q / max(1, len(shown) - 1) * 0.85)
            ax.plot(xs, ys, "-o", color=colour, ms=3,
                    lw=1.0 + 3.0 * ch["capacity"] / cap_max,
                    label=f"{ch['service_s']:.1f} s x {ch['capacity']}")
        title = p.method if p.feasible else f"{p.method}: {p.status}"
        if p.extra.get("reservation") is not None:
            title += f" (c = {p.extra['reservation']})"
        elif not chains and p.mean_token_ms is not None:
            title += f": {p.mean_token_ms:,.0f} ms/token"
        ax.set_title(title)
        ax.set_xlim(0, scenario.num_blocks)
        ax.set_xlabel("block")
        ax.invert_yaxis()
        if shown:
            ax.legend(fontsize=7, title="chain: T_k x c_k", title_fontsize=7, loc="lower right")
    axes[0][0].set_yticks(range(S))
    axes[0][0].set_yticklabels(scenario.server_names, fontsize=7 if S > 20 else 9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def response_vs_reservation(curve: dict, path: str, title: str = "") -> None:
    """Mean response time against the reservation c: Theorem 4's lower and upper bounds
    (lines, every stable c) and the simulated JFFC mean (points), the lower bound's
    minimiser marked."""
    import numpy as np
    plt = _pyplot()
    c = np.asarray(curve["reservation"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(c, curve["lower_s"], "-", color="tab:blue", label="Theorem 4 lower bound")
    ax.plot(c, curve["upper_s"], "-", color="tab:red", label="Theorem 4 upper bound")
    sim = np.asarray(curve["simulated_s"])
    ok = np.isfinite(sim)
    ax.plot(c[ok], sim[ok], "o", color="k", ms=4, label="simulated JFFC")
    if curve.get("best") is not None:
        ax.axvline(curve["best"], color="tab:blue", ls=":", lw=1,
                   label=f"c* = {curve['best']} (lower bound)")
    ax.set_yscale("log")
    ax.set_xlabel("cache reservation c (jobs per GBP-CR chain)")
    ax.set_ylabel("mean response time (s)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
