"""One self-contained HTML file that runs a trained model in any browser, offline.

The page holds the weights (base64, at float32, float16 or int8: see quantize.py), the vocabulary
and the config, and a script that steps the same network in float32 (JavaScript with a small
WebAssembly SIMD kernel for the products, assembled by the script itself) and decodes as
charlstm/decoding/sampling.py does: greedy text equals `model.sample(n, temperature=0, ...)`.
There is no server, network or CDN: open it from disk, mail it, put it on any static host.

The markup, styles and scripts are package data in export/page/ (generator.html, generator.css,
generator.js: the model and its API, no DOM; ui.js: the controls and the self-test that
tests/test_page.py drives through the URL's hash). This module fills the template's slots:

    /*%CSS%*/  /*%GENERATOR_JS%*/  /*%UI_JS%*/  %TITLE%  %DESCRIPTION%  %DATA%

(The folder export/page/ has no __init__.py: `charlstm.export.page` is this module; the folder is
data read through importlib.resources.)
"""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.export.quantize import check_precision, quantize
from charlstm.files import write_atomically
from charlstm.model import as_one_hot, param_shapes, unconditioned

FORMAT_VERSION = 1

# The parameters the page's script reads for each cell it knows (generator.js's CELLS): a cell
# registered in Python with other keys is refused here instead of failing in the browser.
PAGE_CELLS = {
    "lstm": ("Wx", "Wh", "b"),
    "peephole": ("Wx", "Wh", "b", "p_i", "p_f", "p_o"),
    "gru": ("Wx", "Wh", "bx", "bh"),
    "rnn": ("Wx", "Wh", "b"),
}
_SLOT = re.compile(r"/\*%(CSS|GENERATOR_JS|UI_JS)%\*/|%(TITLE|DESCRIPTION|DATA)%")


def _asset(name: str) -> str:
    return resources.files("charlstm.export").joinpath("page", name).read_text(encoding="utf-8")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def _check_cell(model) -> None:
    unconditioned(model.config, "the page")
    cell = model.config.cell
    if cell not in PAGE_CELLS:
        raise CharlstmError(f"the page cannot run a {cell} cell yet (it runs {', '.join(PAGE_CELLS)})")
    keys = tuple(model.config.cell_type.param_shapes(1, 1))
    if set(keys) != set(PAGE_CELLS[cell]):
        raise CharlstmError(f"the {cell} cell's parameters ({', '.join(keys)}) are not the ones the page "
                            f"reads ({', '.join(PAGE_CELLS[cell])})")


def describe(model, precision: str = "float32", bits_per_char: float | None = None) -> str:
    """One line saying what the page holds, e.g. "3 × 256 LSTM · 98 symbols (grapheme) · ..."."""
    c = model.config
    n = sum(int(np.prod(s)) for s in param_shapes(c).values())
    line = (f"{c.num_layers} × {c.hidden_size} {c.cell.upper()} · {c.vocab_size} symbols ({model.vocab.unit}) · "
            f"{n:,} parameters · {precision} weights")
    if bits_per_char is not None:
        line += f" · validation {bits_per_char:.3f} bits/char"
    return line


def page_data(model, precision: str = "float32", bits_per_char: float | None = None) -> dict:
    """What the page's script reads: config, vocabulary and every parameter at `precision`, in the
    checkpoint's layout, in param_shapes' order. A model with an embedding goes in its one-hot
    form (model.as_one_hot): its input table is layer 0's rows, so the page's script reads every
    model the same way, and its size is a one-hot model's."""
    check_precision(precision)
    _check_cell(model)
    if bits_per_char is not None and not np.isfinite(bits_per_char):
        bits_per_char = None
    model_params, config = model.params, model.config
    for key, shape in param_shapes(config).items():
        w = model_params.get(key)
        if w is None or tuple(w.shape) != tuple(shape):
            raise CharlstmError(f"the model's {key} is {None if w is None else tuple(w.shape)}, "
                                f"expected {tuple(shape)}")
    model_params, config = as_one_hot(model_params, config)
    params = []
    for key, shape in param_shapes(config).items():
        w = model_params.get(key)
        if w is None or tuple(w.shape) != tuple(shape):
            raise CharlstmError(f"the model's {key} is {None if w is None else tuple(w.shape)}, "
                                f"expected {tuple(shape)}")
        q = quantize(w, precision)
        entry = {"key": key, "shape": list(shape), "dtype": str(q.data.dtype), "data": _b64(q.data)}
        if q.scale is not None:
            entry["scale"] = _b64(q.scale)
        params.append(entry)
    c = config
    return {
        "format": "charlstm-page", "version": FORMAT_VERSION, "precision": precision,
        "config": {"cell": c.cell, "num_layers": c.num_layers, "hidden_size": c.hidden_size,
                   "vocab_size": c.vocab_size},
        "vocab": model.vocab.to_dict(),
        "bits_per_char": None if bits_per_char is None else round(float(bits_per_char), 4),
        "params": params,
    }


def render_generator(model, precision: str = "float32", bits_per_char: float | None = None,
                     title: str | None = None) -> str:
    """The whole page for a model (a charlstm.Model: params, config, vocab). bits_per_char: the
    validation figure to show, if known."""
    data = page_data(model, precision, bits_per_char)
    # In a <script> element only "</" could end it early; JSON allows "<" as \u003c.
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    fills = {
        "CSS": _asset("generator.css"),
        "GENERATOR_JS": _asset("generator.js"),
        "UI_JS": _asset("ui.js"),
        "TITLE": html.escape(title or "charlstm"),
        "DESCRIPTION": html.escape(describe(model, precision, bits_per_char)),
        "DATA": blob,
    }
    for name, element in (("CSS", "style"), ("GENERATOR_JS", "script"), ("UI_JS", "script")):
        if re.search(f"</{element}", fills[name], re.I):      # a packaging mistake, not a user's
            raise AssertionError(f"page asset {name} would end its <{element}> element early")
    # one pass, so text filled in is never read as a slot
    return _SLOT.sub(lambda m: fills[m.group(1) or m.group(2)], _asset("generator.html"))


def export_page(model, path, precision: str = "float32", bits_per_char: float | None = None,
                title: str | None = None) -> int:
    """Write the page to path atomically (a temporary file in the same folder, then a rename), so
    an existing file is replaced whole or not at all. Returns the size in bytes."""
    page = render_generator(model, precision, bits_per_char, title).encode("utf-8")
    write_atomically(path, lambda f: f.write(page), "page")
    return len(page)


__all__ = ["PAGE_CELLS", "describe", "page_data", "render_generator", "export_page"]
