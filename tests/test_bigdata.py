"""Memory that does not grow with the corpus, measured in fresh processes (each records its own peak
resident memory, VmHWM): encoding a generated 200 MB corpus, and a few training steps on a 2 GB
data directory against the same on a 10 MB one. The 2 GB ids are a sparse file, so the test
costs no disk and little time; scripts/bench_encode.py measures 1 GB and 8 GB corpora of real text."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from charlstm.data.datadir import FORMAT, VERSION

# The child writes its own peak (VmHWM belongs to its address space alone) and the largest peak of
# the worker processes it has waited for (ru_maxrss of RUSAGE_CHILDREN), both in kB.
PEAK = """
import atexit, resource
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            own = line.split()[1]
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    open({path!r}, 'w').write(own + ' ' + str(workers))
atexit.register(peak)
from charlstm.cli import main
main()
"""


def run_cli(tmp_path, args, name):
    """Run the command line in a fresh process: (exit status, its stderr, its peak RSS in MB, the
    largest peak of its worker processes in MB)."""
    peak = tmp_path / f"{name}.peak"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", PEAK.format(path=str(peak)), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=os.getcwd())
    own, workers = (int(v) / 1024 for v in peak.read_text().split())
    return proc.returncode, proc.stderr, own, workers


def write_text(path, size, emoji=False):
    rng = np.random.default_rng(0)
    words = np.array("the of and to in is was for that with as on by at from def return class import self".split()
                     + (["caf\u00e9", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469", "e\u0301", "\u2764\ufe0f"]
                        if emoji else []))
    block = (" ".join(rng.choice(words, 250_000)) + "\n").encode()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    return path


def sparse_data_dir(path, symbols):
    """A data directory whose ids.npy is a sparse file of `symbols` zero ids (50-symbol vocabulary)."""
    path.mkdir()
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.uint8)) | {"shape": (symbols,)}
    with open(path / "ids.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.truncate(f.tell() + symbols)
    symbols_list = [chr(97 + k) for k in range(26)] + [chr(65 + k) for k in range(24)]
    (path / "vocab.json").write_text(json.dumps({"unit": "grapheme", "symbols": symbols_list, "unk": None,
                                                 "counts": [symbols] + [0] * 49}))
    (path / "manifest.json").write_text(json.dumps({
        "format": FORMAT, "version": VERSION, "symbols": symbols, "dtype": "uint8", "vocab_size": 50,
        "hash": "sha256:" + "0" * 64, "bytes": symbols, "inputs": [],
        "options": {"unit": "grapheme", "newline": "keep", "encoding_errors": "strict", "min_count": 1}}))
    return path


@pytest.mark.parametrize("emoji, size, workers", [(False, 200_000_000, 1), (True, 40_000_000, 2)])
def test_encoding_stays_within_300_mb(tmp_path, emoji, size, workers):
    source = write_text(tmp_path / "c.txt", size, emoji)
    status, err, peak, worker_peak = run_cli(tmp_path, ["corpus", "encode", source, "-o", tmp_path / "d", "--quiet",
                                                       "--workers", workers], "encode")
    assert status == 0, err
    # every process at its own peak at once, shared pages counted in each: an upper bound
    total = peak + (workers if workers > 1 else 0) * worker_peak
    assert total < 300, f"peak {peak:.0f} MB + {workers} x {worker_peak:.0f} MB encoding {size / 1e6:.0f} MB"
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["bytes"] == source.stat().st_size and manifest["symbols"] > 0.5 * manifest["bytes"]
    print(f"encoding {size / 1e6:.0f} MB: peak {peak:.0f} MB, workers {worker_peak:.0f} MB each")
    source.unlink()


def test_training_on_2_gb_needs_no_more_memory_than_on_10_mb(tmp_path):
    """Peak memory of five steps and an evaluation of a small model: the corpus's size shows up by
    at most a few MB (the issue allows 100), the ids being a memory map read a chunk at a time."""
    peaks = {}
    for name, symbols in (("small", 10_000_000), ("large", 2_000_000_000)):
        data = sparse_data_dir(tmp_path / name, symbols)
        status, err, peaks[name], _ = run_cli(tmp_path, [
            "train", data, "--out", tmp_path / f"run-{name}", "--quiet", "--hidden", "32", "--layers", "2",
            "--batch-size", "32", "--seq-length", "100", "--max-steps", "5", "--eval-every", "5",
            "--sample-length", "10"], name)
        assert status == 0, err
        assert (data / "ids.npy").stat().st_blocks * 512 < 1 << 20      # still sparse: nothing was copied
    print(f"training peaks: {peaks}")
    assert peaks["large"] - peaks["small"] < 50, peaks
