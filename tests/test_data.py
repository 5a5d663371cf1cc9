"""charlstm.data: the truncated-BPTT streams (every symbol predicted once per pass, continuity from
chunk to chunk), the validation split, and reading text files."""

import numpy as np
import pytest

from charlstm.data.streams import make_streams, split_ids
from charlstm.data.text import decode_text, read_text
from charlstm.errors import CharlstmError


def positions(n):
    """ids that are their own position, so a target says which symbol of the text it is."""
    return np.arange(n, dtype=np.int64)


def one_pass(streams):
    return [streams.chunk(k) for k in range(streams.chunks_per_pass)]


@pytest.mark.parametrize("n,batch_size,seq_length", [
    (1 + 4 * 5 * 3, 4, 5),    # divides evenly: no weights anywhere
    (1000, 7, 9),             # ragged: streams of different lengths and a short last chunk
    (23, 3, 7),               # exactly one (ragged) chunk
    (22, 3, 7),               # n - 1 = 21 = 3 * 7: exactly one full chunk
    (64, 5, 1),               # seq_length 1
])
def test_every_training_symbol_is_predicted_exactly_once_per_pass(n, batch_size, seq_length):
    streams = make_streams(positions(n), batch_size, seq_length)
    assert streams.batch_size == batch_size
    predicted = []
    for inputs, targets, weights in one_pass(streams):
        assert inputs.shape == targets.shape and inputs.shape[1] == batch_size
        assert inputs.shape[0] <= seq_length
        assert inputs.flags.c_contiguous and targets.flags.c_contiguous
        w = np.ones(targets.shape, dtype=bool) if weights is None else weights > 0
        if weights is not None:
            assert set(np.unique(weights)) <= {0.0, 1.0}
        # every counted prediction is "the symbol after the input"
        np.testing.assert_array_equal(targets[w], inputs[w] + 1)
        predicted.extend(targets[w].tolist())
    assert sorted(predicted) == list(range(1, n))      # symbols 1..n-1, each once; 0 is never a target
    with pytest.raises(IndexError):
        streams.chunk(streams.chunks_per_pass)


def test_divisible_length_needs_no_weights_and_ragged_length_does():
    even = make_streams(positions(1 + 4 * 10), 4, 5)
    assert all(w is None for _, _, w in one_pass(even))
    assert even.chunks_per_pass == 2
    ragged = make_streams(positions(1 + 4 * 10 + 3), 4, 5)   # 43 targets: streams of 11, 11, 11, 10
    np.testing.assert_array_equal(ragged.lengths, [11, 11, 11, 10])
    chunks = one_pass(ragged)
    assert len(chunks) == 3
    assert all(w is None for _, _, w in chunks[:2])
    last_inputs, _, last_w = chunks[2]
    assert last_inputs.shape == (1, 4)
    np.testing.assert_array_equal(last_w, [[1, 1, 1, 0]])


def test_streams_continue_from_chunk_to_chunk():
    n, B, T = 997, 6, 8
    streams = make_streams(positions(n), B, T)
    chunks = one_pass(streams)
    lengths = streams.lengths
    assert np.abs(np.diff(lengths)).max() <= 1 and lengths.sum() == n - 1
    for k in range(B):
        # stream k read across the whole pass is one contiguous stretch of the text, and the
        # streams are laid end to end
        read = np.concatenate([inputs[:, k] for inputs, _, _ in chunks])[:lengths[k]]
        np.testing.assert_array_equal(read, np.arange(lengths[:k].sum(), lengths[:k + 1].sum()))
        for inputs, targets, _ in chunks:           # within a chunk, each target is the next input
            np.testing.assert_array_equal(targets[:-1, k], inputs[1:, k])
    # chunk j+1 of stream k starts where chunk j ended: its first input is chunk j's last target,
    # so the state carried across the boundary belongs to the text that follows
    for (_, t1, _), (i2, _, w2) in zip(chunks, chunks[1:]):
        live = np.ones(B, dtype=bool) if w2 is None else w2[0] > 0
        assert live.any()
        np.testing.assert_array_equal(i2[0, live], t1[-1, live])


def test_streams_keep_the_ids_dtype():
    ids = np.arange(300, dtype=np.uint16) % 257
    streams = make_streams(ids.astype(np.uint16), 3, 10)
    inputs, targets, _ = streams.chunk(0)
    assert inputs.dtype == np.uint16 and targets.dtype == np.uint16


def test_corpus_shorter_than_one_batch():
    with pytest.raises(CharlstmError, match="fewer than one batch"):
        make_streams(positions(4 * 5), 4, 5)              # needs 4 * 5 + 1 symbols
    make_streams(positions(4 * 5 + 1), 4, 5)
    with pytest.raises(CharlstmError):
        make_streams(positions(100), 0, 5)
    with pytest.raises(CharlstmError):
        make_streams(positions(100), 4, 0)


def test_validation_split():
    ids = positions(1000)
    train, val = split_ids(ids, 0.05)
    assert len(val) == 50 and len(train) == 950
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)   # the end is held out
    np.testing.assert_array_equal(val, np.arange(950, 1000))
    train, val = split_ids(ids, 0.0)
    assert len(train) == 1000 and len(val) == 0
    with pytest.raises(CharlstmError):
        split_ids(positions(30), 0.05)                       # 1 symbol is too little to validate on
    for bad in (1.0, -0.1):
        with pytest.raises(CharlstmError):
            split_ids(ids, bad)


def test_read_text_names_the_byte_offset_of_invalid_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("h\u00e9llo ".encode("utf-8") + b"\xff" + b"world")
    with pytest.raises(CharlstmError, match="byte offset 7") as info:
        read_text(path)
    assert str(path) in str(info.value) and "replace" in str(info.value)
    assert read_text(path, errors="replace") == "h\u00e9llo \ufffdworld"


def test_read_text_truncated_multibyte_sequence(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes("ab\U0001F600".encode("utf-8")[:-1])   # a 4-byte emoji cut short
    with pytest.raises(CharlstmError, match="byte offset 2"):
        read_text(path)
    assert read_text(path, errors="replace") == "ab\ufffd"


def test_read_text_newlines(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"one\r\ntwo\rthree\nfour\r\n")
    assert read_text(path) == "one\r\ntwo\rthree\nfour\r\n"          # kept by default, byte for byte
    assert read_text(path, newline="normalize") == "one\ntwo\nthree\nfour\n"


def test_read_text_round_trips_unicode_and_drops_a_utf8_bom(tmp_path):
    text = "caf\u00e9 \U0001F44D\U0001F3FD \U0001F1EB\U0001F1F7\n"
    path = tmp_path / "u.txt"
    path.write_bytes(text.encode("utf-8"))
    assert read_text(path) == text
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_text(path) == text
    assert decode_text(text.encode("utf-8"), "mem") == text
