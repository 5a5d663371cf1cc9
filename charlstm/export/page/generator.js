/* charlstm in the browser: a trained model that writes text, with the numbers of the Python one.
 *
 * createCharlstm(data, options) -> api. `data` is what charlstm/export/page.py embeds (weights in
 * the checkpoint's layout, base64, at float32, float16 or int8 with a float32 scale per row;
 * vectors always float32), `options.kernel` "auto" (WebAssembly SIMD where the browser has it),
 * "wasm" or "js". This file touches no DOM: ui.js builds the page on top of it.
 *
 * The API (window.charlstm on the page):
 *   charlstm.model              what the page holds: {cell, layers, hidden, vocabSize, unit, symbols,
 *                               unk, precision, parameters, bitsPerChar, kernel}
 *   charlstm.reset()            back to the zero state
 *   charlstm.step(symbol)       feeds one symbol (a string of the vocabulary, or its id) and returns
 *                               the probabilities of the next one: a Float64Array(vocabSize) that
 *                               the next step overwrites (copy it to keep it)
 *   charlstm.candidates(k)      the k most likely next symbols of the last step, [{symbol, id, p}]
 *   charlstm.encode(text)       -> Int32Array of ids; throws an Error naming the first symbol that
 *                               is not in the vocabulary
 *   charlstm.generate({prime, length, temperature, topK, topP, seed, stop, onText})
 *                               -> Promise of the whole text (prime included), as model.sample
 *                               returns it. From a zero state: the prime is read first (or, with no
 *                               prime, a line break, unprinted); then `length` symbols, each drawn
 *                               after temperature (0: the most likely), top-k and top-p, the
 *                               unknown symbol never; `stop` ends the text there (not included).
 *                               onText(text, info) receives the prime, then the new text a few
 *                               symbols at a time; info = {symbols, done}. `seed` (an integer)
 *                               makes the draw reproducible (by this page's generator, sfc32, not
 *                               NumPy's: the same seed gives other text than `charlstm sample`).
 *   charlstm.generateSync(o)    the same at once, returning the text (blocks the page meanwhile;
 *                               for scripts and workers)
 *   charlstm.stop()             ends a running generate; its promise resolves with the text so far
 *   charlstm.random(seed)       the page's seeded uniform generator, () -> [0, 1)
 *   charlstm.filter(logits, o)  the probabilities a symbol is drawn from (as decoding/sampling.py's
 *                               filter_probs), for tests
 *
 * The cells (equations as in charlstm/nn/cells; z = x Wx + h Wh + b, blocks in this order):
 *   lstm      i, f, g, o:  c = f c + i g,  h = o tanh(c)
 *   peephole  the lstm with i = s(z_i + p_i c_prev), f = s(z_f + p_f c_prev), o = s(z_o + p_o c)
 *   gru       r, z, n:  r, z = s(x Wx + bx + h Wh + bh),  n = tanh(x Wx_n + bx_n + r (h Wh_n + bh_n)),
 *             h = (1 - z) n + z h
 *   rnn       h = tanh(x Wx + h Wh + b)
 *
 * Numbers: weights, states and scores live in Float32Arrays, as in the float32 Python model; the
 * gate arithmetic runs in doubles between float32 loads and stores. The products run in float32
 * (WebAssembly) or double (JS) with another summation order than NumPy's BLAS, so scores agree
 * to about 1e-6 relative, not bit for bit.
 */
"use strict";

var createCharlstm = (function () {

// --- weights: base64 -> Float32Array, in the checkpoint's layout ---------------------------------

function bytesOf(b64) {
  var s = atob(b64), a = new Uint8Array(s.length);
  for (var k = 0; k < s.length; k++) a[k] = s.charCodeAt(k);
  return a;
}

var HALF = null;   // all 65,536 float16 values as float32, built on first use

function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (var u = 0; u < 65536; u++) {
    var sign = u & 0x8000 ? -1 : 1, e = (u >> 10) & 0x1f, m = u & 0x3ff;
    HALF[u] = sign * (e === 0 ? m * Math.pow(2, -24) : e === 31 ? (m ? NaN : Infinity) :
      (1 + m / 1024) * Math.pow(2, e - 15));
  }
  return HALF;
}

function decodeParam(p) {
  var n = p.shape.reduce(function (a, b) { return a * b; }, 1), raw = bytesOf(p.data), out;
  if (p.dtype === "float32") {
    out = new Float32Array(raw.buffer, 0, n);
  } else if (p.dtype === "float16") {
    var half = new Uint16Array(raw.buffer, 0, n), table = halfTable();
    out = new Float32Array(n);
    for (var k = 0; k < n; k++) out[k] = table[half[k]];
  } else if (p.dtype === "int8") {
    // w = q * scale[row]: an int8 times a float32 is exact in a double, so rounding it once to
    // float32 gives the very number NumPy's float32 product gives (quantize.py's dequantized)
    var q = new Int8Array(raw.buffer, 0, n), scale = new Float32Array(bytesOf(p.scale).buffer);
    var cols = p.shape.length > 1 ? p.shape[1] : n;
    out = new Float32Array(n);
    for (var k = 0; k < n; k++) out[k] = q[k] * scale[(k / cols) | 0];
  } else {
    throw new Error("unknown weight type " + p.dtype);
  }
  if (out.length !== n) throw new Error("damaged weights: " + p.key);
  return out;
}

// --- the matrix-vector product: y[j] = sum_k W[j, k] x[k] over rows of K floats -------------------
// Every matrix is stored transposed (one row per output) with K padded to a multiple of 16, in one
// WebAssembly memory, so one kernel serves every layer and the head. The WebAssembly kernel
// (4 x f32x4 accumulators) runs about 12 times faster than the JS loop below, measured in V8.

var PAD = 16;

function padded(n) { return Math.ceil(n / PAD) * PAD; }

function wasmKernel() {
  // (func (export "matvec") (param $W i32) (param $x i32) (param $K i32) (param $N i32) (param $y i32))
  // byte addresses; K floats per row (a multiple of 16), N rows (at least 1)
  function leb(n) { var out = []; do { var b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; }
  function section(id, bytes) { return [id].concat(leb(bytes.length), bytes); }
  function name(s) { return leb(s.length).concat(Array.from(s, function (c) { return c.charCodeAt(0); })); }
  var GET = 0x20, SET = 0x21, TEE = 0x22, CONST = 0x41, ADD = 0x6a, SUB = 0x6b, SHL = 0x74, LT_U = 0x49;
  var LOOP = 0x03, VOID = 0x40, BR_IF = 0x0d, END = 0x0b, F32_ADD = 0x92, F32_STORE = 0x38;
  var ZERO = [0xfd, 0x0c].concat(new Array(16).fill(0)), F4_ADD = [0xfd, 0xe4, 0x01], F4_MUL = [0xfd, 0xe6, 0x01];
  function load(offset) { return [0xfd, 0x00, 4].concat(leb(offset)); }          // v128.load align=16
  function lane(k) { return [0xfd, 0x1f, k]; }                                    // f32x4.extract_lane
  var W = 0, X = 1, K = 2, N = 3, Y = 4, XP = 5, XEND = 6, A = [7, 8, 9, 10];
  var body = [GET, X, GET, K, CONST, 2, SHL, ADD, SET, XEND, LOOP, VOID];           // xend = x + 4K; rows:
  A.forEach(function (a) { body = body.concat(ZERO, [SET, a]); });
  body = body.concat([GET, X, SET, XP, LOOP, VOID]);                                // columns, 16 at a time:
  A.forEach(function (a, k) {                                                      //   a_k += W[16] * x[16]
    body = body.concat([GET, a, GET, W], load(16 * k), [GET, XP], load(16 * k), F4_MUL, F4_ADD, [SET, a]);
  });
  body = body.concat([GET, W, CONST, 0xc0, 0x00, ADD, SET, W, GET, XP, CONST, 0xc0, 0x00, ADD, TEE, XP,
    GET, XEND, LT_U, BR_IF, 0, END]);
  body = body.concat([GET, A[0], GET, A[1]], F4_ADD, [GET, A[2], GET, A[3]], F4_ADD, F4_ADD, [SET, A[0]],
    [GET, Y, GET, A[0]], lane(0), [GET, A[0]], lane(1), [F32_ADD, GET, A[0]], lane(2), [GET, A[0]], lane(3),
    [F32_ADD, F32_ADD, F32_STORE, 2, 0],                                           // *y = sum of the lanes
    [GET, Y, CONST, 4, ADD, SET, Y, GET, N, CONST, 1, SUB, TEE, N, BR_IF, 0, END, END]);
  var code = [2, 2, 0x7f, 4, 0x7b].concat(body);                                    // locals: 2 i32, 4 v128
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0].concat(
    section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    section(2, [1].concat(name("env"), name("mem"), [2, 0, 1])),
    section(3, [1, 0]),
    section(7, [1].concat(name("matvec"), [0, 0])),
    section(10, [1].concat(leb(code.length), code))));
}

function jsKernel(M) {
  return function matvec(Wb, xb, K, N, yb) {
    var W = Wb >> 2, x = xb >> 2, y = yb >> 2;
    for (var j = 0; j < N; j++, W += K) {
      var a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (var k = 0; k < K; k += 4) {
        a0 += M[W + k] * M[x + k]; a1 += M[W + k + 1] * M[x + k + 1];
        a2 += M[W + k + 2] * M[x + k + 2]; a3 += M[W + k + 3] * M[x + k + 3];
      }
      M[y + j] = (a0 + a1) + (a2 + a3);
    }
  };
}

// --- the cells: one step's elementwise part, after the products ----------------------------------
// L.zh = h_prev Wh (G*H), xs[xo..] = x Wx (G*H: a row of Wx for the one-hot first layer), L.h and
// L.c the state, updated in place; L.p holds the layer's vectors by key.

function sigmoid(z) { return 1 / (1 + Math.exp(-z)); }

var CELLS = {
  lstm: {
    gates: 4, keys: ["Wx", "Wh", "b"], memory: true,
    update: function (L, xs, xo) {
      var H = L.H, zh = L.zh, b = L.p.b, c = L.c, h = L.h;
      for (var j = 0; j < H; j++) {
        var i = sigmoid(xs[xo + j] + zh[j] + b[j]);
        var f = sigmoid(xs[xo + H + j] + zh[H + j] + b[H + j]);
        var g = Math.tanh(xs[xo + 2 * H + j] + zh[2 * H + j] + b[2 * H + j]);
        var o = sigmoid(xs[xo + 3 * H + j] + zh[3 * H + j] + b[3 * H + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * Math.tanh(c[j]);        // tanh of the float32 c, as the Python model takes it
      }
    }
  },
  peephole: {
    gates: 4, keys: ["Wx", "Wh", "b", "p_i", "p_f", "p_o"], memory: true,
    update: function (L, xs, xo) {
      var H = L.H, zh = L.zh, b = L.p.b, pi = L.p.p_i, pf = L.p.p_f, po = L.p.p_o, c = L.c, h = L.h;
      for (var j = 0; j < H; j++) {
        var cPrev = c[j];
        var i = sigmoid(xs[xo + j] + zh[j] + b[j] + pi[j] * cPrev);
        var f = sigmoid(xs[xo + H + j] + zh[H + j] + b[H + j] + pf[j] * cPrev);
        var g = Math.tanh(xs[xo + 2 * H + j] + zh[2 * H + j] + b[2 * H + j]);
        c[j] = f * cPrev + i * g;
        var o = sigmoid(xs[xo + 3 * H + j] + zh[3 * H + j] + b[3 * H + j] + po[j] * c[j]);
        h[j] = o * Math.tanh(c[j]);
      }
    }
  },
  gru: {
    gates: 3, keys: ["Wx", "Wh", "bx", "bh"], memory: false,
    update: function (L, xs, xo) {
      var H = L.H, zh = L.zh, bx = L.p.bx, bh = L.p.bh, h = L.h;
      for (var j = 0; j < H; j++) {
        var r = sigmoid(xs[xo + j] + bx[j] + zh[j] + bh[j]);
        var z = sigmoid(xs[xo + H + j] + bx[H + j] + zh[H + j] + bh[H + j]);
        var n = Math.tanh(xs[xo + 2 * H + j] + bx[2 * H + j] + r * (zh[2 * H + j] + bh[2 * H + j]));
        h[j] = (1 - z) * n + z * h[j];
      }
    }
  },
  rnn: {
    gates: 1, keys: ["Wx", "Wh", "b"], memory: false,
    update: function (L, xs, xo) {
      var H = L.H, zh = L.zh, b = L.p.b, h = L.h;
      for (var j = 0; j < H; j++) h[j] = Math.tanh(xs[xo + j] + zh[j] + b[j]);
    }
  }
};

// --- the network -----------------------------------------------------------------------------------

function Network(data, kernel) {
  var cfg = data.config, cell = CELLS[cfg.cell];
  if (!cell) throw new Error("this page cannot run a " + cfg.cell + " cell (it knows " + Object.keys(CELLS).join(", ") + ")");
  var V = cfg.vocab_size, H = cfg.hidden_size, nL = cfg.num_layers, G = cell.gates, Hp = padded(H);
  var params = {};
  data.params.forEach(function (p) { params[p.key] = p; });
  function take(key) {
    if (!params[key]) throw new Error("the page's weights lack " + key);
    return decodeParam(params[key]);
  }

  // One memory for every product's operands: Wx^T (layers >= 1), Wh^T, head.W^T, each row padded
  // to Hp floats, then the h of each layer (padded with zeros) and the products' outputs.
  var floats = (2 * nL - 1) * G * H * Hp + V * Hp + nL * (Hp + 2 * G * H) + V + (3 * nL + 2) * PAD;
  var bytes = floats * 4, wasm = kernel !== "js" && typeof WebAssembly === "object" ? wasmKernel() : null;
  if (wasm && !WebAssembly.validate(wasm)) {
    if (kernel === "wasm") throw new Error("this browser has no WebAssembly SIMD");
    wasm = null;
  }
  if (!wasm && kernel === "wasm") throw new Error("this browser has no WebAssembly");
  var memory = wasm ? new WebAssembly.Memory({initial: Math.ceil(bytes / 65536) + 1}) : null;
  var M = new Float32Array(memory ? memory.buffer : new ArrayBuffer(bytes)), top = 0;
  function alloc(n) { var at = top; top += Math.ceil(n / PAD) * PAD; return at; }   // 64-byte aligned
  function transposed(W, K, N) {           // W (K, N) row-major -> N rows of Hp floats, zero-padded
    var at = alloc(N * Hp);
    for (var k = 0; k < K; k++) for (var n = 0; n < N; n++) M[at + n * Hp + k] = W[k * N + n];
    return at;
  }

  var layers = [];
  for (var l = 0; l < nL; l++) {
    var prefix = cfg.cell + "." + l + ".", L = {H: H, p: {}};
    cell.keys.forEach(function (key) {
      if (key === "Wx" || key === "Wh") return;
      L.p[key] = take(prefix + key);
    });
    if (l === 0) L.table = take(prefix + "Wx");                  // (V, G*H): a one-hot input picks a row
    else L.Wx = transposed(take(prefix + "Wx"), H, G * H);
    L.Wh = transposed(take(prefix + "Wh"), H, G * H);
    layers.push(L);
  }
  var headW = transposed(take("head.W"), H, V), headB = take("head.b");
  layers.forEach(function (L) {
    L.hAt = alloc(Hp); L.h = M.subarray(L.hAt, L.hAt + H);
    L.zhAt = alloc(G * H); L.zh = M.subarray(L.zhAt, L.zhAt + G * H);
    L.zxAt = alloc(G * H); L.zx = M.subarray(L.zxAt, L.zxAt + G * H);
    L.c = cell.memory ? new Float32Array(H) : null;
  });
  var logitsAt = alloc(V), logits = M.subarray(logitsAt, logitsAt + V);

  var matvec = wasm ? new WebAssembly.Instance(new WebAssembly.Module(wasm), {env: {mem: memory}}).exports.matvec
                    : jsKernel(M);
  var kind = wasm ? "wasm" : "js";

  // Feeds symbol id; with scores, leaves the next symbol's scores in `logits`.
  function advance(id, scores) {
    for (var l = 0; l < nL; l++) {
      var L = layers[l];
      matvec(L.Wh * 4, L.hAt * 4, Hp, G * H, L.zhAt * 4);     // before h is overwritten
      if (l === 0) {
        cell.update(L, L.table, id * G * H);
      } else {
        matvec(L.Wx * 4, layers[l - 1].hAt * 4, Hp, G * H, L.zxAt * 4);
        cell.update(L, L.zx, 0);
      }
    }
    if (scores) {
      matvec(headW * 4, layers[nL - 1].hAt * 4, Hp, V, logitsAt * 4);
      for (var v = 0; v < V; v++) logits[v] += headB[v];
    }
  }

  function reset() {
    layers.forEach(function (L) { L.h.fill(0); if (L.c) L.c.fill(0); });
    logits.fill(0);
  }

  reset();
  return {advance: advance, reset: reset, logits: logits, kernel: kind, memoryBytes: bytes};
}

// --- decoding: as charlstm/decoding/sampling.py ----------------------------------------------------

// sfc32 (Chris Doty-Humphrey's small fast counter), its state from the seed by splitmix32
function random(seed) {
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= Number.MAX_SAFE_INTEGER))
    throw new Error("the seed must be a whole number from 0 to " + Number.MAX_SAFE_INTEGER + ", got " + seed);
  var x = (seed % 4294967296) >>> 0, y = Math.floor(seed / 4294967296) >>> 0;
  function splitmix() {
    x = (x + 0x9e3779b9) | 0;
    var z = x ^ (x >>> 16); z = Math.imul(z, 0x21f0aaad);
    z ^= z >>> 15; z = Math.imul(z, 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  }
  var a = splitmix(), b = splitmix() ^ y, c = splitmix(), d = splitmix();
  for (var k = 0; k < 12; k++) next();            // the first outputs of sfc32 are poorly mixed
  function next() {
    var t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  return next;
}

// Scores -> the probabilities to draw from, into out (Float64Array V): filter_probs for one row.
function Filter(V) {
  var order = new Array(V), sorting = null;
  function likelier(p, q) { return sorting[q] - sorting[p] || p - q; }         // stable, most likely first
  return function filter(logits, o, out) {
    var v, best = -1;
    for (v = 0; v < V; v++) out[v] = v === o.banned ? -Infinity : logits[v];
    if (o.temperature === 0) {
      for (v = 0; v < V; v++) if (best < 0 || out[v] > out[best]) best = v;    // the first maximum
      for (v = 0; v < V; v++) out[v] = v === best ? 1 : 0;
      return out;
    }
    if (o.topK !== null && o.topK < V) {
      // exactly k symbols, even when several share the k-th score: the first of them by id
      for (v = 0; v < V; v++) order[v] = v;
      sorting = out;
      order.sort(likelier);
      for (var k = o.topK; k < V; k++) out[order[k]] = -Infinity;
    }
    // the most likely score is subtracted before dividing: a temperature so small that the
    // division overflows still leaves the most likely symbol at probability 1
    var max = -Infinity, sum = 0;
    for (v = 0; v < V; v++) if (out[v] > max) max = out[v];
    for (v = 0; v < V; v++) { out[v] = Math.exp((out[v] - max) / o.temperature); sum += out[v]; }
    for (v = 0; v < V; v++) out[v] /= sum;
    if (o.topP !== null && o.topP < 1) {
      for (v = 0; v < V; v++) order[v] = v;
      sorting = out;
      order.sort(likelier);
      var cumulative = 0;
      for (var r = 0; r < V; r++) {
        var p = out[order[r]];
        cumulative += p;
        if (cumulative - p >= o.topP) out[order[r]] = 0;    // the more likely ones already hold top_p
      }
      sum = 0;
      for (v = 0; v < V; v++) sum += out[v];
      for (v = 0; v < V; v++) out[v] /= sum;
    }
    return out;
  };
}

// The first symbol whose cumulative probability exceeds u * total (draw in sampling.py): a symbol
// of probability 0 is never drawn; rounding at u near 1 falls back to the last possible symbol.
function draw(probs, u) {
  var V = probs.length, total = 0, v;
  for (v = 0; v < V; v++) total += probs[v];
  var target = u * total, cdf = 0;
  for (v = 0; v < V; v++) { cdf += probs[v]; if (cdf > target) return v; }
  for (v = V - 1; v > 0 && !(probs[v] > 0); v--) { }
  return v;
}

function stopPrefixLength(text, stop) {        // the longest end of text that begins stop, shorter than it
  for (var n = Math.min(text.length, stop.length - 1); n > 0; n--)
    if (stop.startsWith(text.slice(text.length - n))) return n;
  return 0;
}

// --- text: symbols as the vocabulary cuts them ------------------------------------------------------

// As Python's repr of the symbol in Vocab's message: printable text as it is, the rest escaped.
function describe(symbol) {
  var printable = !/[\p{C}\p{Z}]/u.test(symbol.replace(/ /g, ""));
  var shown = printable ? symbol : Array.from(symbol, function (ch) {
    var c = ch.codePointAt(0), named = {9: "\\t", 10: "\\n", 13: "\\r"}[c];
    return named || (c < 0x20 || (c >= 0x7f && c < 0x100) ? "\\x" + hex(c, 2) :
      c > 0xffff ? "\\U" + hex(c, 8) : c >= 0x7f ? "\\u" + hex(c, 4) : ch);
  }).join("");
  return "symbol '" + shown + "' (U+" + hex(symbol.codePointAt(0), 4).toUpperCase() + ")";
}

function hex(c, digits) { var s = c.toString(16); return s.length >= digits ? s : ("00000000" + s).slice(-digits); }

function splitter(unit) {
  if (unit === "grapheme") {
    if (typeof Intl === "object" && Intl.Segmenter) {
      var seg = new Intl.Segmenter(undefined, {granularity: "grapheme"});
      return function (text) { return Array.from(seg.segment(text), function (s) { return s.segment; }); };
    }
    // Without Intl.Segmenter: code points, joining a combining mark or ZWJ sequence to what it follows.
    return function (text) { return text.match(/\r\n|\P{M}\p{M}*(\u200d\P{M}\p{M}*)*|\p{M}+/gsu) || []; };
  }
  return function (text) { return Array.from(text); };
}

// --- the API ------------------------------------------------------------------------------------------

// generate works in slices of this long, then lets the page draw what it wrote (and Stop be
// pressed); at most SLICE_SYMBOLS a slice too, for clocks that stand still (headless virtual time)
var SLICE_MS = 25, SLICE_SYMBOLS = 4096;

function create(data, options) {
  var kernel = (options && options.kernel) || "auto";
  var net = Network(data, kernel), cfg = data.config, vocab = data.vocab;
  var V = cfg.vocab_size, symbols = vocab.symbols, unk = vocab.unk === null ? null : vocab.unk;
  var index = new Map(symbols.map(function (s, k) { return [s, k]; }));
  var split = splitter(vocab.unit);
  var probs = new Float64Array(V), drawn = new Float64Array(V), filter = Filter(V);
  var running = null;

  function softmax() {
    var logits = net.logits, max = -Infinity, sum = 0, v;
    for (v = 0; v < V; v++) if (logits[v] > max) max = logits[v];
    for (v = 0; v < V; v++) { probs[v] = Math.exp(logits[v] - max); sum += probs[v]; }
    for (v = 0; v < V; v++) probs[v] /= sum;
    return probs;
  }

  function encode(text) {
    var parts = split(String(text)), ids = new Int32Array(parts.length);
    for (var k = 0; k < parts.length; k++) {
      var id = index.get(parts[k]);
      if (id === undefined) throw new Error(describe(parts[k]) + " is not in the model's vocabulary");
      ids[k] = id;
    }
    return ids;
  }

  function idOf(symbol) {
    if (typeof symbol === "number" && Number.isInteger(symbol) && symbol >= 0 && symbol < V) return symbol;
    var id = index.get(symbol);
    if (id === undefined) throw new Error(describe(String(symbol)) + " is not in the model's vocabulary");
    return id;
  }

  function step(symbol) {
    net.advance(idOf(symbol), true);
    return softmax();
  }

  function candidates(k) {
    softmax();
    var ids = Array.from({length: V}, function (_, v) { return v; });
    ids.sort(function (a, b) { return probs[b] - probs[a] || a - b; });
    return ids.slice(0, k || 10).map(function (v) { return {symbol: symbols[v], id: v, p: probs[v]}; });
  }

  function settings(o) {
    o = o || {};
    var s = {
      prime: o.prime === undefined || o.prime === null ? "" : String(o.prime),
      length: o.length === undefined || o.length === null ? 500 : o.length,
      temperature: o.temperature === undefined || o.temperature === null ? 1 : o.temperature,
      topK: o.topK === undefined || o.topK === "" ? null : o.topK,
      topP: o.topP === undefined || o.topP === "" ? null : o.topP,
      seed: o.seed === undefined || o.seed === null || o.seed === "" ? null : o.seed,
      stop: o.stop ? String(o.stop) : null,
      onText: o.onText || null,
      banned: unk
    };
    if (!(Number.isInteger(s.length) && s.length >= 1)) throw new Error("the length must be at least 1 symbol, got " + s.length);
    if (!(typeof s.temperature === "number" && isFinite(s.temperature) && s.temperature >= 0))
      throw new Error("temperature must be a number >= 0, got " + s.temperature);
    if (s.topK !== null && !(Number.isInteger(s.topK) && s.topK >= 1 && s.topK <= V))
      throw new Error("top-k must be between 1 and the vocabulary size (" + V + "), got " + s.topK);
    if (s.topP !== null && !(typeof s.topP === "number" && s.topP > 0 && s.topP <= 1))
      throw new Error("top-p must be in (0, 1], got " + s.topP);
    if (s.seed === null) s.seed = Math.floor(Math.random() * 4294967296);
    s.uniform = random(s.seed);
    return s;
  }

  // One generation, advanced by run(until) in slices until it returns true (done).
  function Job(o) {
    var s = settings(o), ids = s.prime ? encode(s.prime) : null;
    var first = ids ? ids.subarray(0, ids.length - 1) : new Int32Array(0);
    var id = ids ? ids[ids.length - 1] : (index.has("\n") ? index.get("\n") : 0);
    var job = {text: s.prime, halted: false}, held = "", n = 0, read = 0, stopped = false;
    if (running) running.halted = true;
    running = job;
    net.reset();
    if (s.onText && s.prime) s.onText(s.prime, {symbols: 0, done: false});

    job.run = function (until) {
      var out = "", end = n + SLICE_SYMBOLS;
      while (!job.halted && read < first.length) {             // the prime, without the head
        net.advance(first[read++], false);
        if ((read & 63) === 0 && performance.now() > until) return false;
      }
      while (!job.halted && !stopped && n < s.length) {
        net.advance(id, true);
        filter(net.logits, s, drawn);
        id = draw(drawn, s.uniform());
        n++;
        var piece = symbols[id];
        if (s.stop === null) {
          out += piece;
        } else {
          var t = held + piece;
          if (t.endsWith(s.stop)) {                            // the stop text ends it, unprinted
            out += t.slice(0, t.length - s.stop.length); held = ""; stopped = true;
          } else {
            var keep = stopPrefixLength(t, s.stop);
            out += t.slice(0, t.length - keep); held = t.slice(t.length - keep);
          }
        }
        if ((n & 7) === 0 && (performance.now() > until || n >= end)) break;
      }
      job.text += out;
      var done = job.halted || stopped || n >= s.length;
      if (s.onText && out) s.onText(out, {symbols: n, done: false});
      if (!done) return false;
      if (!job.halted) net.advance(id, true);                 // so candidates() tells what comes next
      job.text += held;
      if (s.onText) s.onText(held, {symbols: n, done: true});
      if (running === job) running = null;
      return true;
    };
    return job;
  }

  function generate(o) {
    var job;
    try { job = Job(o); } catch (e) { return Promise.reject(e); }
    return new Promise(function (resolve) {
      (function slice() {
        if (job.run(performance.now() + SLICE_MS)) resolve(job.text);
        else setTimeout(slice, 0);             // lets the page draw the new text, and Stop be pressed
      })();
    });
  }

  function generateSync(o) {
    var job = Job(o);
    while (!job.run(Infinity)) { }
    return job.text;
  }

  function stop() { if (running) running.halted = true; }

  var count = data.params.reduce(function (a, p) { return a + p.shape.reduce(function (x, y) { return x * y; }, 1); }, 0);
  return {
    model: {cell: cfg.cell, layers: cfg.num_layers, hidden: cfg.hidden_size, vocabSize: V, unit: vocab.unit,
            symbols: symbols.slice(), unk: unk, precision: data.precision, parameters: count,
            bitsPerChar: data.bits_per_char === undefined ? null : data.bits_per_char, kernel: net.kernel},
    reset: function () { stop(); net.reset(); },
    step: step, candidates: candidates, encode: encode, generate: generate, generateSync: generateSync,
    stop: stop, random: random,
    filter: function (logits, o) {
      var s = {temperature: o.temperature, topK: o.topK === undefined ? null : o.topK,
               topP: o.topP === undefined ? null : o.topP, banned: o.banned === undefined ? unk : o.banned};
      return Array.from(filter(logits, s, new Float64Array(V)));
    },
    draw: draw
  };
}

return create;
})();

if (typeof module === "object" && module.exports) module.exports = createCharlstm;   // for node
