"""Calibration of the performance model from measurements of a real swarm (SPEC 1.11).

A measurements file has one row per measured request (CSV, **contract** columns)::

    servers,blocks,rtt_ms,input_tokens,output_tokens,ttft_ms,token_ms
    s0>s2,4>4,20>30,16,32,61.2,58.3

``servers`` (names in chain order), ``blocks`` (blocks processed on each) and ``rtt_ms``
(client-server round trip of each hop, measured or injected) are ``>``-separated, one entry
per hop.  Further columns (a run label, the machine load, ...) are allowed and ignored.
Reading, checking and writing these files is :mod:`distalloc.llm._measurements`'s (its
public names are imported from here).

The model fitted is SPEC 1.1's with SPEC 1.3's network overheads made unknowns::

    token_ms = sum_h (rtt_h + hop_overhead_ms + decode_ms[s_h] * k_h)
    ttft_ms  = sum_h (rtt_h + prefill_hop_overhead_ms + prefill_hop_overhead_ms_per_token * l_in
                      + k_h * (prefill_ms_intercept[s_h] + prefill_ms_per_token[s_h] * l_in))

Both are linear in the unknowns, so each is one bounded least-squares problem
(``scipy.optimize.lsq_linear``, every unknown >= 0), rows weighted by 1 / measured time so
that the fit minimises squared *relative* errors, the quantity reported.  A design that
cannot determine every unknown is refused with the unknowns it cannot separate.

A :class:`Profile` (the fitted constants) applies to any scenario whose servers it names:
:func:`apply_profile` (``--profile PROFILE.json`` for ``llm plan``/``simulate``/``compare``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from distalloc._validation import ValidationError, check_keys, check_real, describe, read_text
from distalloc.llm._measurements import (MEASUREMENT_COLUMNS, Measurement, measurement_rows,
                                         read_measurements, write_measurements)
# re-exported: public names of the measurements format, imported from here by users
from distalloc.llm._measurements import (MIN_MEASURED_MS, check_measurement,  # noqa: F401
                                         parse_measurement)
from distalloc.llm.limits import TIME_LIMIT_MS
from distalloc.llm.scenario import Scenario, revalidated, check_scenario

__all__ = ["Measurement", "ServerProfile", "Profile", "Calibration", "Prediction",
           "MEASUREMENT_COLUMNS", "read_measurements", "write_measurements", "calibrate",
           "predict", "apply_profile", "load_profile", "parse_classes"]

# relative singular-value threshold below which a (column-normalised) design is rank-deficient
_RANK_RTOL = 1e-9


# ------------------------------------------------------------------------------------------
# Profiles
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerProfile:
    """Fitted constants of one server, ms: per block per token, and per block for a prompt
    of ``l_in`` tokens ``prefill_ms_intercept + prefill_ms_per_token * l_in``."""

    decode_ms: float
    prefill_ms_intercept: float
    prefill_ms_per_token: float

    def prefill_ms(self, input_tokens: int) -> float:
        return self.prefill_ms_intercept + self.prefill_ms_per_token * input_tokens


@dataclass(frozen=True)
class Profile:
    """Per-server constants and per-hop overheads (ms) of the SPEC 1.1 performance model."""

    servers: dict[str, ServerProfile]
    hop_overhead_ms: float
    prefill_hop_overhead_ms: float
    prefill_hop_overhead_ms_per_token: float = 0.0

    def prefill_hop_ms(self, input_tokens: int) -> float:
        return self.prefill_hop_overhead_ms + self.prefill_hop_overhead_ms_per_token * input_tokens

    def to_dict(self) -> dict[str, Any]:
        return {"servers": {n: {"decode_ms": p.decode_ms,
                                "prefill_ms_intercept": p.prefill_ms_intercept,
                                "prefill_ms_per_token": p.prefill_ms_per_token}
                            for n, p in self.servers.items()},
                "hop_overhead_ms": self.hop_overhead_ms,
                "prefill_hop_overhead_ms": self.prefill_hop_overhead_ms,
                "prefill_hop_overhead_ms_per_token": self.prefill_hop_overhead_ms_per_token}


_PROFILE_REQUIRED = {"servers", "hop_overhead_ms", "prefill_hop_overhead_ms"}
_PROFILE_OPTIONAL = {"prefill_hop_overhead_ms_per_token", "token_rel_error_median",
                     "token_rel_error_p95", "ttft_rel_error_median", "ttft_rel_error_p95",
                     "num_rows", "validation", "server_classes"}
_SERVER_KEYS = {"decode_ms", "prefill_ms_intercept", "prefill_ms_per_token"}


def profile_from_dict(data: Any, where: str = "profile") -> Profile:
    """Validate a profile dictionary (the ``calibrate --json`` / ``--out`` object)."""
    check_keys(data, where, _PROFILE_REQUIRED, _PROFILE_OPTIONAL)
    servers = data["servers"]
    if not isinstance(servers, dict) or not servers:
        raise ValidationError(f"'{where}.servers' must be a non-empty object (name -> constants). "
                              f"Got {servers!r} instead.")
    out = {}
    for name, s in servers.items():
        w = f"{where}.servers[{name!r}]"
        check_keys(s, w, _SERVER_KEYS)
        # bounded (issue 16): predictions sum these over hops and blocks
        out[name] = ServerProfile(*(float(check_real(s[k], k, w, low=0, high=TIME_LIMIT_MS))
                                    for k in ("decode_ms", "prefill_ms_intercept",
                                              "prefill_ms_per_token")))
    return Profile(out, *(float(check_real(data.get(k, 0.0), k, where, low=0,
                                           high=TIME_LIMIT_MS))
                          for k in ("hop_overhead_ms", "prefill_hop_overhead_ms",
                                    "prefill_hop_overhead_ms_per_token")))


def _checked_profile(profile: Any) -> Profile:
    """A :class:`Profile` (built in Python or read from a file) checked as a profile file
    is: finite constants in [0, TIME_LIMIT_MS] (issue 16)."""
    if not isinstance(profile, Profile):
        raise ValidationError(f"The 'profile' parameter must be a Profile (see load_profile). "
                              f"Got {type(profile).__name__} instead.")
    try:
        d = profile.to_dict()
    except (AttributeError, TypeError):
        raise ValidationError("The 'profile' parameter must be a Profile whose servers map "
                              "names to ServerProfile.") from None
    profile_from_dict(d)
    return profile


def load_profile(path: str | Path) -> Profile:
    """Read a profile JSON file written by ``distalloc llm calibrate --out``."""
    path = Path(path)
    text = read_text(path, "Profile file")  # missing, folder, unreadable, not UTF-8
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = (f" at line {exc.lineno}, column {exc.colno}"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise ValidationError(f"Profile file '{path}' is not valid JSON{where}.") from None
    return profile_from_dict(data, where=f"profile '{path.name}'")


def apply_profile(scenario: Scenario, profile: Profile, *, strict: bool = True) -> Scenario:
    """The scenario with its servers' constants and its network overheads from ``profile``.

    Servers are matched by name.  ``decode_ms`` becomes the profile's; ``prefill_ms``
    becomes ``prefill_ms_intercept + prefill_ms_per_token * input_tokens`` at the scenario's
    static prompt length; the scenario's ``rtt_ms`` and ``prefill_rtt_ms`` are read as the
    raw network round trips (as the measurements' ``rtt_ms``) and get the profile's hop
    overheads added.

    Parameters
    ----------
    scenario : Scenario
    profile : Profile
    strict : bool
        if true (default) every server of the scenario must be in the profile; if false,
        servers the profile does not name keep their constants.

    Raises
    ------
    ValidationError
        a scenario server the profile does not name (``strict``), naming it.
    """
    check_scenario(scenario, "apply_profile")
    from dataclasses import replace
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"The 'scenario' parameter must be a Scenario. "
                              f"Got {type(scenario).__name__} instead.")
    profile = _checked_profile(profile)
    missing = [n for n in scenario.server_names if n not in profile.servers]
    if strict and missing:
        raise ValidationError(f"Server '{missing[0]}' of scenario '{scenario.name}' is not in "
                              f"the profile (it has {', '.join(sorted(profile.servers))}).")
    decode = scenario.decode_ms.copy()
    prefill = scenario.prefill_ms.copy()
    for j, name in enumerate(scenario.server_names):
        if name in profile.servers:
            p = profile.servers[name]
            decode[j] = p.decode_ms
            prefill[j] = p.prefill_ms(scenario.input_tokens)
    # the profile's numbers pass the scenario's checks too (issue 16: e.g. a decode_ms whose
    # request times overflow), so the result is validated like any scenario
    return revalidated(replace(scenario, decode_ms=decode, prefill_ms=prefill,
                               rtt_ms=scenario.rtt_ms + profile.hop_overhead_ms,
                               prefill_rtt_ms=scenario.prefill_rtt_ms
                               + profile.prefill_hop_ms(scenario.input_tokens)))


# ------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Prediction:
    """Predicted against measured times of each row (ms), and the relative errors
    ``|predicted - measured| / measured``."""

    token_ms: np.ndarray
    ttft_ms: np.ndarray
    measured_token_ms: np.ndarray
    measured_ttft_ms: np.ndarray

    @property
    def token_rel_error(self) -> np.ndarray:
        return np.abs(self.token_ms - self.measured_token_ms) / self.measured_token_ms

    @property
    def ttft_rel_error(self) -> np.ndarray:
        return np.abs(self.ttft_ms - self.measured_ttft_ms) / self.measured_ttft_ms

    def summary(self) -> dict[str, float]:
        """Median and 95th percentile of the relative errors, and the mean signed one."""
        t, f = self.token_rel_error, self.ttft_rel_error
        return {"token_rel_error_median": float(np.median(t)),
                "token_rel_error_p95": float(np.percentile(t, 95)),
                "token_rel_bias": float(np.mean((self.token_ms - self.measured_token_ms)
                                                / self.measured_token_ms)),
                "ttft_rel_error_median": float(np.median(f)),
                "ttft_rel_error_p95": float(np.percentile(f, 95)),
                "num_rows": int(t.shape[0])}


def predict(profile: Profile, rows: Sequence[Measurement]) -> Prediction:
    """What the performance model with ``profile`` says of each measured chain.

    Raises
    ------
    ValidationError
        no rows, a bad row, a bad profile, or a row using a server the profile does not name.
    """
    profile = _checked_profile(profile)
    rows = measurement_rows(rows, "rows")
    if not rows:
        raise ValidationError("predict needs at least one measured request. Got none.")
    tok = np.empty(len(rows))
    ttft = np.empty(len(rows))
    for i, m in enumerate(rows):
        t = f = 0.0
        for s, k, rtt in zip(m.servers, m.blocks, m.rtt_ms):
            if s not in profile.servers:
                raise ValidationError(f"Row {i + 1} uses server '{s}', which is not in the "
                                      f"profile (it has {', '.join(sorted(profile.servers))}).")
            p = profile.servers[s]
            t += rtt + profile.hop_overhead_ms + p.decode_ms * k
            f += rtt + profile.prefill_hop_ms(m.input_tokens) + p.prefill_ms(m.input_tokens) * k
        tok[i], ttft[i] = t, f
    return Prediction(tok, ttft, np.array([m.token_ms for m in rows]),
                      np.array([m.ttft_ms for m in rows]))


# ------------------------------------------------------------------------------------------
# Calibration
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Calibration:
    """The fitted :class:`Profile`, and how well it reproduces the rows it was fitted to."""

    profile: Profile
    fit: Prediction
    validation: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``llm calibrate --json`` contract keys (``servers``, ``hop_overhead_ms``,
        ``prefill_hop_overhead_ms``, ``token_rel_error_median``, ``token_rel_error_p95``,
        ``num_rows``) plus ``prefill_hop_overhead_ms_per_token``, the TTFT errors and, with
        held-out rows, ``validation``.  :func:`load_profile` reads it back."""
        s = self.fit.summary()
        d = {**self.profile.to_dict(),
             "token_rel_error_median": s["token_rel_error_median"],
             "token_rel_error_p95": s["token_rel_error_p95"],
             "ttft_rel_error_median": s["ttft_rel_error_median"],
             "ttft_rel_error_p95": s["ttft_rel_error_p95"],
             "num_rows": s["num_rows"]}
        if self.validation is not None:
            d["validation"] = self.validation
        d.update(self.extra)
        return d


def _check_rank(A: np.ndarray, names: list[str], what: str) -> None:
    """Refuse a design whose (column-normalised) matrix is rank-deficient, naming the
    unknowns in its null space."""
    norms = np.linalg.norm(A, axis=0)
    zero = [names[i] for i in np.flatnonzero(norms == 0)]
    if zero:
        raise ValidationError(f"The measurements cannot determine {zero[0]} ({what}: no row "
                              f"involves it).")
    An = A / norms
    _, sv, vt = np.linalg.svd(An, full_matrices=True)
    rank = int(np.sum(sv > _RANK_RTOL * sv[0]))
    if rank < A.shape[1]:
        null = vt[rank:]
        weight = np.sqrt((null ** 2).sum(axis=0))
        involved = [names[i] for i in np.flatnonzero(weight > 1e-6)]
        hint = ""
        if any("per_token" in n for n in involved):
            hint = "; measure at least two prompt lengths (input_tokens)"
        elif any("overhead" in n for n in involved):
            hint = "; vary the chain length or the blocks per server"
        raise ValidationError(
            f"The measurements cannot separate {', '.join(involved)} ({what}: the design "
            f"matrix has rank {rank} < {A.shape[1]} unknowns{hint}).")


def _solve(A: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    from scipy.optimize import lsq_linear
    Aw = A * weight[:, None]
    bw = b * weight
    scale = np.linalg.norm(Aw, axis=0)
    res = lsq_linear(Aw / scale, bw, bounds=(0.0, np.inf), method="bvls", tol=1e-12)
    return res.x / scale


def _server_classes(classes: Mapping[str, str] | str | None, names: list[str]) -> dict[str, str]:
    """Server name -> the name of the set of constants it shares (itself by default)."""
    if classes is None:
        return {s: s for s in names}
    if classes == "one":
        return {s: "all" for s in names}
    if not isinstance(classes, Mapping):
        raise ValidationError(f"The 'classes' parameter must be 'one' or a mapping server name -> "
                              f"class. Got {classes!r} instead.")
    unknown = [s for s in classes if s not in names]
    if unknown:
        raise ValidationError(f"The 'classes' parameter names server '{unknown[0]}', which never "
                              f"appears in the measurements (they use {', '.join(names)}).")
    return {s: str(classes.get(s, s)) for s in names}


def parse_classes(text: str) -> Mapping[str, str] | str:
    """The ``--classes`` option: ``one`` or ``NAME=CLASS,NAME=CLASS,...``."""
    if text == "one":
        return "one"
    out = {}
    for item in text.split(","):
        name, sep, cls = item.partition("=")
        if not sep or not name.strip() or not cls.strip():
            raise ValidationError(f"The 'classes' option must be 'one' or NAME=CLASS pairs "
                                  f"separated by commas. Got {item!r} instead.")
        out[name.strip()] = cls.strip()
    return out


def calibrate(measurements: Sequence[Measurement] | str | Path,
              servers: Sequence[str] | None = None,
              validate: Sequence[Measurement] | str | Path | None = None,
              classes: Mapping[str, str] | str | None = None) -> Calibration:
    """Fit the performance model's constants to measured requests (SPEC 1.11).

    Parameters
    ----------
    measurements : sequence of Measurement, or a path to a measurements CSV
    servers : sequence of str, optional
        server names that must all be calibrated (e.g. a scenario's ``server_names``);
        default: every server that appears in the measurements.
    validate : sequence of Measurement or path, optional
        held-out rows to predict with the fitted profile; their error summary is
        ``Calibration.validation``.
    classes : mapping server name -> class name, or ``'one'``, optional
        servers of one class share their constants (same hardware): fewer unknowns, so
        fewer measurements pin them down; ``'one'``: every server in one class.  The
        profile still lists every server (with its class's constants).  Default: each
        server its own class.

    Returns
    -------
    Calibration
        ``profile`` (per server ``decode_ms``, ``prefill_ms_intercept``,
        ``prefill_ms_per_token``; ``hop_overhead_ms``, ``prefill_hop_overhead_ms``,
        ``prefill_hop_overhead_ms_per_token``), ``fit`` (in-sample predictions, residuals).

    Raises
    ------
    ValidationError
        a required server that never appears; a design that cannot determine every unknown
        (e.g. one prompt length only, or every chain of the same length with the same blocks
        per server), naming the unknowns it cannot separate.

    Notes
    -----
    Two independent bounded linear least-squares problems (``scipy.optimize.lsq_linear``,
    BVLS, every unknown >= 0): per-token time with S + 1 unknowns, time to first token with
    2 S + 2 unknowns (S servers or classes), rows weighted by 1 / measured time (squared
    relative errors).
    O(rows x unknowns^2).  The model is SPEC 1.1's; SPEC 1.3's "+100 ms" per-token and
    "+0.7049 l_in + 67 ms" per-prompt hop overheads are fits of exactly these terms on the
    seed paper's deployment (Sun et al., arXiv 2512.21884, Sec. VI).

    Examples
    --------
    >>> from distalloc.llm.calibrate import Measurement, calibrate
    >>> rows = [Measurement(("a",), (k,), (10.0,), l, 8, 10 + 5 + 4 * k * (1 + l / 4),
    ...                     10 + 2 + 3 * k) for k in (1, 2, 4) for l in (4, 8)]
    >>> p = calibrate(rows).profile
    >>> round(p.servers["a"].decode_ms, 6), round(p.hop_overhead_ms, 6)
    (3.0, 2.0)
    """
    rows = measurement_rows(measurements, "measurements")
    if not rows:
        raise ValidationError("calibrate needs at least one measured request. Got none.")
    seen = sorted({s for m in rows for s in m.servers})
    if servers is not None:
        if isinstance(servers, str) or not isinstance(servers, Sequence) or not all(
                isinstance(s, str) for s in servers):
            raise ValidationError(f"The 'servers' parameter must be a sequence of server "
                                  f"names. Got {describe(servers)} instead.")
        absent = [s for s in servers if s not in seen]
        if absent:
            raise ValidationError(f"Server '{absent[0]}' never appears in the measurements "
                                  f"(they use {', '.join(seen)}).")
        names = list(dict.fromkeys(servers)) + [s for s in seen if s not in servers]
    else:
        names = seen
    class_of = _server_classes(classes, names)
    groups = list(dict.fromkeys(class_of[s] for s in names))   # one set of unknowns each
    index = {g: i for i, g in enumerate(groups)}
    S, n = len(groups), len(rows)
    K = np.zeros((n, S))        # blocks processed on each server (class)
    H = np.zeros(n)             # hops
    rtt = np.zeros(n)
    l_in = np.array([m.input_tokens for m in rows], dtype=float)
    for r, m in enumerate(rows):
        for s, k in zip(m.servers, m.blocks):
            K[r, index[class_of[s]]] += k
        H[r] = len(m.servers)
        rtt[r] = sum(m.rtt_ms)
    tok = np.array([m.token_ms for m in rows])
    ttft = np.array([m.ttft_ms for m in rows])

    label = [f"class '{g}'" if classes is not None and g not in names else f"'{g}'" for g in groups]
    A_tok = np.column_stack([K, H])
    tok_names = [f"decode_ms of {g}" for g in label] + ["hop_overhead_ms"]
    A_ttft = np.column_stack([K, K * l_in[:, None], H, H * l_in])
    ttft_names = ([f"prefill_ms_intercept of {g}" for g in label]
                  + [f"prefill_ms_per_token of {g}" for g in label]
                  + ["prefill_hop_overhead_ms", "prefill_hop_overhead_ms_per_token"])
    _check_rank(A_tok, tok_names, "per-token time")
    _check_rank(A_ttft, ttft_names, "time to first token")
    x = _solve(A_tok, tok - rtt, 1.0 / tok)
    y = _solve(A_ttft, ttft - rtt, 1.0 / ttft)
    profile = Profile({s: ServerProfile(float(x[index[class_of[s]]]),
                                        float(y[index[class_of[s]]]),
                                        float(y[S + index[class_of[s]]]))
                       for s in names},
                      hop_overhead_ms=float(x[S]), prefill_hop_overhead_ms=float(y[2 * S]),
                      prefill_hop_overhead_ms_per_token=float(y[2 * S + 1]))
    held_out = None
    if validate is not None:
        vrows = measurement_rows(validate, "validate")
        held_out = predict(profile, vrows).summary()
    extra = {"server_classes": class_of} if classes is not None else {}
    return Calibration(profile, predict(profile, rows), held_out, extra)


