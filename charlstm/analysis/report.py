"""A training run as one self-contained HTML page: its curves, its learning rate, its samples.

Read from RUN_DIR/metrics.jsonl (one JSON object per evaluation) and, when there, the run's
checkpoint (for the model's shape and the training settings). Charts are inline SVG (no script,
no network); every point has a tooltip. When the training corpus is known (RUN_DIR/corpus.txt, or
given), each evaluation's sample is checked against it: the share of its n-grams that occur
verbatim in the corpus and its longest copied span (see novelty.py).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from charlstm.analysis.pages import fill, read_page_file
from charlstm.training.checkpoint import load_checkpoint
from charlstm.training.heldout import warn_if_other_corpus
from charlstm.data.text import read_text
from charlstm.errors import CharlstmError
from charlstm.files import read_bounded
from charlstm.validate import Fields, load_json
from charlstm.analysis.novelty import DEFAULT_NS, CorpusIndex, novelty

LN2 = math.log(2.0)
COLOURS = ("#2662c8", "#dc3228", "#2a9d4b", "#8a4fc8")


MAX_METRICS_BYTES = 256 << 20


def read_metrics(run_dir) -> list[dict]:
    """The evaluations of a run, in the order they were written (other events are left out),
    each field checked (see charlstm.validate): a damaged line is one error naming it."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise CharlstmError(f"{run_dir}: not a directory (give a training run's --out directory)")
    if not path.exists():
        raise CharlstmError(f"{path}: no such file; is {run_dir} a training run's directory?")
    data = read_bounded(path, MAX_METRICS_BYTES, what="metrics file")
    records = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharlstmError(f"{path}: line {number} is not UTF-8 text (byte {e.start} of the line)") from None
        record = load_json(line, f"{path}: line {number}")
        if isinstance(record, dict) and "step" in record and "train_loss" in record:
            records.append(_evaluation(Fields(record, f"{path}: line {number}")))
    if not records:
        raise CharlstmError(f"{path}: holds no evaluation yet")
    return records


def _evaluation(f: Fields) -> dict:
    """One evaluation's record with every field the report reads of the type it needs."""
    return {"step": f.integer("step", lo=0), "train_loss": f.number("train_loss", lo=0, optional=True),
            "epoch": f.number("epoch", lo=0, default=0), "elapsed_s": f.number("elapsed_s", lo=0, default=0),
            "val_nats": f.number("val_nats", optional=True, default=None),
            "val_bpc": f.number("val_bpc", optional=True, default=None),
            "chars_per_s": f.number("chars_per_s", lo=0, optional=True, default=None),
            "lr": f.number("lr", optional=True, default=None),
            "sample": f.text("sample", optional=True, default="")}


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round numbers spanning [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v):,}"
    if abs(v) >= 1e9 or abs(v) < 1e-4:
        return f"{v:.2e}"
    return f"{v:.4g}"


def line_chart(series, xlabel: str, ylabel: str, width: int = 560, height: int = 240) -> str:
    """An SVG line chart. series: [(name, xs, ys)]; points whose y is None are skipped."""
    series = [(name, [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)])
              for name, xs, ys in series]
    points = [p for _, pts in series for p in pts]
    if not points:
        return f'<p class="empty">No {html.escape(ylabel)} recorded yet.</p>'
    left, right, top, bottom = 64, 16, 24, 44
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.1 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    w, h = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x_lo) / (x_hi - x_lo) * w

    def sy(y):
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * h

    out = [f'<svg width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(ylabel)} against '
           f'{html.escape(xlabel)}">',
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fff" stroke="#ccc"/>']
    for y in _nice_ticks(y_lo, y_hi):
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    for x in _nice_ticks(x_lo, x_hi):
        out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{top + h}" stroke="#eee"/>'
                   f'<text x="{sx(x):.1f}" y="{top + h + 16}" text-anchor="middle">{_fmt(x)}</text>')
    out.append(f'<text x="{left + w / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
               f'{html.escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{top + h / 2:.1f}" text-anchor="middle" class="axis" '
               f'transform="rotate(-90 14 {top + h / 2:.1f})">{html.escape(ylabel)}</text>')
    legend_x = left + 8
    for k, (name, pts) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        if not pts:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}"/>')
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.4" fill="{colour}">'
                       f'<title>{html.escape(name)}: {_fmt(y)} at {html.escape(xlabel)} {_fmt(x)}</title></circle>')
        if len(series) > 1:
            out.append(f'<rect x="{legend_x}" y="{top - 16}" width="10" height="10" fill="{colour}"/>'
                       f'<text x="{legend_x + 14}" y="{top - 7}">{html.escape(name)}</text>')
            legend_x += 14 + 7 * len(name) + 18
    out.append("</svg>")
    return "".join(out)


def run_corpus(run_dir, corpus=None):
    """The corpus a report checks the samples against: the one given, else RUN_DIR/corpus.txt when
    it exists (False: none)."""
    if corpus is None and (Path(run_dir) / "corpus.txt").exists():
        return Path(run_dir) / "corpus.txt"
    return corpus


def run_inputs(run_dir, corpus=None) -> list:
    """Every file a report of the run reads (so that its page is never written over one)."""
    run_dir = Path(run_dir)
    return [run_dir / "metrics.jsonl", *(run_dir / name for name in CHECKPOINTS), run_corpus(run_dir, corpus) or None]


CHECKPOINTS = ("latest.npz", "best.npz")     # read for the run's summary


def _run_summary(run_dir: Path, records: list[dict]) -> list[tuple[str, str]]:
    rows = []
    for name in CHECKPOINTS:
        try:
            ckpt = load_checkpoint(run_dir / name)
        except CharlstmError:
            continue
        c = ckpt.config
        inputs = f"embedding {c.embedding_size}" if c.embedding_size else "one-hot input"
        rows.append(("model", f"{c.num_layers} × {c.hidden_size} {c.cell}, {inputs}, {c.vocab_size} symbols "
                              f"({ckpt.vocab.unit}), dropout {c.dropout:g}"))
        config = (ckpt.train or {}).get("config") or {}
        if config:
            rows.append(("training", ", ".join(f"{k.replace('_', '-')} {config[k]}" for k in
                                               ("batch_size", "seq_length", "lr", "lr_schedule", "grad_clip", "seed")
                                               if k in config)))
        break
    last = records[-1]
    rows.append(("steps", f"{last['step']:,} (epoch {last.get('epoch', 0):.2f}) in "
                          f"{last.get('elapsed_s', 0) / 60:.1f} minutes"))
    vals = [r for r in records if r.get("val_bpc") is not None]
    if vals:
        best = min(vals, key=lambda r: r["val_bpc"])
        rows.append(("best validation", f"{best['val_bpc']:.3f} bits/char at step {best['step']:,}"))
    if last.get("chars_per_s"):
        rows.append(("speed", f"{last['chars_per_s']:,.0f} characters/s (last evaluation)"))
    return rows


def render_report(run_dir, corpus=None, title: str | None = None, ns=DEFAULT_NS,
                  encoding_errors: str = "strict") -> str:
    """The HTML report of a training run. corpus: the training text's path, for the novelty of
    the samples (default: RUN_DIR/corpus.txt when it exists; False: none), read with
    `encoding_errors` (strict or replace). A corpus given that is not the one the run recorded
    gives a CharlstmWarning: the copying figures are against it."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    given, corpus = corpus, run_corpus(run_dir, corpus)
    steps = [r["step"] for r in records]
    minutes = [r.get("elapsed_s", 0) / 60 for r in records]
    train_bpc = [r["train_loss"] / LN2 if r.get("train_loss") is not None else None for r in records]
    val_bpc = [r.get("val_bpc") for r in records]
    curves = [("training", train_bpc), ("validation", val_bpc)]

    samples = [r.get("sample") or "" for r in records]
    nov = None
    if corpus:
        index = CorpusIndex.from_text(read_text(corpus, errors=encoding_errors, limit_option=None))
        nov = novelty(index, samples, ns=ns, each=True)

    title = title or f"charlstm: the run in {run_dir.resolve().name}/"
    parts = [f"<h1>{html.escape(title)}</h1>", '<table class="summary">']
    for key, value in _run_summary(run_dir, records):
        parts.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>")
    if corpus:
        shown = Path(corpus).name if Path(corpus).resolve().parent == run_dir.resolve() else str(corpus)
        parts.append(f"<tr><th>corpus</th><td>{html.escape(shown)} "
                     f"({len(index):,} characters)</td></tr>")
    parts.append("</table>")
    parts.append('<div class="charts">')
    parts.append("<figure>" + line_chart([(n, steps, ys) for n, ys in curves], "step", "bits per character")
                 + "<figcaption>Bits per character against steps</figcaption></figure>")
    parts.append("<figure>" + line_chart([(n, minutes, ys) for n, ys in curves], "minutes", "bits per character")
                 + "<figcaption>Bits per character against wall time</figcaption></figure>")
    parts.append("<figure>" + line_chart([("learning rate", steps, [r.get("lr") for r in records])],
                                         "step", "learning rate")
                 + "<figcaption>Learning rate</figcaption></figure>")
    if nov is not None:
        share_curves = [(f"{n}-grams", steps, [nov.share(n, k) for k in range(len(samples))]) for n in ns[:4]]
        parts.append("<figure>" + line_chart(share_curves, "step", "share found in the corpus")
                     + "<figcaption>How much of each evaluation's sample occurs verbatim in the corpus"
                       "</figcaption></figure>")
    parts.append("</div>")

    parts.append("<h2>Samples</h2>")
    if nov is not None:
        parts.append('<p class="note">Copied: the share of the sample\'s n-grams that occur verbatim in the '
                     "corpus, and its longest span that does.</p>")
    for k in range(len(records) - 1, -1, -1):
        r = records[k]
        head = f"step {r['step']:,}"
        if r.get("val_bpc") is not None:
            head += f" · validation {r['val_bpc']:.3f} bits/char"
        if r.get("lr") is not None:
            head += f" · lr {r['lr']:.3g}"
        parts.append(f'<section class="sample"><h3>{html.escape(head)}</h3>')
        if nov is not None:
            shares = " · ".join(f"{n}-grams {_percent(nov.share(n, k))}" for n in ns)
            span = nov.longest_each[k]
            longest = "nothing" if span is None else (
                f"{span.length} characters (corpus line {span.corpus_line}): "
                f"<code>{html.escape(_one_line(span.text))}</code>")
            parts.append(f'<p class="copied">copied: {shares}<br>longest copied span: {longest}</p>')
        parts.append(f"<pre>{html.escape(samples[k]) or '(no sample)'}</pre></section>")
    found = next((run_dir / name for name in CHECKPOINTS if (run_dir / name).is_file()), None)
    if given and found is not None:
        warn_if_other_corpus(found, load_checkpoint(found).train, given)
    return fill(read_page_file("report.html"), STYLE=read_page_file("report.css"), TITLE=html.escape(title),
                BODY="\n".join(parts))


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f} %"


def _one_line(text: str | None, limit: int = 160) -> str:
    text = (text or "").replace("\n", "↵").replace("\t", "→")
    return text if len(text) <= limit else text[:limit] + "…"


__all__ = ["read_metrics", "line_chart", "render_report", "run_corpus", "run_inputs"]
