"""Builds libtrodo into the package (see pyproject.toml). The wheel's tag is
cp38-abi3 (setup.cfg): the library does not use Python's ABI at all, so one
wheel per platform installs on every CPython from 3.8 on.

TRODO_NATIVE_SKIP_LIBRARY=1 leaves the library out (the repository's test
suite installs the package that way and points TRODO_LIB at its own build)."""

import os

from setuptools import setup
from setuptools_rust import Binding, RustExtension

here = os.path.dirname(os.path.abspath(__file__))
library = RustExtension(
    "trodo_native.libtrodo",
    path=os.path.join(here, "..", "..", "Cargo.toml"),
    binding=Binding.NoBinding,
    py_limited_api=True,
)
skip = os.environ.get("TRODO_NATIVE_SKIP_LIBRARY") == "1"
setup(rust_extensions=[] if skip else [library], zip_safe=False)
