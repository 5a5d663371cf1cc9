"""A trained model in another form: the formats, chosen by name or by the file's suffix.

Each format is one writer in EXPORTERS,

    writer(model, path, precision, **options) -> lines saying what was written

(model: anything with .params, .config and .vocab: a charlstm Model or a loaded checkpoint), so
another format is one function and one entry; EXPORT_OPTIONS names the options (eval_text,
title) it reads, and one it does not read is refused rather than dropped. Precisions are checked
by the writer: formats support different ones. Every writer reads and checks all its inputs
before it writes, atomically: on any error nothing is written.

A page at float16 or int8 says what the precision costs: the loss of a held-in text with the
float32 weights and with the page's (`precision_effect`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charlstm import validate
from charlstm.data.text import read_text
from charlstm.decoding.sampling import sample_texts
from charlstm.errors import CharlstmError, naming
from charlstm.export import onnx_graph, page, quantize
from charlstm.training.evaluation import nats_to_bits

EVAL_SYMBOLS = 20_000    # at most this many symbols of eval_text measure a precision's loss
SELF_SAMPLE = 2_000      # without eval_text: this long a sample of the model itself (seed 0)


def summary(config) -> str:
    """A model in a few words: "3 x 256 lstm, 98 symbols"."""
    return f"{config.num_layers} x {config.hidden_size} {config.cell}, {config.vocab_size} symbols"


def validation_bits(train: dict | None) -> float | None:
    """A training record's best validation loss, in bits per symbol, if it has one."""
    best = ((train or {}).get("progress") or {}).get("best_val")
    if isinstance(best, (int, float)) and not isinstance(best, bool) and np.isfinite(best):
        return nats_to_bits(float(best))
    return None


def precision_effect(model, precision: str, eval_text: Path | None = None) -> str:
    """One line: the loss of a held-in text with float32 weights and with `precision`'s."""
    if eval_text is not None:
        with naming(eval_text):
            ids = model.vocab.encode(read_text(eval_text), unknown="unk")[:EVAL_SYMBOLS]
        source = f"{eval_text}"
    else:
        # text the model holds by construction: the increase is then close to how far the
        # quantized model's predictions drift from the float32 ones
        text = sample_texts(model.params, model.config, model.vocab, validate.seed(0), length=SELF_SAMPLE,
                            temperature=1.0)[0]
        ids = model.vocab.encode(text, unknown="unk")
        source = "a sample of the model itself (seed 0; --eval-text FILE to choose)"
    effect = quantize.loss_effect(model.params, model.config, ids, precision)
    return (f"{precision} weights: {effect['float32']:.4f} -> {effect[precision]:.4f} bits/char "
            f"({effect['increase']:+.5f}) on {effect['symbols']:,} symbols of {source}")


def torch_module():
    """charlstm.export.torch_module, or one line saying how to install PyTorch."""
    try:
        import torch  # noqa: F401  (PyTorch itself: is it installed?)
    except ImportError:
        raise CharlstmError("PyTorch is not installed: python3 -m pip install '.[torch]' from the charlstm "
                            "checkout (or pip install torch)") from None
    from charlstm.export import torch_module as module
    return module


def _html(model, path: Path, precision: str, bits_per_char: float | None = None, eval_text: Path | None = None,
          title: str | None = None) -> list[str]:
    quantize.check_precision(precision)
    if eval_text is not None and precision == "float32":
        raise CharlstmError("--eval-text measures what --precision float16 or int8 costs; float32 weights are "
                            "the model's own, so there is nothing to measure: leave it out or give a --precision")
    # eval_text is read (and a bad one refused) before the page is written
    effect = [precision_effect(model, precision, eval_text)] if precision != "float32" else []
    size = page.export_page(model, path, precision, bits_per_char=bits_per_char,
                            title=title or f"charlstm · {path.stem}")
    return [f"{path}: {validate.human_bytes(size)}, {page.describe(model, precision, bits_per_char)}; "
            "open it in a browser", *effect]


def _only_float32(fmt: str, precision: str) -> None:
    if precision != "float32":
        raise CharlstmError(f"--precision {precision} is for --format html; {fmt} keeps the weights in float32")


def _torch(model, path: Path, precision: str, bits_per_char: float | None = None) -> list[str]:
    _only_float32("torch", precision)
    torch_module().write_pt(path, model.params, model.config, model.vocab)
    return [f"{path}: {summary(model.config)}; PyTorch file: load it with charlstm.torch.load_torch or "
            "torch.load(path, weights_only=True)"]


def _onnx(model, path: Path, precision: str, bits_per_char: float | None = None) -> list[str]:
    _only_float32("onnx", precision)
    onnx_graph.save_onnx(model, path)
    return [f"{path}: {summary(model.config)}; ONNX model (opset 17): inputs ids [T, B], h0 [, c0]; "
            "outputs logits [T, B, V], hT [, cT]"]


EXPORTERS: dict = {"html": _html, "torch": _torch, "onnx": _onnx}
EXPORT_OPTIONS = {"html": ("eval_text", "title"), "torch": (), "onnx": ()}
EXPORT_SUFFIXES = {".html": "html", ".htm": "html", ".pt": "torch", ".pth": "torch", ".onnx": "onnx"}


def export_format(path: Path, format: str | None = None, **options) -> str:
    """The format to write `path` in: `format`, else the one its suffix names. An option (of
    EXPORT_OPTIONS) given that the format does not read is refused; None is not given."""
    if format is None:
        format = EXPORT_SUFFIXES.get(Path(path).suffix.lower())
        if format is None:
            raise CharlstmError(f"{path}: cannot tell the format from the suffix; give --format "
                                f"({', '.join(EXPORTERS)})")
    if format not in EXPORTERS:
        raise CharlstmError(f"unknown format {format!r}: use one of {', '.join(EXPORTERS)}")
    unused = [f"--{name.replace('_', '-')}" for name, value in options.items()
              if value is not None and name not in EXPORT_OPTIONS[format]]
    if unused:
        raise CharlstmError(f"{', '.join(unused)}: not used by --format {format} (only by html); leave "
                            f"{'it' if len(unused) == 1 else 'them'} out")
    return format


def export(model, path, format: str | None = None, precision: str = "float32", eval_text=None,
           title: str | None = None, bits_per_char: float | None = None) -> list[str]:
    """Write the model to path in a format (html, torch, onnx; default: from path's suffix).
    precision: the page's weights (float32, float16, int8; the other formats keep float32), whose
    cost is measured on eval_text (default: a sample of the model's own); title: the page's;
    bits_per_char: the validation figure the page shows. Returns the lines that say what was
    written and what the precision costs."""
    path = Path(path)
    options = {"eval_text": None if eval_text is None else Path(eval_text), "title": title}
    format = export_format(path, format, **options)
    given = {name: value for name, value in options.items() if value is not None}
    return EXPORTERS[format](model, path, precision, bits_per_char=bits_per_char, **given)


__all__ = ["EXPORTERS", "EXPORT_OPTIONS", "EXPORT_SUFFIXES", "EVAL_SYMBOLS", "SELF_SAMPLE", "export",
           "export_format", "precision_effect", "summary", "torch_module", "validation_bits"]
