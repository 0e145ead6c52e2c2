"""Build of the optional C extension (gradlearn._kernels, see gradlearn.compiled); the rest
of the configuration is pyproject.toml's. ``optional=True``: where it cannot be compiled
(no C compiler), the package installs without it and its layers take their NumPy paths."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gradlearn._kernels",
            ["src/gradlearn/_kernels.c"],
            # the machine's own vector instructions (an install builds for where it runs);
            # OpenMP SIMD only vectorises the pragma'd sums, it starts no threads (the kernels'
            # team is plain POSIX threads)
            extra_compile_args=["-O3", "-march=native", "-fopenmp-simd", "-pthread", "-Werror=implicit-function-declaration"],
            extra_link_args=["-pthread"],
            libraries=["m"],  # expf and logf (the cross-entropy kernel)
            optional=True,
        )
    ]
)
