"""Properties that must hold for every input, checked with hypothesis.

- The tokeniser: decode(encode(s)) == s for any text over the vocabulary, grapheme clusters
  (combining accents, emoji sequences, flags, CR LF) included.
- Checkpoints: save then load gives back equal arrays, config and vocabulary for any valid shape.
- The sampler: at temperature 1 the draws follow the softmax (chi-square test at a fixed seed);
  top-k and top-p never emit an excluded symbol; temperature 0 is the argmax.
- Truncated-BPTT batching: each pass predicts every symbol of the training split exactly once,
  from the symbol before it, each stream reading contiguous text across chunks.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from charlstm.training.checkpoint import load_checkpoint, save_checkpoint
from charlstm.data.streams import make_streams
from charlstm.model import ModelConfig, forward, init_params, zero_state
from charlstm.decoding.sampling import draw, filter_probs, generate
from charlstm.data.vocab import UNK, Vocab, build_vocab

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the tokeniser -------------------------------------------------------------------------------

# Pieces that make interesting grapheme clusters when put side by side.
PIECES = ["a", "e", "\u0301", "\u0308", "\u200d", "\U0001F44D", "\U0001F3FD", "\U0001F1EB", "\U0001F1F7",
          "\U0001F468", "\u2764", "\ufe0f", "\r", "\n", "\r\n", "\t", " ", "\u1100", "\u1161", "\u11a8",
          "\u0915", "\u094d", "\u0937", "\ufffd", "\x00", "\u00e9", "z", "\U0001F600"]
texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(max_size=60),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=60),    # the ASCII fast path
)


@FAST
@given(text=texts, unit=st.sampled_from(["grapheme", "codepoint"]))
def test_decode_inverts_encode_on_the_texts_own_vocabulary(text, unit):
    assume(text)
    vocab = build_vocab(text, unit)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert ids.dtype == vocab.dtype and len(ids) == len(vocab.encode(text, unknown="unk"))


@FAST
@given(text=texts, other=texts, unit=st.sampled_from(["grapheme", "codepoint"]))
def test_decode_inverts_encode_for_any_text_over_a_larger_vocabulary(text, other, unit):
    """A vocabulary built from more text than s (a line break keeps s's clusters intact)."""
    vocab = build_vocab(other + "\n" + text, unit)
    assert vocab.decode(vocab.encode(text)) == text
    # ... and through the vocabulary's JSON form, as a checkpoint stores it.
    again = Vocab.from_dict(vocab.to_dict())
    assert again == vocab and again.decode(again.encode(text)) == text


@FAST
@given(text=st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map("".join))
def test_grapheme_symbols_are_whole_clusters(text):
    """No symbol of a grapheme vocabulary is half of a user-perceived character: each one is a
    single extended grapheme cluster on its own."""
    import regex
    vocab = build_vocab(text, "grapheme")
    for symbol in vocab.symbols:
        assert regex.findall(r"\X", symbol) == [symbol]


@FAST
@given(text=st.lists(st.sampled_from(PIECES), min_size=1, max_size=80).map("".join),
       repeat=st.integers(1, 3))
def test_the_symbols_are_the_regex_clusters_of_the_whole_text(text, repeat):
    """build_and_encode segments only the chains of joining code points, each kind of chain once:
    its symbols are still exactly the clusters \\X finds in the whole text (repeated, so that the
    same chain occurs in several places)."""
    import regex
    from charlstm.data.vocab import build_and_encode
    text = text * repeat
    vocab, ids = build_and_encode(text, "grapheme")
    assert [vocab.symbols[k] for k in ids] == regex.findall(r"\X", text)


@FAST
@given(text=st.lists(st.sampled_from(PIECES), min_size=0, max_size=80).map("".join), unit=st.sampled_from(["grapheme", "codepoint"]))
def test_counting_without_laying_out_the_clusters_counts_the_symbols(text, unit):
    """count_symbols takes each kind of chain's clusters back from a bincount of code points
    instead of segmenting the text: the counts are those of the symbols themselves."""
    from collections import Counter
    from charlstm.data.vocab import count_symbols, split_symbols
    assert count_symbols(text, unit) == Counter(split_symbols(text, unit))


def test_chains_that_share_a_hash_are_still_told_apart(monkeypatch):
    """With a base of 0 a chain's hash is its first code point plus its length, so "e\u0301 " and
    "e\u0308 " share one: the check against the first chain of each kind catches it and the
    chains are told apart as strings."""
    import regex
    from charlstm.data import vocab as vocab_module
    monkeypatch.setattr(vocab_module, "CHAIN_HASH_BASE", np.uint64(0))
    text = "e\u0301 e\u0308 a\u0308 \U0001F44D\U0001F3FD \U0001F1EB\U0001F1F7 e\u0301 \r\n o\u0301" * 3
    vocab, ids = vocab_module.build_and_encode(text, "grapheme")
    assert [vocab.symbols[k] for k in ids] == regex.findall(r"\X", text)


# --- checkpoints ---------------------------------------------------------------------------------

@st.composite
def models(draw_):
    symbols = draw_(st.lists(st.sampled_from(PIECES[:-4] + list("xyz0123")), min_size=1, max_size=12, unique=True))
    symbols = [s for s in symbols if s != UNK] or ["x"]
    unk = None
    if draw_(st.booleans()):
        symbols.append(UNK)
        unk = len(symbols) - 1
    vocab = Vocab(tuple(symbols), unit=draw_(st.sampled_from(["grapheme", "codepoint"])), unk=unk)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=draw_(st.integers(1, 9)),
                         num_layers=draw_(st.integers(1, 3)),
                         dropout=draw_(st.sampled_from([0.0, 0.1, 0.5, 0.95])))
    dtype = draw_(st.sampled_from([np.float32, np.float64]))
    params = init_params(config, np.random.default_rng(draw_(st.integers(0, 2 ** 32 - 1))), dtype)
    return vocab, config, params


@FAST
@given(model=models(), train=st.none() | st.fixed_dictionaries(
    {"step": st.integers(0, 10 ** 9), "note": st.text(max_size=20),
     "lr": st.floats(allow_nan=False, allow_infinity=False)}))
def test_save_then_load_gives_back_the_same_model(model, train):
    vocab, config, params = model
    extra = {"state.h": np.arange(6, dtype=np.float32).reshape(1, 2, 3)} if train else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.npz"
        save_checkpoint(path, params, config, vocab, train=train, extra=extra)
        ckpt = load_checkpoint(path)
        leftovers = [p.name for p in Path(tmp).iterdir() if p.name != "m.npz"]
    assert ckpt.config == config and ckpt.vocab == vocab and ckpt.train == train
    assert ckpt.params.keys() == params.keys()
    for key, p in params.items():
        assert ckpt.params[key].dtype == p.dtype and np.array_equal(ckpt.params[key], p), key
    assert ckpt.extra.keys() == (extra or {}).keys()
    for key in ckpt.extra:
        assert np.array_equal(ckpt.extra[key], extra[key])
    assert leftovers == []      # the temporary file was renamed, not left behind


# --- the sampler ---------------------------------------------------------------------------------

def chi2_critical(df: int, z: float = 3.7190) -> float:
    """The chi-square quantile for upper-tail probability 1e-4 (z is that normal quantile), by the
    Wilson-Hilferty approximation, accurate to a fraction of a percent here."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic and degrees of freedom, pooling cells expected fewer than 5 times."""
    expected = probs * counts.sum()
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    return float(((obs - exp) ** 2 / exp).sum()), len(exp) - 1


logit_vectors = st.lists(st.floats(-4, 4, allow_nan=False), min_size=2, max_size=12)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(logits=logit_vectors)
def test_temperature_one_draws_follow_the_softmax(logits):
    logits = np.array([logits])
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    n = 20000
    u = np.random.default_rng(12345).random(n)
    ids = draw(np.repeat(filter_probs(logits, 1.0), n, axis=0), u)
    stat, df = chi_square(np.bincount(ids, minlength=probs.shape[1]).astype(float), probs[0])
    assume(df >= 1)
    assert stat < chi2_critical(df), (stat, df)


def test_the_chi_square_test_can_fail():
    """The same test rejects draws from a slightly wrong distribution (temperature 1.15)."""
    logits = np.array([[2.0, 1.0, 0.5, 0.0, -1.0]])
    probs = np.exp(logits[0]) / np.exp(logits[0]).sum()
    n = 20000
    ids = draw(np.repeat(filter_probs(logits, 1.15), n, axis=0), np.random.default_rng(12345).random(n))
    stat, df = chi_square(np.bincount(ids, minlength=5).astype(float), probs)
    assert stat > chi2_critical(df)


def constant_model(logits: np.ndarray):
    """A model whose next-symbol scores are `logits` whatever it has read: all weights zero but
    the head's bias."""
    V = len(logits)
    vocab = Vocab(tuple(chr(ord("a") + k) for k in range(V)))
    config = ModelConfig(vocab_size=V, hidden_size=3, num_layers=2)
    params = {k: np.zeros_like(v) for k, v in init_params(config, np.random.default_rng(0), np.float64).items()}
    params["head.b"] = np.array(logits, dtype=np.float64)
    return params, config, vocab


def test_generated_text_follows_the_softmax_end_to_end():
    """Through the whole generate() path: 4000 samples of 5 symbols, 20000 draws in all."""
    logits = np.array([1.5, 0.3, 0.0, -0.7, -2.0, 0.9])
    params, config, vocab = constant_model(logits)
    pieces = list(generate(params, config, vocab, np.random.default_rng(7), length=5, temperature=1.0,
                           num_samples=4000))
    text = "".join("".join(p) for p, _ in pieces[1:])
    counts = np.array([text.count(s) for s in vocab.symbols], dtype=float)
    assert counts.sum() == 20000
    probs = np.exp(logits) / np.exp(logits).sum()
    stat, df = chi_square(counts, probs)
    assert stat < chi2_critical(df)


edge_uniforms = st.lists(st.one_of(st.sampled_from([0.0, 0.5, 1 - 2 ** -53]),
                                   st.floats(0, 1, exclude_max=True)), min_size=1, max_size=50)


@FAST
@given(logits=st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=15, unique=True),
       data=st.data(), temperature=st.floats(0.05, 5), uniforms=edge_uniforms)
def test_top_k_never_emits_a_symbol_outside_the_k_most_likely(logits, data, temperature, uniforms):
    assume(len(set((np.array(logits) / temperature).tolist())) == len(logits))   # no ties after scaling
    k = data.draw(st.integers(1, len(logits)))
    probs = filter_probs(np.array([logits]), temperature, top_k=k)
    allowed = set(np.argsort(logits)[::-1][:k].tolist())
    ids = draw(np.repeat(probs, len(uniforms), axis=0), np.array(uniforms))
    assert set(ids.tolist()) <= allowed
    assert np.isclose(probs.sum(), 1) and (probs[0, sorted(set(range(len(logits))) - allowed)] == 0).all()


@FAST
@given(logits=st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=15),
       top_p=st.floats(0.0, 1.0, exclude_min=True), temperature=st.floats(0.05, 5), uniforms=edge_uniforms,
       banned=st.none() | st.integers(0, 14))
def test_top_p_never_emits_a_symbol_outside_the_nucleus(logits, top_p, temperature, uniforms, banned):
    """Allowed: the symbols that the more likely ones do not already cover p of (computed here
    independently, in float64 with a small tolerance at the boundary); the banned unknown symbol
    never."""
    V = len(logits)
    if banned is not None:
        banned %= V
    scaled = np.array(logits) / temperature
    if banned is not None:
        scaled[banned] = -np.inf
    p = np.exp(scaled - scaled.max())
    p /= p.sum()
    # Mass of the symbols strictly more likely than each one: it is in the nucleus while that is < p.
    covered = np.array([p[p > p[j]].sum() for j in range(V)])
    allowed = {j for j in range(V) if covered[j] < top_p + 1e-9 and p[j] > 0}
    probs = filter_probs(np.array([logits]), temperature, top_p=top_p, banned=banned)
    ids = draw(np.repeat(probs, len(uniforms), axis=0), np.array(uniforms))
    assert set(ids.tolist()) <= allowed
    if banned is not None:
        assert banned not in ids


@FAST
@given(logits=st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=15), uniforms=edge_uniforms)
def test_temperature_zero_is_argmax(logits, uniforms):
    probs = filter_probs(np.array([logits]), 0.0)
    ids = draw(np.repeat(probs, len(uniforms), axis=0), np.array(uniforms))
    assert (ids == int(np.argmax(logits))).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), prime=st.text(alphabet="abcd", max_size=5), num_samples=st.integers(1, 3))
def test_temperature_zero_generates_the_argmax_path(seed, prime, num_samples):
    """Greedy generation equals feeding the model its own argmax, recomputed here with the
    training-time forward pass (not the sampler's fused stepper), the unknown symbol excluded."""
    vocab = Vocab(("\n", "a", "b", "c", "d", UNK), unk=5)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=5, num_layers=2)
    params = init_params(config, np.random.default_rng(seed), np.float64)
    for key in params:       # larger weights than at initialisation, so the argmax varies
        params[key] *= 3
    out = "".join("".join(p[:1]) for p, _ in generate(params, config, vocab, np.random.default_rng(0),
                                                        length=12, temperature=0.0, prime=prime,
                                                        num_samples=num_samples))
    history = list(vocab.encode(prime)) if prime else [0]
    expected = prime
    for _ in range(12):
        logits, _, _ = forward(params, config, np.array(history)[:, None], zero_state(config, 1, np.float64))
        scores = logits[-1].copy()
        scores[vocab.unk] = -np.inf
        nxt = int(np.argmax(scores))
        history.append(nxt)
        expected += vocab.symbols[nxt]
    assert out == expected


# --- truncated-BPTT batching ---------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(data=st.data(), batch_size=st.integers(1, 9), seq_length=st.integers(1, 13))
def test_each_pass_predicts_every_symbol_exactly_once(data, batch_size, seq_length):
    n = data.draw(st.integers(batch_size * seq_length + 1, batch_size * seq_length * 4 + 40))
    ids = np.arange(n, dtype=np.int64)          # a symbol's id is its position in the split
    streams = make_streams(ids, batch_size, seq_length)
    predicted, read = [], [[] for _ in range(batch_size)]
    for index in range(streams.chunks_per_pass):
        inputs, targets, weights = streams.chunk(index)
        assert inputs.shape == targets.shape and inputs.shape[0] <= seq_length and inputs.shape[1] == batch_size
        live = np.ones(inputs.shape, bool) if weights is None else weights > 0
        assert weights is None or set(np.unique(weights)) <= {0.0, 1.0}
        assert (targets[live] == inputs[live] + 1).all()       # each target is the symbol after its input
        predicted.extend(targets[live].tolist())
        for b in range(batch_size):
            read[b].extend(inputs[live[:, b], b].tolist())
    assert sorted(predicted) == list(range(1, n))               # every symbol but the first, once
    for b in range(batch_size):                                 # each stream is one contiguous text
        assert read[b] == list(range(read[b][0], read[b][0] + len(read[b])))
    assert max(map(len, read)) - min(map(len, read)) <= 1
    with pytest.raises(IndexError):
        streams.chunk(streams.chunks_per_pass)
