"""Labels, side by side: held-out accuracy after the same wall time on a labelled task.

Sides (each trained for --seconds on the same training split, scored on the same held-out split,
examples never seen in training):
  nb           a character n-gram naive Bayes (n = 1..4, add-one smoothing), written here as the
               baseline; it trains in seconds, its time is reported
  uni-last     charlstm's classifier, one direction, pooling the last step
  uni-mean     the same, pooling the mean over the example
  bi-last      both directions (PyTorch's bidirectional layout), the last steps
  bi-mean      both directions, the mean
  torch-bi     a PyTorch nn.Embedding -> nn.LSTM(bidirectional=True) -> pooling -> nn.Linear of the
               same shape, trained with torch.optim.Adam at the same batch and learning rate
  bayes        charlstm's generator conditioned on the label (train --labels), classifying by
               Bayes' rule

    python scripts/label_bench.py tweets --archive ../shared/data/tweets --seconds 90
    python scripts/label_bench.py languages --seconds 90
    python scripts/label_bench.py tag --seconds 90

`tag` trains the tagger on Python files of the standard library and reports the accuracy per
class on held-out files. The training speed of the classifier and the tagger against PyTorch's
is printed as symbols per second. Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

import charlstm
from charlstm.data.label_tasks import code_languages, tweet_sources
from charlstm.data.labelled import split_labelled, write_labelled
from charlstm.training.label_batches import label_vocab

SIDES = ("nb", "uni-last", "uni-mean", "bi-last", "bi-mean", "torch-bi", "bayes")


def cpu_line() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), [])
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni") if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(shown)}"


# --- the baseline ---------------------------------------------------------------------------------

class NaiveBayes:
    """Multinomial naive Bayes over character n-grams (n = 1..max_n) with add-one smoothing."""

    def __init__(self, max_n: int = 4):
        self.max_n = max_n

    def grams(self, text: str):
        padded = "\x02" + text + "\x03"
        for n in range(1, self.max_n + 1):
            for i in range(len(padded) - n + 1):
                yield padded[i:i + n]

    def fit(self, texts, targets, num_labels: int) -> "NaiveBayes":
        self.counts = [Counter() for _ in range(num_labels)]
        for text, y in zip(texts, targets):
            self.counts[y].update(self.grams(text))
        self.totals = [sum(c.values()) for c in self.counts]
        self.vocab = len(set().union(*self.counts))
        prior = np.bincount(targets, minlength=num_labels) + 1.0
        self.log_prior = np.log(prior / prior.sum())
        return self

    def predict(self, texts) -> np.ndarray:
        out = []
        for text in texts:
            grams = Counter(self.grams(text))
            scores = self.log_prior.copy()
            for y, counts in enumerate(self.counts):
                denom = math.log(self.totals[y] + self.vocab)
                scores[y] += sum(k * (math.log(counts.get(g, 0) + 1) - denom) for g, k in grams.items())
            out.append(int(np.argmax(scores)))
        return np.array(out)


# --- PyTorch's bidirectional LSTM of the same shape ------------------------------------------------

def torch_bilstm(train, held, vocab, seconds, hidden, layers, embedding, batch, lr, pooling, max_length, seed):
    import torch
    from torch import nn
    torch.manual_seed(seed)
    V, N = len(vocab), len(train.labels)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, embedding)
            self.rnn = nn.LSTM(embedding, hidden, layers, batch_first=True, bidirectional=True)
            self.head = nn.Linear(2 * hidden, N)

        def forward(self, ids, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, (h, _) = self.rnn(packed)
            if pooling == "last":
                pooled = torch.cat([h[-2], h[-1]], dim=1)
            else:
                out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
                pooled = out.sum(1) / lengths[:, None].to(out.dtype)
            return self.head(pooled)

    def encode(texts):
        return [vocab.encode(t[:max_length], unknown="unk").astype(np.int64) for t in texts]

    def batches(ids, targets, rng):
        order = np.argsort([len(x) for x in ids], kind="stable")
        groups = [order[i:i + batch] for i in range(0, len(order), batch)]
        rng.shuffle(groups)
        for g in groups:
            lengths = torch.tensor([max(1, len(ids[i])) for i in g])
            padded = torch.zeros(len(g), int(lengths.max()), dtype=torch.long)
            for row, i in enumerate(g):
                padded[row, :len(ids[i])] = torch.from_numpy(ids[i])
            yield padded, lengths, torch.from_numpy(targets[g])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    train_ids, held_ids = encode(train.texts), encode(held.texts)
    rng = np.random.default_rng(seed)
    start, symbols, steps = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        for ids, lengths, y in batches(train_ids, np.asarray(train.targets), rng):
            loss = nn.functional.cross_entropy(net(ids, lengths), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            symbols += int(lengths.sum())
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    net.eval()
    with torch.no_grad():           # scored in the held-out order, in batches of similar length
        out = np.zeros(len(held_ids), np.int64)
        order = np.argsort([len(x) for x in held_ids], kind="stable")
        for k in range(0, len(order), batch):
            g = order[k:k + batch]
            lengths = torch.tensor([max(1, len(held_ids[i])) for i in g])
            padded = torch.zeros(len(g), int(lengths.max()), dtype=torch.long)
            for row, i in enumerate(g):
                padded[row, :len(held_ids[i])] = torch.from_numpy(held_ids[i])
            out[g] = net(padded, lengths).argmax(1).numpy()
    return out, symbols / elapsed, steps


def accuracy(predicted, targets) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(targets)))


def task_data(args):
    if args.task == "tweets":
        data = tweet_sources(args.archive)
    else:
        data = code_languages(per_label=args.per_label)
    return split_labelled(data, fraction=0.1, seed=0)


def run_classify(args) -> None:
    train, held = task_data(args)
    print(f"{args.task}: {len(train)} training and {len(held)} held-out examples, labels "
          + ", ".join(f"{k} {v}" for k, v in held.counts().items()) + " (held out)", flush=True)
    shape = dict(hidden_size=args.hidden, num_layers=args.layers, embedding_size=args.embedding)
    results, speeds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides.split(","):
            t0 = time.perf_counter()
            if side == "nb":
                nb = NaiveBayes().fit(train.texts, np.asarray(train.targets), len(train.labels))
                results[side] = accuracy(nb.predict(held.texts), held.targets)
            elif side in ("uni-last", "uni-mean", "bi-last", "bi-mean"):
                direction, pooling = side.split("-")
                model = charlstm.train_classifier(train, Path(tmp) / side, bidirectional=direction == "bi",
                                                  pooling=pooling, max_time=args.seconds, batch_size=args.batch,
                                                  lr=args.lr, max_length=args.max_length, seed=0, progress=False,
                                                  val_fraction=0.0, eval_every=10 ** 9, **shape)
                results[side] = model.evaluate(held)["accuracy"]
                speeds[side] = model.history[-1].symbols_per_s if model.history else None
            elif side == "torch-bi":
                vocab = label_vocab(train.texts)           # as the classifier builds it: an unknown symbol kept
                predicted, speed, _ = torch_bilstm(train, held, vocab, args.seconds, args.hidden, args.layers,
                                                   args.embedding, args.batch, args.lr, args.pooling,
                                                   args.max_length, 0)
                results[side] = accuracy(predicted, held.targets)
                speeds[side] = speed
            elif side == "bayes":
                path = Path(tmp) / "train.tsv"
                write_labelled(path, [train.labels[y] for y in train.targets], train.texts)
                model = charlstm.train(path, Path(tmp) / side, labels=True, max_time=args.seconds, progress=False,
                                       stop_on_interrupt=False, **shape)
                found = model.classify(list(held.texts))
                results[side] = accuracy([train.labels.index(label) for label, _ in found], held.targets)
            spent = time.perf_counter() - t0
            print(f"  {side:9s} accuracy {results[side]:.4f}  ({spent:.0f} s)", flush=True)
    print(f"\n{cpu_line()}\n{args.task}, {args.seconds:g} s per trained side, held-out accuracy:")
    for side, acc in sorted(results.items(), key=lambda kv: -kv[1]):
        speed = f"  {speeds[side]:,.0f} symbols/s" if speeds.get(side) else ""
        print(f"  {side:9s} {acc:.4f}{speed}")


def torch_tagger(texts, tags, held_texts, held_tags, vocab, num_tags, seconds, hidden, layers, embedding, batch,
                 lr, seed):
    """PyTorch's bidirectional LSTM tagger of the same shape: (held-out accuracy, symbols/s)."""
    import torch
    from torch import nn
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(len(vocab), embedding)
            self.rnn = nn.LSTM(embedding, hidden, layers, batch_first=True, bidirectional=True)
            self.head = nn.Linear(2 * hidden, num_tags)

        def forward(self, ids, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
            return self.head(out)

    def batches(ids, labels, rng=None):
        order = np.argsort([len(x) for x in ids], kind="stable")
        groups = [order[i:i + batch] for i in range(0, len(order), batch)]
        if rng is not None:
            rng.shuffle(groups)
        for g in groups:
            lengths = torch.tensor([len(ids[i]) for i in g])
            x = torch.zeros(len(g), int(lengths.max()), dtype=torch.long)
            y = torch.full((len(g), int(lengths.max())), -100, dtype=torch.long)
            for row, i in enumerate(g):
                x[row, :len(ids[i])] = torch.from_numpy(ids[i])
                y[row, :len(ids[i])] = torch.from_numpy(labels[i].astype(np.int64))
            yield x, lengths, y

    encode = lambda items: [vocab.encode(t, unknown="unk").astype(np.int64) for t in items]   # noqa: E731
    train_ids, held_ids = encode(texts), encode(held_texts)
    net, rng = Net(), np.random.default_rng(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    start, symbols = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for x, lengths, y in batches(train_ids, tags, rng):
            loss = nn.functional.cross_entropy(net(x, lengths).reshape(-1, num_tags), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            symbols += int(lengths.sum())
            if time.perf_counter() - start >= seconds:
                break
    speed = symbols / (time.perf_counter() - start)
    right = total = 0
    net.eval()
    with torch.no_grad():
        for x, lengths, y in batches(held_ids, held_tags):
            guess = net(x, lengths).argmax(-1)
            counted = y != -100
            right += int((guess[counted] == y[counted]).sum())
            total += int(counted.sum())
    return right / total, speed


def stretches(tagged, max_length):
    """Each text cut as the tagger cuts it (at line ends, at most max_length), with its tags."""
    from charlstm.training.label_batches import cut_spans
    texts, tags = [], []
    for text, t in zip(tagged.texts, tagged.tags):
        for a, b in cut_spans(text, max_length):
            texts.append(text[a:b])
            tags.append(np.asarray(t[a:b]))
    return texts, tags


def run_tag(args) -> None:
    import sysconfig
    from charlstm.data.label_tasks import TAG_NAMES, tagged_python
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py"))[:args.files]
    cut = max(1, len(files) // 10)
    held, train = files[:cut], files[cut:]
    print(f"tagger: {len(train)} standard-library files to train on, {len(held)} held out", flush=True)
    shape = dict(hidden_size=args.hidden, num_layers=args.layers, embedding_size=args.embedding)
    with tempfile.TemporaryDirectory() as tmp:
        model = charlstm.train_tagger(train, Path(tmp) / "tag", max_time=args.seconds, bidirectional=True,
                                      batch_size=args.batch, lr=args.lr, max_length=args.max_length,
                                      val_fraction=0.0, eval_every=10 ** 9, progress=False, seed=0, **shape)
        ours = model.evaluate(held)
        our_speed = model.history[-1].symbols_per_s
    texts, tags = stretches(tagged_python(train), args.max_length)
    held_texts, held_tags = stretches(tagged_python(held), args.max_length)
    vocab = label_vocab(texts)
    theirs, their_speed = torch_tagger(texts, tags, held_texts, held_tags, vocab, len(TAG_NAMES), args.seconds,
                                       args.hidden, args.layers, args.embedding, args.batch, args.lr, 0)
    print(f"\n{cpu_line()}\ntagger, bidirectional {args.layers} x {args.hidden} LSTM, {args.seconds:g} s each, "
          f"{len(held)} held-out files ({ours['characters']:,} characters):")
    print(f"  charlstm   accuracy {ours['accuracy']:.4f}  {our_speed:,.0f} symbols/s")
    print(f"  torch-bi   accuracy {theirs:.4f}  {their_speed:,.0f} symbols/s  (charlstm {our_speed / their_speed:.2f}x)")
    shown = lambda x: "-" if x is None else f"{x:.3f}"       # noqa: E731  (a class never predicted: no precision)
    print("  per class (charlstm), recall / precision / characters:")
    for name, f in ours["labels"].items():
        print(f"    {name:9s} {shown(f['recall'])} / {shown(f['precision'])} / {f['support']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["tweets", "languages", "tag"])
    parser.add_argument("--archive", default="../shared/data/tweets")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--pooling", default="mean", help="the PyTorch side's pooling")
    parser.add_argument("--max-length", type=int, default=300)
    parser.add_argument("--per-label", type=int, default=1000)
    parser.add_argument("--files", type=int, default=200, help="tag: standard-library files")
    args = parser.parse_args()
    (run_tag if args.task == "tag" else run_classify)(args)


if __name__ == "__main__":
    main()
