"""Faults the fuzz suite finds in code other helpers own and are fixing (issues 14, 16).

Each entry matches fault signatures (a regular expression over the fault's text) of one
entry point.  A matching fault is counted and reported as *known* instead of failing the
run, so that this suite stays green while the owners fix them; remove an entry when its
fault is fixed (the summary lists which known faults were still hit).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    entry: str          # regex over the entry point's name
    fault: str          # regex over the fault's text
    owner: str
    reproducer: str


LLM = "llmhard (LLM scenario/trace/kernel hardening)"
SGD = "sgd"
QUEUE = "queueing"

KNOWN: list[Known] = [
    # --- LLM scenarios, traces, kernels ---------------------------------------------------
    Known(r"llm (plan|simulate|compare|scenario)|load_scenario", r"UnicodeDecodeError", LLM,
          "printf '{\"model\": \"\\xff\"}' > u.json; distalloc llm plan u.json  "
          "(traceback: UnicodeDecodeError in load_scenario)"),
    Known(r"llm (simulate|compare)|llm\.simulate", r"OverflowError: cannot convert float infinity",
          LLM, "distalloc llm simulate clustered --num-requests 1  (OverflowError in "
          "choose_planned_requests: the rate of one request is infinite)"),
    Known(r"llm (simulate|compare)|llm\.simulate", r"OverflowError: \(34", LLM,
          "distalloc llm compare clustered --noise 1e308  (OverflowError: numerical result out "
          "of range)"),
    Known(r"llm (plan|simulate|compare|scenario)|llm\.", r"ran out of memory|out of memory", LLM,
          "a scenario with \"num_blocks\": 3573865241 (and a server that holds few):  "
          "distalloc llm plan s.json  (MemoryError: no bound on the block count)"),
    Known(r"llm (simulate|compare)", r"quotes the content of a file", LLM,
          "distalloc llm simulate clustered --trace /etc/passwd  (the error quotes the file's "
          "whole first line as its 'column names')"),
    Known(r"llm\.resolve_scenario", r"TypeError", LLM,
          "resolve_scenario(2**63)  (TypeError: expected str, not int)"),
    Known(r"llm\.(simulate|plan)", r"TypeError: unhashable", LLM,
          "simulate(clustered(), []) or plan(clustered(), {})  (TypeError: unhashable type)"),
    Known(r"evaluate_routes|shortest_routes", r"(ValueError|TypeError|OverflowError).*(from_arrays|routing\.py|"
          r"model\.py)",
          LLM, "Placement.from_arrays([], [1, 2]), from_arrays({}, [1]), or ragged alpha in "
          "shortest_routes  (numpy ValueError/TypeError instead of a ValidationError on shapes)"),
    Known(r"shortest_routes", r"SIGSEGV|SIGBUS|SIGABRT", LLM,
          "shortest_routes(Placement.from_arrays([0], [100000]), 2, np.zeros((1, 1)), "
          "np.ones(1))  (segmentation fault)"),
    Known(r"synthetic_scenario", r"TypeError|ValueError", LLM,
          "synthetic_scenario(20, a100_fraction=None)  (TypeError: '<' not supported)"),
    # --- SGD ------------------------------------------------------------------------------
    Known(r"sgd schedule|bound_schedule", r"math domain error", SGD,
          "distalloc sgd schedule --workers 5 --lr 0.001 --smoothness 2 --strong-convexity 1 "
          "--noise-var 0 --batch 10 --initial-gap 100  (ValueError: math domain error)"),
    Known(r"sgd run|sgd\.run", r"nan in the output|diverged", SGD,
          "distalloc sgd run --lr 0.1 --horizon 100  (diverges to nan, exit 0)"),
    Known(r"sgd run|sgd\.run", r"^no answer within", SGD,
          "distalloc sgd run --horizon 1e8  (runs for minutes: no cost estimate)"),
    Known(r"sgd run|sgd\.run", r"OverflowError", SGD,
          "distalloc sgd run --policy fixed:28 --horizon 1e308  (OverflowError: cannot convert "
          "float infinity to integer)"),
    Known(r"sgd\.run", r"RuntimeError: pre-drawn response times ran out", SGD,
          "run('synthetic', 38, 'async', horizon=84862)  (RuntimeError)"),
    Known(r"sgd\.run", r"AttributeError", SGD,
          "run([[]], 24, 'fixed:5')  (AttributeError: 'list' object has no attribute "
          "'num_samples')"),
    Known(r"parse_model", r"TypeError", SGD,
          "parse_model('pareto:1:1.5').sample(False, 28, rng)  (TypeError: an integer is "
          "required)"),
    Known(r"parse_model", r"OverflowError", SGD,
          "parse_model('lognormal:1000:1').order_stat_mean(1, 1)  (OverflowError: math range "
          "error)"),
    Known(r"synthetic_regression", r"out of memory|MemoryError", SGD,
          "synthetic_regression(num_samples=2**31, dim=2)  (MemoryError allocating 32 GiB: no "
          "estimate before allocating)"),
    Known(r"fastest_k_average", r"TypeError|ValueError", SGD,
          "fastest_k_average({}, grads, 1) or k=[[]]  (numpy errors instead of a "
          "ValidationError)"),
    # --- queueing -------------------------------------------------------------------------
    Known(r"queue (approx|exact|optimize|tradeoff)|queueing\.(approximate|exact|optimize|tradeoff)",
          r"^no answer within", QUEUE,
          "distalloc queue approx --servers 4 --needed 2 --rate 1 --speeds 1,1,...(200 levels)  "
          "(no answer; also exact with 3 levels and optimize with 3 levels)"),
    Known(r"queue (approx|tradeoff|optimize)|queueing\.(approximate|tradeoff|optimize)",
          r"OverflowError", QUEUE,
          "distalloc queue approx --servers 1 --needed 1 --rate 0.01 --speeds 1e308,1e308  "
          "(OverflowError in _race_mg1)"),
    Known(r"queue simulate|queueing\.simulate", r"mean_power .* above what", QUEUE,
          "distalloc queue simulate --servers 3 --needed 2 --rate 2.524 --speeds 0.3291,0.4067 "
          "--powers 1.074,2.408 --probs 0.2,0.8 --json  (unstable: mean_power 27 from 3 cores "
          "of at most 2.4 W, exit 0)"),
]


def known(entry: str, text: str) -> Known | None:
    for k in KNOWN:
        if re.search(k.entry, entry) and re.search(k.fault, text, re.S):
            return k
    return None
