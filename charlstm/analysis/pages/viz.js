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

D.quantities.forEach(function (q) { var o = document.createElement("option"); o.value = q;
  o.textContent = q + (D.names[q] ? " (" + D.names[q] + ")" : ""); quantity.appendChild(o); });
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
        (scale !== 1 ? " (|" + quantity.value + "| up to " + scale + "; colours saturate at 1)" : "");
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
