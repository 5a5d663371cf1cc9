"""Traces (charlstm/inspect.py), features and the neuron finder (charlstm/features.py), and the
`trace` and `neurons` commands."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm.cli import main
from charlstm.errors import CharlstmError
from charlstm.analysis.features import correlations, feature_values, rank_units
from charlstm.analysis.traces import LSTM_QUANTITIES as QUANTITIES, Trace, trace
from charlstm.model import forward, zero_state
from charlstm.nn.head import log_softmax
from charlstm.data.vocab import build_vocab

COUNTING = "aaaXbbb\naXb\naaaaaXbbbbb\naaXbb\naaaaaaaXbbbbbbb\naaaaXbbbb\n" * 4
PY = 'def f(x):\n    s = "a # b"  # note\n    if x:\n        return \'q\'\n    return s\n'


def small_model(text=PY, hidden=6, layers=2, seed=0):
    return charlstm.Model.create(build_vocab(text), hidden_size=hidden, num_layers=layers, seed=seed)


def planted_counting_model(hidden=5, unit=3):
    """A 1-layer model whose cell `unit` holds 0.5 x (a's minus b's since the last newline):
    its input and forget gates are always open, except that a newline shuts the forget gate, and
    its candidate is +0.5 for 'a' and -0.5 for 'b'. The other units are random."""
    model = charlstm.Model.create(build_vocab(COUNTING), hidden_size=hidden, num_layers=1, seed=1,
                                  embedding_size=0)          # one-hot: a row of Wx per symbol to plant
    p, sym = model.params, model.vocab.symbols
    H = hidden
    i, f, g, o = (slice(k * H + unit, k * H + unit + 1) for k in range(4))
    for key in ("lstm.0.Wx", "lstm.0.Wh"):
        p[key][:, unit::H] = 0.0          # the planted unit reads nothing but its own input row
    p["lstm.0.Wh"][unit, :] = 0.0         # ... and no other unit reads it
    p["lstm.0.b"][i] = 20.0
    p["lstm.0.b"][f] = 20.0
    p["lstm.0.b"][g] = 0.0
    p["lstm.0.b"][o] = 20.0
    p["lstm.0.Wx"][sym.index("a"), g] = np.arctanh(0.5)
    p["lstm.0.Wx"][sym.index("b"), g] = -np.arctanh(0.5)
    p["lstm.0.Wx"][sym.index("\n"), f] = -40.0
    return model


# --- traces --------------------------------------------------------------------------------------

def test_trace_equals_the_models_forward_caches():
    model = small_model()
    t = trace(model, PY, top=3)
    ids = model.vocab.encode(PY).astype(np.intp)
    assert len(t) == len(PY) and t.symbols == list(PY) and (t.ids == ids).all()
    logits, _, cache = forward(model.params, model.config, ids[:, None], zero_state(model.config, 1))
    H = model.config.hidden_size
    for layer, lc in enumerate(cache.layers):
        np.testing.assert_allclose(t.h[layer], lc.hidden()[1:, 0], atol=1e-6)
        np.testing.assert_allclose(t.c[layer], lc.cell()[1:, 0], atol=1e-6)
        for q in "ifgo":
            np.testing.assert_allclose(getattr(t, q)[layer], lc.gate(q)[:, 0], atol=1e-6)
    logp = log_softmax(logits.astype(np.float64))
    np.testing.assert_allclose(t.loss[:-1], -logp[np.arange(len(ids) - 1), ids[1:]], rtol=1e-5)
    assert np.isnan(t.loss[-1])                      # nothing follows the last symbol
    assert (t.top_ids[:, 0] == logp.argmax(axis=1)).all()
    np.testing.assert_allclose(t.top_probs, np.exp(np.sort(logp, axis=1)[:, ::-1][:, :3]), rtol=1e-5)
    assert (np.diff(t.top_probs, axis=1) <= 0).all()
    assert t.h.shape == (2, len(PY), H) and t.h.dtype == np.float32


def test_chunked_trace_equals_one_shot_and_max_symbols_keeps_a_prefix():
    model = small_model()
    whole = trace(model, PY, chunk=10_000)
    for chunk in (1, 7, 64):
        part = trace(model, PY, chunk=chunk)
        for q in QUANTITIES + ("loss", "top_probs"):
            np.testing.assert_allclose(getattr(part, q), getattr(whole, q), atol=1e-5, equal_nan=True)
    short = trace(model, PY, max_symbols=20, chunk=6)
    assert len(short) == 20 and short.symbols == list(PY[:20]) and short.h.shape[1] == 20
    np.testing.assert_allclose(short.h, whole.h[:, :20], atol=1e-5)
    np.testing.assert_allclose(short.loss, whole.loss[:20], rtol=1e-5)   # the 21st symbol scores the 20th
    assert not np.isnan(short.loss).any()


def test_trace_of_graphemes_unknown_symbols_and_bad_arguments():
    text = "e\u0301a\U0001F44D\U0001F3FDb\n"           # é as e + combining accent, a thumbs-up with a skin tone
    model = small_model(text, layers=1)
    t = trace(model, text)
    assert t.symbols == ["e\u0301", "a", "\U0001F44D\U0001F3FD", "b", "\n"]
    with pytest.raises(CharlstmError, match="not in the model's vocabulary"):
        trace(model, "a?b")                            # and the vocabulary has no unknown symbol
    with_unk = charlstm.Model.create(build_vocab("aab", min_count=2), hidden_size=3, num_layers=1)
    t = trace(with_unk, "abz")
    assert t.symbols == ["a", "b", "z"] and t.ids.tolist() == [0, with_unk.vocab.unk, with_unk.vocab.unk]
    with pytest.raises(CharlstmError, match="empty"):
        trace(model, "")
    with pytest.raises(CharlstmError, match="max_symbols"):
        trace(model, text, max_symbols=0)
    with pytest.raises(CharlstmError, match="top"):
        trace(model, text, top=0)


def test_trace_saves_and_loads_without_pickle(tmp_path):
    t = trace(small_model(), PY)
    t.save(tmp_path / "t.npz")
    back = Trace.load(tmp_path / "t.npz")
    assert back.symbols == t.symbols and back.vocab == t.vocab
    for q in QUANTITIES + ("ids", "top_ids", "top_probs"):
        np.testing.assert_array_equal(getattr(back, q), getattr(t, q))
    np.testing.assert_array_equal(back.loss, t.loss)
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        assert z["h"].shape == t.h.shape
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CharlstmError, match="not a charlstm trace"):
        Trace.load(tmp_path / "bad.npz")
    assert "<iframe" in t._repr_html_() and "srcdoc" in t._repr_html_()
    assert charlstm.trace is trace


# --- features ------------------------------------------------------------------------------------

def values(name, text):
    return feature_values(name, list(text)).tolist()


def test_features_on_hand_written_texts():
    assert values("line-position", "ab\ncd\n\ne") == [1, 2, 0, 1, 2, 0, 0, 1]
    assert values("indent", "a\n  b\n\tc\n") == [0, 0, 2, 2, 2, 2, 8, 8, 8]
    assert values("count", "aaXbb\naXb") == [1, 2, 2, 1, 0, 0, 1, 1, 0]
    #                       x = " a ' # " # c \n
    text = 'x = "a\'#" # c\n'
    assert values("in-string", text) == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert values("in-comment", text) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0]
    # a triple-quoted string spans lines; an escaped quote does not close a string
    assert values("in-string", '"""a\n"""b') == [1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert values("in-string", r'"a\"b"c') == [1, 1, 1, 1, 1, 0, 0]
    assert values("in-string", "'ab\nc") == [1, 1, 1, 0, 0]          # unterminated at the line's end
    assert values("in-url", "see https://x.io/a b") == [0] * 4 + [1] * 14 + [0, 0]
    assert values("in-hashtag", "a #tag b#no") == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert values("in-mention", "@bo hi") == [1, 1, 1, 0, 0, 0]
    assert values("regex:[0-9]+", "a12b3") == [0, 1, 1, 0, 1]
    # a grapheme of several code points takes the value after its last one
    assert feature_values("line-position", ["e\u0301", "x", "\n"]).tolist() == [1, 2, 0]
    with pytest.raises(CharlstmError, match="unknown feature"):
        feature_values("nope", list("ab"))
    with pytest.raises(CharlstmError, match="bad pattern"):
        feature_values("regex:(", list("ab"))


def test_correlations_match_numpy():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(2, 300, 4)).astype(np.float32)
    f = rng.normal(size=300)
    v[1, :, 2] = 3 * f + 1                               # a perfect follower
    v[0, :, 3] = 0.25                                    # a unit that never changes
    r = correlations(v, f)
    for layer in range(2):
        for unit in range(4):
            expected = 0.0 if (layer, unit) == (0, 3) else np.corrcoef(v[layer, :, unit], f)[0, 1]
            assert r[layer, unit] == pytest.approx(expected, abs=1e-6)
    assert r[1, 2] == pytest.approx(1.0)


def test_rank_units_finds_the_planted_counting_unit():
    t = trace(planted_counting_model(), COUNTING)
    np.testing.assert_allclose(t.c[0, :, 3], 0.5 * feature_values("count", t.symbols), atol=1e-3)
    best = rank_units(t, "count", top=3)
    assert (best[0].layer, best[0].unit, best[0].quantity) == (0, 3, "c")
    assert best[0].correlation > 0.999
    assert "⟦" in best[0].example and t.symbols[best[0].position] in "ab"
    only_h = rank_units(t, "count", quantity="h", top=1, layer=0)
    assert (only_h[0].unit, only_h[0].quantity) == (3, "h")
    with pytest.raises(CharlstmError, match="never changes"):
        rank_units(t, "in-url")
    with pytest.raises(CharlstmError, match="layer"):
        rank_units(t, "count", layer=1)


# --- commands ------------------------------------------------------------------------------------

def test_trace_and_neurons_commands(tmp_path):
    planted_counting_model().save(tmp_path / "m.npz")
    (tmp_path / "c.txt").write_text(COUNTING)
    runner = CliRunner()
    r = runner.invoke(main, ["trace", str(tmp_path / "m.npz"), str(tmp_path / "c.txt"), "-o", str(tmp_path / "t.npz"),
                             "--max-symbols", "100", "--chunk", "16"])
    assert r.exit_code == 0, r.output
    assert len(Trace.load(tmp_path / "t.npz")) == 100
    r = runner.invoke(main, ["neurons", str(tmp_path / "m.npz"), str(tmp_path / "c.txt"), "--feature", "count",
                             "--top", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["units"][0]["unit"] == 3 and out["units"][0]["quantity"] == "c" and len(out["units"]) == 2
    # from the saved trace, as a table
    r = runner.invoke(main, ["neurons", "unused.npz", str(tmp_path / "t.npz"), "--feature", "count"])
    assert r.exit_code == 0 and "    0     3  c  +1.000" in r.output
    r = runner.invoke(main, ["neurons", str(tmp_path / "m.npz"), str(tmp_path / "c.txt"), "--feature", "bogus"])
    assert r.exit_code == 1 and "unknown feature 'bogus'" in r.output
