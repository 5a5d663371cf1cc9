import sys
from pathlib import Path

# Lets the tests import their helpers (gradcheck.py) whether or not tests/ is a package.
sys.path.insert(0, str(Path(__file__).parent))
