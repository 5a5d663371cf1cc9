"""charlstm against a PyTorch model of the same shape, side by side in one run.

    pip install torch==2.13.0          # the `bench` extra: PyTorch's CPU build
    python scripts/bench.py --json bench.json [--corpus ../shared/data/tinyshakespeare.txt]

Measures, on this machine's cores (torch.set_num_threads and BLAS both at --threads):
  training   characters per second of a full step (forward, BPTT, clipping, Adam) of a 3-layer
             network of each --cells cell (lstm, gru, rnn against nn.LSTM, nn.GRU, nn.RNN; the
             peephole LSTM, which PyTorch lacks, against charlstm's own LSTM) with a 65-symbol
             vocabulary and an input embedding of --embedding-size (charlstm's default; the
             PyTorch side gets the same nn.Embedding(V, E) before its recurrent module, and 0
             gives both a one-hot input); with --against one-hot, charlstm's embedded model
             against its own one-hot model instead (what the embedding costs a step), for H in {128, 256, 512}, B in {32, 64}, T in {64, 100}; the median over
             --steps steps after warm-up, the two sides alternating step by step (ABBA); and both as a
             share of the matrix-product limit: the time the step's matrix products alone take at
             the float32 GEMM rate this script measures for the same shapes (a step counted as 3x
             the forward's 2(D+H)GH per layer per symbol, G gates, plus the output layer).
  sampling   symbols per second at batch 1 (one symbol at a time, temperature 0.8, as
             `charlstm sample` does it) and at batch 64, for H = 256 and 512, against the fastest
             of several PyTorch loops (nn.LSTM/GRU/RNN stepped one symbol at a time, or three
             nn.LSTMCell/GRUCell/RNNCell, under torch.inference_mode).
  memory     peak resident memory of a training run (a fresh process), against what must be held:
             parameters, gradients, Adam's two moments, one chunk's activations, and with
             dropout (run once without, once at the default 0.2) one chunk's masks.
  encoding   building the vocabulary of, and encoding, a 100 MB corpus (ASCII, and text with emoji
             in grapheme mode), in MB/s.

Between the two sides the script sleeps briefly: both BLAS libraries keep their worker threads
spinning for a while after a call, and a spinning pool would steal the cores from the other side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

V = 65
LAYERS = 3
GATES = {"lstm": 4, "peephole": 4, "gru": 3, "rnn": 1}   # blocks of H in a layer's weight matrices
SETTLE_S = 0.3   # lets the other library's spinning worker threads go idle
EMBEDDING = None  # the input embedding's size, set from --embedding-size in main()


def median_time(fn, steps: int) -> float:
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


# --- the two training steps ----------------------------------------------------------------------

def charlstm_trainer(H, B, T, seed=0, cell="lstm", embedding_size=None):
    from charlstm.model import ModelConfig, init_params, loss_and_grads, zero_state
    from charlstm.nn.optim import adam_init, adam_update, clip_by_global_norm
    from charlstm.nn.workspace import Workspace
    rng = np.random.default_rng(seed)
    config = ModelConfig(V, H, LAYERS, cell=cell, embedding_size=EMBEDDING if embedding_size is None else embedding_size)
    workspace = Workspace()          # as `charlstm train` does
    params = init_params(config, rng)
    adam = adam_init(params)
    box = {"state": zero_state(config, B)}
    x = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))

    def step():
        loss, grads, state, _ = loss_and_grads(params, config, x, y, box["state"], workspace=workspace)
        clip_by_global_norm(grads, 5.0)
        adam_update(params, grads, adam, 2e-3)
        box["state"] = state
    return step


TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def torch_trainer(H, B, T, seed=0, cell="lstm"):
    import torch
    torch.manual_seed(seed)
    Recurrent = getattr(torch.nn, TORCH_MODULES[cell])

    E = H if EMBEDDING is None else EMBEDDING     # None: charlstm's default, as wide as a layer

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E) if E else None
            self.lstm = Recurrent(E or V, H, LAYERS)
            self.head = torch.nn.Linear(H, V)

        def forward(self, x, state):
            inputs = self.embed(x) if E else torch.nn.functional.one_hot(x, V).float()
            out, state = self.lstm(inputs, state)
            return self.head(out), state

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, V, (T, B)))
    y = torch.from_numpy(rng.integers(0, V, (T, B)))
    zeros = torch.zeros(LAYERS, B, H)
    box = {"state": (zeros, zeros.clone()) if cell == "lstm" else zeros}

    def step():
        opt.zero_grad(set_to_none=True)
        logits, state = net(x, box["state"])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        box["state"] = tuple(s.detach() for s in state) if cell == "lstm" else state.detach()
    return step


def step_flops(H, B, T, gates=4) -> float:
    """3x the forward's 2(D+H)GH per layer per symbol, plus the output layer (the issue's count)."""
    per_symbol = sum(2 * ((V if l == 0 else H) + H) * gates * H for l in range(LAYERS)) + 2 * H * V
    return 3.0 * per_symbol * B * T


def gemm_rate(m, k, n, min_time=0.3) -> float:
    """float32 GEMM GFLOP/s of an (m, k) x (k, n) product on this machine (numpy's BLAS)."""
    a = np.random.default_rng(0).random((m, k), dtype=np.float32)
    b = np.random.default_rng(1).random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < min_time:
        np.matmul(a, b, out=out)
        reps += 1
    return 2.0 * m * k * n * reps / (time.perf_counter() - t) / 1e9


def gemm_limit_seconds(H, B, T, rates: dict, gates=4) -> float:
    """How long the step's matrix products take at the measured GEMM rates of their shapes: the
    per-step (B, H) x (H, GH) products (forward and backward) and the all-steps products."""
    small = rates.setdefault(("step", B, H, gates), gemm_rate(B, H, gates * H))
    large = rates.setdefault(("all", B * T, H, gates), gemm_rate(B * T, H, gates * H))
    flops = step_flops(H, B, T, gates)
    recurrent = 2.0 * 2 * H * gates * H * B * T * LAYERS          # forward and backward h Wh products
    return recurrent / (small * 1e9) + (flops - recurrent) / (large * 1e9)


def bench_training(configs, steps, warmup, have_torch, cell="lstm", against="torch"):
    """charlstm's `cell` against PyTorch's module of it, or, for the peephole LSTM, against
    charlstm's plain LSTM, or with against="one-hot" against charlstm's own one-hot model of the
    cell (the "torch" columns then hold the other side's figures)."""
    rows, rates = [], {}
    for H, B, T in configs:
        ours = charlstm_trainer(H, B, T, cell=cell)
        if against == "one-hot":
            theirs = charlstm_trainer(H, B, T, cell=cell, embedding_size=0)
        elif cell == "peephole":
            theirs = charlstm_trainer(H, B, T, cell="lstm")
        else:
            theirs = torch_trainer(H, B, T, cell=cell) if have_torch else None
        for _ in range(warmup):
            ours()
            if theirs:
                theirs()
        t_ours, t_theirs = [], []
        for k in range(steps):
            # ABBA: the side that runs second (on caches the first warmed, or threads it left
            # spinning) changes every step
            for side in ((ours, theirs) if k % 2 == 0 else (theirs, ours)):
                if side is None:
                    continue
                time.sleep(SETTLE_S)
                (t_ours if side is ours else t_theirs).append(median_time(side, 1))
        limit = gemm_limit_seconds(H, B, T, rates, GATES[cell])
        ours_cps = B * T / float(np.median(t_ours))
        other = ("charlstm one-hot" if against == "one-hot" else
                 "charlstm lstm" if cell == "peephole" else f"torch nn.{TORCH_MODULES[cell]}")
        row = {"cell": cell, "against": other, "embedding_size": EMBEDDING, "H": H, "B": B, "T": T, "charlstm_chars_per_s": ours_cps,
               "charlstm_share_of_gemm_limit": limit / float(np.median(t_ours)),
               "gemm_limit_chars_per_s": B * T / limit}
        if theirs:
            torch_cps = B * T / float(np.median(t_theirs))
            row.update(torch_chars_per_s=torch_cps, ratio=ours_cps / torch_cps,
                       torch_share_of_gemm_limit=limit / float(np.median(t_theirs)))
        rows.append(row)
        print(_training_line(row), flush=True)
    return rows


def _training_line(r) -> str:
    s = (f"train {r['cell']:>8} H={r['H']:>3} B={r['B']:>2} T={r['T']:>3}: charlstm {r['charlstm_chars_per_s']:>8,.0f} c/s "
         f"({100 * r['charlstm_share_of_gemm_limit']:4.0f} % of GEMM limit)")
    if "torch_chars_per_s" in r:
        s += (f"  {r['against']} {r['torch_chars_per_s']:>8,.0f} c/s ({100 * r['torch_share_of_gemm_limit']:4.0f} %)"
              f"  ratio {r['ratio']:.2f}")
    return s


# --- sampling ------------------------------------------------------------------------------------

def charlstm_sampler(H, B, length, cell="lstm"):
    from charlstm.model import ModelConfig, init_params
    from charlstm.decoding.sampling import generate
    from charlstm.data.vocab import Vocab
    config = ModelConfig(V, H, LAYERS, cell=cell, embedding_size=EMBEDDING)
    params = init_params(config, np.random.default_rng(0))
    vocab = Vocab(tuple(chr(32 + k) for k in range(V - 1)) + ("\n",))

    def run():
        for _ in generate(params, config, vocab, np.random.default_rng(0), length=length,
                          temperature=0.8, num_samples=B):
            pass
    return run


def torch_samplers(H, B, length, cell="lstm"):
    """Several ways to write the PyTorch sampling loop; the benchmark keeps the fastest."""
    import torch
    torch.manual_seed(0)
    name = TORCH_MODULES[cell]
    E = EMBEDDING or H         # charlstm's default, and for a one-hot model the usual nn.Embedding(V, H)
    embed, net, head = torch.nn.Embedding(V, E), getattr(torch.nn, name)(E, H, LAYERS), torch.nn.Linear(H, V)
    cells = [getattr(torch.nn, name + "Cell")(E if l == 0 else H, H) for l in range(LAYERS)]
    has_c = cell == "lstm"

    def with_module():
        with torch.inference_mode():
            x = torch.zeros(1, B, dtype=torch.long)
            state = (torch.zeros(LAYERS, B, H), torch.zeros(LAYERS, B, H)) if has_c else torch.zeros(LAYERS, B, H)
            for _ in range(length):
                out, state = net(embed(x), state)
                probs = torch.softmax(head(out[0]) / 0.8, dim=-1)
                x = torch.multinomial(probs, 1).T
    def with_cells():
        with torch.inference_mode():
            x = torch.zeros(B, dtype=torch.long)
            hs = [torch.zeros(B, H) for _ in range(LAYERS)]
            cs = [torch.zeros(B, H) for _ in range(LAYERS)]
            for _ in range(length):
                inp = embed(x)
                for l, step in enumerate(cells):
                    if has_c:
                        hs[l], cs[l] = step(inp, (hs[l], cs[l]))
                    else:
                        hs[l] = step(inp, hs[l])
                    inp = hs[l]
                probs = torch.softmax(head(inp) / 0.8, dim=-1)
                x = torch.multinomial(probs, 1)[:, 0]
    return {f"nn.{name}, inference_mode": with_module, f"nn.{name}Cell x3, inference_mode": with_cells}


def bench_sampling(have_torch, length, cell="lstm"):
    rows = []
    for H in (256, 512):
        for B in (1, 64):
            n = length if B == 1 else max(50, length // 8)
            ours = charlstm_sampler(H, B, n, cell)
            ours()
            best_name, best_t = None, None
            t_ours = []
            if cell == "peephole":
                loops = {"charlstm lstm": charlstm_sampler(H, B, n, "lstm")}
            else:
                loops = torch_samplers(H, B, n, cell) if have_torch else {}
            for fn in loops.values():
                fn()
            t_loops = {name: [] for name in loops}
            for _ in range(3):
                time.sleep(SETTLE_S)
                t_ours.append(median_time(ours, 1))
                for name, fn in loops.items():
                    time.sleep(SETTLE_S)
                    t_loops[name].append(median_time(fn, 1))
            row = {"cell": cell, "H": H, "B": B, "charlstm_symbols_per_s": B * n / float(np.median(t_ours))}
            if loops:
                best_name = min(t_loops, key=lambda k: np.median(t_loops[k]))
                best_t = float(np.median(t_loops[best_name]))
                row.update(torch_symbols_per_s=B * n / best_t, torch_loop=best_name,
                           ratio=row["charlstm_symbols_per_s"] / (B * n / best_t))
            rows.append(row)
            line = f"sample {cell:>8} H={H} B={B:>2}: charlstm {row['charlstm_symbols_per_s']:>9,.0f} sym/s"
            if loops:
                line += f"  against {row['torch_symbols_per_s']:>9,.0f} sym/s ({best_name})  ratio {row['ratio']:.2f}"
            print(line, flush=True)
    return rows


# --- memory --------------------------------------------------------------------------------------

_MEMORY_CHILD = r"""
import sys, numpy as np
from charlstm.model import ModelConfig, dropout_masks, init_params, loss_and_grads, zero_state
from charlstm.nn.optim import adam_init, adam_update, clip_by_global_norm
from charlstm.nn.workspace import Workspace

def high_water_kb():
    # VmHWM belongs to this address space alone; getrusage's ru_maxrss would also count the
    # process this one was forked from, as Linux keeps that across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

H, B, T, steps = map(int, sys.argv[1:5])
dropout = float(sys.argv[5])
E = None if sys.argv[6] == "None" else int(sys.argv[6])
base = high_water_kb()
rng = np.random.default_rng(0)
config = ModelConfig(65, H, 3, dropout, embedding_size=E)
params = init_params(config, rng); adam = adam_init(params); state = zero_state(config, B)
x = rng.integers(0, 65, (T, B)); y = rng.integers(0, 65, (T, B))
workspace = Workspace()
for _ in range(steps):
    masks = dropout_masks(config, T, B, rng, workspace=workspace)      # as `charlstm train` draws them
    loss, grads, state, _ = loss_and_grads(params, config, x, y, state, masks, workspace=workspace)
    clip_by_global_norm(grads, 5.0); adam_update(params, grads, adam, 2e-3)
print(base, high_water_kb())
"""


def bench_memory(H=256, B=32, T=100, steps=5):
    return [_memory_row(H, B, T, steps, dropout) for dropout in (0.0, 0.2)]


def _memory_row(H, B, T, steps, dropout):
    """Dropout 0, as the training figures run; 0.2, `charlstm train`'s default, whose masks (one
    float per unit, step and stream) must then be held too."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(H), str(B), str(T), str(steps), str(dropout),
                          str(EMBEDDING)],
                         capture_output=True, text=True, check=True).stdout.split()
    base_kb, peak_kb = int(out[0]), int(out[1])
    from charlstm.model import ModelConfig, param_shapes
    n_params = sum(int(np.prod(shape)) for shape in param_shapes(ModelConfig(V, H, LAYERS,
                                                                             embedding_size=EMBEDDING)).values())
    param_bytes = 4 * n_params * 4                       # weights, gradients, Adam m and v
    # one chunk's activations kept for the backward pass, per layer: gates (4H), c and h (2H, with
    # the initial state), tanh(c) (H); plus the head's input and its logits
    act_bytes = 4 * (LAYERS * B * T * 7 * H + B * T * (H + V))
    mask_bytes = 4 * LAYERS * B * T * H if dropout else 0
    needed = param_bytes + act_bytes + mask_bytes
    row = {"H": H, "B": B, "T": T, "dropout": dropout, "interpreter_mb": base_kb / 1024, "peak_mb": peak_kb / 1024,
           "must_hold_mb": needed / 2**20,
           "ratio_over_interpreter": (peak_kb * 1024 - base_kb * 1024) / needed}
    print(f"memory H={H} B={B} T={T} dropout {dropout}: peak {row['peak_mb']:.0f} MB = interpreter {row['interpreter_mb']:.0f} MB"
          f" + {(peak_kb - base_kb) / 1024:.0f} MB; must hold {row['must_hold_mb']:.0f} MB"
          f" -> {row['ratio_over_interpreter']:.2f}x", flush=True)
    return row


# --- encoding ------------------------------------------------------------------------------------

def bench_encoding(corpus: Path | None, size_mb: int = 100):
    from charlstm.data.vocab import build_and_encode
    if corpus is not None and corpus.exists():
        seed_text = corpus.read_text(encoding="utf-8")
    else:
        seed_text = "def main():\n    return [x * 2 for x in range(10)]  # doubled\n" * 1000
    ascii_text = seed_text.encode("ascii", "ignore").decode("ascii")
    emoji = ["\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F1FA\U0001F1F8", "e\u0301", "\u2019", "\u2014",
             "\U0001F468\u200D\U0001F469\u200D\U0001F467", "\u2764\ufe0f"]
    words = ascii_text.split(" ")
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(emoji), len(words))
    sprinkle = rng.random(len(words)) < 0.05              # an emoji or typographic mark every ~20 words
    mixed_text = " ".join(w + emoji[p] if s else w for w, p, s in zip(words, picks, sprinkle))
    rows = []
    for name, text in (("ascii", ascii_text), ("mixed unicode (grapheme)", mixed_text)):
        reps = max(1, int(size_mb * 1e6 // len(text.encode("utf-8"))))
        big = text * reps
        mb = len(big.encode("utf-8")) / 1e6
        t = time.perf_counter()
        vocab, ids = build_and_encode(big, "grapheme")   # what `charlstm train` does
        dt = time.perf_counter() - t
        rows.append({"corpus": name, "mb": mb, "seconds": dt, "mb_per_s": mb / dt, "dtype": str(ids.dtype),
                     "symbols": int(ids.size), "vocab": len(vocab)})
        print(f"encode {name}: {mb:.0f} MB in {dt:.1f} s = {mb / dt:.1f} MB/s ({ids.dtype}, {len(vocab)} symbols)",
              flush=True)
        del big, ids
    return rows


# --- main ----------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per side and config")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sample-length", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=None, help="text to build the encoding corpora from")
    parser.add_argument("--only", nargs="*", default=["training", "sampling", "memory", "encoding"])
    parser.add_argument("--cells", nargs="*", default=["lstm"], help="lstm, gru, rnn, peephole")
    parser.add_argument("--configs", nargs="*", metavar="HxBxT",
                        help="training configurations to run (default: all 12), e.g. 256x32x100")
    parser.add_argument("--embedding-size", type=int, default=None,
                        help="the input embedding of both sides (0: one-hot) [charlstm's default, the hidden size]")
    parser.add_argument("--against", choices=["torch", "one-hot"], default="torch",
                        help="training: PyTorch, or charlstm's own one-hot model (what the embedding costs)")
    args = parser.parse_args()
    global EMBEDDING
    EMBEDDING = args.embedding_size
    from charlstm.nn.backend import set_threads
    set_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
        have_torch = True
    except ImportError:
        print("torch is not installed (pip install torch==2.13.0): charlstm only", file=sys.stderr)
        have_torch = False
    print(f"cpu: {_cpu_name()} ({_cpu_flags()}); embedding size {EMBEDDING}", flush=True)
    results = {"machine": {"cpu": _cpu_name(), "flags": _cpu_flags(), "cores": os.cpu_count(), "threads": args.threads,
                           "python": platform.python_version(), "numpy": np.__version__,
                           "torch": __import__("torch").__version__ if have_torch else None}}
    configs = [(H, B, T) for H in (128, 256, 512) for B in (32, 64) for T in (64, 100)]
    if args.configs:
        configs = [tuple(int(n) for n in c.lower().split("x")) for c in args.configs]
    if "training" in args.only:
        results["training"] = [row for cell in args.cells
                               for row in bench_training(configs, args.steps, args.warmup, have_torch, cell,
                                                         args.against)]
    if "sampling" in args.only:
        results["sampling"] = [row for cell in args.cells for row in bench_sampling(have_torch, args.sample_length, cell)]
    if "memory" in args.only:
        results["memory"] = bench_memory()
    if "encoding" in args.only:
        results["encoding"] = bench_encoding(args.corpus)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _cpu_flags() -> str:
    """The vector extensions that decide which BLAS kernels run (AVX2 or AVX-512)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(sorted(f for f in flags if f in {"avx", "avx2", "fma", "avx512f", "avx512bw",
                                                                   "avx512vl", "avx512_vnni", "amx_tile"}))
    except OSError:
        pass
    return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
