"""``distalloc sgd``: schedule, run (simulated or on a Dask cluster), fit (SPEC 4.2, 2.x)."""
from __future__ import annotations

import sys

import numpy as np

from distalloc.cli._common import Parser, print_json, refuse_options

__all__ = ["add_parser"]

#: the policy of ``sgd run`` without --policy
DEFAULT_POLICY = "pflug"
DEFAULT_POLICY_SPELLED = "pflug:10:10:10:200"
DEFAULT_K0 = 10
#: policies that plan with mu_k = E[X_(k)] (the response-time model) and that take k_max
MU_POLICIES = ("bound", "dbw")
K_MAX_POLICIES = ("pflug", "dbw")

MODEL_HELP = ("exp:RATE, shifted-exp:SHIFT:RATE, pareto:SCALE:SHAPE (any shape > 0; a k whose "
              "E[X_(k)] is infinite is refused), lognormal:MU:SIGMA")


def _warn(message: str) -> None:
    print(f"distalloc: warning: {message}", file=sys.stderr)


def _cmd_sgd_schedule(args) -> int:
    from distalloc.sgd import bound_schedule, fit_response_model, parse_model, read_times
    from distalloc._validation import ValidationError
    fit = None
    if args.model or args.from_times:
        refuse_options(args, ["rate"], "applies only to exponential response times (without "
                       "--model or --from-times; give the rate in the model, e.g. exp:RATE)")
    if args.from_times:
        if args.model:
            raise ValidationError("Give either --model or --from-times, not both.")
        fit = fit_response_model(read_times(args.from_times))
        model = fit.model
    else:
        model = parse_model(args.model) if args.model else None
    sch = bound_schedule(args.workers, args.lr, args.smoothness, args.strong_convexity,
                         args.noise_var, args.batch, args.initial_gap, model=model,
                         rate=1.0 if args.rate is None else args.rate, step=args.step)
    if args.json:
        out = {"switch_times": sch.switch_times.tolist(),
               "switch_errors": sch.switch_errors.tolist(), "k_values": sch.k_values.tolist()}
        if fit is not None:
            out["model"] = fit.spec
            out["aic"] = fit.aic
        print_json(out)
    else:
        if fit is not None:
            print(f"fitted response times ({fit.num_samples} samples): {fit.spec} "
                  f"(AIC {fit.aic[fit.family]:.6g}; " + ", ".join(
                      f"{f} {a:.6g}" for f, a in fit.aic.items() if f != fit.family) + ")")
        if not sch.switch_times.size:
            print(f"k stays at {sch.k_values[0]}: no switch ever pays off")
        print(f"{'switch':>6} {'k -> k+step':>12} {'time':>14} {'bound error':>14}")
        for i, (t, e) in enumerate(zip(sch.switch_times, sch.switch_errors)):
            print(f"{i + 1:>6} {f'{sch.k_values[i]} -> {sch.k_values[i + 1]}':>12} {t:14.6g} {e:14.6g}")
    return 0


def _cmd_sgd_run(args) -> int:
    from distalloc.sgd import parse_model, run, train
    from distalloc._validation import ValidationError
    model = parse_model(args.model) if args.model else None
    policy = DEFAULT_POLICY if args.policy is None else args.policy
    kind = policy.split(":")[0]
    if kind not in K_MAX_POLICIES:
        refuse_options(args, ["k_max"], f"applies only to the policies "
                       f"{' and '.join(K_MAX_POLICIES)} (not {kind})")
    if args.cluster:
        refuse_options(args, ["time_unit_s"] if args.straggler is None else [],
                       "applies only to the delays of --straggler")
        if kind not in MU_POLICIES:
            refuse_options(args, ["model", "calibration_rounds"],
                           f"applies to real runs only with the policies "
                           f"{' and '.join(MU_POLICIES)}, which plan with a response-time "
                           f"model (not {kind})")
        elif args.model is not None:
            refuse_options(args, ["calibration_rounds"], "applies only without --model "
                           "(the rounds measure the response times --model gives)")
        if args.policy is None and args.workers is not None:
            _check_default_policy(args.workers)
        straggler = parse_model(args.straggler) if args.straggler else None
        res = train(args.problem, args.workers, policy, cluster=args.cluster,
                    straggler=straggler, time_unit_s=(1.0 if args.time_unit_s is None
                                                      else args.time_unit_s),
                    horizon=args.horizon,
                    lr=args.lr, seed=args.seed, k_max=args.k_max, model=model,
                    calibration_rounds=args.calibration_rounds, target_error=args.target_error,
                    max_iterations=args.max_iterations,
                    allow_divergence=args.allow_divergence)
    else:
        refuse_options(args, ["straggler", "time_unit_s", "target_error", "calibration_rounds"],
                       "applies to real runs only (with --cluster)")
        workers = 50 if args.workers is None else args.workers
        if args.policy is None:
            _check_default_policy(workers)
        res = run(args.problem, workers, policy,
                  horizon=args.horizon, lr=args.lr, model=model, seed=args.seed,
                  k_max=args.k_max, max_iterations=args.max_iterations,
                  allow_divergence=args.allow_divergence)
    if res.extra.get("diverged"):
        _warn(res.extra["divergence"])
    for lost in getattr(res, "workers_lost", []):
        _warn(f"worker {lost['worker']} ({lost['address']}) was lost at iteration "
              f"{lost['iteration']}; the run went on with the others")
    if args.json:
        print_json(res.to_dict())
    else:
        unit = "s (measured)" if args.cluster else "time units"
        print(f"problem {args.problem}, n = {res.workers}, policy {res.policy}: "
              f"{res.iterations} iterations in {res.time[-1]:.6g} {unit} "
              f"({res.wall_s:.3f} s)")
        print(f"  final error F(w) - F* = {res.error[-1]:.4g} (lowest {np.min(res.error):.4g})")
        print(f"  uplink gradients {res.uplink_gradients}, downlink models {res.downlink_models}")
        if args.cluster:
            if res.fit is not None:
                print(f"  response times fitted to {res.calibration_times_s.size} calibration "
                      f"samples: {res.fit.spec}")
            print(f"  live workers {res.extra['live_workers']} of {res.workers}")
        if res.schedule is not None:
            print("  switch times: " + ", ".join(f"{t:.4g}" for t in res.schedule.switch_times[:12])
                  + (" ..." if res.schedule.switch_times.size > 12 else ""))
        steps = np.flatnonzero(np.diff(res.k)) + 1
        if steps.size:
            print("  k steps (time: k): " + ", ".join(f"{res.time[i]:.4g}: {res.k[i]}"
                                                       for i in steps[:12])
                  + (f", ... ({steps.size} in all)" if steps.size > 12 else ""))
    if args.plot:
        from distalloc.plots import sgd_error
        cap = args.k_max if args.k_max is not None else res.workers
        label = (res.policy if res.policy.startswith(("fixed", "sync", "async"))
                 else f"{res.policy}, k ≤ {cap}")
        unit = "measured seconds" if args.cluster else "time units of the response-time model"
        sgd_error([res], args.plot, labels=[label], time_label=unit,
                  title=f"{args.problem}, n = {res.workers}, response times "
                  f"{args.model or 'exp:1'}, horizon {res.time[-1]:.6g}, "
                  f"step size {res.extra.get('lr', args.lr)}, seed {args.seed}")
    return 0


def _check_default_policy(workers) -> None:
    """The default policy against n, refused in words that say it is the default (a user
    who gave no --policy has no 'pflug k0' in mind)."""
    from distalloc._validation import ValidationError
    if isinstance(workers, int) and 1 <= workers < DEFAULT_K0:
        raise ValidationError(f"Option '--workers {workers}' is fewer than the k0 = {DEFAULT_K0} "
                              f"workers the default policy {DEFAULT_POLICY} (= "
                              f"{DEFAULT_POLICY_SPELLED}, used without --policy) starts with; "
                              f"give --policy, e.g. pflug:{workers} or fixed:{workers}.")


def _cmd_sgd_fit(args) -> int:
    from distalloc.sgd import fit_response_model, read_times
    fit = fit_response_model(read_times(args.times))
    if args.json:
        print_json(fit.to_dict())
    else:
        print(f"{fit.num_samples} response times; by AIC: {fit.spec}")
        print(f"{'family':>20} {'AIC':>14}  parameters")
        for fam, aic in sorted(fit.aic.items(), key=lambda x: x[1]):
            params = ", ".join(f"{k} {v:.6g}" for k, v in fit.params[fam].items())
            print(f"{fam:>20} {aic:14.6g}  {params or '(cannot describe these times)'}")
    return 0


def add_parser(sub) -> None:
    sgd = sub.add_parser("sgd", help="fastest-k distributed SGD with adaptive k")
    sgd_sub = sgd.add_subparsers(dest="command", required=True, parser_class=Parser)
    sc = sgd_sub.add_parser("schedule", help="bound-optimal times to switch from k to k+1 "
                            "(the error bound of fastest-k SGD)")
    sc.add_argument("--workers", type=int, required=True, metavar="n", help="number of workers")
    sc.add_argument("--lr", type=float, required=True, metavar="η", help="step size")
    sc.add_argument("--smoothness", type=float, required=True, metavar="L",
                    help="smoothness constant L of the loss")
    sc.add_argument("--strong-convexity", type=float, required=True, metavar="c",
                    help="strong-convexity constant c of the loss")
    sc.add_argument("--noise-var", type=float, required=True, metavar="σ²",
                    help="gradient-noise variance (0: no noise floor, k stays at its start)")
    sc.add_argument("--batch", type=int, required=True, metavar="s", help="rows per worker")
    sc.add_argument("--initial-gap", type=float, required=True, metavar="e0", help="F(w0) - F*")
    sc.add_argument("--rate", type=float, default=None, metavar="λ",
                    help="exponential response-time rate (default 1; not with --model or "
                         "--from-times)")
    sc.add_argument("--model", default=None, metavar="MODEL",
                    help="response times instead of Exp(rate): " + MODEL_HELP)
    sc.add_argument("--from-times", default=None, metavar="FILE",
                    help="fit the response-time model to measured times (numbers, or the JSON "
                         "of sgd run --cluster) and plan with it")
    sc.add_argument("--step", type=int, default=1, help="k grows by this much (default 1)")
    sc.add_argument("--json", action="store_true", help="print one JSON object")
    sc.set_defaults(func=_cmd_sgd_schedule)
    sr = sgd_sub.add_parser("run", help="fastest-k SGD: simulated, or real on a Dask cluster "
                                        "(--cluster)")
    sr.add_argument("--problem", choices=["synthetic", "diabetes", "digits"], default="synthetic",
                    help="synthetic regression, or scikit-learn's bundled data sets")
    sr.add_argument("--workers", type=int, default=None, metavar="n",
                    help="number of workers (default 50 simulated; every worker of --cluster)")
    sr.add_argument("--policy", default=None, metavar="P",
                    help="fixed:K, sync, bound[:STEP], pflug[:K0:STEP:THRESH:BURNIN], dbw[:K0], "
                         "async (default pflug = pflug:10:10:10:200)")
    sr.add_argument("--horizon", type=float, default=None, metavar="T",
                    help="time units simulated (default 6000 synthetic, 2000 otherwise); with "
                         "--cluster measured seconds (default 10)")
    sr.add_argument("--lr", type=float, default=None, metavar="η", help="step size")
    sr.add_argument("--model", default=None, metavar="MODEL",
                    help="response times (simulated; with --cluster only for bound and dbw: "
                         "the model they plan with, in seconds): " + MODEL_HELP)
    sr.add_argument("--k-max", type=int, default=None, metavar="K",
                    help="largest k for the policies pflug, dbw (default n)")
    sr.add_argument("--seed", type=int, default=0, help="response times / injected delays")
    sr.add_argument("--max-iterations", type=int, default=10**7, metavar="N",  # run.MAX_ITERATIONS
                    help="refuse (simulated) or stop (--cluster) runs longer than N iterations "
                         "(default 1e7: about ten minutes of one core at n = 50)")
    sr.add_argument("--allow-divergence", action="store_true",
                    help="print the record of a diverged run (with a warning) instead of an error")
    sr.add_argument("--cluster", default=None, metavar="ADDR",
                    help="run for real on Dask: local:N (N worker processes on loopback) or "
                         "tcp://host:port (also $DASK_SCHEDULER_ADDRESS)")
    sr.add_argument("--straggler", default=None, metavar="MODEL",
                    help="with --cluster: inject delays drawn from this model, in units of "
                         "--time-unit-s")
    sr.add_argument("--time-unit-s", type=float, default=None, metavar="S",
                    help="with --straggler: seconds per unit of its delays (default 1)")
    sr.add_argument("--calibration-rounds", type=int, default=None, metavar="R",
                    help="with --cluster, bound and dbw, without --model: all-worker rounds "
                         "measured and fitted before training (default 10)")
    sr.add_argument("--target-error", type=float, default=None, metavar="E",
                    help="with --cluster: stop once F(w) - F* <= E")
    sr.add_argument("--plot", default=None, metavar="FILE",
                    help="write error and k against time as an image (.png, .pdf, .svg)")
    sr.add_argument("--json", action="store_true", help="print one JSON object")
    sr.set_defaults(func=_cmd_sgd_run)
    sf = sgd_sub.add_parser("fit", help="fit response-time models to measured times (AIC)")
    sf.add_argument("times", metavar="FILE",
                    help="numbers (whitespace/commas) or the JSON of sgd run --cluster")
    sf.add_argument("--json", action="store_true", help="print one JSON object")
    sf.set_defaults(func=_cmd_sgd_fit)
