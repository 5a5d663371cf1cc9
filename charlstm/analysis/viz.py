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

from charlstm.errors import CharlstmError
from charlstm.analysis.trace import QUANTITIES, Trace

MAX_VALUES = 4_000_000


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _choose_series(trace: Trace, first: list[tuple[int, int]], max_values: int) -> list[tuple[str, int, int]]:
    """(quantity, layer, unit) of the series the page stores, most wanted first."""
    budget = max(len(QUANTITIES), max_values // max(1, len(trace)))
    chosen, seen = [], set()

    def add(q, layer, unit):
        if len(chosen) < budget and (q, layer, unit) not in seen:
            seen.add((q, layer, unit))
            chosen.append((q, layer, unit))

    for layer, unit in first:
        for q in QUANTITIES:
            add(q, layer, unit)
    for q in QUANTITIES:
        for layer in range(trace.num_layers):
            for unit in range(trace.hidden_size):
                add(q, layer, unit)
    return chosen


def page_data(trace: Trace, layer: int = 0, unit: int = 0, quantity: str = "h", ranked=None,
              max_values: int = MAX_VALUES) -> dict:
    """What the page's script reads: values, candidates, losses, and the controls' start."""
    ranked = _ranked_rows(ranked)
    if not 0 <= layer < trace.num_layers:
        raise CharlstmError(f"layer must be between 0 and {trace.num_layers - 1}, got {layer}")
    if not 0 <= unit < trace.hidden_size:
        raise CharlstmError(f"unit must be between 0 and {trace.hidden_size - 1}, got {unit}")
    if quantity not in QUANTITIES:
        raise CharlstmError(f"unknown quantity {quantity!r}: use one of {', '.join(QUANTITIES)}")
    series = _choose_series(trace, [(layer, unit)] + [(r.layer, r.unit) for _, r in ranked], max_values)
    N = len(trace)
    values = np.empty((len(series), N), dtype=np.int8)
    scales = []
    for k, (q, l, u) in enumerate(series):
        v = trace.values(q)[l, :, u].astype(np.float64)
        scale = max(1.0, float(np.abs(v).max())) if q == "c" else 1.0
        values[k] = np.clip(np.round(v * (127.0 / scale)), -127, 127)
        scales.append(round(scale, 4))
    surprise = trace.surprise()
    surprise_mn = np.where(np.isnan(surprise), 65535, np.clip(np.round(surprise * 1000), 0, 65534))
    top_ids = trace.top_ids.astype(np.uint16 if len(trace.vocab) > 255 else np.uint8)
    return {
        "n": N, "layers": trace.num_layers, "hidden": trace.hidden_size, "k": int(trace.top_ids.shape[1]),
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


def render_page(trace: Trace, layer: int = 0, unit: int = 0, quantity: str = "h", ranked=None,
                title: str = "charlstm", max_values: int = MAX_VALUES) -> str:
    """The whole HTML page for a trace, starting on one unit. ranked: units offered in a list,
    {feature name: [features.RankedUnit]} or a plain list of them."""
    data = page_data(trace, layer, unit, quantity, ranked, max_values)
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    subtitle = (f"{len(trace):,} symbols · {trace.num_layers} layer{'s' * (trace.num_layers > 1)} "
                f"× {trace.hidden_size} units · {len(trace.vocab)} symbols in the vocabulary · "
                f"{len(data['series']):,} of {len(QUANTITIES) * trace.num_layers * trace.hidden_size:,} "
                "unit series stored")
    return (_PAGE.replace("%TITLE%", html.escape(title))
            .replace("%SUBTITLE%", html.escape(subtitle))
            .replace("%SPANS%", _spans(trace.symbols))
            .replace("%DATA%", blob))


def render_frame(trace: Trace, height: int = 640, **options) -> str:
    """The page inside an <iframe srcdoc=...>, for notebooks: its script and styles stay apart
    from the notebook's own."""
    page = render_page(trace, max_values=options.pop("max_values", 2_000_000), **options)
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;'
            'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>%TITLE%</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 16px;z-index:2}
h1{font-size:17px;margin:0 0 2px}
.sub{color:#666;font-size:12px;margin-bottom:6px}
.controls{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center}
.controls label{font-size:13px;color:#444}
select,input{font:inherit;font-size:13px}
#unit{width:5em}
#status{font-size:12px;color:#555}
.legend{display:inline-flex;align-items:center;gap:4px;font-size:12px;color:#555}
.bar{width:120px;height:10px;border:1px solid #ccc;background:linear-gradient(90deg,#e85448,#fff,#548ce8)}
.bar.loss{background:linear-gradient(90deg,#fff,#f0a830,#d23c32)}
#text{font:13px/1.5 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;white-space:pre-wrap;
 word-wrap:break-word;margin:12px 16px;padding:12px;background:#fff;border:1px solid #e3e3e3}
#text span{cursor:default}
#text span.nl::before{content:"\21B5";color:#bbb}
#text span.hl{outline:1px solid #000}
#hover{position:fixed;display:none;background:#fff;border:1px solid #999;box-shadow:0 2px 8px rgba(0,0,0,.2);
 padding:6px 8px;font-size:12px;z-index:3;pointer-events:none;max-width:360px}
#hover table{border-collapse:collapse;margin-top:4px}
#hover td{padding:0 6px 0 0;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
#hover .p{display:inline-block;height:8px;background:#2662c8;vertical-align:middle}
</style></head>
<body>
<header>
<h1>%TITLE%</h1>
<div class="sub">%SUBTITLE%</div>
<div class="controls">
<label>colour by <select id="mode"><option value="value">a unit's value</option>
<option value="loss">loss of predicting each symbol</option></select></label>
<label>layer <select id="layer"></select></label>
<label>unit <input id="unit" type="number" min="0" step="1"></label>
<label>quantity <select id="quantity"><option value="h">h (hidden)</option><option value="c">c (cell)</option>
<option value="i">i (input gate)</option><option value="f">f (forget gate)</option>
<option value="g">g (candidate)</option><option value="o">o (output gate)</option></select></label>
<label id="rankedlabel">ranked units <select id="ranked"></select></label>
<span class="legend" id="legend"><span id="legendlo">-1</span><span class="bar" id="bar"></span><span id="legendhi">+1</span></span>
<span id="status"></span>
</div>
</header>
<pre id="text">%SPANS%</pre>
<div id="hover"></div>
<script type="application/json" id="charlstm-data">%DATA%</script>
<script>
(function () {
"use strict";
var D = JSON.parse(document.getElementById("charlstm-data").textContent);
function bytes(b64) { var s = atob(b64), a = new Uint8Array(s.length);
  for (var k = 0; k < s.length; k++) a[k] = s.charCodeAt(k); return a; }
var values = new Int8Array(bytes(D.values).buffer);
var topIds = D.wide_ids ? new Uint16Array(bytes(D.top_ids).buffer) : bytes(D.top_ids);
var topProbs = bytes(D.top_probs);
var surprise = new Uint16Array(bytes(D.surprise).buffer);
var index = {}; D.series.forEach(function (key, k) { index[key] = k; });
var text = document.getElementById("text");
var spans = text.children;
for (var k = 0; k < spans.length; k++) spans[k]._i = k;
var $ = function (id) { return document.getElementById(id); };
var mode = $("mode"), layer = $("layer"), unit = $("unit"), quantity = $("quantity"), ranked = $("ranked");
var status = $("status"), hover = $("hover");

// Colours, computed once: 255 values from -1 (red) through 0 (white) to +1 (blue), 256 losses.
function mix(a, b, t) { return "rgb(" + [0, 1, 2].map(function (j) {
  return Math.round(a[j] + (b[j] - a[j]) * t); }).join(",") + ")"; }
var WHITE = [255, 255, 255], RED = [232, 84, 72], BLUE = [84, 140, 232];   // light enough to read black on
var valueColour = [];
for (var q = -127; q <= 127; q++) valueColour.push(q < 0 ? mix(WHITE, RED, -q / 127) : mix(WHITE, BLUE, q / 127));
var MAX_LOSS = 6;  // nats; anything above is the darkest colour
var lossColour = [];
for (var q = 0; q <= 255; q++) { var t = q / 255;
  lossColour.push(t < 0.5 ? mix(WHITE, [240, 168, 48], t * 2) : mix([240, 168, 48], [210, 60, 50], t * 2 - 1)); }

for (var l = 0; l < D.layers; l++) { var o = document.createElement("option"); o.value = l; o.textContent = l; layer.appendChild(o); }
unit.max = D.hidden - 1;
if (D.ranked.length) {
  var o = document.createElement("option"); o.value = ""; o.textContent = "(choose)"; ranked.appendChild(o);
  D.ranked.forEach(function (r, k) { var o = document.createElement("option"); o.value = k;
    o.textContent = (r.feature ? r.feature + ": " : "") + "layer " + r.layer + " unit " + r.unit + " " +
      r.quantity + "  r=" + (r.r >= 0 ? "+" : "") + r.r.toFixed(2); ranked.appendChild(o); });
} else { $("rankedlabel").style.display = "none"; }

function current() { return quantity.value + "/" + layer.value + "/" + unit.value; }
function valueAt(k, i) { return values[k * D.n + i] * D.scales[k] / 127; }

function recolour() {
  var t0 = performance.now(), n = D.n;
  if (mode.value === "loss") {
    for (var i = 0; i < n; i++) { var s = surprise[i];
      spans[i].style.backgroundColor = s === 65535 ? "" : lossColour[Math.min(255, Math.round(s / 1000 / MAX_LOSS * 255))]; }
    status.textContent = "loss of predicting each symbol (0 to " + MAX_LOSS + "+ nats)";
    $("legendlo").textContent = "0"; $("legendhi").textContent = MAX_LOSS + "+ nats"; $("bar").className = "bar loss";
  } else {
    var k = index[current()];
    $("legendlo").textContent = "-1"; $("legendhi").textContent = "+1"; $("bar").className = "bar";
    if (k === undefined) {
      for (var i = 0; i < n; i++) spans[i].style.backgroundColor = "";
      status.textContent = current() + " is not stored in this page (pass --unit to charlstm viz)";
    } else {
      var base = k * n, scale = D.scales[k];
      for (var i = 0; i < n; i++) { var q = values[base + i];
        if (scale !== 1) q = Math.max(-127, Math.min(127, Math.round(q * scale)));
        spans[i].style.backgroundColor = valueColour[q + 127]; }
      status.textContent = quantity.value + " of layer " + layer.value + " unit " + unit.value +
        (scale !== 1 ? " (|c| up to " + scale + "; colours saturate at 1)" : "");
    }
  }
  var match = "";                 // the list names the shown unit when it is a ranked one
  D.ranked.forEach(function (r, k) { if (match === "" && r.layer == layer.value && r.unit == unit.value &&
    r.quantity === quantity.value) match = String(k); });
  if (D.ranked.length) ranked.value = match;
  document.body.setAttribute("data-recolour-ms", (performance.now() - t0).toFixed(1));
  document.body.setAttribute("data-series", mode.value === "loss" ? "loss" : current());
  try { history.replaceState(null, "", "#layer=" + layer.value + "&unit=" + unit.value +
    "&quantity=" + quantity.value + "&mode=" + mode.value); } catch (e) { }
}

function show(s) { return s === "\n" ? "\u21B5" : s === "\t" ? "\u2192" : s === " " ? "\u2423" : s; }
function esc(s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
var lit = null;
function showHover(i) {
  if (lit) lit.classList.remove("hl");
  lit = spans[i]; lit.classList.add("hl");
  var rows = "", s = surprise[i];
  for (var j = 0; j < D.k; j++) { var p = topProbs[i * D.k + j] / 255;
    rows += "<tr><td>" + esc(show(D.vocab[topIds[i * D.k + j]])) + "</td><td>" + (100 * p).toFixed(1) +
      "%</td><td><span class=\"p\" style=\"width:" + Math.round(80 * p) + "px\"></span></td></tr>"; }
  var k = index[current()];
  var v = k === undefined ? "not stored" : valueAt(k, i).toFixed(3);
  hover.innerHTML = "<b>" + esc(show(spans[i].textContent)) + "</b> symbol " + i + " &middot; " +
    quantity.value + "[" + layer.value + "][" + unit.value + "] = <span id=\"hv\">" + v + "</span><br>" +
    (s === 65535 ? "first symbol: nothing predicted it" :
      "loss of predicting it: " + (s / 1000).toFixed(3) + " nats (p = " + Math.exp(-s / 1000).toFixed(3) + ")") +
    "<br>next symbol, as the model sees it:<table>" + rows + "</table>";
  var r = lit.getBoundingClientRect();
  hover.style.display = "block";
  var x = Math.min(r.left, window.innerWidth - hover.offsetWidth - 8), y = r.bottom + 6;
  if (y + hover.offsetHeight > window.innerHeight) y = Math.max(0, r.top - hover.offsetHeight - 6);
  hover.style.left = Math.max(0, x) + "px"; hover.style.top = y + "px";
  document.body.setAttribute("data-hover", i);
}
text.addEventListener("mouseover", function (e) { if (e.target._i !== undefined) showHover(e.target._i); });
text.addEventListener("mouseleave", function () { hover.style.display = "none"; if (lit) lit.classList.remove("hl"); });

[mode, layer, quantity].forEach(function (el) { el.addEventListener("change", recolour); });
unit.addEventListener("input", function () { var u = parseInt(unit.value, 10);
  if (u >= 0 && u < D.hidden) recolour(); });
ranked.addEventListener("change", function () { var r = D.ranked[ranked.value]; if (!r) return;
  layer.value = r.layer; unit.value = r.unit; quantity.value = r.quantity; mode.value = "value"; recolour(); });

var start = D.start, hash = {};
location.hash.replace(/^#/, "").split("&").forEach(function (kv) { var p = kv.split("=");
  if (p[0]) hash[decodeURIComponent(p[0])] = decodeURIComponent(p[1] || ""); });
layer.value = hash.layer !== undefined ? hash.layer : start.layer;
unit.value = hash.unit !== undefined ? hash.unit : start.unit;
quantity.value = hash.quantity || start.quantity;
mode.value = hash.mode === "loss" ? "loss" : "value";
recolour();
if (hash.hover !== undefined && spans[+hash.hover]) showHover(+hash.hover);
document.body.setAttribute("data-ready", "1");
})();
</script>
</body></html>
"""

__all__ = ["render_page", "render_frame", "page_data", "MAX_VALUES"]
