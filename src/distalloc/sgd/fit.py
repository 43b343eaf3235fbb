"""Fit the response-time families of SPEC 2.1 to measured times (SPEC 2.5): maximum
likelihood by scipy.stats, the family chosen by AIC."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from distalloc._validation import ValidationError, describe
from distalloc.sgd.models import (Exponential, LogNormal, Pareto, ResponseModel,
                                  ShiftedExponential)

__all__ = ["FitResult", "fit_response_model", "read_times"]

FAMILIES = ("exponential", "shifted-exponential", "pareto", "lognormal")


@dataclass(eq=False)
class FitResult:
    """The family with the smallest AIC (``model``, a 2.1 model object, and ``spec``, the
    ``--model`` string that recreates it) and every family's fit.

    ``aic``, ``loglik``: per family (inf / -inf where the family cannot describe the data,
    e.g. Pareto and log-normal with a time of 0); ``params``: per family, the fitted
    parameters by name."""

    model: ResponseModel
    spec: str
    aic: dict[str, float]
    loglik: dict[str, float]
    params: dict[str, dict[str, float]]
    num_samples: int

    @property
    def family(self) -> str:
        return self.model.name

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "model": self.model.to_dict(), "spec": self.spec,
                "aic": self.aic, "loglik": self.loglik, "params": self.params,
                "num_samples": self.num_samples}


def _check_times(times: Any) -> np.ndarray:
    try:
        x = np.asarray(times, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValidationError("'times' must be an array of numbers.") from None
    if x.size < 3:
        raise ValidationError(f"'times' needs at least 3 measured times. Got {x.size} instead.")
    bad = np.flatnonzero(~(np.isfinite(x) & (x >= 0)))
    if bad.size:
        i = int(bad[0])
        raise ValidationError(f"'times[{i}]' must be finite and >= 0. Got {describe(x[i])} "
                              "instead.")
    if x.max() > 1e300:
        i = int(np.argmax(x))
        raise ValidationError(f"'times[{i}]' must be at most 1e300. Got {x[i]:g} instead.")
    if x.max() < 1e-200:
        raise ValidationError(f"'times' are all below 1e-200 (largest {x.max():g}): too small "
                              "to fit (rates would overflow); give them in a smaller unit.")
    if np.ptp(x) <= 1e-12 * x.max():
        raise ValidationError(f"'times' are all equal ({x[0]:g}): no distribution to fit.")
    return x


def fit_response_model(times: Any) -> FitResult:
    """Fit exponential, shifted exponential, Pareto and log-normal response times by
    maximum likelihood (scipy.stats) and pick the family with the smallest AIC.

    Parameters
    ----------
    times : array of float, >= 3 values, finite, >= 0
        measured response times (any unit; the fitted model is in the same unit), pooled
        over workers and iterations.

    Returns
    -------
    FitResult
        ``model``, ``spec``, ``aic`` (per family), ``loglik``, ``params``.

    Notes
    -----
    MLEs: exponential rate 1 / mean; shifted exponential shift = min, rate
    1 / (mean - min); Pareto scale = min, shape n / sum log(x / min); log-normal mu, sigma
    the mean and (biased) standard deviation of log x.  AIC = 2 p - 2 log L with p = 1
    for the exponential and 2 otherwise.  The exponential is the shifted exponential with
    shift 0 and its MLE shift (the minimum) always gains likelihood: on truly exponential
    data the shifted family wins AIC with probability e^-1 (n min / mean ~ Exp(1) is the
    gain), with a shift of order mean / n, i.e. the same distribution within its
    confidence interval.  O(n).

    Examples
    --------
    >>> import numpy as np
    >>> fit = fit_response_model(0.5 + np.random.default_rng(0).exponential(2.0, 10_000))
    >>> fit.family, round(fit.model.shift, 3), round(fit.model.rate, 2)
    ('shifted-exponential', 0.5, 0.5)
    """
    x = _check_times(times)
    n = x.size
    aic, loglik, params, models = {}, {}, {}, {}
    with np.errstate(all="ignore"):
        _, scale = map(float, stats.expon.fit(x, floc=0))
        models["exponential"] = Exponential(1.0 / scale)
        loglik["exponential"] = float(np.sum(stats.expon.logpdf(x, 0, scale)))
        params["exponential"] = {"rate": 1.0 / scale}
        loc, scale = map(float, stats.expon.fit(x))
        models["shifted-exponential"] = ShiftedExponential(loc, 1.0 / scale)
        loglik["shifted-exponential"] = float(np.sum(stats.expon.logpdf(x, loc, scale)))
        params["shifted-exponential"] = {"shift": loc, "rate": 1.0 / scale}
        if x.min() > 0:
            b, _, scale = map(float, stats.pareto.fit(x, floc=0))
            models["pareto"] = Pareto(scale, b)
            loglik["pareto"] = float(np.sum(stats.pareto.logpdf(x, b, 0, scale)))
            params["pareto"] = {"scale": scale, "shape": b}
            s, _, scale = map(float, stats.lognorm.fit(x, floc=0))
            models["lognormal"] = LogNormal(math.log(scale), s)
            loglik["lognormal"] = float(np.sum(stats.lognorm.logpdf(x, s, 0, scale)))
            params["lognormal"] = {"mu": math.log(scale), "sigma": s}
    for fam in FAMILIES:
        p = 1 if fam == "exponential" else 2
        ll = loglik.get(fam, -math.inf)
        loglik[fam] = ll if math.isfinite(ll) else -math.inf
        aic[fam] = 2 * p - 2 * loglik[fam]
        params.setdefault(fam, {})
    best = min((f for f in FAMILIES if f in models and math.isfinite(aic[f])), key=aic.get)
    return FitResult(models[best], models[best].spec, aic, loglik, params, n)


def read_times(path: str | Path) -> np.ndarray:
    """Measured response times from a file: numbers separated by whitespace or commas
    (``#`` starts a comment), or JSON: a list (of numbers or of per-worker lists) or an
    object with ``calibration_times_s`` (uncensored, preferred) or ``response_times_s``
    (as ``sgd run --cluster --json`` writes)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"The times file {str(p)!r} does not exist.") from None
    except IsADirectoryError:
        raise ValidationError(f"The times file {str(p)!r} is a directory.") from None
    except PermissionError:
        raise ValidationError(f"The times file {str(p)!r} is not readable (permission denied).") from None
    except UnicodeDecodeError:
        raise ValidationError(f"The times file {str(p)!r} is not UTF-8 text.") from None
    except OSError as exc:
        raise ValidationError(f"The times file {str(p)!r} cannot be read: {exc.strerror}.") from None
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"The times file {str(p)!r} is not valid JSON (line "
                                  f"{exc.lineno}).") from None
        if isinstance(data, dict):
            for key in ("calibration_times_s", "response_times_s"):
                if data.get(key):
                    data = data[key]
                    break
            else:
                raise ValidationError(f"The times file {str(p)!r} has neither "
                                      "'calibration_times_s' nor 'response_times_s'.")
        values = _flatten(data, p)
    else:
        values = []
        for line_no, line in enumerate(text.splitlines(), 1):
            for token in line.split("#", 1)[0].replace(",", " ").split():
                try:
                    values.append(float(token))
                except ValueError:
                    raise ValidationError(f"The times file {str(p)!r} line {line_no}: "
                                          f"{token[:20]!r} is not a number.") from None
    return _check_times(values)


def _flatten(data: Any, p: Path) -> list[float]:
    out: list[float] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(float(item))
        else:
            raise ValidationError(f"The times file {str(p)!r} holds a non-number "
                                  f"({type(item).__name__}).")
    return out
