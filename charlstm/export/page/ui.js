/* The page around generator.js: the controls, the streaming text, the candidates panel, and a
 * self-test that a headless browser runs through the URL's hash (tests/test_page.py):
 *
 *   #test=probs&text=T          the next-symbol probabilities after each symbol of T, from a zero state
 *   #test=generate&prime=..&length=..&temperature=..&topK=..&topP=..&seed=..&stop=..
 *                               charlstm.generate's text
 *   #test=ui&prime=..&length=.. fills the controls, presses Generate (and Stop after stopAfter ms),
 *                               and reports what the page shows
 *   #test=filter&logits=[..]&temperature=..&topK=..&topP=..    charlstm.filter's probabilities
 *   #test=bench&length=N        seconds to generate N symbols at temperature 1 (generateSync: open
 *                               it without --virtual-time-budget, under which the clock stands still)
 *   &kernel=js|wasm             runs any of them with that kernel
 *
 * The result is JSON in <pre id="test-result">, and <body data-test="done">. Without test=, the
 * hash sets the controls (prime, temperature, topK, topP, length, stop, seed) and `generate`
 * presses Generate at load.
 */
"use strict";

(function () {
var $ = function (id) { return document.getElementById(id); };
var hash = {};
location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
  var k = kv.indexOf("=");
  if (kv) hash[decodeURIComponent(k < 0 ? kv : kv.slice(0, k))] = k < 0 ? "" : decodeURIComponent(kv.slice(k + 1));
});

var api;
try {
  var data = JSON.parse($("charlstm-model").textContent);
  if (hash.test) $("charlstm-model").remove();      // keeps the test's DOM dump small
  api = createCharlstm(data, {kernel: hash.kernel || "auto"});
} catch (e) {
  showMessage("This page cannot run its model: " + e.message);
  document.body.setAttribute("data-state", "error");
  return;
}
window.charlstm = api;

var controls = {prime: $("prime"), temperature: $("temperature"), topK: $("top-k"), topP: $("top-p"),
                length: $("length"), stop: $("stop"), seed: $("seed")};
var output = $("output"), primeText = $("prime-text"), generated = $("generated"), status = $("status");
var goButton = $("generate"), stopButton = $("stop-button");
var current = null;            // the running generation's token; a stale one's callbacks are ignored

function showMessage(text) {
  var m = $("message");
  m.textContent = text;
  m.hidden = !text;
}

// What a symbol looks like in the panel: white space made visible.
function visible(s) {
  return s === "\n" ? "\u21b5" : s === "\r\n" ? "\u21b5" : s === "\t" ? "\u2192" : s === " " ? "\u2423" : s;
}

function showCandidates(context, chosen) {
  var table = $("candidates"), list = api.candidates(10);
  table.textContent = "";
  list.forEach(function (c) {
    var row = table.insertRow(), s = row.insertCell(), p = row.insertCell(), bar = row.insertCell();
    s.className = "s"; s.textContent = visible(c.symbol);
    p.className = "p"; p.textContent = (100 * c.p).toFixed(1) + "%";
    var b = document.createElement("span");
    b.className = "bar"; b.style.width = Math.round(80 * c.p) + "px";
    bar.appendChild(b);
    row.setAttribute("data-symbol", c.symbol);
    row.setAttribute("data-p", String(c.p));
    if (c.id === chosen) row.className = "chosen";
  });
  $("candidates-context").textContent = context;
}

function tail(text) {
  var t = text.length > 24 ? "\u2026" + text.slice(-24) : text;
  return t.replace(/\n/g, "\u21b5");
}

// The controls as generate's settings; an unreadable one is reported and null returned.
function settings() {
  function number(el, name, integer, blank) {
    var v = el.value.trim();
    if (v === "") return blank;
    var n = Number(v);
    if (!isFinite(n) || (integer && !Number.isInteger(n))) throw new Error(name + " must be " + (integer ? "a whole number" : "a number") + ", got " + v);
    return n;
  }
  try {
    return {
      prime: controls.prime.value,
      temperature: number(controls.temperature, "temperature", false, 1),
      topK: number(controls.topK, "top-k", true, null),
      topP: number(controls.topP, "top-p", false, null),
      length: number(controls.length, "the length", true, 500),
      seed: number(controls.seed, "the seed", true, null),
      // \n, \t and \\ as in `charlstm sample --stop`: an input field cannot hold a line break
      stop: controls.stop.value.replace(/\\(n|t|\\)/g, function (_, c) { return c === "n" ? "\n" : c === "t" ? "\t" : "\\"; }) || null
    };
  } catch (e) {
    showMessage(e.message);
    return null;
  }
}

function busy(on) {
  goButton.disabled = on;
  stopButton.disabled = !on;
  document.body.setAttribute("data-state", on ? "generating" : "done");
}

function generate() {
  var s = settings();
  if (!s) { document.body.setAttribute("data-state", "error"); return; }
  if (s.seed === null) s.seed = Math.floor(Math.random() * 4294967296);
  clearTimeout(typing);                   // the panel follows the generation now, not the prime
  showMessage("");
  var token = {}, text = "", started = performance.now(), last = null;
  current = token;
  primeText.textContent = "";
  generated.textContent = "";
  var sink = document.createTextNode("");
  generated.appendChild(sink);
  busy(true);
  s.onText = function (piece, info) {
    if (current !== token) return;
    if (info.symbols === 0 && !info.done) { primeText.textContent = piece; text = piece; return; }
    sink.appendData(piece);               // one text node grows: no re-layout of what is there
    text += piece;
    last = info.symbols;
    if (!info.done) {
      showCandidates("as the last symbol was drawn, after \u201c" + tail(text.slice(0, -1)) + "\u201d", null);
      status.textContent = info.symbols + " symbols";
    }
  };
  api.generate(s).then(function (all) {
    if (current !== token) return;
    current = null;
    var seconds = (performance.now() - started) / 1000;
    showCandidates("after \u201c" + tail(all) + "\u201d", null);
    status.textContent = (last || 0) + " symbols in " + seconds.toFixed(2) + " s \u00b7 seed " + s.seed +
      " \u00b7 " + api.model.kernel + " kernel";
    busy(false);
  }, function (e) {
    if (current !== token) return;
    current = null;
    showMessage(e.message);
    busy(false);
    document.body.setAttribute("data-state", "error");
  });
}

// While nothing runs, the panel follows the prime as it is typed: what the model expects next.
var typing = null;
function followPrime() {
  clearTimeout(typing);
  typing = setTimeout(function () {
    if (current) return;
    var prime = controls.prime.value;
    try {
      var ids = prime ? api.encode(prime) : null;
      if (ids && ids.length > 5000) return;         // reading a long prime on every key press is not worth it
      showMessage("");
      api.reset();
      if (!ids) api.step(api.model.symbols.indexOf("\n") >= 0 ? "\n" : 0);
      else for (var k = 0; k < ids.length; k++) api.step(ids[k]);
      showCandidates(prime ? "after \u201c" + tail(prime) + "\u201d" : "at the start", null);
    } catch (e) {
      showMessage("The prime cannot be read: " + e.message + ".");
    }
  }, 150);
}

$("controls").addEventListener("submit", function (e) { e.preventDefault(); generate(); });
stopButton.addEventListener("click", function () { api.stop(); });
controls.prime.addEventListener("input", followPrime);

var m = api.model;
$("model").setAttribute("title", "cell " + m.cell + ", " + m.layers + " layers of " + m.hidden + " units, " +
  m.vocabSize + " symbols, " + m.precision + " weights, " + m.kernel + " kernel");
document.body.setAttribute("data-kernel", m.kernel);
document.body.setAttribute("data-state", "ready");
// The URL's hash can set the controls (#prime=def%20&temperature=0.5&length=200) and press
// Generate (&generate), so that a view can be shared.
function controlsFromHash() {
  Object.keys(controls).forEach(function (name) {
    if (hash[name] !== undefined) {
      controls[name].value = hash[name];
      controls[name].dispatchEvent(new Event("input", {bubbles: true}));   // as typing would
    }
  });
}
if (!hash.test) {
  controlsFromHash();
  followPrime();
  if (hash.generate !== undefined) generate();
}

// --- the self-test ---------------------------------------------------------------------------------

function report(result) {
  var out = $("test-result");
  out.textContent = JSON.stringify(result);
  document.body.setAttribute("data-test", "done");
}

function option(name, integer) {
  if (hash[name] === undefined || hash[name] === "") return undefined;
  return integer ? parseInt(hash[name], 10) : Number(hash[name]);
}

function shownState() {
  return {
    state: document.body.getAttribute("data-state"), output: output.textContent, prime: primeText.textContent,
    generated: generated.textContent, message: $("message").hidden ? "" : $("message").textContent,
    status: status.textContent, context: $("candidates-context").textContent,
    candidates: Array.from($("candidates").rows).map(function (r) {
      return {symbol: r.getAttribute("data-symbol"), p: Number(r.getAttribute("data-p")),
              shown: r.cells[0].textContent, percent: r.cells[1].textContent};
    })
  };
}

function selfTest() {
  var t = hash.test;
  if (t === "probs") {
    var ids = api.encode(hash.text), rows = [];
    api.reset();
    for (var k = 0; k < ids.length; k++) rows.push(Array.from(api.step(ids[k])));
    return {probs: rows, kernel: m.kernel};
  }
  if (t === "generate") {
    return api.generate({prime: hash.prime, length: option("length", true), temperature: option("temperature"),
                         topK: option("topK", true), topP: option("topP"), seed: option("seed", true),
                         stop: hash.stop}).then(function (text) { return {text: text, kernel: m.kernel}; });
  }
  if (t === "filter") {
    return {probs: api.filter(JSON.parse(hash.logits), {temperature: option("temperature"),
      topK: option("topK", true) === undefined ? null : option("topK", true),
      topP: option("topP") === undefined ? null : option("topP")})};
  }
  if (t === "ui") {
    // as a person would: type into the controls, press Generate, wait for the page to settle
    controlsFromHash();
    goButton.click();
    if (hash.stopAfter) setTimeout(function () { stopButton.click(); }, Number(hash.stopAfter));
    return new Promise(function (resolve) {
      (function wait() {
        if (document.body.getAttribute("data-state") === "generating") return setTimeout(wait, 10);
        setTimeout(function () { resolve(shownState()); }, 300);   // and for what a timer might still do
      })();
    });
  }
  if (t === "bench") {
    // synchronous, so that it ends before the load event: the browser then runs without virtual
    // time (under which the clock stands still while a script computes)
    var n = option("length", true) || 2000, started = performance.now();
    var text = api.generateSync({length: n, temperature: 1, seed: 1});
    return {symbols: n, seconds: (performance.now() - started) / 1000, kernel: m.kernel, text: text.slice(0, 80)};
  }
  throw new Error("unknown test " + t);
}

if (hash.test) {
  try {
    var result = selfTest();
    if (result && typeof result.then === "function") result.then(report, function (e) { report({error: e.message}); });
    else report(result);
  } catch (e) {
    report({error: e.message});
  }
}
})();
