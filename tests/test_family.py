"""The LSTM's family on the language that separates it: `remember` with gaps of up to 50 symbols.
An LSTM (and a GRU) carries the first letter across the gap; a vanilla RNN's memory of it fades,
so it writes the last letter at chance. The same small model and budget for both (the README's
synthetic recipe, shortened: 1 x 32 units, 1,500 steps)."""

import numpy as np
import pytest

import charlstm
from charlstm.analysis.synth_check import check_model
from charlstm.data.corpora import synth_lines

GAP = 50


@pytest.fixture(scope="module")
def corpus():
    lines = synth_lines("remember", 20_000, max_n=GAP, rng=np.random.default_rng(0))
    return "".join(line + "\n" for line in lines)


def remember_report(cell, corpus, tmp_path):
    charlstm.train(text=corpus, out_dir=tmp_path / cell, cell=cell, num_layers=1, hidden_size=32, dropout=0.0,
                   batch_size=32, seq_length=50, lr=0.01, max_steps=1500, eval_every=1500, sample_length=0,
                   progress=False, stop_on_interrupt=False)
    model = charlstm.load(tmp_path / cell / "best.npz")
    return check_model(model, "remember", n=300, max_n=GAP, context=3, seed=0)


def test_the_lstm_remembers_across_a_long_gap_and_the_rnn_does_not(corpus, tmp_path):
    lstm = remember_report("lstm", corpus, tmp_path)
    rnn = remember_report("rnn", corpus, tmp_path)
    assert lstm["valid_share"] >= 0.9, lstm["valid_share"]
    assert (lstm["extrapolation"]["perfect_up_to"] or 0) >= GAP
    # A line is valid only if its last letter matches the first: chance is one half.
    assert rnn["valid_share"] <= 0.7, rnn["valid_share"]
    assert (rnn["extrapolation"]["perfect_up_to"] or 0) < 10
