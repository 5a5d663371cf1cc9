"""A generator conditioned on a label (model/stack.py's "Labels"): symbol k under label l reads
embedding[k] + label_embedding[l], computed as one input table per label stacked (N·V, G·H) and
read by joint id l·V + k. Its gradients against central differences in float64 for every cell,
with carried state and dropout; a zero label embedding is the unconditional model; decoding,
training, sampling, the Bayes classifier, the checkpoint and the command line."""

import numpy as np
import pytest

from charlstm.errors import CharlstmError
from charlstm.model import (LabelSet, ModelConfig, State, Stepper, dropout_masks, forward, init_params, input_table,
                            joint_ids, loss_and_grads, param_shapes, symbol_ids, zero_state)
from charlstm.nn.cells import CELLS
from charlstm.nn.head import cross_entropy_forward
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def setup(cell, V=5, E=3, H=4, L=2, T=4, B=2, N=3, dropout=0.0, seed=0):
    """A labelled model with every parameter random and not small, a carried state, and joint
    ids that use every label."""
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout, cell=cell, embedding_size=E,
                         num_labels=N)
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, np.float64)
    for key in params:
        params[key] = rng.standard_normal(params[key].shape) * 0.6
    ids = rng.integers(0, V, size=(T, B))
    labels = rng.integers(0, N, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    state = State(**{part: rng.standard_normal((L, B, H)) * 0.7 for part in config.cell_type.state})
    return config, params, joint_ids(ids, labels, V), targets, state


# --- the math ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_gradients_of_the_label_conditioned_input_with_carried_state_and_dropout(cell, dropout):
    config, params, inputs, targets, state = setup(cell, dropout=dropout)
    masks = dropout_masks(config, 4, 2, np.random.default_rng(7), np.float64) if dropout else None
    loss, grads, _, dstate = loss_and_grads(params, config, inputs, targets, state, masks)

    def f():
        logits, _, _ = forward(params, config, inputs, state, masks)
        return cross_entropy_forward(logits, targets.reshape(-1))[0]

    assert loss == pytest.approx(f(), rel=1e-14)
    assert set(grads) == set(params) and {"embedding", "label_embedding"} <= set(grads)
    for key, p in params.items():
        assert grads[key].shape == p.shape, key
        err = rel_error(grads[key], numerical_gradient(f, p))
        assert err < TOL, f"{cell} {key}: relative error {err:.2e}"
    for name in config.cell_type.state:
        err = rel_error(getattr(dstate, name), numerical_gradient(f, getattr(state, name)))
        assert err < TOL, f"{cell} initial state {name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_stacked_table_is_the_embedding_of_symbol_plus_label_times_wx(cell):
    config, params, *_ = setup(cell, V=4, E=3, H=2, N=3)
    table = input_table(params, config)
    Wx = params[f"{cell}.0.Wx"]
    assert table.shape == (3 * 4, Wx.shape[1])
    for label in range(3):
        for k in range(4):
            row = (params["embedding"][k] + params["label_embedding"][label]) @ Wx
            np.testing.assert_allclose(table[joint_ids(k, label, 4)], row, rtol=1e-12, atol=1e-12)
    assert symbol_ids(joint_ids(np.arange(4), 2, 4), 4).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("num_labels", [1, 3])
def test_a_zero_label_embedding_computes_exactly_the_unconditional_model(cell, num_labels):
    """Every label then reads the unconditional table: the same loss and state to the bit
    (float32, as training computes); the same gradient of every shared parameter to the bit with
    one label, and to rounding with several (the table's gradient is then summed over labels)."""
    config, params, inputs, targets, state = setup(cell, N=num_labels, dropout=0.3)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    params["label_embedding"][:] = 0
    state = State(*(None if part is None else part.astype(np.float32) for part in state))
    plain = ModelConfig(**{**config.to_dict(), "num_labels": 0})
    plain_params = {k: v for k, v in params.items() if k != "label_embedding"}
    masks = dropout_masks(config, 4, 2, np.random.default_rng(7), np.float32)
    loss, grads, final, dstate = loss_and_grads(params, config, inputs, targets, state, masks)
    plain_loss, plain_grads, plain_final, plain_dstate = loss_and_grads(plain_params, plain, symbol_ids(inputs, 5),
                                                                         targets, state, masks)
    assert loss == plain_loss
    for key, value in plain_grads.items():
        if num_labels == 1:
            np.testing.assert_array_equal(grads[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(grads[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    for part in config.cell_type.state:       # the cells' backward is the same: only the table's sum differs
        np.testing.assert_array_equal(getattr(final, part), getattr(plain_final, part))
        np.testing.assert_array_equal(getattr(dstate, part), getattr(plain_dstate, part))


def test_a_new_labelled_model_is_the_unconditional_one_plus_a_zero_label_embedding():
    config = ModelConfig(vocab_size=7, hidden_size=5, num_layers=2, cell="gru", embedding_size=4, num_labels=3)
    plain = ModelConfig(vocab_size=7, hidden_size=5, num_layers=2, cell="gru", embedding_size=4)
    params = init_params(config, np.random.default_rng(3))
    plain_params = init_params(plain, np.random.default_rng(3))
    assert list(params) == list(param_shapes(config))
    assert param_shapes(config)["label_embedding"] == (3, 4)
    assert not params["label_embedding"].any()
    for key, value in plain_params.items():
        np.testing.assert_array_equal(params[key], value, err_msg=key)


def test_labels_need_an_embedding_and_round_trip_through_the_config():
    with pytest.raises(CharlstmError, match="embedding size above 0"):
        ModelConfig(vocab_size=3, embedding_size=0, num_labels=2)
    with pytest.raises(CharlstmError, match="number of labels"):
        ModelConfig(vocab_size=3, num_labels=-1)
    config = ModelConfig(vocab_size=3, hidden_size=4, embedding_size=2, num_labels=5)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({"vocab_size": 3, "hidden_size": 2, "num_layers": 1}).num_labels == 0


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch", [1, 3])
def test_decoding_joint_ids_one_at_a_time_equals_the_forward_pass(cell, batch):
    config, params, inputs, _, _ = setup(cell, V=6, E=4, H=5, L=2, T=6, B=batch, N=2)
    params = {k: (v * 0.5).astype(np.float32) for k, v in params.items()}
    state = zero_state(config, batch, np.float32)
    logits, final, _ = forward(params, config, inputs, state)
    stepper = Stepper(params, config, batch)
    stepper.set_state(state)
    for t in range(inputs.shape[0]):
        np.testing.assert_allclose(stepper.step(inputs[t]), logits.reshape(6, batch, 6)[t], rtol=1e-5, atol=1e-6)
    for part in config.cell_type.state:
        np.testing.assert_allclose(getattr(stepper.state(), part), getattr(final, part), rtol=1e-5, atol=1e-6)


def test_a_label_set_names_its_labels_and_their_priors():
    labels = LabelSet(("a", "b"), (3, 1))
    assert labels.index("b") == 1
    np.testing.assert_allclose(labels.priors(), [0.75, 0.25])
    assert LabelSet.from_dict(labels.to_dict()) == labels
    with pytest.raises(CharlstmError, match="not one of the model's labels \\('a', 'b'\\)"):
        labels.index("c")
    with pytest.raises(CharlstmError, match="examples"):
        LabelSet.from_dict({"names": ["a"], "examples": ["x"]})


# --- training, sampling and classifying a toy task -------------------------------------------------

TOY = dict(hidden_size=16, num_layers=1, batch_size=8, seq_length=32, lr=1e-2, eval_every=100,
           progress=False, stop_on_interrupt=False, sample_length=20)


def toy_examples(n, seed):
    """Label a writes runs of "a", label b runs of "b", 3 to 9 long: the label alone says which."""
    rng = np.random.default_rng(seed)
    names = rng.choice(["a", "b"], size=n).tolist()
    return names, [name * int(rng.integers(3, 10)) for name in names]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    import charlstm
    from charlstm.data.labelled import write_labelled
    root = tmp_path_factory.mktemp("toy")
    write_labelled(root / "ab.tsv", *toy_examples(400, seed=0))
    model = charlstm.train(root / "ab.tsv", root / "run", labels=True, max_steps=300, **TOY)
    return root, model


def test_sampling_under_each_label_writes_mostly_its_letter(toy):
    root, model = toy
    assert model.labels.names == ("a", "b") and model.config.num_labels == 2
    for label, other in (("a", "b"), ("b", "a")):
        text = model.sample(300, label=label, seed=1, temperature=1.0).replace("\n", "")
        assert text.count(label) >= 0.95 * len(text) and text.count(other) <= 0.05 * len(text), (label, text)
        greedy = model.beam_search(3, length=12, label=label)[0].text
        assert set(greedy) <= {label, "\n"} and label in greedy


def test_bayes_classifies_held_out_toy_examples(toy):
    _, model = toy
    names, texts = toy_examples(40, seed=1)
    found = model.classify(texts)
    assert [label for label, _ in found] == names
    for label, probs in found:
        assert set(probs) == {"a", "b"} and sum(probs.values()) == pytest.approx(1.0)
        assert probs[label] > 0.9
    assert model.classify("aaaa")[0][0] == "a"
    assert model.classify(["bbzb"])[0][0] == "b"       # a symbol no example had is left out


def test_the_bayes_posterior_is_the_likelihood_times_the_prior(toy):
    """p(label | text) from the model's own scores: log p(text + newline | label), read after a
    newline under that label (Model.evaluate of the whole line), and the label counts."""
    from charlstm.training.conditional import classify_bayes
    _, model = toy
    texts = ["aab", "bbbbbb", "ab"]
    posteriors = classify_bayes(model, texts)
    priors = model.labels.priors()
    for text, p in zip(texts, posteriors):
        log_p = []
        for label in ("a", "b"):
            scored = model.evaluate("\n" + text + "\n", label=label)
            log_p.append(-scored["nats_per_char"] * scored["symbols"])
        expected = np.exp(log_p) * priors
        np.testing.assert_allclose(p, expected / expected.sum(), rtol=1e-4)


def test_a_labelled_checkpoint_is_format_4_and_loads_its_labels(toy):
    import json
    import charlstm
    root, model = toy
    with np.load(root / "run" / "best.npz") as z:
        meta = json.loads(str(z["meta"]))
        assert z["label_embedding"].shape == (2, model.config.embedding_size)
    assert meta["version"] == 4 and meta["config"]["num_labels"] == 2
    assert meta["labels"]["names"] == ["a", "b"] and sum(meta["labels"]["examples"]) == 400
    loaded = charlstm.load(root / "run" / "best.npz")
    assert loaded.labels == model.labels
    assert loaded.sample(40, label="b", seed=3) == model.sample(40, label="b", seed=3)


def test_a_labelled_run_evaluates_its_file_and_its_held_out_part(toy):
    import charlstm
    from charlstm.errors import CharlstmWarning
    root, model = toy
    held = charlstm.evaluate(root / "run" / "best.npz", held_out=True)
    assert held["symbols"] > 0 and held["nats_per_char"] < 0.6
    with pytest.warns(CharlstmWarning, match="trained on"):
        whole = charlstm.evaluate(root / "run" / "best.npz", path=root / "ab.tsv")
    assert whole["examples"] == 400 and whole["nats_per_char"] < 0.6


def test_refusals_of_a_labelled_model_are_one_line(toy, tmp_path):
    import charlstm
    from charlstm.errors import ArgumentError
    root, model = toy
    with pytest.raises(ArgumentError, match="conditioned on a label: give label, one of 'a', 'b'"):
        model.sample(10)
    with pytest.raises(ArgumentError, match="label 'c' is not one of the model's labels"):
        model.sample(10, label="c")
    for path, what in ((tmp_path / "m.html", "page"), (tmp_path / "m.onnx", "ONNX"), (tmp_path / "m.pt", "PyTorch")):
        if what != "page":
            pytest.importorskip("torch" if what == "PyTorch" else "onnx")
        with pytest.raises(CharlstmError, match=f"{what}.* does not support a model conditioned on labels"):
            charlstm.export_model(model, path)
        assert not path.exists()
    with pytest.raises(CharlstmError, match="tracing does not support"):
        charlstm.trace(model, "aaa")
    plain = charlstm.Model.create(model.vocab, hidden_size=4, num_layers=1)
    with pytest.raises(ArgumentError, match="not conditioned on labels"):
        plain.sample(10, label="a")
    with pytest.raises(CharlstmError, match="needs a model conditioned on labels"):
        plain.classify(["aaa"])


# --- the training run --------------------------------------------------------------------------------

def test_a_one_label_run_starts_as_the_unconditional_run_on_the_joined_text(tmp_path):
    """One label and a zero label embedding: the same parameters, streams, dropout and so the
    same first loss, to the bit, as a run without labels on the text the labelled run reads."""
    from charlstm.data.labelled import read_labelled, write_labelled
    from charlstm.training.conditional import joined_examples
    from charlstm.training.loop import TrainConfig, train
    _, texts = toy_examples(120, seed=2)
    write_labelled(tmp_path / "one.tsv", ["x"] * len(texts), [t + "ab"[i % 2] for i, t in enumerate(texts)])
    pieces, _ = joined_examples(read_labelled(tmp_path / "one.tsv"), seed=5)
    config = TrainConfig(batch_size=4, seq_length=10, max_steps=1, eval_every=1, sample_length=0, seed=5)
    model = {"hidden_size": 8, "num_layers": 2, "dropout": 0.3, "cell": "gru"}
    labelled = train(tmp_path / "one.tsv", tmp_path / "l", TrainConfig(**{**config.__dict__, "labels": True}),
                     model_options=model, progress=False)
    plain = train(text="".join(pieces), out_dir=tmp_path / "p", config=config, model_options=model, progress=False)
    assert labelled.config.num_labels == 1 and plain.config.num_labels == 0
    assert labelled.evaluations[0].train_loss == plain.evaluations[0].train_loss


def test_a_labelled_run_interrupted_and_resumed_equals_the_run_uninterrupted(tmp_path):
    import shutil
    from charlstm.data.labelled import write_labelled
    from charlstm.training.loop import TrainConfig, train
    write_labelled(tmp_path / "ab.tsv", *toy_examples(150, seed=3))
    config = TrainConfig(batch_size=4, seq_length=12, max_steps=20, eval_every=10, sample_length=10, seed=2,
                         labels=True)
    model = {"hidden_size": 8, "num_layers": 1, "embedding_size": 4}

    def keep(evaluation):
        if evaluation.step == 10:
            shutil.copy(tmp_path / "a" / "latest.npz", tmp_path / "step10.npz")

    whole = train(tmp_path / "ab.tsv", tmp_path / "a", config, model_options=model, progress=False, on_eval=keep)
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "step10.npz", tmp_path / "b" / "latest.npz")
    resumed = train(tmp_path / "ab.tsv", tmp_path / "b", TrainConfig(), resume=tmp_path / "b" / "latest.npz",
                    progress=False)
    assert resumed.step == 20 and resumed.labels == whole.labels
    for key, value in whole.params.items():
        np.testing.assert_array_equal(resumed.params[key], value, err_msg=key)


def test_the_joined_corpus_reads_each_symbol_under_the_label_of_the_symbol_it_predicts():
    from charlstm.data.labelled import from_names
    from charlstm.data.vocab import build_vocab
    from charlstm.training.conditional import joined_examples, labelled_ids
    data = from_names(["p", "q", "p"], ["ab", "c", "d"])
    pieces, labels = joined_examples(data, seed=0)
    assert sorted(pieces) == ["ab\n", "c\n", "d\n"] and len(labels) == 3
    vocab = build_vocab("".join(pieces))
    ids = labelled_ids(pieces, labels, len(vocab), lambda piece: vocab.encode(piece))
    V, text = len(vocab), "".join(pieces)
    assert vocab.decode(symbol_ids(ids, V)) == text
    of_symbol = np.concatenate([[label] * len(piece) for piece, label in zip(pieces, labels)])
    np.testing.assert_array_equal(ids // V, np.append(of_symbol[1:], of_symbol[-1]))
    changes = np.flatnonzero(np.diff(ids // V)) + 1              # where the label read changes ...
    assert len(changes) >= 1 and all(text[k] == "\n" for k in changes)   # ... is at an example's end


# --- the command line --------------------------------------------------------------------------------

def invoke(*args, code=0):
    from click.testing import CliRunner
    from charlstm.cli import main
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_the_command_line_trains_samples_and_evaluates_a_labelled_model(tmp_path):
    (tmp_path / "ab.tsv").write_text("".join(f"a\t{'a' * (3 + i % 5)}\nb\t{'b' * (3 + i % 4)}\n" for i in range(100)),
                                     encoding="utf-8")
    run = tmp_path / "run"
    invoke("train", tmp_path / "ab.tsv", "--labels", "--out", run, "--hidden", 16, "--layers", 1, "--batch-size", 8,
           "--seq-length", 20, "--max-steps", 200, "--eval-every", 100, "--lr", 0.01, "--quiet")
    for label in "ab":
        text = invoke("sample", run / "best.npz", "--label", label, "--length", 60, "--seed", 1).replace("\n", "")
        assert text.count(label) >= 0.9 * len(text), text
    assert set(invoke("sample", run / "best.npz", "--label", "b", "--beam", 2, "--length", 10)) <= {"b", "\n"}
    assert "(1150 symbols, 200 examples)" in invoke("eval", run / "best.npz", tmp_path / "ab.tsv")
    out = invoke("sample", run / "best.npz", "--length", 5, code=1)
    assert out.strip() == "charlstm: error: this model is conditioned on a label: give --label, one of 'a', 'b'"
    out = invoke("sample", run / "best.npz", "--label", "nope", code=1)
    assert out.strip() == "charlstm: error: --label 'nope' is not one of the model's labels ('a', 'b')"


def test_the_command_line_refuses_a_label_for_a_model_without_labels_and_bad_rows(tmp_path):
    (tmp_path / "plain.txt").write_text("one two three\n" * 40, encoding="utf-8")
    invoke("train", tmp_path / "plain.txt", "--out", tmp_path / "run", "--hidden", 4, "--layers", 1, "--batch-size", 2,
           "--seq-length", 8, "--max-steps", 2, "--quiet")
    out = invoke("sample", tmp_path / "run" / "best.npz", "--label", "a", code=1)
    assert out.strip().startswith("charlstm: error: --label: this model is not conditioned on labels")
    (tmp_path / "bad.tsv").write_text("a\tfine\n\nb no tab here\n", encoding="utf-8")
    out = invoke("train", tmp_path / "bad.tsv", "--labels", "--out", tmp_path / "r2", code=1)
    assert out.strip() == f"charlstm: error: {tmp_path / 'bad.tsv'}:3: no tab; write label<TAB>text"
    assert not (tmp_path / "r2").exists()
    out = invoke("train", tmp_path / "plain.txt", "--labels", "--out", tmp_path / "r3", code=1)
    assert out.count("\n") == 1 and "no tab" in out
    out = invoke("train", tmp_path / "bad.tsv", "--labels", "--embedding-size", 0, "--out", tmp_path / "r4", code=1)
    assert "error" in out and out.count("\n") == 1


# --- checkpoints from before labels ---------------------------------------------------------------

def test_checkpoints_of_formats_1_to_3_load_without_labels_and_save_as_before(tmp_path):
    """The golden format-1 model (and the format-2/3 runs of test_golden and test_embedding)
    load with no labels; a model without labels is still written as format 3, its config record
    without num_labels, so a charlstm from before labels reads it."""
    import json
    from pathlib import Path
    import charlstm
    model = charlstm.load(Path(__file__).parent / "data" / "golden_v1_step30.npz")
    assert model.config.num_labels == 0 and model.labels is None
    model.save(tmp_path / "again.npz")
    with np.load(tmp_path / "again.npz") as z:
        meta = json.loads(str(z["meta"]))
        assert "label_embedding" not in z.files
    assert meta["version"] == 3 and "num_labels" not in meta["config"] and "labels" not in meta
    assert charlstm.load(tmp_path / "again.npz").sample(40, seed=5) == model.sample(40, seed=5)


def test_a_labelled_checkpoint_needs_its_label_names(tmp_path, toy):
    import json
    from charlstm.training.checkpoint import load_checkpoint
    root, _ = toy
    with np.load(root / "run" / "best.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for change, message in ((lambda m: m.pop("labels"), "lacks a valid 'labels'"),
                            (lambda m: m["labels"]["names"].pop(), "1 label names for 2 counts of examples"),
                            (lambda m: m.update(version=3), "format 3 checkpoint cannot hold labels")):
        broken = json.loads(json.dumps(meta))
        change(broken)
        np.savez(tmp_path / "broken.npz", **{**arrays, "meta": np.array(json.dumps(broken))})
        with pytest.raises(CharlstmError, match=message):
            load_checkpoint(tmp_path / "broken.npz")


def test_classify_eval_and_predict_take_a_generator_conditioned_on_labels(toy, tmp_path):
    """`charlstm classify eval` and `predict` (and load_labels_model) classify by Bayes' rule with a
    generator trained with --labels, as they do with a classifier's checkpoint."""
    import json
    import charlstm
    from charlstm.data.labelled import write_labelled
    root, model = toy
    names, texts = toy_examples(40, seed=1)
    write_labelled(tmp_path / "held.tsv", names, texts)
    ckpt = root / "run" / "best.npz"
    loaded = charlstm.load_labels_model(ckpt)
    assert isinstance(loaded, charlstm.BayesClassifier) and loaded.labels == ("a", "b")
    figures = loaded.evaluate(tmp_path / "held.tsv")
    assert figures["accuracy"] == 1.0 and figures["examples"] == 40
    record = json.loads(invoke("classify", "eval", ckpt, tmp_path / "held.tsv", "--json"))
    assert record["accuracy"] == 1.0 and record["label_names"] == ["a", "b"]
    (tmp_path / "lines.txt").write_text("aaaa\nbbbbbb\n", encoding="utf-8")
    rows = [line.split("\t") for line in invoke("classify", "predict", ckpt, tmp_path / "lines.txt").splitlines()]
    assert [r[1] for r in rows] == ["a", "b"]
    invoke("tag", "eval", ckpt, tmp_path / "lines.txt", code=1)      # a generator is no tagger
