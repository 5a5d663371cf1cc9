"""Tests for charlstm.corpora: code trees, tweet files and synthetic languages."""

import csv
import datetime as dt
import gzip
import json
import os
import pathlib

import numpy as np
import pytest

from charlstm.data.corpora import (
    SYNTH_TASKS,
    build_code_corpus,
    build_stdlib_corpus,
    check_line,
    check_lines,
    python_stdlib_dir,
    read_tweets,
    synth_lines,
)
from charlstm.errors import CharlstmError

# --------------------------------------------------------------------------------------
# Code corpora
# --------------------------------------------------------------------------------------


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


@pytest.fixture
def tree(tmp_path):
    """A small source tree with one file of every kind the walker must handle."""
    root = tmp_path / "src"
    _write(root / "b.py", "b = 2\n\n\n")
    _write(root / "a.py", "a = 1\r\nprint(a)\r")
    _write(root / "pkg" / "z.py", "z = 26")
    _write(root / "pkg" / "Upper.PY", "u = 'upper-case suffix'\n")
    _write(root / "notes.txt", "not code\n")
    _write(root / "blob.py", b"\x00\x01\x02binary")
    _write(root / "latin.py", "caf\xe9 = 1\n".encode("latin-1"))
    _write(root / "big.py", "x = 1\n" * 100)
    _write(root / "empty.py", "\n\n")
    os.symlink(root, root / "loop")  # a loop back to the root must not hang the walk
    return root


def test_code_corpus_order_headers_and_newlines(tree):
    text, summary = build_code_corpus(tree, max_file_bytes=500)
    assert text == (
        "### FILE: a.py\na = 1\nprint(a)\n"
        "### FILE: b.py\nb = 2\n"
        "### FILE: pkg/Upper.PY\nu = 'upper-case suffix'\n"
        "### FILE: pkg/z.py\nz = 26\n"
    )
    assert summary["files_read"] == 4
    assert summary["bytes"] == len(text.encode("utf-8"))


def test_code_corpus_skip_counts(tree):
    _, summary = build_code_corpus(tree, max_file_bytes=500)
    assert summary["binary"] == 1
    assert summary["undecodable"] == 1
    assert summary["too_large"] == 1
    assert summary["symlinks"] == 1
    assert summary["empty"] == 1
    assert summary["excluded"] == 0
    assert summary["over_cap"] == 0


def test_code_corpus_same_result_twice(tree):
    assert build_code_corpus(tree) == build_code_corpus(tree)


def test_code_corpus_without_headers(tree):
    text, _ = build_code_corpus(tree, headers=False, exclude=["pkg"], max_file_bytes=500)
    assert text == "a = 1\nprint(a)\nb = 2\n"


def test_code_corpus_exclude_by_part_and_by_path(tree):
    _write(tree / "lib" / "tests" / "t.py", "t = 1\n")
    _write(tree / "lib" / "core.py", "c = 1\n")
    _write(tree / "lib" / "test_core.py", "tc = 1\n")
    text, summary = build_code_corpus(
        tree, exclude=["test*", "*/z.py"], max_file_bytes=500
    )
    assert "### FILE: lib/core.py\n" in text
    assert "tests/t.py" not in text and "test_core" not in text and "pkg/z.py" not in text
    # The tests/ directory is pruned (counts once), plus two excluded files.
    assert summary["excluded"] == 3


def test_code_corpus_extensions(tree):
    text, summary = build_code_corpus(tree, exts=[".TXT"])
    assert text == "### FILE: notes.txt\nnot code\n"
    assert summary["files_read"] == 1


def test_code_corpus_max_bytes_stops_at_cap(tree):
    full, _ = build_code_corpus(tree, max_file_bytes=500)
    first_two = len("### FILE: a.py\na = 1\nprint(a)\n### FILE: b.py\nb = 2\n")
    text, summary = build_code_corpus(tree, max_file_bytes=500, max_bytes=first_two + 5)
    assert summary["files_read"] == 2
    # big.py, blob.py, empty.py and latin.py are skipped for their own reasons first.
    assert summary["over_cap"] == 2  # pkg/Upper.PY and pkg/z.py
    assert summary["bytes"] == first_two <= first_two + 5
    assert full.startswith(text)


def test_code_corpus_errors(tmp_path, tree):
    with pytest.raises(CharlstmError, match="no such directory"):
        build_code_corpus(tmp_path / "missing")
    with pytest.raises(CharlstmError, match="not a directory"):
        build_code_corpus(tree / "a.py")
    with pytest.raises(CharlstmError, match="no readable .java files"):
        build_code_corpus(tree, exts=[".java"])
    with pytest.raises(CharlstmError, match="larger than max_bytes"):
        build_code_corpus(tree, max_bytes=3)


def test_code_corpus_unreadable_file(tree, monkeypatch):
    # Simulated, because file permissions do not stop a test run as root.
    import charlstm.files

    def unreadable(file, *args, **kwargs):
        if pathlib.Path(file).name == "b.py":
            raise PermissionError(13, "Permission denied")
        return open(file, *args, **kwargs)

    monkeypatch.setattr(charlstm.files, "open", unreadable, raising=False)
    text, summary = build_code_corpus(tree)
    assert summary["unreadable"] == 1
    assert "b.py" not in text and "### FILE: a.py\n" in text


def test_stdlib_corpus_nonempty_and_capped():
    text, summary = build_stdlib_corpus(max_bytes=300_000)
    assert python_stdlib_dir().is_dir()
    assert summary["files_read"] > 0
    assert summary["bytes"] == len(text.encode("utf-8")) <= 300_000
    assert text.startswith("### FILE: ")
    assert "### FILE: test/" not in text and "idlelib/" not in text


def test_generated_tables_are_left_out_of_code_corpora_and_counted(tmp_path):
    root = tmp_path / "src"
    _write(root / "codec.py", '""" Python Character Mapping Codec cp1252 generated from \'MAPPINGS/CP1252.TXT\' '
                              'with gencodec.py.\n"""\ntable = (\n    "\\x00"\n)\n')
    _write(root / "topics.py", "# Autogenerated by Sphinx on Mon Dec  4 2023\ntopics = {}\n")
    _write(root / "msg_pb2.py", "# Generated by the protocol buffer compiler.  DO NOT EDIT!\nx = 1\n")
    _write(root / "tree.py", '"""A syntax tree can be generated by passing a flag."""\ndef f():\n    return 1\n')
    _write(root / "late.py", "x = 1\n" * 200 + "# generated by hand.py\n")    # past the head: code
    text, summary = build_code_corpus(root)
    assert summary["generated"] == 3 and summary["files_read"] == 2
    assert "### FILE: tree.py" in text and "### FILE: late.py" in text and "gencodec" not in text
    _, kept = build_code_corpus(root, skip_generated=False)
    assert kept["generated"] == 0 and kept["files_read"] == 5


def test_the_default_corpus_is_code_not_codec_tables():
    text, summary = build_stdlib_corpus()
    assert summary["generated"] > 0
    assert "### FILE: encodings/cp1252.py" not in text and "### FILE: pydoc_data/topics.py" not in text
    assert "### FILE: html/entities.py" not in text
    assert text.count("LATIN CAPITAL LETTER") < 20


# --------------------------------------------------------------------------------------
# Tweets
# --------------------------------------------------------------------------------------

# A thumbs-up with a skin tone, a flag (two regional indicators) and a ZWJ family.
EMOJI = "\U0001f44d\U0001f3fd \U0001f1fa\U0001f1e6 \U0001f468\u200d\U0001f469\u200d\U0001f467"

TWEETS = [
    {"full_text": "second &amp;amp; more", "created_at": "Thu Oct 11 08:00:00 +0000 2018"},
    {"full_text": "first  tweet", "created_at": "Wed Oct 10 20:19:24 +0000 2018"},
    {"full_text": "RT @someone: not mine", "created_at": "Fri Oct 12 08:00:00 +0000 2018"},
    {"full_text": "emoji " + EMOJI, "created_at": "Sat Oct 13 08:00:00 +0000 2018"},
]


def _write_json(path, items):
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_tweets_js_archive_unwraps_and_sorts_oldest_first(tmp_path):
    path = tmp_path / "tweets.js"
    body = json.dumps([{"tweet": t} for t in TWEETS], indent=1)
    path.write_text("window.YTD.tweets.part0 = " + body, encoding="utf-8")
    lines, summary = read_tweets([path])
    assert lines == ["first  tweet", "second &amp; more", "emoji " + EMOJI]
    assert summary["read"] == 4
    assert summary["kept"] == 3
    assert summary["dropped"] == {
        "no_text": 0, "empty": 0, "retweet": 1, "date": 0, "duplicate": 0
    }


def test_json_array_jsonl_and_csv_give_the_same_tweets(tmp_path):
    plain = [{"text": t["full_text"], "created_at": t["created_at"]} for t in TWEETS]
    array = _write_json(tmp_path / "a.json", plain)
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(t) for t in plain) + "\n\n", encoding="utf-8")
    table = tmp_path / "a.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "created_at", "text"])
        writer.writeheader()
        for i, t in enumerate(plain):
            writer.writerow({"id": i, **t})
    expected, _ = read_tweets(array)
    assert expected[0] == "first  tweet" and len(expected) == 3
    assert read_tweets(jsonl)[0] == expected
    assert read_tweets(table)[0] == expected


def test_gzip_detected_by_magic_bytes_not_suffix(tmp_path):
    path = tmp_path / "archive.data"
    path.write_bytes(gzip.compress(json.dumps(TWEETS).encode("utf-8")))
    lines, _ = read_tweets(path)
    assert lines[0] == "first  tweet"


def test_gzip_of_several_members_and_cut_short(tmp_path):
    """Members one after another (cat a.gz b.gz) unpack whole; an archive cut short is one line."""
    data = json.dumps(TWEETS).encode("utf-8")
    path = tmp_path / "archive.json.gz"
    path.write_bytes(gzip.compress(data[:40]) + gzip.compress(data[40:]))
    assert read_tweets(path)[0][0] == "first  tweet"
    path.write_bytes(gzip.compress(data)[:-12])
    with pytest.raises(CharlstmError, match="corrupt: it is cut short"):
        read_tweets(path)


def test_csv_text_field_and_date_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("body,date\nhello,2020-01-02\n\"multi\nline\",2020-01-01T10:00:00Z\n")
    lines, summary = read_tweets(path, text_field="body", since=dt.date(2020, 1, 2))
    assert lines == ["hello"]
    assert summary["dropped"]["date"] == 1


def test_emoji_survive_byte_identical(tmp_path):
    path = _write_json(tmp_path / "e.json", [{"text": EMOJI}])
    lines, summary = read_tweets(path)
    assert lines[0].encode("utf-8") == EMOJI.encode("utf-8")
    # Three grapheme clusters, two spaces collapse into one symbol, plus the newline.
    assert summary["distinct_symbols"] == 5


def test_line_breaks_fold_into_one_space(tmp_path):
    breaks = "\n \r\n \v \f \x1c \x1d \x1e \x85 \u2028 \u2029"
    texts = [f"a{b}b" for b in breaks.split(" ")] + ["c \n\n  d", "e  f"]
    lines, summary = read_tweets(_write_json(tmp_path / "t.json", [{"text": t} for t in texts]))
    assert lines == ["a b", "c d", "e  f"]  # breaks fold; plain double spaces stay
    assert summary["dropped"]["duplicate"] == 9


def test_retweets_dropped_or_kept(tmp_path):
    path = _write_json(tmp_path / "t.json", [
        {"text": "RT @x: hi"},
        {"text": "flagged", "is_retweet": True},
        {"text": "nested", "retweeted_status": {"text": "orig"}},
        {"text": "mine", "is_retweet": False},
    ])
    assert read_tweets(path)[0] == ["mine"]
    lines, summary = read_tweets(path, keep_retweets=True)
    assert lines == ["RT @x: hi", "flagged", "nested", "mine"]
    assert summary["dropped"]["retweet"] == 0


def test_url_modes(tmp_path):
    text = "see https://t.co/abc, or http://x.org/a?b=1 now https://t.co/end"
    path = _write_json(tmp_path / "t.json", [{"text": text}, {"text": "https://t.co/only"}])
    assert read_tweets(path)[0][0] == text
    assert read_tweets(path, urls="placeholder")[0] == ["see <URL>, or <URL> now <URL>", "<URL>"]
    lines, summary = read_tweets(path, urls="drop")
    assert lines == ["see, or now"]
    assert summary["dropped"]["empty"] == 1
    with pytest.raises(CharlstmError, match="unknown URL mode"):
        read_tweets(path, urls="strip")


def test_duplicates_and_empty_dropped(tmp_path):
    path = _write_json(tmp_path / "t.json", [
        {"text": "same"}, {"text": " same\n"}, {"text": "  "}, {"text": None}, {"text": "other"},
    ])
    lines, summary = read_tweets(path)
    assert lines == ["same", "other"]
    assert summary == {
        "files": 1,
        "read": 5,
        "kept": 2,
        "dropped": {"no_text": 1, "empty": 1, "retweet": 0, "date": 0, "duplicate": 1},
        "distinct_symbols": len(set("sameother\n")),
    }


def test_since_until_inclusive_and_undated_dropped(tmp_path):
    path = _write_json(tmp_path / "t.json", [
        {"text": "d1", "created_at": "2018-10-01T23:59:59Z"},
        {"text": "d2", "created_at": "Tue Oct 02 00:00:00 +0000 2018"},
        {"text": "d3", "created_at": "2018-10-03 12:00:00"},
        {"text": "d4", "created_at": "2018-10-04"},
        {"text": "undated"},
        {"text": "garbled", "created_at": "yesterday"},
    ])
    lines, summary = read_tweets(path, since=dt.date(2018, 10, 2), until=dt.date(2018, 10, 3))
    assert lines == ["d2", "d3"]
    assert summary["dropped"]["date"] == 4
    # Without a range nothing is dropped, and with undated tweets input order is kept.
    assert read_tweets(path)[0] == ["d1", "d2", "d3", "d4", "undated", "garbled"]
    with pytest.raises(CharlstmError, match="after until"):
        read_tweets(path, since=dt.date(2019, 1, 1), until=dt.date(2018, 1, 1))


def test_tweet_errors(tmp_path):
    with pytest.raises(CharlstmError, match="no such file"):
        read_tweets(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"text": "a"},')
    with pytest.raises(CharlstmError, match="bad.json is not valid JSON"):
        read_tweets(bad)
    bad_lines = tmp_path / "bad.jsonl"
    bad_lines.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(CharlstmError, match="bad.jsonl, line 2"):
        read_tweets(bad_lines)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text('text,date\n"a"b,2020\n')
    with pytest.raises(CharlstmError, match="bad.csv, line 2: malformed CSV"):
        read_tweets(bad_csv)
    no_column = tmp_path / "cols.csv"
    no_column.write_text("id,body\n1,hello\n")
    with pytest.raises(CharlstmError, match="columns found: id, body"):
        read_tweets(no_column)
    with pytest.raises(CharlstmError, match="no tweets left"):
        read_tweets(_write_json(tmp_path / "rt.json", [{"text": "RT @a: b"}]))


# --------------------------------------------------------------------------------------
# Synthetic languages
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", SYNTH_TASKS)
def test_generated_lines_are_valid(task):
    lines = synth_lines(task, 300, max_n=6, rng=np.random.default_rng(1))
    assert len(lines) == 300
    for line in lines:
        valid, n = check_line(task, line)
        assert valid, line
        assert (n == 3) if task == "copy" else (1 <= n <= 6)
    sizes = {check_line(task, line)[1] for line in lines}
    assert sizes == ({3} if task == "copy" else set(range(1, 7)))


def test_synth_is_reproducible_from_the_seed():
    def make():
        return synth_lines("selective", 50, rng=np.random.default_rng(7))
    assert make() == make()
    assert make() != synth_lines("selective", 50, rng=np.random.default_rng(8))


def test_selective_has_distractors_and_counts_only_as():
    lines = synth_lines("selective", 200, rng=np.random.default_rng(0))
    assert any("X" in line for line in lines)
    for line in lines:
        prompt, answer = line.split("Y")
        assert prompt.count("a") == len(answer) and set(answer) == {"b"}
        assert "XXX" not in prompt and prompt.startswith("a")


@pytest.mark.parametrize("task, line, expected", [
    ("counting", "aaaXbbb", (True, 3)),
    ("counting", "aaaXbb", (False, 3)),
    ("counting", "aaXbbb\n", (False, 2)),
    ("counting", "aaYbb", (False, None)),
    ("selective", "aXaaXXaYbbbb", (True, 4)),
    ("selective", "aaXbb", (False, None)),
    ("selective", "aXaYbbb", (False, 2)),
    ("selective", "aXXXaYbb", (False, 2)),
    ("remember", "AxxxYa", (True, 3)),
    ("remember", "BxYb\n", (True, 1)),
    ("remember", "AxxYb", (False, 2)),
    ("remember", "AxxYA", (False, 2)),
    ("remember", "xxYa", (False, None)),
    ("copy", "abcXabc", (True, 3)),
    ("copy", "abcXabd", (False, 3)),
    ("copy", "abcXab", (False, 3)),
    ("copy", "abXab", (False, None)),
])
def test_check_line(task, line, expected):
    assert check_line(task, line) == expected


def test_check_lines_groups_by_n_numerically():
    lines = ["a" * 10 + "X" + "b" * 10, "aaXbb", "aaXb", "aXb", "junk"]
    report = check_lines("counting", lines)
    assert report["n"] == 5
    assert report["valid"] == 3
    assert report["valid_share"] == pytest.approx(0.6)
    assert report["unparsed"] == 1
    assert list(report["by_n"]) == ["1", "2", "10"]
    assert report["by_n"]["2"] == {"lines": 2, "valid": 1, "valid_share": 0.5}
    assert check_lines("copy", [])["valid_share"] == 0.0


def test_synth_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(CharlstmError, match="counting, selective, remember, copy"):
        synth_lines("parity", 5, rng=rng)
    with pytest.raises(CharlstmError, match="n_lines"):
        synth_lines("copy", 0, rng=rng)
    with pytest.raises(CharlstmError, match="max_n"):
        synth_lines("counting", 5, max_n=0, rng=rng)
    with pytest.raises(CharlstmError, match="unknown task"):
        check_line("parity", "aXb")
    with pytest.raises(CharlstmError, match="unknown task"):
        check_lines("parity", [])
