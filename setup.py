"""Build the compiled kernels in ``kernels/`` into the private package ``distalloc._kernels``.

Everything else (metadata, dependencies) lives in pyproject.toml.
"""
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

CYTHON_MODULES = ["llm_kernels", "chain_kernels", "queue_kernels", "sgd_kernels",
                  "swarm_kernels"]

extensions = [
    Extension(
        f"distalloc._kernels.{name}",
        [f"kernels/{name}.pyx"],
        include_dirs=[np.get_include(), "kernels"],
        # the .pxi files are included into swarm_kernels.pyx: a change to one rebuilds
        depends=["kernels/fastk_gradient.h", "kernels/llm_core.pxd",
                 *sorted(glob("kernels/*.pxi"))],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in CYTHON_MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "cdivision": True},
        include_path=["kernels"],
    )
)
