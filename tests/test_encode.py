"""charlstm.data.encode and blocks: a corpus encoded block by block is exactly the corpus encoded
whole (grapheme clusters, CR LF and invalid bytes at any block border, every reading option), over
several inputs, gzip and a process pool; the data directory appears whole or not at all."""

import gzip
import hashlib
import os
import shutil
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charlstm.data import encode as encode_module
from charlstm.data import one_pass as one_pass_module
from charlstm.data import workers, writing
from charlstm.data.blocks import list_inputs, read_pieces
from charlstm.data.datadir import ReadOptions, open_data_dir
from charlstm.data.encode import encode_corpus
from charlstm.data.text import read_text
from charlstm.data.vocab import build_and_encode, count_symbols, vocab_from_counts
from charlstm.errors import CharlstmError

# Pieces that make grapheme clusters of several code points, CR LF and lone CRs, Hangul syllables
# from jamo, a conjunct, flags, ZWJ sequences, and bytes that are not UTF-8 at all.
PIECES = ["a", "e", " ", "\n", "\r", "\r\n", "\u0301", "\u0308", "\u200d", "\U0001F44D", "\U0001F3FD",
          "\U0001F1EB", "\U0001F1F7", "\U0001F468", "\u2764", "\ufe0f", "\u1100", "\u1161", "\u11a8",
          "\u0915", "\u094d", "\u0937", "\ufffd", "\u00e9", "\U0001F600", "\u0600", "\u0903"]
BAD_BYTES = [b"\xff", b"\xc3", b"\xe2\x82", b"\x80", b"\xed\xa0\x80", b"\xf0\x9f"]

corpus_bytes = st.lists(st.one_of(st.sampled_from(PIECES).map(lambda s: s.encode()),
                                  st.sampled_from(BAD_BYTES)), min_size=1, max_size=60).map(b"".join)
options = st.builds(ReadOptions, unit=st.sampled_from(["grapheme", "codepoint"]),
                    newline=st.sampled_from(["keep", "normalize"]),
                    encoding_errors=st.sampled_from(["strict", "replace"]), min_count=st.integers(1, 3))


def whole(path, opts: ReadOptions):
    """What reading the file whole gives: (vocab, ids), or the error's message."""
    try:
        text = read_text(path, errors=opts.encoding_errors, newline=opts.newline)
        return build_and_encode(text, opts.unit, opts.min_count)
    except CharlstmError as e:
        return str(e)


def in_blocks(paths, out, opts: ReadOptions, block_bytes: int, **kw):
    try:
        encode_corpus(list_inputs(paths), out, opts, workers=kw.pop("workers", 1), force=True,
                      block_bytes=block_bytes, **kw)
        data = open_data_dir(out)
        return data.vocab, np.array(data.ids)
    except CharlstmError as e:
        return str(e)


def assert_same(expected, got):
    if isinstance(expected, str) or isinstance(got, str):
        assert expected == got
        return
    assert expected[0] == got[0]
    assert expected[1].dtype == got[1].dtype
    np.testing.assert_array_equal(expected[1], got[1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=corpus_bytes, opts=options, block_bytes=st.integers(1, 24), bom=st.booleans())
def test_encoding_in_blocks_is_encoding_the_whole_file(tmp_path, data, opts, block_bytes, bom):
    """Whatever the block size (down to one byte, so every border falls inside a cluster, a CR LF
    or a multi-byte sequence somewhere), the vocabulary, the ids and the error of an invalid
    byte (its file and offset) are those of the file read whole."""
    path = tmp_path / "c.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    assert_same(whole(path, opts), in_blocks([path], tmp_path / "out", opts, block_bytes))


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 64, 1 << 20])
def test_an_invalid_byte_is_named_by_its_offset_in_the_file(tmp_path, block_bytes):
    path = tmp_path / "bad.txt"
    path.write_bytes(("x\u00e9 " * 40).encode() + b"\xc3\x28" + b" more\n" * 5)
    message = in_blocks([path], tmp_path / "out", ReadOptions(), block_bytes)
    assert message == f"{path}: not valid UTF-8 at byte offset 160 (pass --encoding-errors replace to replace invalid bytes)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]     # no data directory, no temporary one


def test_a_nul_byte_and_utf16_are_refused_as_when_read_whole(tmp_path):
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"abc\n" * 1000 + b"\0rest")
    assert in_blocks([nul], tmp_path / "o", ReadOptions(), 7) == f"{nul}: holds a NUL byte at byte offset 4000; is it a binary file?"
    utf16 = tmp_path / "u16.txt"
    utf16.write_bytes("hello\n".encode("utf-16"))
    assert "is UTF-16" in in_blocks([utf16], tmp_path / "o", ReadOptions(), 3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(corpus_bytes.map(lambda b: b.decode("utf-8", "replace")), min_size=1, max_size=4),
       block_bytes=st.integers(1, 16))
def test_each_input_is_its_own_text(tmp_path, parts, block_bytes):
    """Several inputs: one vocabulary over all of them, and the ids of each input in turn, as if
    each were encoded on its own (a symbol never spans two inputs)."""
    shutil.rmtree(tmp_path / "in", ignore_errors=True)
    (tmp_path / "in").mkdir()
    paths = []
    for k, text in enumerate(parts):
        paths.append(tmp_path / "in" / f"{k}.txt")
        paths[-1].write_bytes(text.encode())
    got = in_blocks(paths, tmp_path / "out", ReadOptions(), block_bytes)
    texts = [read_text(p) for p in paths]
    counts = sum((count_symbols(t) for t in texts), Counter())
    if not counts:
        assert "the corpus is empty" in got
        return
    vocab = vocab_from_counts(counts, "grapheme", 1)
    assert got[0] == vocab
    np.testing.assert_array_equal(got[1], np.concatenate([vocab.encode(t) for t in texts if t]))


def test_directories_gzip_and_the_manifest(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "b.txt").write_text("second file\n", encoding="utf-8")
    (tree / "a.txt").write_text("first fil\u00e9\n", encoding="utf-8")
    (tree / "sub" / "c.md").write_text("not taken\n", encoding="utf-8")
    (tree / "sub" / "d.txt").write_text("taken \U0001F44D\U0001F3FD\n", encoding="utf-8")
    with gzip.open(tmp_path / "z.txt.gz", "wb") as f:
        f.write("zipped\r\ntext\n".encode())
    inputs = list_inputs([tree, tmp_path / "z.txt.gz"], exts=(".txt",))
    assert [os.path.relpath(i.path, tmp_path) for i in inputs] == ["tree/a.txt", "tree/b.txt", "tree/sub/d.txt",
                                                                  "z.txt.gz"]
    assert [i.gzip for i in inputs] == [False, False, False, True]
    counted = encode_corpus(inputs, tmp_path / "data", ReadOptions(newline="normalize"), workers=1)
    data = open_data_dir(tmp_path / "data")
    texts = ["first fil\u00e9\n", "second file\n", "taken \U0001F44D\U0001F3FD\n", "zipped\ntext\n"]
    assert data.vocab.decode(data.ids) == "".join(texts)
    m = data.manifest
    assert m["symbols"] == len(data.ids) == sum(data.counts) == counted.symbols
    assert m["options"] == {"unit": "grapheme", "newline": "normalize", "encoding_errors": "strict", "min_count": 1}
    assert [r["bytes"] for r in m["inputs"]] == [len(t.encode()) for t in texts[:3]] + [len(b"zipped\r\ntext\n")]
    assert m["hash"] == "sha256:" + hashlib.sha256(b"".join(p.read_bytes() for p in
                                                           [tree / "a.txt", tree / "b.txt", tree / "sub" / "d.txt"])
                                                  + b"zipped\r\ntext\n").hexdigest()
    assert data.ids.dtype == np.uint8 and isinstance(data.ids, np.memmap)
    assert dict(zip(data.vocab.symbols, data.counts))["e"] == "".join(texts).count("e")


def test_damaged_gzip_is_one_line(tmp_path):
    good = gzip.compress(b"some text\n" * 1000)
    (tmp_path / "cut.gz").write_bytes(good[:len(good) // 2])
    message = in_blocks([tmp_path / "cut.gz"], tmp_path / "out", ReadOptions(), 1 << 20)
    assert message.startswith(f"{tmp_path / 'cut.gz'}: the gzip data is damaged or cut short")


def test_the_pool_gives_the_same_ids(tmp_path):
    """Text that needs segmentation goes to two worker processes; the result is the same."""
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(PIECES + ["word ", "words\n"] * 8, 60_000))
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    here = in_blocks([path], tmp_path / "one", ReadOptions(), 4096)
    pooled = in_blocks([path], tmp_path / "two", ReadOptions(), 4096, workers=2, pool_min_bytes=0)
    assert_same(here, pooled)
    assert_same(whole(path, ReadOptions()), pooled)


def test_workers_that_read_the_file_themselves_count_what_one_process_counts(tmp_path, monkeypatch):
    """Pass 1 sends runs of pieces of a plain file by their place in it; ASCII, CR LF, text that
    needs segmentation, several inputs and gzip give the ids, counts and hashes of one process."""
    monkeypatch.setattr(workers, "RUN_BYTES", 10_000)       # runs of a few pieces each
    monkeypatch.setattr(workers, "RANGE_BYTES", 20_000)     # large files: stretches counted
    monkeypatch.setattr(workers, "SEARCH_BYTES", 3_000)     # by the workers alone
    rng = np.random.default_rng(1)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes("".join(rng.choice(["word ", "x\r\n", "y\n"], 40_000)).encode())
    (tmp_path / "in" / "b.txt").write_text("".join(rng.choice(PIECES + ["ab\n"] * 8, 20_000)), encoding="utf-8")
    (tmp_path / "in" / "m.txt").write_text(("ascii line\n" * 2000 + "\u00e9\U0001F44D\U0001F3FD\n") * 8,
                                          encoding="utf-8")           # ASCII runs, cut by text that is not
    (tmp_path / "in" / "n.txt").write_text("short\n" * 3000 + "x" * 30_000 + "\n" + "after\n" * 5000,
                                          encoding="utf-8")           # a line longer than the search
    with gzip.open(tmp_path / "c.txt.gz", "wb") as f:
        f.write(b"zipped ascii\n" * 3000)
    paths = [tmp_path / "in", tmp_path / "c.txt.gz"]
    for opts in (ReadOptions(), ReadOptions(newline="normalize", min_count=2), ReadOptions(unit="codepoint")):
        here = in_blocks(paths, tmp_path / "one", opts, 4096)
        manifest_here = open_data_dir(tmp_path / "one").manifest
        pooled = in_blocks(paths, tmp_path / "two", opts, 4096, workers=2, pool_min_bytes=0)
        manifest_pooled = open_data_dir(tmp_path / "two").manifest
        assert_same(here, pooled)
        assert manifest_here == manifest_pooled
        assert open_data_dir(tmp_path / "two").counts == open_data_dir(tmp_path / "one").counts
    # a bad byte deep in a file counted in stretches is named as one process names it
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n" * 9000 + b"caf\xe9\n" + b"fine line\n" * 100)
    here = in_blocks([bad], tmp_path / "one", ReadOptions(), 4096)
    assert isinstance(here, str) and "byte offset 90003" in here
    assert here == in_blocks([bad], tmp_path / "two", ReadOptions(), 4096, workers=2, pool_min_bytes=0)


def test_the_hashes_are_taken_in_the_second_pass_as_in_the_first(tmp_path):
    """encode_corpus hashes while it writes; count_corpus alone (train FILE's resume check needs
    the hash before encoding) hashes in pass 1: the same records either way."""
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    paths[0].write_text("first\n" * 500, encoding="utf-8")
    paths[1].write_text("second \u00e9\n" * 500, encoding="utf-8")
    inputs = list_inputs(paths)
    counted = encode_corpus(inputs, tmp_path / "data", workers=1, block_bytes=1000)
    first, _ = encode_module.count_corpus(inputs, ReadOptions(), workers=1, block_bytes=1000)
    assert counted.records == first.records and counted.hash == first.hash
    assert [r["sha256"] for r in first.records] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert first.hash == "sha256:" + hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()
    single, _ = encode_module.count_corpus(inputs[:1], ReadOptions(), workers=1)
    assert single.hash == "sha256:" + single.records[0]["sha256"] == "sha256:" + first.records[0]["sha256"]


def test_the_ids_reach_the_disk_while_they_are_written(tmp_path, monkeypatch):
    """Every FLUSH_BYTES the writer asks for the data to be on disk; the ids are the same, and a
    disk that fails then is one line, with nothing left behind."""
    monkeypatch.setattr(writing.Writer, "FLUSH_BYTES", 5000)
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 5000, encoding="utf-8")
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    assert_same(whole(path, ReadOptions()), in_blocks([path], tmp_path / "data", ReadOptions(), 4096))
    assert len(calls) >= 1           # how many depends on how fast the disk is: see the test below

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(CharlstmError, match=r"^cannot write .*ids\.npy: Input/output error$"):
        encode_corpus(list_inputs([path]), tmp_path / "again", workers=1, block_bytes=4096)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "data"]


class _RightAway:
    """An executor that runs what it is given at once, so that every flush is over before the
    next write looks at it."""

    def __init__(self, workers):
        pass

    def submit(self, fn, *args):
        future = writing.Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait=True):
        pass


def write_through_writer(path, chunks, before_finish=lambda w: None) -> bytes:
    """Each chunk through a Writer into path; returns what the file then holds."""
    with open(path, "wb") as f, writing.Writer(f, path) as w:
        for chunk in chunks:
            w.write(chunk)
        before_finish(w)
        w.finish()
    return path.read_bytes()


def test_the_writer_flushes_every_flush_bytes_and_skips_while_a_flush_is_still_in_flight(tmp_path, monkeypatch):
    """With a disk that is never behind, every FLUSH_BYTES written is one fdatasync; with a disk
    still busy on the last one, the writer goes on writing and asks for no second flush."""
    import threading
    monkeypatch.setattr(writing.Writer, "FLUSH_BYTES", 5000)
    chunks = [bytes([i]) * 3000 for i in range(10)]
    wide = [np.full(1500, i, dtype=np.uint16) for i in range(10)]
    calls = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append(fd))
    with monkeypatch.context() as m:
        m.setattr(writing, "ThreadPoolExecutor", _RightAway)
        assert write_through_writer(tmp_path / "now.bin", chunks) == b"".join(chunks)
        assert len(calls) == 5           # at 6,000 bytes since the last flush, five times over
        calls.clear()
        assert write_through_writer(tmp_path / "wide.bin", wide) == b"".join(c.tobytes() for c in wide)
        assert len(calls) == 5           # bytes are counted, not ids: 3,000 bytes a write

    busy = threading.Event()
    calls.clear()

    def slow(fd):
        calls.append(fd)
        assert busy.wait(10)

    def while_busy(w):
        w.wait_for_writes()
        assert len(calls) == 1           # the first flush is still on the disk: the others were skipped
        busy.set()

    monkeypatch.setattr(os, "fdatasync", slow)
    assert write_through_writer(tmp_path / "busy.bin", chunks, while_busy) == b"".join(chunks)


def test_a_grapheme_cluster_longer_than_the_carry_limit_is_one_line(tmp_path, monkeypatch):
    from charlstm.data import blocks
    monkeypatch.setattr(blocks, "MAX_CARRY_BYTES", 64)
    path = tmp_path / "zalgo.txt"
    path.write_text("a" + "\u0301" * 200, encoding="utf-8")
    message = in_blocks([path], tmp_path / "out", ReadOptions(), 8)
    assert message.startswith(f"{path}: no place to split the text") and "binary" in message


def test_pieces_end_where_symbols_do(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one\r\ntwo \U0001F468\u200d\U0001F469 three\n" * 50, encoding="utf-8")
    pieces = list(read_pieces(list_inputs([path])[0], block_bytes=10))
    assert b"".join(p.data for p in pieces) == path.read_bytes()
    assert [p.offset for p in pieces] == list(np.cumsum([0] + [len(p.data) for p in pieces[:-1]]))
    assert pieces[0].first and not any(p.first for p in pieces[1:])
    for p in pieces:
        assert not p.data.endswith(b"\r") and not p.data.endswith(b"\xe2\x80\x8d")
        p.data.decode("utf-8")            # never cut inside a character


# --- the data directory appears whole or not at all ------------------------------------------------

def test_an_existing_directory_is_kept_unless_forced(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n", encoding="utf-8")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(CharlstmError, match="exists; choose another -o, or pass --force"):
        encode_corpus(list_inputs([path]), tmp_path / "mine", workers=1)
    with pytest.raises(CharlstmError, match="not a charlstm data directory; --force replaces only those"):
        encode_corpus(list_inputs([path]), tmp_path / "mine", workers=1, force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    encode_corpus(list_inputs([path]), tmp_path / "data", workers=1)
    path.write_text("other text\n", encoding="utf-8")
    encode_corpus(list_inputs([path]), tmp_path / "data", workers=1, force=True)
    data = open_data_dir(tmp_path / "data")
    assert data.vocab.decode(data.ids) == "other text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "data", "mine"]   # no temporary left


def test_a_failure_in_the_second_pass_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 100, encoding="utf-8")
    real = encode_module.write_ids

    def full_disk(*args, **kwargs):
        real(*args, **kwargs)
        raise CharlstmError("cannot write ids.npy: the disk is full")

    monkeypatch.setattr(encode_module, "write_ids", full_disk)
    with pytest.raises(CharlstmError, match="the disk is full"):
        encode_corpus(list_inputs([path]), tmp_path / "data", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_too_little_disk_space_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 100, encoding="utf-8")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(CharlstmError, match=r"needs [\d.]+ kB of disk space, and charlstm keeps 16\.8 MB free beside it, but only 1\.0 kB are free there"):
        encode_corpus(list_inputs([path]), tmp_path / "data", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_a_file_that_changes_between_the_passes_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 100, encoding="utf-8")
    real = encode_module.write_ids

    def edited(counted, inputs, *args, **kwargs):
        path.write_text("hello w0rld\n" * 100, encoding="utf-8")
        return real(counted, inputs, *args, **kwargs)

    monkeypatch.setattr(encode_module, "write_ids", edited)
    with pytest.raises(CharlstmError, match="changed while it was being encoded"):
        encode_corpus(list_inputs([path]), tmp_path / "data", workers=1)
    assert not (tmp_path / "data").exists()


def test_inputs_that_do_not_exist_or_hold_nothing(tmp_path):
    with pytest.raises(CharlstmError, match="no such file or directory"):
        list_inputs([tmp_path / "missing.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharlstmError, match="holds no .txt files"):
        list_inputs([tmp_path / "empty"])
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(CharlstmError, match="the corpus is empty"):
        encode_corpus(list_inputs([tmp_path / "e.txt"]), tmp_path / "data", workers=1)
    with pytest.raises(CharlstmError, match="only once"):
        list_inputs(["-", "-"])


# --- the command ---------------------------------------------------------------------------------

def test_corpus_encode_command(tmp_path):
    from click.testing import CliRunner
    from charlstm import cli
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.c").write_text("int main() { return 0; }\r\n", encoding="utf-8")
    (tmp_path / "tree" / "b.h").write_text("#define X 1\n", encoding="utf-8")
    (tmp_path / "tree" / "skip.c").write_text("skipped\n", encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["corpus", "encode", str(tmp_path / "tree"), "-", "-o", str(tmp_path / "d"),
                                           "--ext", ".c,.h", "--exclude", "skip*", "--newline", "normalize",
                                           "--quiet"], input="from standard input\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    line, = result.stderr.splitlines()
    assert line.startswith(f"{tmp_path / 'd'}: 57 symbols (uint8, ") and "from 3 inputs of 58 bytes; sha256:" in line
    data = open_data_dir(tmp_path / "d")
    assert data.vocab.decode(data.ids) == "int main() { return 0; }\n#define X 1\nfrom standard input\n"
    assert [r["name"] for r in data.manifest["inputs"]] == [str(tmp_path / "tree" / "a.c"),
                                                           str(tmp_path / "tree" / "b.h"), "-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "tree"]      # the copy of stdin is gone
    again = CliRunner().invoke(cli.main, ["corpus", "encode", str(tmp_path / "tree" / "b.h"), "-o", str(tmp_path / "d")])
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [f"charlstm: error: {tmp_path / 'd'}: exists; choose another -o, or pass "
                                         "--force to replace it"]


@pytest.mark.parametrize("case", ["all at the start", "a symbol first seen late", "text with emoji late",
                                  "CR late", "a second input with a new symbol", "normalized newlines",
                                  "codepoints", "min count 2", "a NUL byte late", "a very long line"])
def test_encoding_while_counting_gives_what_two_passes_give(tmp_path, monkeypatch, case):
    """Large ASCII corpora are encoded with the vocabulary their start shows while the workers
    count them; whenever that guess fails the two passes run instead. Either way: the two
    passes' ids, vocabulary, counts and manifest, or their error."""
    monkeypatch.setattr(one_pass_module, "PROVISIONAL_BYTES", 5_000)
    monkeypatch.setattr(workers, "RANGE_BYTES", 20_000)
    monkeypatch.setattr(workers, "SEARCH_BYTES", 3_000)
    taken = []
    real = encode_module.encode_while_counting
    monkeypatch.setattr(encode_module, "encode_while_counting",
                        lambda *a, **k: taken.append(real(*a, **k)) or taken[-1])
    rng = np.random.default_rng(3)
    body = "".join(rng.choice(["the ", "cat ", "sat\n", "on ", "mat.\n"], 20_000))
    opts = {"normalized newlines": ReadOptions(newline="normalize"), "codepoints": ReadOptions(unit="codepoint"),
            "min count 2": ReadOptions(min_count=2)}.get(case, ReadOptions())
    late = {"a symbol first seen late": "~", "text with emoji late": "\U0001F44D\U0001F3FD", "CR late": "\r\n",
            "a NUL byte late": "\0"}.get(case, "")
    text = body[:60_000] + late + body[60_000:]
    if case == "a very long line":
        text = body[:30_000] + "x" * 30_000 + body[30_000:]
    if case in ("normalized newlines", "codepoints"):
        text = text.replace("sat\n", "sat\r\n")
    paths = [tmp_path / "a.txt"]
    paths[0].write_text(text, encoding="utf-8")
    if case == "a second input with a new symbol":
        paths.append(tmp_path / "b.txt")
        paths[1].write_text(body[:20_000] + "|" + body[:5_000], encoding="utf-8")
    two_passes = in_blocks(paths, tmp_path / "two", opts, 4096)
    one_pass = in_blocks(paths, tmp_path / "one", opts, 4096, workers=2, pool_min_bytes=0)
    assert_same(two_passes, one_pass)
    if case == "a NUL byte late":
        assert isinstance(one_pass, str) and "NUL" in one_pass
    else:
        assert open_data_dir(tmp_path / "one").manifest == open_data_dir(tmp_path / "two").manifest
        assert open_data_dir(tmp_path / "one").counts == open_data_dir(tmp_path / "two").counts
        # the one pass stands where the start held every symbol and every piece was ASCII
        assert (taken[-1] is not None) == (case in ("all at the start", "normalized newlines", "codepoints"))


def test_a_file_rewritten_while_the_workers_still_count_it_is_refused(tmp_path, monkeypatch):
    """In the one pass the workers may count a file's later stretches after this process has read
    it and gone on to the next input: a file rewritten meanwhile, even to the same size and the
    same symbols, is refused, as the two passes refuse it, and nothing is left behind."""
    monkeypatch.setattr(one_pass_module, "PROVISIONAL_BYTES", 5_000)
    monkeypatch.setattr(workers, "RANGE_BYTES", 20_000)
    monkeypatch.setattr(workers, "SEARCH_BYTES", 3_000)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"ab\n" * 700_000)
    b.write_bytes(b"ba\n" * 70_000)
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))     # an old stamp, so that a rewrite shows
    size_a, rewritten = a.stat().st_size, []

    def progress(stage, done, total):
        if stage == "encoding" and done > size_a and not rewritten:   # reading b.txt now
            with open(a, "r+b") as f:
                f.seek(size_a - 30_000)
                f.write(b"aa\n" * 10_000)
            rewritten.append(True)

    with pytest.raises(CharlstmError, match=r"a\.txt: changed while it was being encoded"):
        encode_corpus(list_inputs([a, b]), tmp_path / "out", ReadOptions(), progress=progress, workers=2,
                      block_bytes=1 << 20, pool_min_bytes=0)
    assert rewritten and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


_threads_at_fork: list | None = None


def _note_threads_at_fork():
    if _threads_at_fork is not None:
        import threading
        _threads_at_fork.append(threading.active_count())


os.register_at_fork(before=_note_threads_at_fork)


def test_the_workers_are_forked_before_this_process_starts_threads(tmp_path, monkeypatch):
    """Both passes start their pool on entering, before the threads that write and hash: a fork
    copies only the thread that calls it, and a lock another thread held would stay held in the
    child."""
    global _threads_at_fork
    path = tmp_path / "emoji.txt"
    path.write_text("caf\u00e9 \U0001F44D\U0001F3FD ok\n" * 4000, encoding="utf-8")
    _threads_at_fork = []
    try:
        encode_corpus(list_inputs([path]), tmp_path / "data", ReadOptions(), workers=2, block_bytes=4096,
                      pool_min_bytes=0)
        seen = list(_threads_at_fork)
    finally:
        _threads_at_fork = None
    assert seen and all(count == 1 for count in seen), seen
    assert open_data_dir(tmp_path / "data").vocab.decode(open_data_dir(tmp_path / "data").ids) == \
        path.read_text(encoding="utf-8")
