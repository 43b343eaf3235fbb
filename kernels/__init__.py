"""Private compiled kernels of distalloc (Cython extensions and Numba modules).

Kernels take contiguous typed numpy arrays and scalars and never validate user input;
the public API in ``distalloc`` does that.  Import them through ``distalloc._compiled``,
which fails with build instructions if an extension is missing.
"""
