"""The classifier: its batches, its training run (learning, bounds, Ctrl-C, checkpoints), its
figures, the API and the `charlstm classify` and `charlstm corpus tweet-sources/languages`
commands. Every input is made here, in tmp_path; each run is a tiny model of a few hundred steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import charlstm
from charlstm import api, cli
from charlstm.data.labelled import from_names, read_labelled, write_labelled
from charlstm.data.vocab import UNK, build_vocab
from charlstm.errors import ArgumentError, CharlstmError
from charlstm.training.label_batches import (Examples, batch, cut_spans, encode_texts, label_vocab, sorted_batches,
                                             training_batches)
from charlstm.training.label_checkpoint import load_labels_checkpoint
from charlstm.training.label_eval import confusion, figure_lines, figures

TINY = {"hidden_size": 8, "num_layers": 1, "embedding_size": 8, "dropout": 0.0, "batch_size": 16, "lr": 0.03,
        "progress": False}


def letters(n: int = 240, seed: int = 0) -> tuple[list[str], list[str]]:
    """(labels, texts): texts of 'a's (label a) or 'b's (label b), 3 to 20 long, a third of each
    text noise ('x', 'y'): separable by which of the two letters a text holds."""
    rng = np.random.default_rng(seed)
    names, texts = [], []
    for i in range(n):
        label = "ab"[i % 2]
        texts.append("".join(rng.choice([label, label, "x", "y"], p=[0.35, 0.35, 0.15, 0.15])
                             for _ in range(int(rng.integers(3, 21)))))
        if label not in texts[-1]:
            texts[-1] += label
        names.append(label)
    return names, texts


@pytest.fixture(scope="module")
def toy():
    names, texts = letters()
    return from_names(names, texts)


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("classify") / "run"
    return api.train_classifier(toy, out, max_steps=150, eval_every=50, **TINY)


# --- batches ---------------------------------------------------------------------------------------

def test_a_pass_visits_every_example_once_in_batches_of_neighbours_in_length():
    lengths = np.random.default_rng(1).integers(1, 200, size=103)
    batches = training_batches(lengths, 10, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert [len(b) for b in batches].count(10) == 10
    # sorted before cutting: the batches' length ranges do not overlap
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
    again = training_batches(lengths, 10, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))          # a seed means the same run
    other = training_batches(lengths, 10, np.random.default_rng(1))
    assert any(not np.array_equal(a, b) for a, b in zip(batches, other))
    assert np.array_equal(np.concatenate(sorted_batches(lengths, 7)), np.argsort(lengths, kind="stable"))


def test_a_batch_is_time_first_right_padded_with_its_lengths_and_labels():
    examples = Examples.of([np.array([3, 4]), np.array([5]), np.array([6, 7, 8])], np.array([1, 0, 1]))
    ids, lengths, labels = batch(examples, np.array([2, 1]))
    assert ids.tolist() == [[6, 5], [7, 0], [8, 0]]
    assert lengths.tolist() == [3, 1] and labels.tolist() == [1, 0]
    tags = Examples.of([np.array([3, 4]), np.array([5])], [np.array([1, 2]), np.array([3])])
    assert batch(tags, np.array([0, 1]))[2].tolist() == [[1, 3], [2, 0]]


def test_the_vocabulary_always_has_the_unknown_symbol_and_long_texts_are_cut():
    vocab = label_vocab(["abc", "abd"], min_count=2)
    assert vocab.symbols == ("a", "b", UNK)              # c and d are rare
    ids, cut = encode_texts(vocab, ["abz", "a" * 12], max_length=10)
    assert vocab.decode(ids[0]) == "ab" + UNK and len(ids[1]) == 10 and cut == 1
    assert label_vocab(["ab"]).unk is not None          # nothing rare, and still a place for the unseen


@pytest.mark.parametrize("text", ["", "one line", "a\nbb\nccc\n", "x" * 25 + "\nshort\n" + "y" * 3, "\n\n\n\n"])
def test_stretches_cover_the_text_at_most_max_length_and_end_at_line_ends(text):
    spans = cut_spans(text, 8)
    assert "".join(text[a:b] for a, b in spans) == text
    assert all(0 < b - a <= 8 for a, b in spans)
    for a, b in spans[:-1]:
        assert text[b - 1] == "\n" or "\n" not in text[a:b]     # a line end inside is where it ends


# --- figures -----------------------------------------------------------------------------------------

def test_figures_of_a_hand_made_confusion_table():
    #            predicted: a  b  c
    table = np.array([[5, 1, 0],      # true a
                      [2, 6, 0],      # true b
                      [0, 3, 0]])     # true c: never predicted right
    found = figures(table, ["a", "b", "c"])
    assert found["accuracy"] == 11 / 17 and found["examples"] == 17
    assert found["labels"]["a"] == {"precision": 5 / 7, "recall": 5 / 6, "support": 6}
    assert found["labels"]["b"] == {"precision": 6 / 10, "recall": 6 / 8, "support": 8}
    assert found["labels"]["c"] == {"precision": None, "recall": 0.0, "support": 3}   # nothing predicted c
    assert np.array_equal(confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3),
                          [[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    lines = figure_lines(found)
    assert lines[0] == "accuracy 0.647 (11 of 17 examples)"
    assert lines[4].split() == ["c", "-", "0.000", "3"]
    assert lines[-3].split() == ["a", "5", "1", "0"]
    json.dumps(found)                  # a JSON record as it is


# --- training --------------------------------------------------------------------------------------

def test_a_classifier_learns_separable_texts_to_full_held_out_accuracy(trained):
    history = trained.history
    assert [ev.step for ev in history] == [50, 100, 150]
    assert history[-1].val_accuracy == 1.0
    assert history[-1].train_loss < history[0].train_loss
    run = trained.out_dir
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [50, 100, 150]
    assert metrics[-1]["labels"]["a"]["recall"] == 1.0 and sum(map(sum, metrics[-1]["confusion"])) > 10
    best = load_labels_checkpoint(run / "best.npz")
    assert best.kind == "classifier" and best.labels == ("a", "b")
    assert best.train["best"]["step"] == trained.best_step
    assert best.train["best"]["val_accuracy"] == max(ev.val_accuracy for ev in history)
    assert trained.predict(["aaxa", "bbyb"]) == [("a", pytest.approx({"a": 1, "b": 0}, abs=0.1)),
                                                 ("b", pytest.approx({"a": 0, "b": 1}, abs=0.1))]


@pytest.mark.parametrize("options", [{"bidirectional": True}, {"pooling": "last"},
                                     {"bidirectional": True, "pooling": "last", "cell": "gru"}],
                         ids=["bidirectional", "last", "bidirectional-last-gru"])
def test_both_directions_and_either_pooling_learn_too(toy, tmp_path, options):
    model = api.train_classifier(toy, tmp_path / "run", max_steps=150, eval_every=150, **TINY, **options)
    assert model.history[-1].val_accuracy == 1.0
    assert model.config.bidirectional == options.get("bidirectional", False)
    assert model.config.pooling == options.get("pooling", "mean")         # mean unless asked


def test_predictions_are_identical_after_a_save_and_a_load(trained, tmp_path):
    texts = ["axa", "ybby", "xyxy", "a" * 50, "zzz é"]        # unseen symbols read as unknown
    trained.save(tmp_path / "m.npz")
    for again in (charlstm.api.load_labels_model(tmp_path / "m.npz"), api.load_labels_model(trained.out_dir / "latest.npz")):
        assert isinstance(again, api.Classifier) and again.labels == trained.labels
        assert again.predict(texts) == trained.predict(texts)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    assert (meta["format"], meta["version"], meta["kind"]) == ("charlstm-labels", 1, "classifier")
    assert meta["labels"] == ["a", "b"] and meta["config"]["task"] == "classify" and meta["max_length"] == 1000


def test_a_stop_asked_between_steps_leaves_a_loadable_latest_checkpoint(toy, tmp_path):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 70           # before step 71

    model = api.train_classifier(toy, tmp_path / "run", max_steps=1000, eval_every=50, should_stop=should_stop,
                                 stop_on_interrupt=False, **TINY)
    assert model.interrupted and model.step == 70
    assert [ev.step for ev in model.history] == [50]          # the stop adds no evaluation
    latest = api.load_labels_model(tmp_path / "run" / "latest.npz")
    assert latest.step == 70 and latest.predict(["aaa"]) == model.predict(["aaa"])
    assert load_labels_checkpoint(tmp_path / "run" / "best.npz").train["step"] == 50


def test_bounds_by_time_and_by_passes(toy, tmp_path):
    by_passes = api.train_classifier(toy, tmp_path / "a", epochs=2, eval_every=1000, **TINY)
    per_pass = -(-int(len(toy) * 0.9 + 1) // 16)              # about 0.9 of 240 examples, 16 a batch
    assert abs(by_passes.step - 2 * per_pass) <= 2 and by_passes.history[-1].epoch == pytest.approx(2, abs=0.1)
    by_time = api.train_classifier(toy, tmp_path / "b", max_time=0.3, eval_every=10_000, **TINY)
    assert by_time.step > 0 and by_time.history[-1].elapsed_s < 2


def test_a_held_out_file_replaces_the_split_and_its_labels_must_be_known(toy, tmp_path):
    names, texts = letters(40, seed=5)
    write_labelled(tmp_path / "held.tsv", names, texts)
    model = api.train_classifier(toy, tmp_path / "run", held_out=tmp_path / "held.tsv", max_steps=20, eval_every=20,
                                 **TINY)
    assert sum(model.history[-1].labels[n]["support"] for n in "ab") == 40
    assert model.evaluate(tmp_path / "held.tsv")["examples"] == 40
    write_labelled(tmp_path / "other.tsv", ["a", "c"], ["aaa", "ccc"])
    with pytest.raises(CharlstmError, match="other.tsv:2: label 'c' .* not one the model knows"):
        model.evaluate(tmp_path / "other.tsv")
    with pytest.raises(ArgumentError, match="val_fraction holds out part of the training examples; with held_out"):
        api.train_classifier(toy, tmp_path / "r2", held_out=tmp_path / "held.tsv", val_fraction=0.2, **TINY)


def test_nothing_held_out_trains_on_every_example_and_best_is_the_latest(toy, tmp_path):
    model = api.train_classifier(toy, tmp_path / "run", val_fraction=0.0, max_steps=40, eval_every=20, **TINY)
    assert [(ev.step, ev.val_accuracy, ev.val_loss, ev.labels) for ev in model.history] == \
        [(20, None, None, {}), (40, None, None, {})]
    assert model.best_step == 40 and load_labels_checkpoint(tmp_path / "run" / "best.npz").train["step"] == 40
    assert model.evaluate(toy)["examples"] == len(toy)
    write_labelled(tmp_path / "toy.tsv", [toy.labels[t] for t in toy.targets], toy.texts)
    result = CliRunner().invoke(cli.main, ["classify", "train", str(tmp_path / "toy.tsv"), "--out",
                                           str(tmp_path / "r2"), *CLI_TINY, "--val-fraction", "0", "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("step 2: training loss ") and last.endswith(f"best.npz is step 2; checkpoints in {tmp_path / 'r2'}")


def test_the_api_refuses_bad_arguments_at_the_door_naming_them(toy, tmp_path):
    for arguments, needle in [({"batch_size": 0}, "batch_size must be at least 1"),
                              ({"lr": -1.0}, "lr must be"), ({"val_fraction": 1.0}, "val_fraction must be"),
                              ({"pooling": "max"}, "pooling must be one of last, mean"),
                              ({"bidirectional": "yes"}, "bidirectional must be True or False"),
                              ({"max_length": 0}, "max_length must be at least 1"),
                              ({"hidden_size": 2.5}, "hidden_size must be a whole number"),
                              ({"embedding_size": 10 ** 12}, "embedding_size .* of memory"),
                              ({"num_layers": 10 ** 9}, "num_layers .* of memory")]:
        with pytest.raises(ArgumentError, match=needle):
            api.train_classifier(toy, tmp_path / "run", **{**TINY, **arguments})
    assert not (tmp_path / "run").exists()
    one = from_names(["a", "a"], ["aa", "ab"])
    with pytest.raises(CharlstmError, match="at least 2 labels"):
        api.train_classifier(one, tmp_path / "run", **TINY)
    api.train_classifier(from_names(*letters(20)), tmp_path / "used", max_steps=1, **TINY)
    with pytest.raises(CharlstmError, match="holds another run .*--start-over"):
        api.train_classifier(from_names(*letters(20)), tmp_path / "used", max_steps=1, **TINY)


def test_a_damaged_checkpoint_is_one_line(trained, tmp_path):
    good = trained.out_dir / "best.npz"
    with np.load(good, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if k.endswith("Wh"))
    for change, needle in [({key: arrays[key] * np.nan}, "holds NaN"), ({key: arrays[key][:1]}, "has shape"),
                           ({"meta": np.array("{}")}, "not a charlstm classifier or tagger")]:
        np.savez(tmp_path / "bad.npz", **{**arrays, **change})
        with pytest.raises(CharlstmError, match=needle):
            api.load_labels_model(tmp_path / "bad.npz")
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(CharlstmError, match="not an .npz archive, or truncated"):
        api.load_labels_model(tmp_path / "trunc.npz")
    assert zipfile.is_zipfile(good)


# --- the commands ----------------------------------------------------------------------------------

CLI_TINY = ["--hidden", "8", "--layers", "1", "--embedding-size", "8", "--dropout", "0", "--batch-size", "16",
            "--lr", "0.03", "--quiet"]


def invoke(*args) -> Result:
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def fails(needle: str, *args) -> str:
    """One line on stderr naming the problem, exit 1, nothing on stdout."""
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: "), result.stderr
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify-cli")
    names, texts = letters()
    texts[0] = "a\ttab\nand line"               # escapes survive the file
    write_labelled(root / "toy.tsv", names, texts)
    result = invoke("classify", "train", root / "toy.tsv", "--out", root / "run", *CLI_TINY, "--max-steps", "150",
                    "--eval-every", "75")
    assert result.exit_code == 0, result.output
    return root, result


def test_classify_train_says_what_it_read_and_where_the_checkpoints_are(cli_run):
    root, result = cli_run
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("2") and "held out; labels a " in lines[0]
    assert lines[-1] == f"step 150: held-out accuracy 1.000, loss {lines[-1].split('loss ')[1].split()[0]} nats; " \
                        f"best.npz is step 150; checkpoints in {root / 'run'}"
    assert {p.name for p in (root / "run").iterdir()} >= {"latest.npz", "best.npz", "metrics.jsonl"}


def test_classify_eval_prints_a_table_or_json(cli_run):
    root, _ = cli_run
    result = invoke("classify", "eval", root / "run" / "best.npz", root / "toy.tsv", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["examples"] == 240 and record["accuracy"] > 0.95
    assert set(record["labels"]) == {"a", "b"} and set(record["labels"]["a"]) == {"precision", "recall", "support"}
    assert record["label_names"] == ["a", "b"] and len(record["confusion"]) == 2
    text = invoke("classify", "eval", root / "run" / "best.npz", root / "toy.tsv").stdout.splitlines()
    assert text[0].startswith("accuracy ") and text[1].split() == ["label", "precision", "recall", "support"]
    assert "confusion (rows: true label, columns: predicted)" in text and text[-1].startswith("loss ")


def test_classify_predict_labels_each_line_or_each_whole_file(cli_run):
    root, _ = cli_run
    (root / "in.txt").write_text("aaxa\n\n   \nbbyb\r\n", encoding="utf-8")
    (root / "b.txt").write_text("bybb\n", encoding="utf-8")
    result = invoke("classify", "predict", root / "run" / "best.npz", root / "in.txt", root / "b.txt")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [(f"{root / 'in.txt'}:1", "a"), (f"{root / 'in.txt'}:4", "b"),
                                            (f"{root / 'b.txt'}:1", "b")]
    assert rows[0][2].startswith("a=0.9") and " b=0.0" in rows[0][2]
    whole = invoke("classify", "predict", root / "run" / "best.npz", root / "b.txt", "--whole-file", "--json")
    record = json.loads(whole.stdout)
    assert record["source"] == str(root / "b.txt") and record["label"] == "b"
    assert sum(record["probs"].values()) == pytest.approx(1.0)


def test_bad_inputs_of_the_classify_commands_are_one_line(cli_run, tmp_path):
    root, _ = cli_run
    ckpt = root / "run" / "best.npz"
    (tmp_path / "bad.tsv").write_text("a\tfine\nno tab here\n", encoding="utf-8")
    fails("bad.tsv:2: no tab", "classify", "train", tmp_path / "bad.tsv", "--out", tmp_path / "r")
    write_labelled(tmp_path / "one.tsv", ["a", "a", "a"], ["x", "y", "z"])
    fails("at least 2 labels", "classify", "train", tmp_path / "one.tsv", "--out", tmp_path / "r")
    fails("missing.npz: no such checkpoint", "classify", "eval", tmp_path / "missing.npz", root / "toy.tsv")
    charlstm.Model.create(build_vocab("abc\n"), hidden_size=4, num_layers=1).save(tmp_path / "char.npz")
    fails("a character model's checkpoint", "classify", "eval", tmp_path / "char.npz", root / "toy.tsv")
    fails("--batch-size must be at least 1", "classify", "train", root / "toy.tsv", "--out", tmp_path / "r",
          "--batch-size", "0")
    fails("--val-fraction holds out part of the training examples; with --held-out", "classify", "train", root / "toy.tsv", "--out", tmp_path / "r",
          "--val-fraction", "0.2", "--held-out", root / "toy.tsv")
    fails("--val-fraction must be", "classify", "train", root / "toy.tsv", "--out", tmp_path / "r",
          "--val-fraction", "1.5")
    fails("--max-time must be", "classify", "train", root / "toy.tsv", "--out", tmp_path / "r", "--max-time", "-1")
    fails("holds another run", "classify", "train", root / "toy.tsv", "--out", root / "run", "--max-steps", "1")
    fails("no such file", "classify", "predict", ckpt, tmp_path / "nothing.txt")
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    fails("every line is blank", "classify", "predict", ckpt, tmp_path / "blank.txt")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_latest_and_exits_130_with_a_line(tmp_path, sig):
    names, texts = letters()
    write_labelled(tmp_path / "toy.tsv", names, texts)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "charlstm", "classify", "train", str(tmp_path / "toy.tsv"), "--out",
                             str(out), *CLI_TINY[:-1], "--max-steps", "1000000", "--eval-every", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Interrupted at step ") and last.endswith(f"; saved {out / 'latest.npz'}"), last
    step = int(last.split("Interrupted at step ")[1].split(";")[0])
    assert step >= 20 and api.load_labels_model(out / "latest.npz").step == step


# --- the corpora -----------------------------------------------------------------------------------

def test_corpus_tweet_sources_writes_a_labelled_file(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    tweets = [{"source": client, "id_str": str(i), "text": f"tweet {i} &amp; more", "is_retweet": False}
              for i, client in enumerate(["Twitter for Android", "Twitter for iPhone", "Twitter Web Client",
                                          "TweetDeck", "Twitter for Android"])]
    (archive / "condensed_2016.json").write_text(json.dumps(tweets), encoding="utf-8")
    result = invoke("corpus", "tweet-sources", archive, "-o", tmp_path / "sources.tsv")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"{tmp_path / 'sources.tsv'}: 4 examples; android 2, iphone 1, web 1"
    data = read_labelled(tmp_path / "sources.tsv")
    assert [data.labels[t] for t in data.targets] == ["android", "iphone", "web", "android"]
    assert data.texts[0] == "tweet 0 & more"
    fails("no such file or folder", "corpus", "tweet-sources", tmp_path / "none", "-o", tmp_path / "x.tsv")
    fails("is an input of this command", "corpus", "tweet-sources", archive / "condensed_2016.json", "-o",
          archive / "condensed_2016.json")


def test_corpus_languages_writes_stretches_by_language(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a.py").write_text("".join(f"x{i} = {i}  # python line\n" for i in range(60)), encoding="utf-8")
    (tree / "b.pl").write_text("".join(f"my $x{i} = {i};  # perl line\n" for i in range(60)), encoding="utf-8")
    result = invoke("corpus", "languages", "-o", tmp_path / "lang.tsv", "--root", tree, "--per-label", "3",
                    "--stretch", "100")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"{tmp_path / 'lang.tsv'}: 6 examples; perl 3, python 3"
    data = read_labelled(tmp_path / "lang.tsv")
    assert all("$x" in text for text, t in zip(data.texts, data.targets) if data.labels[t] == "perl")
    fails("--per-label must be at least 1", "corpus", "languages", "-o", tmp_path / "x.tsv", "--root", tree,
          "--per-label", "0")
