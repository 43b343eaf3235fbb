"""Response-time models of the workers (SPEC 2.1) and the order-statistic means mu_k."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, optimize, special, stats

from distalloc._validation import ValidationError, as_generator, check_number

__all__ = ["ResponseModel", "Exponential", "ShiftedExponential", "Pareto", "LogNormal",
           "Heterogeneous", "Empirical", "WithOverhead", "parse_model", "MAX_WORKERS",
           "check_workers"]

#: The most workers n any SGD computation takes (runs, schedules, controllers, E[X_(k)]):
#: every cost of the family grows with n (mu_1 .. mu_n, the schedule's switches, O(n k)
#: per iteration), so a bound on n bounds the work; fastest-k clusters have at most
#: thousands of workers.
MAX_WORKERS = 10_000
#: Most values one ``sample`` call draws (1 GiB of float64): refused beyond, not swapped.
MAX_SAMPLE_VALUES = 1 << 27
#: Models without a closed form (per-worker rates) integrate a Poisson-binomial DP of O(n^2)
#: per quadrature point for mu_1 .. mu_n: bounded to keep that under a few seconds.
MAX_QUADRATURE_WORKERS = 256
#: Empirical models cost O(n x distinct samples) for mu_1 .. mu_n.
MAX_EMPIRICAL_WORK = 5 * 10**7


def check_workers(n: Any, name: str = "workers") -> int:
    """n as an int in [1, MAX_WORKERS] (one-line ValidationError otherwise)."""
    return check_number(n, name, low=1, high=MAX_WORKERS, integer=True)


def _check_kn(k: Any, n: Any) -> tuple[int, int]:
    n = check_workers(n, "n")
    return check_number(k, "k", low=1, high=n, integer=True), n


def _tail_dp(F: np.ndarray) -> np.ndarray:
    """P(exactly j of the workers finished) for j = 0..n, finish probabilities F."""
    dist = np.zeros(F.size + 1)
    dist[0] = 1.0
    for f in F:
        dist[1:] = dist[1:] * (1 - f) + dist[:-1] * f
        dist[0] *= 1 - f
    return dist


class ResponseModel:
    """i.i.d. (or per-worker) response times X_i.  ``sample(iterations, n, seed)`` gives an
    (iterations x n) array; ``order_stat_mean(k, n)`` gives mu_k = E[X_(k)]."""

    name = "model"

    def sample(self, iterations: int, n: int, seed: Any = 0) -> np.ndarray:
        iterations = check_number(iterations, "iterations", low=0, integer=True)
        n = check_workers(n, "n")
        if iterations * n > MAX_SAMPLE_VALUES:
            raise ValidationError(f"sample({iterations}, {n}) would draw {iterations * n:.3g} "
                                  f"response times ({iterations * n * 8 / 2**30:.3g} GiB), more "
                                  f"than {MAX_SAMPLE_VALUES:.3g} at a time; draw in chunks.")
        rng = as_generator(seed)
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(self._draw(rng, (iterations, n)), dtype=np.float64)
        if not np.all(np.isfinite(out)):
            raise ValidationError(f"Response times drawn from {self.spec} overflow float64; "
                                  "give the model in a larger time unit.")
        return out

    def _draw(self, rng, shape):  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf(self, x: np.ndarray, n: int) -> np.ndarray:
        """(len(x), n) array: P(X_i <= x) for every worker i; i.i.d. models give
        ``_cdf1(x)`` (one column) and share it across workers."""
        F = np.atleast_1d(self._cdf1(np.asarray(x, dtype=float)))
        return np.repeat(F[:, None], n, axis=1)

    def _cdf1(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def order_stat_mean(self, k: int, n: int) -> float:
        """mu_k = E[X_(k)] = integral_0^inf P(fewer than k workers have finished by x) dx,
        the Poisson-binomial tail computed by a DP over workers (numerical quadrature)."""
        k, n = _check_kn(k, n)
        self._check_quadrature(n)

        def tail(x):
            return float(_tail_dp(self.cdf(np.array([x]), n)[0])[:k].sum())
        lo = self._support_low()
        value, _ = integrate.quad(tail, lo, np.inf, limit=400, epsabs=1e-10, epsrel=1e-10)
        return lo + value

    def _check_quadrature(self, n: int) -> None:
        if n > MAX_QUADRATURE_WORKERS:
            raise ValidationError(
                f"E[X_(k)] of {self.name} response times is a quadrature over a "
                f"Poisson-binomial DP (O(n^2) per point): at most {MAX_QUADRATURE_WORKERS} "
                f"workers. Got n = {n} instead.")

    def _support_low(self) -> float:
        return 0.0

    def order_stat_means(self, n: int) -> np.ndarray:
        """mu_1 .. mu_n (inf where a mean is infinite or beyond float64).  Models without a
        closed form: one vector quadrature of the DP's tails for every k at once."""
        n = check_workers(n, "n")
        self._check_quadrature(n)

        def tails(x):
            return np.cumsum(_tail_dp(self.cdf(np.array([x]), n)[0]))[:n]
        lo = self._support_low()
        value, _ = integrate.quad_vec(tails, lo, np.inf, limit=400, epsabs=1e-10,
                                      epsrel=1e-10)
        return lo + value

    def infinite_mean_reason(self, k: int, n: int) -> str:
        """Why E[X_(k)] of n workers is not a finite float (for one-line errors)."""
        return f"E[X_(k)] is beyond float64 under {self.spec}"

    @property
    def spec(self) -> str:
        """The ``--model`` string that recreates this model."""
        return self.name

    def to_dict(self) -> dict:
        return {"model": self.name, **{k: v for k, v in self.__dict__.items()
                                      if not isinstance(v, np.ndarray)}}


@dataclass(frozen=True)
class Exponential(ResponseModel):
    rate: float = 1.0
    name = "exponential"

    def __post_init__(self):
        check_number(self.rate, "rate", low=0, low_open=True)

    def _draw(self, rng, shape):
        return rng.standard_exponential(shape) / self.rate

    def _cdf1(self, x):
        return 1 - np.exp(-self.rate * np.maximum(x, 0))

    def order_stat_mean(self, k, n):
        """Closed form (H_n - H_{n-k}) / rate."""
        k, n = _check_kn(k, n)
        return float(np.sum(1.0 / np.arange(n - k + 1, n + 1))) / self.rate

    def order_stat_means(self, n):
        """All of mu_1 .. mu_n in O(n): running sums of 1/n + 1/(n-1) + ..."""
        n = check_workers(n, "n")
        return np.cumsum(1.0 / np.arange(n, 0, -1, dtype=float)) / self.rate

    @property
    def spec(self):
        return f"exp:{self.rate!r}"


@dataclass(frozen=True)
class ShiftedExponential(ResponseModel):
    shift: float = 1.0
    rate: float = 1.0
    name = "shifted-exponential"

    def __post_init__(self):
        check_number(self.shift, "shift", low=0)
        check_number(self.rate, "rate", low=0, low_open=True)

    def _draw(self, rng, shape):
        return self.shift + rng.standard_exponential(shape) / self.rate

    def _cdf1(self, x):
        return 1 - np.exp(-self.rate * np.maximum(x - self.shift, 0))

    def order_stat_mean(self, k, n):
        return self.shift + Exponential(self.rate).order_stat_mean(k, n)

    def order_stat_means(self, n):
        return self.shift + Exponential(self.rate).order_stat_means(n)

    def _support_low(self):
        return self.shift

    @property
    def spec(self):
        return f"shifted-exp:{self.shift!r}:{self.rate!r}"


@dataclass(frozen=True)
class Pareto(ResponseModel):
    """P(X > x) = (scale / x)^shape for x >= scale, any shape > 0.  The mean is infinite for
    shape <= 1, yet E[X_(k)] of n workers is finite iff shape (n - k + 1) > 1."""

    scale: float = 1.0
    shape: float = 3.0
    name = "pareto"

    def __post_init__(self):
        check_number(self.scale, "scale", low=0, low_open=True)
        check_number(self.shape, "shape", low=0, low_open=True)

    def _draw(self, rng, shape):
        return self.scale * (1.0 + rng.pareto(self.shape, shape))

    def _cdf1(self, x):
        return np.where(x < self.scale, 0.0, 1 - (self.scale / np.maximum(x, self.scale)) ** self.shape)

    def _support_low(self):
        return self.scale

    def order_stat_mean(self, k, n):
        """Closed form scale prod_{j=n-k+1}^{n} j / (j - 1/shape) (= scale n! G(n-k+1-1/a) /
        ((n-k)! G(n+1-1/a))); inf unless shape (n - k + 1) > 1."""
        k, n = _check_kn(k, n)
        if self.shape * (n - k + 1) <= 1:
            return math.inf
        j = np.arange(n - k + 1, n + 1, dtype=float)
        with np.errstate(over="ignore"):
            return float(self.scale * np.prod(j / (j - 1.0 / self.shape)))

    def order_stat_means(self, n):
        """All of mu_1 .. mu_n in O(n): running products over j = n, n - 1, ..."""
        n = check_workers(n, "n")
        j = np.arange(n, 0, -1, dtype=float)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            out = self.scale * np.cumprod(j / (j - 1.0 / self.shape))
        out[self.shape * j <= 1] = math.inf        # j = n - k + 1
        return out

    def largest_finite_k(self, n: int) -> int:
        """The largest k with E[X_(k)] finite (0 if none)."""
        return max(0, min(n, math.ceil(n + 1 - 1 / self.shape) - 1))

    def infinite_mean_reason(self, k, n):
        if self.shape * (n - k + 1) <= 1:
            return (f"E[X_(k)] of Pareto times is finite iff shape (n - k + 1) > 1 (shape "
                    f"{self.shape:g}, n = {n}: k <= {self.largest_finite_k(n)})")
        return super().infinite_mean_reason(k, n)

    @property
    def spec(self):
        return f"pareto:{self.scale!r}:{self.shape!r}"


@dataclass(frozen=True)
class LogNormal(ResponseModel):
    mu: float = 0.0
    sigma: float = 1.0
    name = "lognormal"

    def __post_init__(self):
        check_number(self.mu, "mu")
        check_number(self.sigma, "sigma", low=0, low_open=True)

    def _draw(self, rng, shape):
        with np.errstate(over="ignore"):
            return rng.lognormal(self.mu, self.sigma, shape)

    def _cdf1(self, x):
        return stats.lognorm.cdf(x, s=self.sigma, scale=math.exp(min(self.mu, 700.0)))

    def order_stat_mean(self, k, n):
        """E[X_(k)] = e^mu E[e^{sigma Z_(k)}] for standard normal Z: the integral over z of
        e^{h(z)}, h(z) = sigma z + log(k C(n,k)) + (k-1) log Phi(z) + (n-k) log Phi(-z)
        + log phi(z), which is strictly concave.  Its peak is found by a bounded scalar
        search, the range where h > max h - 60 by root finding, and the integral by
        adaptive Gauss-Kronrod (scipy quad, relative tolerance 1e-13): accurate to ~1e-13
        relative (sigma <= 20).  inf when e^mu times it overflows float64."""
        k, n = _check_kn(k, n)
        sigma = self.sigma
        log_c = _log_k_binomial(n, k)

        def h(z):
            return (sigma * z + log_c + (k - 1) * special.log_ndtr(z)
                    + (n - k) * special.log_ndtr(-z) - 0.5 * z * z - _LOG_SQRT_2PI)
        lo0, hi0 = -40.0, 40.0 + sigma
        peak = optimize.minimize_scalar(lambda z: -h(z), bounds=(lo0, hi0), method="bounded",
                                        options={"xatol": 1e-10}).x
        top = h(peak)
        lo = lo0 if h(lo0) > top - 60 else optimize.brentq(lambda z: h(z) - top + 60, lo0, peak)
        hi = hi0 if h(hi0) > top - 60 else optimize.brentq(lambda z: h(z) - top + 60, peak, hi0)
        val, _ = integrate.quad(lambda z: math.exp(h(z) - top), lo, hi, epsabs=0.0,
                                epsrel=1e-13, limit=200, points=[peak])
        with np.errstate(over="ignore"):
            out = float(np.exp(self.mu + top) * val)
        return out if math.isfinite(out) else math.inf

    def order_stat_means(self, n):
        """mu_1 .. mu_n: the scalar quadrature up to 256 workers, the batched kernel of
        :func:`distalloc.sgd.expected_order_statistics` (equal to 1e-12 relative) beyond."""
        n = check_workers(n, "n")
        if n <= 256 or self.sigma > 20:
            return np.array([self.order_stat_mean(k, n) for k in range(1, n + 1)])
        from distalloc.sgd.order_stats import expected_order_statistics
        return expected_order_statistics("lognormal", n, np.arange(1, n + 1), self.mu,
                                         self.sigma)

    @property
    def spec(self):
        return f"lognormal:{self.mu!r}:{self.sigma!r}"


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _log_k_binomial(n: int, k: int) -> float:
    """log(k C(n, k)) as log k + sum_{j=1}^{k} log((n - k + j) / j), in this order (the
    batched kernel of sgd_order_stats.py computes the same sum the same way)."""
    acc = math.log(k)
    for j in range(1, k + 1):
        acc += math.log((n - k + j) / j)
    return acc


class Heterogeneous(ResponseModel):
    """Exponential response times with a rate per worker."""

    name = "heterogeneous"

    def __init__(self, rates):
        self.rates = np.array([check_number(r, f"rates[{i}]", low=0, low_open=True)
                               for i, r in enumerate(rates)])

    def sample(self, iterations, n, seed=0):
        if n != self.rates.size:
            raise ValidationError(f"Heterogeneous model has {self.rates.size} rates; the run "
                                  f"has {n} workers.")
        return super().sample(iterations, n, seed)

    def _draw(self, rng, shape):
        return rng.standard_exponential(shape) / self.rates[None, :]

    def cdf(self, x, n):
        if n != self.rates.size:
            raise ValidationError(f"Heterogeneous model has {self.rates.size} rates; got "
                                  f"n = {n} workers.")
        return 1 - np.exp(-np.maximum(x, 0)[:, None] * self.rates[None, :])

    def to_dict(self):
        return {"model": self.name, "rates": self.rates.tolist()}


class Empirical(ResponseModel):
    """Response times drawn from measured samples (i.i.d. resampling)."""

    name = "empirical"

    def __init__(self, samples):
        x = np.asarray(samples, dtype=float).ravel()
        if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValidationError("Empirical response times must be a non-empty array of finite "
                                  "non-negative numbers.")
        self.samples = np.sort(x)

    def _draw(self, rng, shape):
        return rng.choice(self.samples, size=shape, replace=True)

    def _cdf1(self, x):
        return np.searchsorted(self.samples, x, side="right") / self.samples.size

    def order_stat_mean(self, k, n):
        """Exact for the discrete distribution: the tail is constant between samples."""
        k, n = _check_kn(k, n)
        pts = np.unique(self.samples)
        F = np.searchsorted(self.samples, pts, side="right") / self.samples.size
        tail = stats.binom.cdf(k - 1, n, F)        # P(X_(k) > x) for x in [pts_i, pts_i+1)
        return float(pts[0] + np.sum(tail[:-1] * np.diff(pts)))

    def order_stat_means(self, n):
        n = check_workers(n, "n")
        pts = np.unique(self.samples).size
        if n * pts > MAX_EMPIRICAL_WORK:
            raise ValidationError(f"E[X_(k)] for k = 1..{n} of an empirical model with {pts} "
                                  f"distinct samples costs n x samples = {n * pts:.3g} > "
                                  f"{MAX_EMPIRICAL_WORK:.3g}; thin the samples or use fewer "
                                  "workers.")
        return np.array([self.order_stat_mean(k, n) for k in range(1, n + 1)])

    def to_dict(self):
        return {"model": self.name, "num_samples": int(self.samples.size)}


class WithOverhead(ResponseModel):
    """``model`` plus a constant: X_i + ``overhead`` for every worker, so that an iteration
    with k lasts X_(k) + overhead.  For a real master whose own work between iterations
    (stepping, recording, dispatching the next round) takes ``overhead`` seconds: the
    simulator's clock and the bound schedule's mu_k then price an iteration as the real
    run pays it.  ``spec`` is ``BASE+OVERHEAD`` (for reading; not a ``--model`` string)."""

    name = "with-overhead"

    def __init__(self, model: ResponseModel, overhead: float):
        if not isinstance(model, ResponseModel):
            raise ValidationError(f"The 'model' parameter must be a ResponseModel. Got "
                                  f"{type(model).__name__} instead.")
        self.model = model
        self.overhead = check_number(overhead, "overhead", low=0, high=1e300)

    def sample(self, iterations, n, seed=0):
        return self.model.sample(iterations, n, seed) + self.overhead

    def cdf(self, x, n):
        return self.model.cdf(np.asarray(x, dtype=float) - self.overhead, n)

    def order_stat_mean(self, k, n):
        return self.model.order_stat_mean(k, n) + self.overhead

    def order_stat_means(self, n):
        return self.model.order_stat_means(n) + self.overhead

    def infinite_mean_reason(self, k, n):
        return self.model.infinite_mean_reason(k, n)

    @property
    def spec(self):
        return f"{self.model.spec}+{self.overhead!r}"

    def to_dict(self):
        return {"model": self.name, "base": self.model.to_dict(), "overhead": self.overhead}


def parse_model(spec: str) -> ResponseModel:
    """'exp[:rate]', 'shifted-exp:shift:rate', 'pareto:scale:shape', 'lognormal:mu:sigma'."""
    name, *args = spec.split(":")
    try:
        vals = [float(a) for a in args]
    except ValueError:
        raise ValidationError(f"The 'model' option has a non-numeric parameter: {spec!r}.") from None
    table = {"exp": Exponential, "exponential": Exponential,
             "shifted-exp": ShiftedExponential, "pareto": Pareto, "lognormal": LogNormal}
    if name not in table:
        raise ValidationError(f"Unknown response-time model {name!r} (known: exp, shifted-exp, "
                              "pareto, lognormal).")
    try:
        return table[name](*vals)
    except TypeError:
        raise ValidationError(f"Too many parameters for model {name!r}: {spec!r}.") from None
