"""A small character transformer, the study's non-recurrent side (scripts/recipe.py
`--only torch-transformer`), at the settings nanoGPT publishes for shakespeare_char on a CPU:
4 layers, 4 heads, width 128, context 64, batch 12, learning rate 1e-3, no dropout. Written here
from the architecture's description (GPT-2's pre-norm decoder), not copied.

    token + position embeddings (width 128)
    4 x [x += attention(layer_norm(x)) (4 heads, causal); x += mlp(layer_norm(x)) (4x width, GELU)]
    layer_norm -> logits through the token embedding's transpose (tied)

Training as nanoGPT's trainer does for that config: random windows of the training ids (no state
crosses windows), AdamW (betas 0.9, 0.99; weight decay 0.1 on matrices only), 100 warm-up steps,
then a cosine decay to a tenth of the rate over the budget, gradient-norm clipping at 1.

Held-out evaluation: a transformer sees at most `context` symbols, so "exact" here means every
held-out symbol predicted from between context / 2 and context symbols before it (see
heldout_loss), where the recurrent sides read everything before it.
"""

from __future__ import annotations

import copy
import math
import os
import time

import numpy as np

SETTINGS = dict(num_layers=4, num_heads=4, width=128, context=64, batch_size=12, lr=1e-3, min_lr=1e-4,
                warmup_steps=100, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, dropout=0.0)


def make_model(vocab_size: int, s: dict = SETTINGS):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            w = s["width"]
            self.norm1, self.norm2 = nn.LayerNorm(w), nn.LayerNorm(w)
            self.qkv = nn.Linear(w, 3 * w)
            self.proj = nn.Linear(w, w)
            self.mlp = nn.Sequential(nn.Linear(w, 4 * w), nn.GELU(), nn.Linear(4 * w, w))

        def forward(self, x):
            B, T, W = x.shape
            q, k, v = self.qkv(self.norm1(x)).split(W, dim=2)
            heads = lambda t: t.view(B, T, s["num_heads"], W // s["num_heads"]).transpose(1, 2)   # noqa: E731
            y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(B, T, W))
            return x + self.mlp(self.norm2(x))

    class CharTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            w = s["width"]
            self.tokens = nn.Embedding(vocab_size, w)
            self.positions = nn.Embedding(s["context"], w)
            self.blocks = nn.ModuleList(Block() for _ in range(s["num_layers"]))
            self.norm = nn.LayerNorm(w)
            for name, p in self.named_parameters():       # GPT-2's scheme: N(0, 0.02), residual
                if p.dim() == 2:                           # projections scaled by depth
                    std = 0.02 / math.sqrt(2 * s["num_layers"]) if name.endswith(("proj.weight", "mlp.2.weight")) \
                        else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, ids):          # ids (B, T) -> logits (B, T, V)
            T = ids.shape[1]
            x = self.tokens(ids) + self.positions(torch.arange(T, device=ids.device))
            for block in self.blocks:
                x = block(x)
            return self.norm(x) @ self.tokens.weight.T

    return CharTransformer()


def heldout_loss(model, ids: np.ndarray, context: int, limit: int | None = None) -> tuple[float, int]:
    """Mean nats of every held-out symbol but the first, each predicted from between context / 2
    and context symbols before it (the first ones from fewer): windows of `context` inputs that
    overlap by half, each scoring its second half."""
    import torch
    from torch.nn import functional as F
    ids = ids if limit is None else ids[:limit + 1]
    half = context // 2
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for lo in range(0, max(1, len(ids) - 1 - half), half):
            window = ids[lo:lo + context + 1].astype(np.int64)
            first = 0 if lo == 0 else half      # the positions before it are context only
            logits = model(torch.from_numpy(window[:-1])[None])[0]
            total += float(F.cross_entropy(logits[first:], torch.from_numpy(window[1 + first:]), reduction="sum"))
            count += len(window) - 1 - first
    model.train()
    return total / count, count


def train(data, max_time: float | None, seed: int, log=print, max_steps: int | None = None,
          eval_interval: float | None = None, val_symbols: int | None = 50_000) -> dict:
    """Train for max_time seconds (or max_steps); the record scripts/recipe.py keeps per side."""
    import torch
    from torch.nn import functional as F
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    s = SETTINGS
    model = make_model(len(data.vocab))
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": s["weight_decay"]},
                                   {"params": rest, "weight_decay": 0.0}], lr=s["lr"], betas=s["betas"])
    train_ids = torch.from_numpy(data.train_ids.astype(np.int64))
    rng = np.random.default_rng(seed)
    T, B = s["context"], s["batch_size"]
    curve, best, best_val, best_step, step, chars, eval_s = [], None, None, None, 0, 0, 0.0
    started = time.perf_counter()
    next_eval = eval_interval or 60.0

    def evaluate():
        nonlocal best, best_val, best_step, eval_s
        t0 = time.perf_counter()
        val, _ = heldout_loss(model, data.heldout_ids, T, val_symbols)
        eval_s += time.perf_counter() - t0
        curve.append([round(time.perf_counter() - started, 3), step, val])
        if best_val is None or val < best_val:
            best_val, best_step, best = val, step, copy.deepcopy(model.state_dict())
        log(f"  torch-transformer step {step}: val {val:.4f} nats")

    def fraction() -> float:
        return step / max_steps if max_steps else min(1.0, (time.perf_counter() - started) / max_time)

    while (step < max_steps) if max_steps else (time.perf_counter() - started < max_time):
        if step < s["warmup_steps"]:
            lr = s["lr"] * (step + 1) / s["warmup_steps"]
        else:
            lr = s["min_lr"] + 0.5 * (s["lr"] - s["min_lr"]) * (1 + math.cos(math.pi * fraction()))
        for group in optimiser.param_groups:
            group["lr"] = lr
        starts = torch.from_numpy(rng.integers(0, len(train_ids) - T - 1, B))
        batch = torch.stack([train_ids[i:i + T + 1] for i in starts.tolist()])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        optimiser.step()
        step += 1
        chars += B * T
        if time.perf_counter() - started >= next_eval:
            evaluate()
            next_eval += eval_interval or 60.0
    evaluate()
    elapsed = curve[-1][0]
    model.load_state_dict(best)
    t0 = time.perf_counter()
    exact, n = heldout_loss(model, data.heldout_ids, T)
    return {"exact_nats": exact, "exact_bits": exact / math.log(2), "exact_symbols": n,
            "exact_eval_s": round(time.perf_counter() - t0, 1), "steps": step, "best_step": best_step,
            "elapsed_s": round(elapsed, 3), "chars": chars, "chars_per_s": chars / elapsed, "eval_s": round(eval_s, 2),
            "curve": curve, "settings": dict(SETTINGS, input="token and position embeddings",
                                             evaluation=f"each symbol from {T // 2} to {T} before it")}
