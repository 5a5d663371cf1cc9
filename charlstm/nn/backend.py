"""How many threads numpy's BLAS uses, set at run time.

Small LSTMs gain nothing from a second BLAS thread (the matrices are too small to split, and idle
worker threads spin), larger ones gain a lot, so the thread count is an option. Environment
variables such as OPENBLAS_NUM_THREADS only work before numpy is imported; this module instead
finds the OpenBLAS library numpy has already loaded and calls its own setter, the way
threadpoolctl does, without the extra dependency. Where no OpenBLAS is found it does nothing.
"""

from __future__ import annotations

import ctypes
import os

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _openblas_paths() -> list[str]:
    import numpy  # noqa: F401  (loads the BLAS library)
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    return paths


def _find(names):
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                return fn
    return None


def set_threads(n: int | None) -> bool:
    """Use n BLAS threads (None leaves the default). Returns whether a BLAS library took it."""
    if n is None:
        return False
    if n < 1:
        from charlstm.errors import CharlstmError
        raise CharlstmError(f"--threads must be at least 1, got {n}")
    setter = _find(_SETTERS)
    if setter is None:
        return False
    setter(ctypes.c_int(n))
    return True
