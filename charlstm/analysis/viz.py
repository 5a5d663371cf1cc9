"""One self-contained HTML page to explore a trace: the text, coloured by any unit.

The page needs no network and no server: CSS, JavaScript and data are inline, so it opens from
disk and can be mailed around. Each symbol is one <span> written once; choosing a layer, unit or
quantity (h, c, i, f, g, o) recolours the spans from precomputed values, which stays quick on
20,000 symbols. Hovering a symbol shows the model's top candidates for the next one; a mode colours
each symbol by the loss of predicting it.

Values are stored as int8 (a unit's value v is round(127 v / s), with s = 1 for h and the gates,
which lie in [-1, 1], and s = the largest |c| for a cell state), base64-encoded. A page holds at
most `max_values` such numbers: the chosen unit and the ranked units in all six quantities first,
then h, c and the gates of every unit, layer by layer, as long as they fit.

The URL's hash sets the controls at load, e.g. page.html#layer=1&unit=17&quantity=c&hover=40
(mode=loss colours by loss; hover=N shows the hover box of symbol N), so a view can be shared and
a headless browser can check one.
"""

from __future__ import annotations

import base64
import html
import json

import numpy as np

from charlstm import validate
from charlstm.errors import CharlstmError
from charlstm.analysis.features import rank_units
from charlstm.analysis.pages import fill, read_page_file

MAX_VALUES = 4_000_000
UNBOUNDED = {"c"}       # quantities not in [-1, 1]: stored scaled by their largest magnitude
QUANTITY_NAMES = {"h": "hidden", "c": "cell", "i": "input gate", "f": "forget gate", "g": "candidate",
                  "o": "output gate", "r": "reset gate", "z": "update gate", "n": "candidate"}


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _choose_series(trace, first: list[tuple[int, int]], max_values: int) -> list[tuple[str, int, int]]:
    """(quantity, layer, unit) of the series the page stores, most wanted first."""
    quantities = trace.quantities
    budget = max(len(quantities), max_values // max(1, len(trace)))
    chosen, seen = [], set()

    def add(q, layer, unit):
        if len(chosen) < budget and (q, layer, unit) not in seen:
            seen.add((q, layer, unit))
            chosen.append((q, layer, unit))

    for layer, unit in first:
        for q in quantities:
            add(q, layer, unit)
    for q in quantities:
        for layer in range(trace.num_layers):
            for unit in range(trace.hidden_size):
                add(q, layer, unit)
    return chosen


def page_data(trace, layer: int = 0, unit: int = 0, quantity: str = "h", ranked=None,
              max_values: int = MAX_VALUES) -> dict:
    """What the page's script reads: values, candidates, losses, and the controls' start."""
    ranked = _ranked_rows(ranked)
    if not 0 <= layer < trace.num_layers:
        raise CharlstmError(f"layer must be between 0 and {trace.num_layers - 1}, got {layer}")
    if not 0 <= unit < trace.hidden_size:
        raise CharlstmError(f"unit must be between 0 and {trace.hidden_size - 1}, got {unit}")
    if quantity not in trace.quantities:
        raise CharlstmError(f"unknown quantity {quantity!r} for the {trace.cell} cell: use one of "
                            f"{', '.join(trace.quantities)}")
    series = _choose_series(trace, [(layer, unit)] + [(r.layer, r.unit) for _, r in ranked], max_values)
    N = len(trace)
    values = np.empty((len(series), N), dtype=np.int8)
    scales = []
    for k, (q, l, u) in enumerate(series):
        v = trace.values(q)[l, :, u].astype(np.float64)
        scale = max(1.0, float(np.abs(v).max())) if q in UNBOUNDED else 1.0
        values[k] = np.clip(np.round(v * (127.0 / scale)), -127, 127)
        scales.append(round(scale, 4))
    surprise = trace.surprise()
    surprise_mn = np.where(np.isnan(surprise), 65535, np.clip(np.round(surprise * 1000), 0, 65534))
    top_ids = trace.top_ids.astype(np.uint16 if len(trace.vocab) > 255 else np.uint8)
    return {
        "n": N, "layers": trace.num_layers, "hidden": trace.hidden_size, "k": int(trace.top_ids.shape[1]),
        "quantities": list(trace.quantities), "names": {q: QUANTITY_NAMES.get(q, "") for q in trace.quantities},
        "vocab": list(trace.vocab), "wide_ids": bool(top_ids.dtype == np.uint16),
        "series": [f"{q}/{l}/{u}" for q, l, u in series], "scales": scales, "values": _b64(values),
        "top_ids": _b64(top_ids), "top_probs": _b64(np.round(trace.top_probs * 255).astype(np.uint8)),
        "surprise": _b64(surprise_mn.astype(np.uint16)),
        "ranked": [{"feature": feature, "layer": r.layer, "unit": r.unit, "quantity": r.quantity,
                    "r": round(r.correlation, 3)} for feature, r in ranked],
        "start": {"layer": layer, "unit": unit, "quantity": quantity},
    }


def _ranked_rows(ranked) -> list:
    """[(feature name, RankedUnit)] from {feature: [RankedUnit]} or a plain list of RankedUnit."""
    if not ranked:
        return []
    groups = ranked.items() if isinstance(ranked, dict) else [("", ranked)]
    return [(feature, r) for feature, units in groups for r in units]


def _spans(symbols: list[str]) -> str:
    """One <span> per symbol; a newline's span shows a faint ↵ (CSS) so its colour is seen."""
    out = []
    for s in symbols:
        if s == "\n" or s == "\r\n":
            out.append(f'<span class="nl">{s}</span>')
        else:
            out.append(f"<span>{html.escape(s, quote=False)}</span>")
    return "".join(out)


def render_page(trace, layer: int = 0, unit: int = 0, quantity: str = "h", ranked=None,
                title: str = "charlstm", max_values: int = MAX_VALUES) -> str:
    """The whole HTML page for a trace, starting on one unit. ranked: units offered in a list,
    {feature name: [features.RankedUnit]} or a plain list of them."""
    data = page_data(trace, layer, unit, quantity, ranked, max_values)
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    subtitle = (f"{len(trace):,} symbols · {trace.num_layers} layer{'s' * (trace.num_layers > 1)} "
                f"× {trace.hidden_size} units · {len(trace.vocab)} symbols in the vocabulary · "
                f"{len(data['series']):,} of {len(trace.quantities) * trace.num_layers * trace.hidden_size:,} "
                "unit series stored · a cell state coloured on its own largest magnitude")
    return fill(read_page_file("viz.html"), STYLE=read_page_file("viz.css"), SCRIPT=read_page_file("viz.js"),
                TITLE=html.escape(title), SUBTITLE=html.escape(subtitle), SPANS=_spans(trace.symbols), DATA=blob)


def render_frame(trace, height: int = 640, **options) -> str:
    """The page inside an <iframe srcdoc=...>, for notebooks: its script and styles stay apart
    from the notebook's own."""
    page = render_page(trace, max_values=options.pop("max_values", 2_000_000), **options)
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;'
            'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')



READABLE_SPREAD = 0.2   # of its colour scale, the middle 90 % of a unit's values must cover


def colour_spread(trace, layer: int, unit: int, quantity: str) -> float:
    """How much of its colour scale a unit's values cover: the spread of their middle 90 % over
    the scale the page colours them on (1 for h and the gates, the largest |c| for a cell state)."""
    v = trace.values(quantity)[layer, :, unit].astype(np.float64)
    scale = max(1.0, float(np.abs(v).max())) if quantity in UNBOUNDED else 1.0
    low, high = np.percentile(v, [5, 95])
    return float(high - low) / scale


def start_unit(trace, candidates):
    """The unit a page opens on: the best ranked whose colours a person can read. A cell state
    that sits near its largest value all along (a counter grown to 500) is one colour from end
    to end on its own scale, however well it correlates; the first candidate covering
    READABLE_SPREAD of its scale is chosen, else the first candidate (None when there is none)."""
    for r in candidates:
        if colour_spread(trace, r.layer, r.unit, r.quantity) >= READABLE_SPREAD:
            return r
    return candidates[0] if candidates else None


def feature_page(trace, feature_names=(), top: int = 10, layer: int | None = None, unit: int | None = None,
                 quantity: str | None = None, title: str = "charlstm", max_values: int = MAX_VALUES) -> str:
    """render_page with the units ranked by each feature offered in a list (features.rank_units),
    starting on the best ranked unit unless a layer, unit or quantity is given (then on that
    one: layer 0, unit 0, h where one of them is not given)."""
    validate.whole(max_values, "--max-values", lo=1)
    ranked = {name: rank_units(trace, name, top=top) for name in feature_names}
    first = start_unit(trace, [r for units in ranked.values() for r in units])
    if first is not None and layer is None and unit is None and quantity is None:
        layer, unit, quantity = first.layer, first.unit, first.quantity
    return render_page(trace, layer=layer or 0, unit=unit or 0, quantity=quantity or "h", ranked=ranked,
                       title=title, max_values=max_values)


__all__ = ["render_page", "render_frame", "feature_page", "start_unit", "colour_spread", "page_data", "MAX_VALUES"]
