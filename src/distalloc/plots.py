"""matplotlib figures (SPEC 4.3), written as PNG (or any type matplotlib's Agg backend
writes: .pdf, .svg, ...).  Imported lazily by the CLI so that plain runs never pay for
matplotlib.

Conventions: a title says the setting (scenario, rate, seeds, delay, n), axes say their
units, log axes are labelled in plain decimals (0.6, not 6x10^-1), legends say what each
line is (the k cap of an adaptive policy included), and no figure is taller than
``MAX_HEIGHT_IN`` inches.
"""
from __future__ import annotations

import math
from typing import Sequence

__all__ = ["placement_map", "token_time_cdf", "tradeoff_curve", "sgd_error", "chain_map",
           "response_vs_reservation"]

DPI = 110
MAX_HEIGHT_IN = 9.0          # 990 px at DPI


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _plain(value: float, _pos=None) -> str:
    """0.6, 2, 150, 1e-05: decimals where they are short, never 6x10^-1."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:g}" if 1e-4 <= abs(value) < 1e6 else f"{value:.0e}"


def _plain_log_axis(axis, lo: float, hi: float) -> None:
    """Log-scale ticks in plain decimals: 1-2-5 per decade, or evenly spaced round numbers
    when the data span less than a decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
    if lo > 0 and hi > 0 and math.log10(hi / lo) < 1.0:    # less than a decade: even steps
        axis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    else:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=15))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


def _save(fig, path: str) -> None:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def placement_map(scenario, plans: Sequence, path: str, title: str = "") -> None:
    """One panel per plan: which server hosts which blocks (bars over the block axis);
    servers on client 0's route are drawn dark.  Many servers are drawn in thinner rows
    (the figure stays within ``MAX_HEIGHT_IN``) and only every few are labelled."""
    from matplotlib.patches import Patch
    plt = _pyplot()
    S = scenario.num_servers
    height = min(MAX_HEIGHT_IN, 0.22 * S + 2.0)
    fig, axes = plt.subplots(1, len(plans), figsize=(5 * len(plans), height),
                             squeeze=False, sharey=True)
    for ax, p in zip(axes[0], plans):
        on_route = set(p.routes[0]) if p.routes else set()
        if p.placement is not None:
            for j in range(S):
                m = int(p.placement.num_blocks[j])
                if m:
                    ax.barh(j, m, left=int(p.placement.first_block[j]), height=0.7,
                            color="tab:blue" if j in on_route else "tab:gray", alpha=0.9)
        if not p.feasible:
            label = f"{p.method}: {p.status}"
        elif p.mean_token_ms is None:
            label = p.method
        else:
            label = f"{p.method}: {p.mean_token_ms:,.0f} ms per token"
        ax.set_title(label, fontsize=10)
        ax.set_xlim(0, scenario.num_blocks)
        ax.set_ylim(S - 0.5, -0.5)
        ax.set_xlabel("block")
    every = max(1, math.ceil(S / 40))
    ticks = list(range(0, S, every))
    axes[0][0].set_yticks(ticks)
    axes[0][0].set_yticklabels([scenario.server_names[j] for j in ticks],
                               fontsize=9 if S <= 20 else 7 if S <= 40 else 6)
    axes[0][0].set_ylabel("server" if every == 1 else f"server (one in {every} labelled)")
    fig.legend(handles=[Patch(color="tab:blue", label="on client 0's route"),
                        Patch(color="tab:gray", label="other servers holding blocks")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title or f"{scenario.name}: {S} servers, {scenario.num_blocks} blocks",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def token_time_cdf(samples: dict, path: str, title: str = "") -> None:
    """Empirical CDF of the average per-token time (s) of each method's requests."""
    import numpy as np
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    lo, hi = math.inf, 0.0
    for name, x in samples.items():
        x = np.sort(np.asarray(x, dtype=float))
        x = x[np.isfinite(x) & (x > 0)]
        if not x.size:
            continue
        lo, hi = min(lo, x[0]), max(hi, x[-1])
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post",
                label=f"{name} ({x.size} requests)")
    ax.set_xscale("log")
    if hi > 0:
        _plain_log_axis(ax.xaxis, lo, hi)
    ax.set_xlabel("average per-token time of a request (s, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


def tradeoff_curve(t, path: str, title: str = "") -> None:
    """E[N] against energy per job along the fast-level probability p (colour)."""
    import numpy as np
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ok = np.isfinite(t.mean_jobs) & np.isfinite(t.energy_per_job)
    ax.plot(t.energy_per_job[ok], t.mean_jobs[ok], "-", color="0.6", zorder=1)
    sc = ax.scatter(t.energy_per_job[ok], t.mean_jobs[ok], c=t.switch_prob[ok], cmap="viridis",
                    zorder=2)
    fig.colorbar(sc, ax=ax, label="probability of the fast level")
    ax.set_yscale("log")
    if ok.any():
        _plain_log_axis(ax.yaxis, float(t.mean_jobs[ok].min()), float(t.mean_jobs[ok].max()))
    ax.set_xlabel("energy per job (power x time units)")
    ax.set_ylabel("mean number of jobs E[N] (log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def sgd_error(results, path: str, title: str = "", labels: Sequence[str] | None = None,
              time_label: str = "time units of the response-time model") -> None:
    """Error F(w) - F* against time, one line per run (top), and the k each run waits for
    (bottom); the k steps of runs with few switches are also marked and labelled on their
    error curve.  ``labels`` name the runs in the legend (default: the policy and, for
    adaptive policies, the largest k allowed); ``time_label`` says what the time axis counts
    (simulated time units, or measured seconds of a real run)."""
    import numpy as np
    plt = _pyplot()
    fig, (ax, axk) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for i, res in enumerate(results):
        if labels is not None:
            label = labels[i]
        else:
            cap = res.extra.get("k_max")
            label = (res.policy if res.policy.startswith(("fixed", "sync", "async"))
                     else f"{res.policy}, k ≤ {cap}" if cap is not None
                     else f"{res.policy}, k reached {int(np.max(res.k))}")
        line, = ax.semilogy(res.time, res.error, label=label, lw=1.2)
        axk.step(res.time, res.k, where="post", lw=1.0, color=line.get_color())
        steps = np.flatnonzero(np.diff(res.k)) + 1
        if 0 < steps.size <= 60 and len(results) <= 8:
            ax.scatter(res.time[steps], res.error[steps], marker="|", s=80, color=line.get_color())
            for j in steps[:: max(1, steps.size // 8)]:
                ax.annotate(f"k={res.k[j]}", (res.time[j], res.error[j]), fontsize=7,
                            color=line.get_color(), xytext=(2, 4), textcoords="offset points")
    axk.set_xlabel("simulated time (time units of the response-time model)"
                   if time_label == "time units of the response-time model"
                   else f"time ({time_label})")
    axk.set_ylabel("k (workers\nwaited for)")
    axk.grid(alpha=0.3)
    ax.set_ylabel("error F(w) - F* (log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


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
    fig, axes = plt.subplots(1, len(plans), figsize=(5.5 * len(plans),
                                                     min(MAX_HEIGHT_IN, 0.22 * S + 2.0)),
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
    every = max(1, math.ceil(S / 40))
    ticks = list(range(0, S, every))
    axes[0][0].set_yticks(ticks)
    axes[0][0].set_yticklabels([scenario.server_names[j] for j in ticks],
                               fontsize=9 if S <= 20 else 7 if S <= 40 else 6)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def response_vs_reservation(curve: dict, path: str, title: str = "") -> None:
    """Mean response time against the reservation c: Theorem 4's lower and upper bounds
    (steps: constant over each run of c with the same placement) and the simulated JFFC mean
    (points), the lower bound's minimiser marked."""
    import numpy as np
    plt = _pyplot()
    c = np.asarray(curve["reservation"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(c, curve["lower_s"], "-", color="tab:blue", drawstyle="steps-post",
            label="Theorem 4 lower bound")
    ax.plot(c, curve["upper_s"], "-", color="tab:red", drawstyle="steps-post",
            label="Theorem 4 upper bound")
    sim = np.asarray(curve["simulated_s"])
    ok = np.isfinite(sim)
    ax.plot(c[ok], sim[ok], "o", color="k", ms=4, label="simulated JFFC")
    if curve.get("best") is not None:
        ax.axvline(curve["best"], color="tab:blue", ls=":", lw=1,
                   label=f"c* = {curve['best']} (lower bound)")
    ax.set_yscale("log")
    values = np.concatenate([np.asarray(curve["lower_s"], float), np.asarray(curve["upper_s"], float),
                             sim[ok]])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size:
        _plain_log_axis(ax.yaxis, float(values.min()), float(values.max()))
    ax.set_xlabel("cache reservation c (jobs per GBP-CR chain)")
    ax.set_ylabel("mean response time (s)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
