"""Golden numbers from charlstm before the cell interface (run on main at 78b9fc2)."""
import json, sys, shutil
from pathlib import Path
import numpy as np
from charlstm.train import TrainConfig, train
from charlstm.api import load
from charlstm import trace

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
words = ["the cat", "a dog", "sees", "likes", "the moon", "some bread", "é", "🙂"]
text = "".join(" ".join(words[k] for k in rng.integers(len(words), size=5)) + ".\n" for _ in range(200))
(out / "golden_corpus.txt").write_text(text, encoding="utf-8")
cfg = TrainConfig(batch_size=4, seq_length=12, lr=1e-2, max_steps=30, eval_every=10, val_fraction=0.1,
                  sample_length=30, seed=3)
tmp = Path("/tmp/golden_run"); shutil.rmtree(tmp, ignore_errors=True)
cfg20 = TrainConfig(**{**cfg.__dict__, "max_steps": 20})
# run to step 20 with the same total schedule? cosine uses fraction of max_steps: resume uses bounds given.
r = train(text=text, out_dir=tmp, config=cfg, model={"hidden_size": 16, "num_layers": 2, "dropout": 0.2}, progress=False,
          on_eval=lambda ev: ev.step == 20 and shutil.copy(tmp / "latest.npz", out / "golden_v1_step20.npz"))
shutil.copy(tmp / "latest.npz", out / "golden_v1_step30.npz")
shutil.copy(tmp / "metrics.jsonl", out / "golden_v1_metrics.jsonl")
m = load(tmp / "latest.npz")
samples = {"t0.8_seed5": m.sample(80, temperature=0.8, seed=5, prime="the "),
           "t0": m.sample(40, temperature=0, prime="a dog"),
           "batch3_topk5": m.sample(30, temperature=1.0, seed=2, top_k=5, num_samples=3)}
t = trace(m, text[:120], chunk=64)
np.savez(out / "golden_v1_trace.npz", **{q: getattr(t, q) for q in ("h", "c", "i", "f", "g", "o", "top_probs", "loss")})
(out / "golden_v1_samples.json").write_text(json.dumps(samples, ensure_ascii=False, indent=1), encoding="utf-8")
print(r.step, [e.val_nats for e in r.evaluations])
