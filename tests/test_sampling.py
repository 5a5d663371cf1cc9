"""charlstm.sample: reproducible sampling, greedy decoding, top-k / top-p, the unknown symbol, stop
texts, batches, and the fast Stepper against model.forward."""

import numpy as np
import pytest

from charlstm.errors import CharlstmError
from charlstm.model import ModelConfig, State, forward, init_params
from charlstm.model import Stepper
from charlstm.decoding.sampling import OneSample, draw, filter_probs, generate, sample_texts
from charlstm.data.vocab import UNK, Vocab


def random_model(symbols="abc de\n", H=6, L=2, dtype=np.float64, seed=0, scale=1.0):
    vocab = Vocab(tuple(symbols))
    config = ModelConfig(vocab_size=len(vocab), hidden_size=H, num_layers=L)
    rng = np.random.default_rng(seed)
    params = {k: (rng.standard_normal(p.shape) * scale).astype(dtype)
              for k, p in init_params(config, rng, dtype).items()}
    return params, config, vocab


def fixed_model(probs, symbols, unk=None, dtype=np.float64):
    """A model whose next-symbol distribution is `probs` whatever it has read: the head ignores
    the LSTM (W = 0) and its bias holds the log-probabilities."""
    vocab = Vocab(tuple(symbols), unk=unk)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=3, num_layers=2)
    params = init_params(config, np.random.default_rng(0), dtype)
    params["head.W"][:] = 0
    params["head.b"][:] = np.log(np.asarray(probs, dtype=np.float64))
    return params, config, vocab


def sample(model, seed=0, **kwargs):
    params, config, vocab = model
    return sample_texts(params, config, vocab, np.random.default_rng(seed), **kwargs)


def counts(texts, symbols):
    joined = "".join(texts)
    return {s: joined.count(s) for s in symbols}


def test_same_seed_same_text():
    model = random_model()
    a = sample(model, seed=5, length=200)
    b = sample(model, seed=5, length=200)
    c = sample(model, seed=6, length=200)
    assert a == b
    assert a != c
    assert len(a[0]) == 200


def greedy(params, config, vocab, prime, length):
    """Most likely symbol at each step, by model.forward over the growing text."""
    ids = list(vocab.encode(prime))
    shape = (config.num_layers, 1, config.hidden_size)
    state = State(np.zeros(shape), np.zeros(shape))
    logits, state, _ = forward(params, config, np.array(ids)[:, None], state)
    out = []
    for _ in range(length):
        nxt = int(np.argmax(logits[-1]))
        out.append(vocab.symbols[nxt])
        logits, state, _ = forward(params, config, np.array([[nxt]]), state)
    return prime + "".join(out)


def test_temperature_zero_is_argmax_and_ignores_the_seed():
    model = random_model(scale=1.5)
    expected = greedy(*model, prime="ab c", length=60)
    for seed in (0, 1, 2):
        assert sample(model, seed=seed, length=60, temperature=0, prime="ab c") == [expected]


def test_top_k_never_leaves_the_top_k():
    probs = [0.3, 0.25, 0.2, 0.15, 0.1]
    model = fixed_model(probs, "abcde")
    texts = sample(model, seed=1, length=200, num_samples=8, top_k=2)
    c = counts(texts, "abcde")
    assert c["c"] == c["d"] == c["e"] == 0
    assert c["a"] > 0 and c["b"] > 0
    assert c["a"] / (c["a"] + c["b"]) == pytest.approx(0.3 / 0.55, abs=0.05)
    p = filter_probs(np.log([probs]), 1.0, top_k=3)
    np.testing.assert_allclose(p, [[0.4, 1 / 3, 0.8 / 3, 0, 0]], rtol=1e-12)
    p = filter_probs(np.log([probs]), 0.5, top_k=1)
    np.testing.assert_array_equal(p, [[1, 0, 0, 0, 0]])


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = [0.5, 0.3, 0.1, 0.06, 0.04]
    logits = np.log([probs])
    np.testing.assert_allclose(filter_probs(logits, 1.0, top_p=0.75), [[0.625, 0.375, 0, 0, 0]], rtol=1e-12)
    np.testing.assert_allclose(filter_probs(logits, 1.0, top_p=0.85), [[5 / 9, 3 / 9, 1 / 9, 0, 0]], rtol=1e-12)
    np.testing.assert_allclose(filter_probs(logits, 1.0, top_p=0.3), [[1, 0, 0, 0, 0]])
    np.testing.assert_allclose(filter_probs(logits, 1.0, top_p=1.0), [probs], rtol=1e-12)
    # exactly at the boundary: two of four equally likely symbols hold 0.5, which reaches top_p = 0.5
    np.testing.assert_array_equal(filter_probs(np.zeros((1, 4)), 1.0, top_p=0.5), [[0.5, 0.5, 0, 0]])
    # the order of the symbols does not matter, only their probabilities
    shuffled = np.log([[0.06, 0.1, 0.5, 0.04, 0.3]])
    np.testing.assert_allclose(filter_probs(shuffled, 1.0, top_p=0.75), [[0, 0, 0.625, 0, 0.375]], rtol=1e-12)
    texts = sample(fixed_model(probs, "abcde"), seed=2, length=200, num_samples=8, top_p=0.75)
    c = counts(texts, "abcde")
    assert c["c"] == c["d"] == c["e"] == 0
    assert c["a"] / (c["a"] + c["b"]) == pytest.approx(0.625, abs=0.05)


def test_temperature_sharpens_and_flattens():
    logits = np.log([[0.7, 0.2, 0.1]])
    cold = filter_probs(logits, 0.5)
    hot = filter_probs(logits, 2.0)
    np.testing.assert_allclose(cold, [np.array([0.49, 0.04, 0.01]) / 0.54], rtol=1e-12)
    assert hot[0, 0] < 0.7 < cold[0, 0]
    np.testing.assert_allclose(filter_probs(logits, 1.0), [[0.7, 0.2, 0.1]], rtol=1e-12)


def test_unk_is_never_sampled():
    model = fixed_model([0.06, 0.04, 0.9], ("a", "b", UNK), unk=2)
    texts = sample(model, seed=3, length=150, num_samples=6)
    assert UNK not in "".join(texts)
    c = counts(texts, "ab")
    assert c["a"] / (c["a"] + c["b"]) == pytest.approx(0.6, abs=0.06)
    assert sample(model, length=20, temperature=0) == ["a" * 20]
    assert sample(model, length=20, top_k=1) == ["a" * 20]
    assert UNK not in sample(model, seed=4, length=100, top_p=0.5)[0]


def test_prime_is_read_first_and_returned():
    model = random_model()
    text = sample(model, seed=0, length=30, prime="ab\nc")[0]
    assert text.startswith("ab\nc") and len(text) == 34
    # a prime of one symbol and a long prime both work (the long one goes through forward)
    assert len(sample(model, length=5, prime="d")[0]) == 6


def test_prime_with_unknown_symbol():
    model = random_model()
    with pytest.raises(CharlstmError, match="'z'"):
        sample(model, length=10, prime="abz")
    with pytest.raises(CharlstmError, match="U\\+1F600"):
        sample(model, length=10, prime="a\U0001F600")


@pytest.mark.parametrize("stop", ["\n", "ba", "a\nb"])
def test_stop_ends_the_sample_and_is_left_out(stop):
    model = fixed_model([0.4, 0.35, 0.25], "ab\n")
    for seed in range(6):
        free = sample(model, seed=seed, length=120, prime="a")[0]
        stopped = sample(model, seed=seed, length=120, prime="a", stop=stop)[0]
        generated = free[1:]
        if stop in generated:
            assert stopped == "a" + generated[:generated.index(stop)]
        else:
            assert stopped == free


def test_stop_text_never_reached_flushes_the_held_prefix():
    model = fixed_model([0.9, 0.1], "ab")
    # greedy: "aaaaa"; each "aa" could be the start of "aab", so it is held back until the end
    assert sample(model, length=5, temperature=0, stop="aab") == ["aaaaa"]
    assert sample(model, length=5, temperature=0, stop="aa") == [""]
    assert sample(model, length=5, temperature=0, stop="aa", prime="b") == ["b"]


def test_num_samples_is_a_batch():
    model = fixed_model([0.3, 0.3, 0.2, 0.2], "abc\n")
    texts = sample(model, seed=0, length=40, num_samples=5)
    assert isinstance(texts, list) and len(texts) == 5
    assert all(len(t) == 40 for t in texts)
    assert len(set(texts)) == 5                      # each sample draws its own symbols
    lines = sample(model, seed=0, length=200, num_samples=5, stop="\n", prime="ab")
    assert len(lines) == 5 and all(t.startswith("ab") and "\n" not in t for t in lines)
    greedy_batch = sample(random_model(scale=1.5), length=30, temperature=0, num_samples=4)
    assert len(set(greedy_batch)) == 1
    assert sample(model, seed=9, length=40, num_samples=3) == sample(model, seed=9, length=40, num_samples=3)


def test_generate_streams_pieces():
    params, config, vocab = random_model()
    items = list(generate(params, config, vocab, np.random.default_rng(0), length=25, prime="ab"))
    pieces, done = items[0]
    assert pieces == ["ab"] and not done.any()
    assert len(items) >= 26                          # the prime, then one item per symbol
    assert all(len(p[0]) <= 1 for p, _ in items[1:])
    text = "".join(p[0] for p, _ in items)
    assert [text] == sample((params, config, vocab), seed=0, length=25, prime="ab")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "peephole"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_stepper_matches_forward(dtype, tol, B, cell):
    """Every cell's step, at batch 1 (its input picked as a row) and above (as a column), gives
    forward's scores and final state."""
    vocab = Vocab(tuple("abcdefg"))
    config = ModelConfig(vocab_size=len(vocab), hidden_size=7, num_layers=3, cell=cell)
    rng = np.random.default_rng(1)
    # Weights small enough that no cell amplifies float32 rounding over the steps.
    params = {k: (rng.standard_normal(p.shape) * 0.5).astype(dtype)
              for k, p in init_params(config, rng, dtype).items()}
    T = 12
    inputs = rng.integers(0, len(vocab), size=(T, B))
    h0 = (rng.standard_normal((3, B, 7)) * 0.5).astype(dtype)
    c0 = (rng.standard_normal((3, B, 7)) * 0.5).astype(dtype) if "c" in config.cell_type.state else None
    state = State(h0, c0)
    logits, final, _ = forward(params, config, inputs, state)
    stepper = Stepper(params, config, B)
    stepper.set_state(state)
    for t in range(T):
        step_logits = stepper.step(inputs[t])
        assert step_logits.dtype == dtype
        np.testing.assert_allclose(step_logits, logits[t * B:(t + 1) * B], rtol=tol, atol=tol)
    np.testing.assert_allclose(stepper.state().h, final.h, rtol=tol, atol=tol)
    if c0 is not None:
        np.testing.assert_allclose(stepper.state().c, final.c, rtol=tol, atol=tol)


def test_draw_one_row_and_many_rows_follow_the_same_rule():
    """Batch 1 draws by bisection; larger batches count the cdf. Both pick the first symbol whose
    cdf exceeds u * total, never a symbol of probability 0, whatever u."""
    rng = np.random.default_rng(0)
    probs = rng.random((200, 7))
    probs[probs < 0.3] = 0.0                      # zeros inside and at both ends
    probs[:, 0] = 0.0
    probs[::3, -1] = 0.0
    probs[probs.sum(axis=1) == 0, 3] = 1.0
    uniforms = rng.random(200)
    uniforms[:5] = [0.0, 1 - 2 ** -53, 0.5, 1.0, 0.25]   # even u = 1 stays on a possible symbol
    together = draw(probs, uniforms)
    one_by_one = np.array([draw(probs[k:k + 1], uniforms[k:k + 1])[0] for k in range(200)])
    np.testing.assert_array_equal(together, one_by_one)
    assert (probs[np.arange(200), together] > 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1.0, 0.8, 0.05, 1e-300])
@pytest.mark.parametrize("banned", [None, 0, 4])
def test_the_batch_one_draw_is_the_general_one(dtype, temperature, banned):
    """Sampling one text takes OneSample's path; it must pick what filter_probs and draw pick,
    for every row and every u, the edges of u included."""
    rng = np.random.default_rng(int(temperature * 1000) + (banned or 0))
    logits = (rng.standard_normal((300, 9)) * 4).astype(dtype)
    logits[::7, 4] = logits[::7].max(axis=1) + 1          # the banned symbol sometimes the most likely
    logits[::11, 2] = logits[::11, 5]                    # ties
    uniforms = rng.random(300)
    uniforms[:4] = [0.0, 1 - 2 ** -53, 1.0, 0.5]
    one = OneSample(9, temperature, banned)
    for k in range(300):
        expected = draw(filter_probs(logits[k:k + 1], temperature, banned=banned), uniforms[k:k + 1])[0]
        assert one(logits[k:k + 1], uniforms[k]) == expected, k


# --- the edges: tiny temperatures, ties, CRLF clusters, a vocabulary of nothing ----------------------

@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-30])
def test_a_temperature_that_underflows_still_takes_the_most_likely_symbol(temperature):
    """Dividing the scores by 1e-300 overflows; the most likely symbol (not the last) must win."""
    model = fixed_model([0.1, 0.6, 0.2, 0.1], "abcd")
    assert sample(model, length=20, temperature=temperature)[0] == "b" * 20
    probs = filter_probs(np.log([[0.1, 0.6, 0.2, 0.1]]), temperature)
    assert np.array_equal(probs, [[0, 1, 0, 0]])


def test_top_k_keeps_exactly_k_symbols_when_several_tie_at_the_kth_score():
    logits = np.log([[0.1, 0.3, 0.2, 0.2, 0.2]])
    for k in (1, 2, 3, 4):
        probs = filter_probs(logits, 1.0, top_k=k)
        assert np.count_nonzero(probs) == k, probs
    assert np.count_nonzero(filter_probs(logits, 1.0, top_k=2)[0, 2:]) == 1   # one of the tied three
    model = fixed_model([0.4, 0.2, 0.2, 0.2], "abcd")
    assert set(sample(model, length=300, top_k=2, seed=3)[0]) == {"a", "b"}   # the first of the tie by id


def test_stop_at_a_line_feed_leaves_no_carriage_return_of_a_crlf_cluster():
    """In grapheme mode CRLF is one symbol: --stop '\\n' ends the line before it, not after '\\r'."""
    model = fixed_model([0.5, 0.5], ["a", "\r\n"])
    params, config, vocab = model
    vocab = Vocab(("a", "\r\n"), unit="grapheme")
    texts = sample_texts(params, config, vocab, np.random.default_rng(0), length=50, stop="\n", num_samples=8)
    assert all("\r" not in t and "\n" not in t for t in texts), texts
    texts = sample_texts(params, config, vocab, np.random.default_rng(0), length=50, stop="\na", num_samples=8)
    assert all(not t.endswith("\r") for t in texts), texts
    from charlstm.decoding.beam import beam_search
    for result in beam_search(params, config, vocab, 2, length=10, stop="\n", num_results=2):
        assert "\r" not in result.text, result


def test_a_vocabulary_of_only_the_unknown_symbol_has_nothing_to_write():
    model = fixed_model([1.0], [UNK], unk=0)
    with pytest.raises(CharlstmError, match="only the unknown symbol"):
        sample(model, length=5)
    from charlstm.decoding.beam import beam_search
    with pytest.raises(CharlstmError, match="only the unknown symbol"):
        beam_search(*model, 2, length=5)


@pytest.mark.parametrize("num_samples", [100_001, 10 ** 11])
def test_a_batch_too_large_to_hold_is_refused_before_allocating(num_samples):
    with pytest.raises(CharlstmError, match="between 1 and 100,000"):
        sample(fixed_model([0.5, 0.5], "ab"), length=5, num_samples=num_samples)
