import os
import sys
from pathlib import Path

# The test models are tiny: BLAS threads only add synchronisation (and fight each other when the
# machine is busy). Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# Lets the tests import their helpers (gradcheck.py) whether or not tests/ is a package.
sys.path.insert(0, str(Path(__file__).parent))
