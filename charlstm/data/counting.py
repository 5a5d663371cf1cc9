"""Pass 1 of encoding a corpus: count every input's symbols piece by piece and build the
vocabulary from the counts, as build_vocab builds it from the whole text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.data.blocks import BLOCK_BYTES, Input, input_record, read_pieces
from charlstm.data.datadir import ReadOptions
from charlstm.data.pieces import ByteProgress, Meter, add_found, count_piece
from charlstm.data.vocab import MAX_CODEPOINT, Vocab, vocab_from_counts
from charlstm.data.workers import POOL_MIN_BYTES, Runner, pool_wanted
from charlstm.data.writing import HEADER_BYTES, Hashing, open_for_writing, write_to
from charlstm.errors import CharlstmError


@dataclass
class Counted:
    """What pass 1 found."""

    inputs: list[Input]
    options: ReadOptions
    vocab: Vocab
    counts: list[int]        # occurrences of each symbol of the vocabulary
    symbols: int
    records: list[dict]      # one per input (see blocks.input_record)
    sha256: str | None       # of all the inputs' bytes, one after another (None: pass 2 will hash them)
    size: int                # those bytes

    @property
    def ids_bytes(self) -> int:
        return HEADER_BYTES + self.symbols * np.dtype(self.vocab.dtype).itemsize

    @property
    def hash(self) -> str:
        return f"sha256:{self.sha256}"


def count_corpus(inputs: list[Input], options: ReadOptions, progress: ByteProgress | None = None,
                 workers: int | None = None, block_bytes: int = BLOCK_BYTES, spool_dir: Path | None = None,
                 pool_min_bytes: int = POOL_MIN_BYTES, hash_bytes: bool = True) -> tuple[Counted, list[Input]]:
    """Pass 1. Returns what it found, and the inputs for pass 2 (standard input replaced by its
    copy in spool_dir, which it needs). hash_bytes False leaves the hashes (Counted.sha256 and
    each record's) to pass 2, which has a core to spare for them while the disk takes its ids."""
    per_codepoint = np.zeros(MAX_CODEPOINT, dtype=np.int64)
    clusters: Counter = Counter()
    records, again = [], []
    with Runner(options, None, workers, pool_wanted(inputs, pool_min_bytes)) as runner, \
            Hashing(len(inputs), hash_bytes) as hashing:
        meter = Meter(progress, "counting", inputs)
        for inp in inputs:
            spool = spool_path = None
            if inp.path is None:
                if spool_dir is None:
                    raise CharlstmError("standard input needs a directory to be copied into")
                spool_path = spool_dir / "stdin.txt"
                spool = open_for_writing(spool_path)
            size = [0]
            hashing.start_input()

            def on_block(block: bytes, consumed: int, size=size, spool=spool, spool_path=spool_path):
                hashing.add(block)
                size[0] += len(block)
                if spool is not None:
                    write_to(spool, block, spool_path)
                meter.at(consumed)

            # Without hashes to take, a large plain file is counted by the workers alone, each
            # reading its own stretch of it (this process reads none of it).
            ranged = None
            if not hash_bytes and runner.pool_wanted and inp.path is not None and not inp.gzip:
                ranged = runner.count_ranges(inp, meter)
            if ranged is not None:
                found_codepoints, found_clusters, size[0] = ranged
                per_codepoint += found_codepoints
                clusters.update(found_clusters)
            else:
                try:
                    for piece, found in runner.map(read_pieces(inp, block_bytes, on_block), count_piece,
                                                   path=None if inp.gzip else inp.path):
                        add_found(found, per_codepoint, clusters)
                finally:
                    if spool is not None:
                        spool.close()
            meter.done_input()
            records.append(input_record(inp, size[0], hashing.end_input()))
            again.append(inp if spool is None else Input(name=inp.name, path=spool_path, stored_bytes=size[0]))
        sha256 = hashing.whole()
    return counted_from(inputs, options, per_codepoint, clusters, records, sha256), again


def counted_from(inputs: list[Input], options: ReadOptions, per_codepoint: np.ndarray, clusters: Counter,
                 records: list[dict], sha256: str | None) -> Counted:
    """Pass 1's result from its counts: the vocabulary build_vocab would build from the whole text."""
    counts = Counter({chr(k): int(per_codepoint[k]) for k in np.flatnonzero(per_codepoint)})
    counts.update(clusters)
    if not counts:
        raise CharlstmError(f"{inputs[0].name if len(inputs) == 1 else 'the inputs'}: the corpus is empty")
    vocab = vocab_from_counts(counts, options.unit, options.min_count)
    symbols = sum(counts.values())
    per_symbol = [counts.get(s, 0) for s in vocab.symbols]
    if vocab.unk is not None:      # U+FFFD itself, and every rare symbol it stands for
        per_symbol[vocab.unk] = symbols - sum(n for k, n in enumerate(per_symbol) if k != vocab.unk)
    return Counted(inputs=inputs, options=options, vocab=vocab, counts=per_symbol, symbols=symbols,
                   records=records, sha256=sha256, size=sum(r["bytes"] for r in records))
