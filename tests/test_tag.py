"""The tagger: Python files read up to a cap, a run that learns each character's token class,
tagging a text of any length, its figures, the three ways a tagged text is shown, and the
`charlstm tag` commands. Every input is made here, in tmp_path; each run is a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charlstm import api, cli
from charlstm.analysis.tag_page import ANSI_COLOURS, ansi_text, span_lines, spans_of, tag_page
from charlstm.data.label_files import files_line, tagged_files
from charlstm.data.label_tasks import TAG_NAMES, python_tags
from charlstm.data.labelled import unescape
from charlstm.errors import CharlstmError

TINY = {"hidden_size": 16, "num_layers": 1, "embedding_size": 16, "dropout": 0.0, "bidirectional": True,
        "batch_size": 8, "lr": 0.02, "max_length": 120, "progress": False}


def python_file(seed: int, functions: int = 6) -> str:
    """Small, regular Python: every class of character in a few shapes."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "total", "item", "value", "count"]
    out = [f"# module {seed}\n", "import os\n", "\n"]
    for k in range(functions):
        a, b = rng.choice(words, 2, replace=False)
        n = int(rng.integers(0, 100))
        out += [f"def {a}_{k}({a}, {b}=None):\n", f'    """Return {a} and {b}."""\n',
                f"    if {b} is None:\n", f"        {b} = {n}  # default\n",
                f"    return {a} + {b} * {n}\n", "\n"]
    return "".join(out)


@pytest.fixture(scope="module")
def code(tmp_path_factory):
    root = tmp_path_factory.mktemp("code")
    folder = root / "pkg"
    folder.mkdir()
    for k in range(5):
        (folder / f"m{k}.py").write_text(python_file(k), encoding="utf-8")
    (folder / "broken.py").write_text("def f(:\n    '''never closed\n", encoding="utf-8")
    (root / "held.py").write_text(python_file(99), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tagger(code, tmp_path_factory):
    out = tmp_path_factory.mktemp("tag") / "run"
    return api.train_tagger([code / "pkg"], out, held_out=[code / "held.py"], max_steps=150, eval_every=75, **TINY)


# --- reading Python --------------------------------------------------------------------------------

def test_python_files_are_read_in_order_up_to_the_cap_leaving_out_what_does_not_tokenize(code):
    found = tagged_files([code / "pkg"])
    assert [p.rsplit("/", 1)[1] for p in found.sources] == [f"m{k}.py" for k in range(5)]
    assert len(found.skipped) == 1 and found.skipped[0].startswith(str(code / "pkg" / "broken.py"))
    assert all(np.array_equal(tags, python_tags(text)) for text, tags in zip(found.texts, found.tags))
    assert not found.capped and "skipped 1 that cannot be read or do not tokenize" in files_line(found)
    capped = tagged_files([code / "pkg"], max_bytes=len(found.texts[0]) + 1)
    assert len(capped.texts) == 2 and capped.capped         # the file that crosses the cap is the last
    assert "stopped at the cap of" in files_line(capped, len(found.texts[0]) + 1)


# --- training and tagging ------------------------------------------------------------------------

def test_a_tagger_learns_the_classes_of_held_out_python(tagger, code):
    history = tagger.history
    assert [ev.step for ev in history] == [75, 150]
    majority = max(np.bincount(python_tags((code / "held.py").read_text()))) / len((code / "held.py").read_text())
    assert history[-1].val_accuracy > max(0.9, majority + 0.3)
    assert history[-1].val_loss < history[0].val_loss
    assert set(history[-1].labels) == set(TAG_NAMES)
    assert tagger.labels == TAG_NAMES and tagger.vocab.unit == "codepoint"


def test_tag_gives_every_character_a_class_in_stretches_as_long_as_training_read(tagger):
    text = python_file(7, functions=3)
    assert len(text) > 2 * tagger.max_length            # read in several stretches
    tags = tagger.tag(text)
    assert len(tags) == len(text) and set(tags) <= set(TAG_NAMES)
    truth = [TAG_NAMES[t] for t in python_tags(text)]
    assert np.mean([a == b for a, b in zip(tags, truth)]) > 0.9
    spans = tagger.tag_spans(text)
    assert "".join(piece for _, piece in spans) == text
    assert tagger.tag("") == [] and tagger.tag("x = 1 é") != []        # an unseen symbol reads as unknown


def test_evaluate_scores_python_files_with_per_class_figures(tagger, code):
    result = tagger.evaluate([code / "held.py", code / "pkg" / "broken.py"])
    assert result["files"] == 1 and len(result["skipped"]) == 1
    assert result["characters"] == len((code / "held.py").read_text())
    assert result["accuracy"] == tagger.history[-1].val_accuracy          # the same stretches as in training
    assert sum(result["labels"][n]["support"] for n in TAG_NAMES) == result["characters"]
    with pytest.raises(CharlstmError, match="no Python file that can be read and tokenizes"):
        tagger.evaluate(code / "pkg" / "broken.py")


def test_a_tagger_checkpoint_round_trips_and_is_not_a_classifier(tagger, tmp_path):
    tagger.save(tmp_path / "t.npz")
    again = api.load_labels_model(tmp_path / "t.npz")
    text = python_file(3, functions=1)
    assert isinstance(again, api.Tagger) and again.tag(text) == tagger.tag(text)
    with pytest.raises(CharlstmError, match="a tagger's checkpoint, not a classifier's"):
        api.load_labels_model(tmp_path / "t.npz", kind="classifier")


def test_files_are_split_into_training_and_held_out_files_without_a_held_out_set(code, tmp_path):
    model = api.train_tagger(code / "pkg", tmp_path / "run", max_steps=2, eval_every=2, val_fraction=0.4, **TINY)
    held = model.history[-1]
    assert 0 < sum(f["support"] for f in held.labels.values()) < 3 * len(python_file(0))   # two of five files
    with pytest.raises(CharlstmError, match="one Python file .* cannot be split"):
        api.train_tagger(code / "held.py", tmp_path / "one", max_steps=1, **TINY)


# --- showing a tagged text -----------------------------------------------------------------------

def test_spans_lines_colours_and_the_page():
    text, tags = "if x:\n\t'a\\b'", ["keyword"] * 2 + ["other", "name", "operator", "other", "indent"] + ["string"] * 5
    spans = spans_of(text, tags)
    assert spans == [("keyword", "if"), ("other", " "), ("name", "x"), ("operator", ":"), ("other", "\n"),
                     ("indent", "\t"), ("string", "'a\\b'")]
    lines = span_lines(spans)
    assert lines[4] == "other\t\\n" and lines[6] == "string\t'a\\\\b'"
    assert "".join(unescape(line.split("\t", 1)[1], "test") for line in lines) == text    # the lines read back
    coloured = ansi_text(spans + [("name", "\x1b[2J")], TAG_NAMES)
    assert f"\x1b[{ANSI_COLOURS[3]}mif\x1b[0m" in coloured and "\x1b[2J" not in coloured   # escapes cannot act
    page = tag_page([("string", "<b>&")], TAG_NAMES, "a <title>")
    assert '<span class="c5" title="string">&lt;b&gt;&amp;</span>' in page and "<title>a &lt;title&gt;</title>" in page
    assert "http" not in page.lower().replace("http-equiv", "")            # self-contained


# --- the commands ----------------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def fails(needle: str, *args) -> str:
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: ") and needle in lines[0], result.stderr
    return lines[0]


CLI_TINY = ["--hidden", "16", "--layers", "1", "--embedding-size", "16", "--dropout", "0", "--bidirectional",
            "--batch-size", "8", "--lr", "0.02", "--max-length", "120", "--quiet"]


@pytest.fixture(scope="module")
def cli_run(code, tmp_path_factory):
    out = tmp_path_factory.mktemp("tag-cli") / "run"
    result = invoke("tag", "train", code / "pkg", "--held-out", code / "held.py", "--out", out, *CLI_TINY,
                    "--max-steps", "60", "--eval-every", "30")
    assert result.exit_code == 0, result.output
    return out, result


def test_tag_train_says_what_it_read_and_left_out(cli_run):
    out, result = cli_run
    lines = result.stderr.splitlines()
    assert lines[0].startswith("read 5 Python files (") and "skipped 1 that cannot be read or do not tokenize" in lines[0]
    assert lines[1].startswith("held out: read 1 Python files")
    assert lines[-1].startswith("step 60: held-out accuracy ") and str(out) in lines[-1]


def test_tag_eval_and_predict(cli_run, code, tmp_path):
    out, _ = cli_run
    result = invoke("tag", "eval", out / "best.npz", code / "held.py", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["characters"] == len((code / "held.py").read_text()) and set(record["labels"]) == set(TAG_NAMES)
    table = invoke("tag", "eval", out / "best.npz", code / "held.py").stdout.splitlines()
    assert table[0].startswith("accuracy ") and table[0].endswith(" characters)") and len(table) == 2 + 8 + 2 + 8 + 1

    source = code / "held.py"
    lines = invoke("tag", "predict", out / "best.npz", source).stdout.splitlines()     # not a terminal: lines
    assert all(line.split("\t")[0] in TAG_NAMES for line in lines)
    assert "".join(unescape(line.split("\t", 1)[1], "line") for line in lines) == source.read_text()
    page = invoke("tag", "predict", out / "best.npz", source, "--html", tmp_path / "tags.html")
    assert page.exit_code == 0 and page.stdout == "" and "tags.html" in page.stderr
    assert (tmp_path / "tags.html").read_text().count("<span class=") > len(lines)


def test_bad_inputs_of_the_tag_commands_are_one_line(cli_run, code, tmp_path):
    out, _ = cli_run
    fails("no Python file that can be read and tokenizes", "tag", "train", code / "pkg" / "broken.py", "--out",
          tmp_path / "r")
    fails("no such file or folder", "tag", "train", tmp_path / "nowhere", "--out", tmp_path / "r")
    fails("--max-bytes must be at least 1", "tag", "train", code / "pkg", "--out", tmp_path / "r", "--max-bytes", "0")
    fails("--hidden must be at least 1", "tag", "train", code / "pkg", "--out", tmp_path / "r", "--hidden", "0")
    fails("no such checkpoint", "tag", "eval", tmp_path / "none.npz", code / "held.py")
    fails("a tagger's checkpoint, not a classifier's", "classify", "eval", out / "best.npz", code / "held.py")
    fails("is an input of this command", "tag", "predict", out / "best.npz", code / "held.py", "--html",
          code / "held.py")
    assert not (tmp_path / "r").exists()
