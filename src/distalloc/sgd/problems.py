"""Learning problems for the SGD experiments (SPEC 2.4): data, optimum and constants."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from distalloc._validation import describe, ValidationError, as_generator, check_number

__all__ = ["Problem", "synthetic_regression", "diabetes", "digits", "from_arrays", "load_problem"]


@dataclass(frozen=True, eq=False)
class Problem:
    """Data X (m x d), targets y, the loss ('least_squares' or 'logistic', with l2 weight
    ``reg``), its minimiser ``w_star`` and minimum ``f_star``, the Hessian ``H`` (least
    squares) and the constants of SPEC 2.2 estimated from the data.

    Loss: least squares F(w) = ||X w - y||^2 / (2 m); logistic
    F(w) = mean(log(1 + e^{x w}) - y x w) + reg ||w||^2 / 2 with y in {0, 1}."""

    name: str
    X: np.ndarray
    y: np.ndarray
    loss: str
    reg: float
    w_star: np.ndarray
    f_star: float
    H: np.ndarray

    @property
    def num_samples(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    def value(self, w: np.ndarray) -> float:
        z = self.X @ w
        if self.loss == "least_squares":
            return float(np.sum((z - self.y) ** 2) / (2 * self.num_samples))
        return float(np.mean(np.logaddexp(0, z) - self.y * z) + 0.5 * self.reg * w @ w)

    def per_sample_gradients(self, w: np.ndarray) -> np.ndarray:
        z = self.X @ w
        r = z - self.y if self.loss == "least_squares" else 1 / (1 + np.exp(-z)) - self.y
        return self.X * r[:, None] + self.reg * w[None, :]

    def restrict(self, num_rows: int) -> "Problem":
        """The same problem on its first ``num_rows`` rows (what n workers with m // n rows
        each actually hold), with its own optimum."""
        if num_rows == self.num_samples:
            return self
        X, y = self.X[:num_rows], self.y[:num_rows]
        if self.loss == "least_squares":
            return _least_squares(self.name, X, y)
        return _logistic(self.name, X, y, self.reg)

    def constants(self, w0: np.ndarray) -> dict[str, float]:
        """L, c (extreme eigenvalues of the Hessian at w*), sigma^2 (per-sample gradient
        variance at w*) and F(w0) - F*."""
        if self.loss == "least_squares":
            H = self.H
        else:
            z = self.X @ self.w_star
            sig = 1 / (1 + np.exp(-z))
            H = (self.X.T * (sig * (1 - sig))) @ self.X / self.num_samples + self.reg * np.eye(self.dim)
        eig = np.linalg.eigvalsh(H)
        g = self.per_sample_gradients(self.w_star)
        sigma2 = float(np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1)))
        return {"smoothness": float(eig[-1]), "strong_convexity": float(max(eig[0], 1e-12)),
                "noise_var": sigma2, "initial_gap": self.value(w0) - self.f_star}


#: Largest data set a Problem holds (X's entries: 1 GiB of float64) and its largest dimension
#: (the d x d Hessian and its eigenvalues, O(d^3): about a second at d = 2000).
MAX_DATA_VALUES = 1 << 27
MAX_DIM = 2000


def check_data_size(m: int, d: int) -> None:
    """Refuse data of m rows and d columns beyond MAX_DATA_VALUES or MAX_DIM, before
    allocating it (one line with the size)."""
    if d > MAX_DIM:
        raise ValidationError(f"The problem's dimension d = {d} is above {MAX_DIM} (its d x d "
                              "Hessian and eigenvalues would take minutes and gigabytes).")
    if m * d > MAX_DATA_VALUES:
        raise ValidationError(f"The data would have m x d = {m} x {d} = {m * d:.3g} entries "
                              f"({m * d * 8 / 2**30:.3g} GiB), more than {MAX_DATA_VALUES:.3g}.")


def _least_squares(name, X, y) -> Problem:
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    w_star, *_ = np.linalg.lstsq(X, y, rcond=None)
    f_star = float(np.sum((X @ w_star - y) ** 2) / (2 * X.shape[0]))
    H = np.ascontiguousarray(X.T @ X / X.shape[0])
    return Problem(name, X, y, "least_squares", 0.0, w_star, f_star, H)


def synthetic_regression(num_samples: int = 2000, dim: int = 100, seed: Any = 0) -> Problem:
    """SPEC 2.4: x uniform on {1..10}^d, w_bar uniform on {1..100}^d, y ~ N(<x, w_bar>, 1)."""
    m = check_number(num_samples, "num_samples", low=2, integer=True)
    d = check_number(dim, "dim", low=1, integer=True)
    check_data_size(m, d)
    rng = as_generator(seed)
    X = rng.integers(1, 11, size=(m, d)).astype(np.float64)
    w_bar = rng.integers(1, 101, size=d).astype(np.float64)
    y = X @ w_bar + rng.standard_normal(m)
    return _least_squares("synthetic", X, y)


def _sklearn():
    try:
        import sklearn.datasets as ds
    except ImportError:
        raise ValidationError("The diabetes and digits problems need scikit-learn "
                              "(pip install 'distalloc[data]').") from None
    return ds


def diabetes() -> Problem:
    """scikit-learn's bundled diabetes data (442 x 10, standardised), least squares with an
    intercept column."""
    data = _sklearn().load_diabetes()
    X = (data.data - data.data.mean(0)) / data.data.std(0)
    X = np.column_stack([X, np.ones(len(X))])
    y = (data.target - data.target.mean()) / data.target.std()
    return _least_squares("diabetes", X, y)


def digits(reg: float = 1e-3) -> Problem:
    """scikit-learn's bundled digits (1797 x 64, pixels / 16), binary logistic regression:
    digit >= 5 against the rest, l2 weight ``reg``; w* by L-BFGS to machine precision."""
    data = _sklearn().load_digits()
    X = np.column_stack([data.data / 16.0, np.ones(len(data.data))])
    y = (data.target >= 5).astype(np.float64)
    return _logistic("digits", X, y, reg)


def _logistic(name, X, y, reg) -> Problem:
    """l2-regularised logistic regression; w* by L-BFGS to machine precision."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    m = X.shape[0]

    def f(w):
        z = X @ w
        return np.mean(np.logaddexp(0, z) - y * z) + 0.5 * reg * w @ w

    def grad(w):
        z = X @ w
        return X.T @ (1 / (1 + np.exp(-z)) - y) / m + reg * w
    res = minimize(f, np.zeros(X.shape[1]), jac=grad, method="L-BFGS-B",
                   options={"maxiter": 10_000, "gtol": 1e-12, "ftol": 1e-15})
    return Problem(name, X, y, "logistic", reg, res.x, float(res.fun),
                   np.zeros((X.shape[1], X.shape[1])))


def from_arrays(X: Any, y: Any, *, loss: str = "least_squares", reg: float | None = None,
                name: str = "user") -> Problem:
    """A user's own data as a Problem (the minimiser by least squares or L-BFGS).

    Parameters
    ----------
    X : (m, d) array of float
    y : (m,) array; {0, 1} for ``loss='logistic'``
    loss : {'least_squares', 'logistic'}
    reg : float
        l2 weight for the logistic loss (default 1e-3; must be > 0 so that w* exists).
    """
    try:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError("'X' and 'y' must be numeric arrays.") from None
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValidationError(f"'X' must be (m, d) and 'y' (m,) with m >= 2. Got {X.shape} and "
                              f"{y.shape} instead.")
    check_data_size(X.shape[0], X.shape[1])
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValidationError("'X' and 'y' must be finite.")
    if max(float(np.abs(X).max()), float(np.abs(y).max())) > 1e100:
        raise ValidationError("'X' and 'y' must be at most 1e100 in magnitude (products would "
                              "overflow); rescale the data.")
    if loss == "least_squares":
        if reg is not None:
            raise ValidationError("'reg' applies to the logistic loss only.")
        return _least_squares(name, X, y)
    if loss == "logistic":
        if not np.all((y == 0) | (y == 1)):
            raise ValidationError("'y' must hold 0 and 1 for the logistic loss.")
        return _logistic(name, X, y, check_number(1e-3 if reg is None else reg, "reg", low=0,
                                                  low_open=True))
    raise ValidationError(f"The 'loss' parameter must be least_squares or logistic. Got "
                          f"{loss!r} instead.")


def load_problem(name: str, seed: Any = 0) -> Problem:
    if isinstance(name, Problem):
        return name
    if name == "synthetic":
        return synthetic_regression(seed=seed)
    if name == "diabetes":
        return diabetes()
    if name == "digits":
        return digits()
    hint = (" (for your own data: distalloc.sgd.from_arrays(X, y))"
            if isinstance(name, (tuple, list, np.ndarray)) else "")
    raise ValidationError(f"The 'problem' parameter must be synthetic, diabetes, digits or a "
                          f"Problem{hint}. Got {describe(name)} instead.")
