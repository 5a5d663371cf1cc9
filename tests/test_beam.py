"""charlstm.decoding.beam: a beam of one is greedy decoding, and a wider beam finds the most likely
text where greedy decoding misses it, on a model whose distribution is known."""

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm import cli
from charlstm.data.vocab import build_vocab
from charlstm.errors import ArgumentError, CharlstmError
from charlstm.nn.cells import CELLS


def random_model(cell="lstm", seed=0):
    vocab = build_vocab("abcde fgh\n.")
    return charlstm.Model.create(vocab, hidden_size=12, num_layers=2, cell=cell, seed=seed)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("prime", ["", "ab c"])
def test_a_beam_of_one_is_greedy_decoding(cell, prime):
    model = random_model(cell)
    greedy = model.sample(60, temperature=0, prime=prime)
    [result] = model.beam_search(1, length=60, prime=prime)
    assert result.text == greedy and result.symbols == 60 and not result.finished
    assert model.sample(60, prime=prime, beam=1) == greedy


def test_a_beam_of_one_with_stop_is_greedy_decoding_with_stop():
    model = random_model(seed=3)
    greedy = model.sample(80, temperature=0, stop="e")
    assert model.sample(80, beam=1, stop="e") == greedy


def test_log_prob_is_the_models_own():
    """The reported log-probability is what the model gives the continuation, read afresh."""
    model = random_model(seed=1)
    result = model.beam_search(3, length=12, prime="ab")[0]
    ids = model.vocab.encode(result.text)
    logp = charlstm.trace(model, result.text, top=1).loss          # nats of each next symbol
    assert result.log_prob == pytest.approx(-float(np.sum(logp[1:len(ids) - 1])), rel=1e-4)


@pytest.fixture(scope="module")
def known_model(tmp_path_factory):
    """Lines 'ac', 'ad', 'ae' (0.2 each) and 'bf' (0.4): greedy takes 'a' (0.6) and then one of
    three (1/3), a line of probability 0.2; the most likely line is 'bf' (0.4)."""
    rng = np.random.default_rng(0)
    lines = rng.choice(["ac", "ad", "ae", "bf"], p=[0.2, 0.2, 0.2, 0.4], size=4000)
    text = "\n".join(lines) + "\n"
    return charlstm.train(text=text, out_dir=tmp_path_factory.mktemp("known"), hidden_size=24, num_layers=1,
                          dropout=0.0, batch_size=16, seq_length=24, lr=1e-2, max_steps=300, eval_every=300,
                          sample_length=0, progress=False, stop_on_interrupt=False)


def test_a_wider_beam_finds_the_line_greedy_decoding_misses(known_model):
    greedy = known_model.sample(6, temperature=0, stop="\n")
    assert greedy.startswith("a")
    results = known_model.beam_search(4, length=6, stop="\n", num_results=4)
    assert results[0].text == "bf" and results[0].finished
    assert np.exp(results[0].log_prob) == pytest.approx(0.4, abs=0.08)
    assert {r.text for r in results} == {"ac", "ad", "ae", "bf"}      # the four lines, best first
    assert all(a.score >= b.score for a, b in zip(results, results[1:]))


def test_bad_beam_settings_are_one_line_errors():
    model = random_model()
    for kwargs, message in [({"beam": 0}, "beam must be at least 1"), ({"beam": 2, "num_results": 3}, "between 1 and"),
                            ({"beam": 2, "length": 0}, "length"), ({"beam": 2, "length_penalty": -1}, "penalty")]:
        with pytest.raises(CharlstmError, match=message):
            model.beam_search(**kwargs)


def test_the_command_line_beam(known_model, tmp_path):
    ckpt = tmp_path / "m.npz"
    known_model.save(ckpt)
    runner = CliRunner()
    out = runner.invoke(cli.main, ["sample", str(ckpt), "--beam", "4", "--stop", "\\n", "--length", "6",
                                   "--num-samples", "2"])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "bf"
    bad = runner.invoke(cli.main, ["sample", str(ckpt), "--beam", "4", "--temperature", "0.5"])
    assert bad.exit_code == 1 and "does not apply" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_the_api_refuses_what_a_beam_search_would_ignore(known_model):
    """Model.sample refuses, as the command does, an argument that would have no effect."""
    for extra in ({"temperature": 0.5}, {"top_k": 2}, {"top_p": 0.5}, {"seed": 1}):
        with pytest.raises(ArgumentError, match=f"{next(iter(extra))}: does not apply to a beam search"):
            known_model.sample(6, beam=4, **extra)
    with pytest.raises(ArgumentError, match="length_penalty ranks the texts of a beam search; without beam"):
        known_model.sample(6, length_penalty=0.5)
    assert known_model.sample(6, beam=4, length_penalty=0.0) == known_model.beam_search(4, length=6)[0].text


def test_sample_and_generate_share_one_default_temperature(known_model):
    """The API's sample, its stream and the command all draw at SAMPLE_TEMPERATURE unless told."""
    from charlstm.decoding.sampling import SAMPLE_TEMPERATURE
    assert SAMPLE_TEMPERATURE == 0.8
    by_default = known_model.sample(40, seed=5)
    assert by_default == known_model.sample(40, seed=5, temperature=SAMPLE_TEMPERATURE)
    assert by_default != known_model.sample(40, seed=5, temperature=1.0)
    streamed = "".join(p[0] for p, _ in known_model.generate(40, seed=5))
    assert streamed == by_default
