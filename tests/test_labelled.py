"""Labelled corpora: the two formats, their errors, writing, splitting."""

import numpy as np
import pytest

from charlstm.data.labelled import (Labelled, from_names, read_labelled, require_labels, split_labelled, take,
                                    write_labelled)
from charlstm.errors import ArgumentError, CharlstmError


def lines_file(tmp_path, content: bytes, name="labels.tsv"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def names_of(data: Labelled) -> list[str]:
    return [data.labels[t] for t in data.targets]


# --- format A ---------------------------------------------------------------------------------------

def test_a_file_of_label_tab_text_lines_reads_in_order_with_sorted_labels(tmp_path):
    path = lines_file(tmp_path, b"spam\tbuy now\nham\thello there\n\nspam\tcheap pills\n")
    data = read_labelled(path)
    assert data.labels == ("ham", "spam")
    assert data.texts == ("buy now", "hello there", "cheap pills")
    assert data.targets.tolist() == [1, 0, 1]
    assert data.targets.dtype == np.int64
    assert data.sources == (f"{path}:1", f"{path}:2", f"{path}:4")
    assert len(data) == 3
    assert data.counts() == {"ham": 1, "spam": 2}


def test_escapes_resolve_to_tab_newline_carriage_return_and_backslash(tmp_path):
    path = lines_file(tmp_path, b"a\\tb\tone\\ttwo\\nthree\\\\four\\r\n")
    data = read_labelled(path)
    assert data.labels == ("a\tb",)
    assert data.texts == ("one\ttwo\nthree\\four\r",)


def test_crlf_line_ends_and_a_byte_order_mark_read_like_lf(tmp_path):
    crlf = read_labelled(lines_file(tmp_path, b"\xef\xbb\xbfx\tfirst\r\ny\tsecond\r\n\r\n", "crlf.tsv"))
    lf = read_labelled(lines_file(tmp_path, b"x\tfirst\ny\tsecond\n", "lf.tsv"))
    assert crlf.texts == lf.texts and crlf.labels == lf.labels == ("x", "y")


@pytest.mark.parametrize("content, line, says", [
    (b"a\tok\nno tab here\n", 2, "no tab"),
    (b"a\tok\n\tno label\n", 2, "the label is empty"),
    (b"a\tok\n\nb\t\n", 3, "the text is empty"),
    (b"a\tok\n b\tspaced label\n", 2, "white space"),
    (b"a\tC:\\dir\n", 1, "unknown escape"),
    (b"a\tok\nb\tends in \\\n", 2, "a backslash ends the field"),
    (b"a\tok\tthird column\n", 1, "a second tab"),
    (b"a\tok\nb\tcaf\xe9\n", 2, "not UTF-8"),
])
def test_each_bad_line_is_one_error_line_naming_file_and_line(tmp_path, content, line, says):
    path = lines_file(tmp_path, content)
    with pytest.raises(CharlstmError) as error:
        read_labelled(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: ")
    assert says in message
    assert "\n" not in message


def test_a_file_with_no_examples_is_an_error(tmp_path):
    with pytest.raises(CharlstmError, match="holds no examples"):
        read_labelled(lines_file(tmp_path, b"\n \n\r\n"))
    with pytest.raises(CharlstmError, match="no such file"):
        read_labelled(tmp_path / "missing.tsv")


def test_written_examples_read_back_the_same_escapes_and_all(tmp_path):
    labels = ["pos", "neg", "neg", "a\\b", "tab\tin label"]
    texts = ["plain", "tab\there", "two\nlines\r\nand CRLF", "back\\slash \\t not an escape", "  spaces kept \\"]
    path = tmp_path / "out" / "data.tsv"
    write_labelled(path, labels, texts)
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") == len(texts)                  # one line per example, whatever the text holds
    assert "pos\tplain\n" in raw and "back\\\\slash \\\\t" in raw
    data = read_labelled(path)
    assert names_of(data) == labels
    assert list(data.texts) == texts


def test_writing_refuses_what_could_not_be_read_back_and_leaves_no_file(tmp_path):
    path = tmp_path / "data.tsv"
    with pytest.raises(CharlstmError, match="example 2: the label is empty"):
        write_labelled(path, ["a", ""], ["x", "y"])
    with pytest.raises(CharlstmError, match="example 1: the text is empty"):
        write_labelled(path, ["a"], [""])
    with pytest.raises(CharlstmError, match="2 labels for 1 texts"):
        write_labelled(path, ["a", "b"], ["x"])
    assert not path.exists()


# --- format B ---------------------------------------------------------------------------------------

def test_a_folder_per_label_reads_one_example_per_file(tmp_path):
    (tmp_path / "pos" / "more").mkdir(parents=True)
    (tmp_path / "neg").mkdir()
    (tmp_path / "pos" / "1.txt").write_bytes(b"good\r\nfilm\r\n")
    (tmp_path / "pos" / "more" / "2.txt").write_text("great", encoding="utf-8")
    (tmp_path / "neg" / "1.txt").write_text("bad\n\n", encoding="utf-8")
    (tmp_path / "neg" / ".hidden").write_bytes(b"\xff\xfe not read")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    data = read_labelled(tmp_path)
    assert data.labels == ("neg", "pos")
    assert data.texts == ("bad\n", "good\nfilm", "great")
    assert data.targets.tolist() == [0, 1, 1]
    assert data.sources == tuple(str(tmp_path / p) for p in ("neg/1.txt", "pos/1.txt", "pos/more/2.txt"))


@pytest.mark.parametrize("make, says", [
    (lambda root: (root / "pos" / "x.txt").write_bytes(b"caf\xe9"), "pos/x.txt: not UTF-8"),
    (lambda root: (root / "pos" / "x.txt").write_bytes(b""), "pos/x.txt: is empty"),
    (lambda root: (root / "pos" / "x.bin").write_bytes(b"ab\0cd"), "NUL byte"),
    (lambda root: (root / "README").write_text("about", encoding="utf-8"), "README: a file beside the label"),
    (lambda root: (root / "neg").mkdir(), "neg: holds no examples"),
])
def test_a_bad_folder_names_the_path_in_one_line(tmp_path, make, says):
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "ok.txt").write_text("fine", encoding="utf-8")
    make(tmp_path)
    with pytest.raises(CharlstmError) as error:
        read_labelled(tmp_path)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(CharlstmError, match="holds no examples"):
        read_labelled(tmp_path)


# --- the record -------------------------------------------------------------------------------------

def test_a_labelled_corpus_is_frozen_and_counts_labels_without_examples():
    data = from_names(["b", "b"], ["x", "y"], labels=["a", "b", "c"])
    assert data.counts() == {"a": 0, "b": 2, "c": 0}
    with pytest.raises(ValueError):
        data.targets[0] = 0
    with pytest.raises(ValueError, match="index into labels"):
        Labelled(("a",), ("x",), np.array([1]), ("s",))
    with pytest.raises(ValueError, match="sorted"):
        Labelled(("b", "a"), (), np.zeros(0), ())


def test_take_keeps_the_labels_so_targets_keep_their_meaning():
    data = from_names(["a", "b", "c"], ["x", "y", "z"])
    part = take(data, [2])
    assert part.labels == ("a", "b", "c") and part.texts == ("z",) and part.targets.tolist() == [2]


def test_require_labels_wants_two_labels_with_examples():
    one = from_names(["a", "a"], ["x", "y"], labels=["a", "b"])
    with pytest.raises(CharlstmError, match=r"at least 2 labels; found 1 \('a': 2\)"):
        require_labels(one)
    two = from_names(["a", "b"], ["x", "y"])
    assert require_labels(two) is two


# --- splitting --------------------------------------------------------------------------------------

def corpus(sizes: dict[str, int]) -> Labelled:
    names = [label for label, n in sizes.items() for _ in range(n)]
    return from_names(names, [f"{label} {i}" for i, label in enumerate(names)])


def test_a_split_is_stratified_disjoint_complete_and_deterministic():
    data = corpus({"big": 100, "mid": 20, "pair": 2, "single": 1})
    train, held = split_labelled(data, fraction=0.1, seed=3)
    assert held.counts() == {"big": 10, "mid": 2, "pair": 1, "single": 0}
    assert train.counts() == {"big": 90, "mid": 18, "pair": 1, "single": 1}
    assert train.labels == held.labels == data.labels
    assert set(train.texts).isdisjoint(held.texts)
    assert sorted(train.texts + held.texts) == sorted(data.texts)
    assert list(train.sources) == sorted(train.sources, key=data.sources.index)        # corpus order kept
    again, _ = split_labelled(data, fraction=0.1, seed=3)
    other, _ = split_labelled(data, fraction=0.1, seed=4)
    assert again.texts == train.texts and other.texts != train.texts


def test_a_large_fraction_still_leaves_one_example_of_each_label_in_train():
    train, held = split_labelled(corpus({"a": 3, "b": 2}), fraction=0.9)
    assert train.counts() == {"a": 1, "b": 1} and held.counts() == {"a": 2, "b": 1}


def test_duplicate_texts_never_land_in_both_parts():
    data = from_names(["a"] * 6 + ["b"] * 4, ["same", "same", "same", "u", "v", "w", "p", "q", "r", "s"])
    for seed in range(20):
        train, held = split_labelled(data, fraction=0.5, seed=seed)
        assert set(train.texts).isdisjoint(held.texts)
        assert len(train) + len(held) == len(data)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.1", True, float("nan")])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ArgumentError, match="fraction must be a number between 0 and 1"):
        split_labelled(corpus({"a": 4}), fraction=fraction)
