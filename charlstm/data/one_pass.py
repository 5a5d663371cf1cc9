"""One pass, when the start of the corpus tells its vocabulary: a large ASCII corpus is encoded
with the vocabulary its start shows while the workers count it (see encode_while_counting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charlstm.data.blocks import Input, input_record, read_pieces
from charlstm.data.counting import Counted, counted_from
from charlstm.data.datadir import IDS, ReadOptions
from charlstm.data.pieces import ByteProgress, Meter, ascii_bytes, changed_error, file_stamp
from charlstm.data.vocab import Vocab, byte_counter, count_bytes, vocab_from_counts
from charlstm.data.workers import Ranges, Runner, pool_wanted
from charlstm.data.writing import (HEADER_BYTES, Hashing, Writer, check_disk_space, make_dir, npy_header,
                                   open_for_writing)
from charlstm.errors import CharlstmError


PROVISIONAL_BYTES = 4 << 20     # the start of the corpus read for the vocabulary it guesses
_UNSEEN = 255                   # the id the guessed table gives a byte it does not hold
_UNSEEN_BYTE = bytes([_UNSEEN])


def encode_while_counting(inputs: list[Input], options: ReadOptions, out_dir: Path, tmp: Path,
                          progress: ByteProgress | None, workers: int | None, block_bytes: int,
                          pool_min_bytes: int) -> Counted | None:
    """Both passes at once, for large ASCII corpora: the ids of a byte-per-symbol corpus are as
    large as the corpus, so writing them is bound by the disk, and counting first would leave
    the disk idle for a third of the time. The vocabulary is guessed from the first
    PROVISIONAL_BYTES (with --min-count 1 it is the set of symbols present, and the start of
    an ASCII text almost always holds them all); the workers count the files in stretches
    (Ranges) while this process encodes them with the guess's table, in which every byte the
    guess lacks is _UNSEEN. The ids stand if the count's vocabulary is the guess and every
    piece was ASCII without _UNSEEN among its ids; otherwise (a symbol first seen later, a
    piece that needs its clusters found, CR in grapheme mode, a line too long to split at)
    None, and the caller runs the two passes from the start. Returns pass 1's result, the
    hashes included, with tmp/ids.npy written."""
    if options.min_count != 1 or any(inp.path is None or inp.gzip for inp in inputs):
        return None
    with Runner(options, None, workers, pool_wanted(inputs, pool_min_bytes)) as runner:
        if not runner.pool_wanted:
            return None
        guess = _guess_vocab(inputs[0], options, block_bytes)
        if guess is None:
            return None
        most = HEADER_BYTES + sum(inp.stored_bytes for inp in inputs)    # at most one id per byte
        try:
            check_disk_space(out_dir, most)
        except CharlstmError:
            return None                 # the two passes refuse it, or fit it exactly
        table = bytes(guess.id_of(chr(b), _UNSEEN) for b in range(256))
        ranges = Ranges(runner, inputs)
        make_dir(tmp)
        path = tmp / IDS
        f = open_for_writing(path)
        written, records = 0, []
        with f, Writer(f, path) as writer, Hashing(len(inputs)) as hashing:
            f.write(npy_header(np.uint8, 0))        # the count is known at the end
            meter = Meter(progress, "encoding", inputs)

            def on_block(block: bytes, consumed: int):
                hashing.add(block)
                meter.at(consumed)

            for inp in inputs:
                before, size = file_stamp(inp), 0
                hashing.start_input()
                for piece in read_pieces(inp, block_bytes, on_block):
                    size += len(piece.data)
                    data = ascii_bytes(piece, options)
                    if data is None:
                        return None
                    ids = data.translate(table)
                    if _UNSEEN_BYTE in ids:
                        return None
                    written += len(ids)
                    writer.write(ids)
                    if not ranges.collect():
                        return None
                listed = (inp.stored_bytes, inp.mtime_ns)
                if file_stamp(inp) != before or before != listed:
                    raise changed_error(inp)
                meter.done_input()
                records.append(input_record(inp, size, hashing.end_input()))
            if not ranges.finish():
                return None
            for inp, record, counted_bytes in zip(inputs, records, ranges.bytes):
                # The workers may have read a file's later stretches after this process read
                # it: a file rewritten meanwhile (even to the same size) shows in its stamp.
                if record["bytes"] != counted_bytes or file_stamp(inp) != (inp.stored_bytes, inp.mtime_ns):
                    raise changed_error(inp)
            counted = counted_from(inputs, options, ranges.per_codepoint, ranges.clusters, records, hashing.whole())
            if counted.vocab != guess or written != counted.symbols:
                return None
            writer.rewrite_start(npy_header(np.uint8, written))
            writer.finish()
        return counted


def _guess_vocab(inp: Input, options: ReadOptions, block_bytes: int) -> Vocab | None:
    """The vocabulary of the first PROVISIONAL_BYTES of the input, if all of it is ASCII the
    256-entry tables can take; else None."""
    per_byte, read = np.zeros(256, dtype=np.int64), 0
    for piece in read_pieces(inp, block_bytes):
        data = ascii_bytes(piece, options)
        if data is None:
            return None
        per_byte += count_bytes(data)
        read += len(piece.data)
        if read >= PROVISIONAL_BYTES:
            break
    if not per_byte.any():
        return None
    return vocab_from_counts(byte_counter(per_byte), options.unit, 1)
