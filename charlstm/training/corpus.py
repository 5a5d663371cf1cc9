"""What a training run reads, found and checked before the run directory is touched.

  - text given directly, or a text file of at most IN_MEMORY_MAX_BYTES: read whole and encoded
    in memory, as it always was;
  - a data directory (`charlstm corpus encode`): its ids memory-mapped, nothing copied;
  - a larger text file: counted now (one pass over it, nothing written, so every problem with it
    is found and the disk space it needs is checked before anything is written), then encoded
    into the run directory's data/ once the run holds that directory (`Corpus.encode_into`). A
    later --resume of the same run finds data/ there and reads it, unless the file has changed.
Any of them gives the same ids for the same text, so where a corpus lives never changes a run.

With labels (TrainConfig.labels, --labels) the corpus is a labelled file or a folder per label
(data/labelled.py), read whole and joined into the joint ids of a model conditioned on labels
(training/conditional.py); `Corpus.labels` then names the labels.

Each corpus has a record (data/datadir.corpus_record: hash, size, symbols, reading options) that
the checkpoint keeps, so that --resume can tell a different corpus from the one it trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from charlstm.data.blocks import Input, list_inputs, same_file
from charlstm.data import corpora
from charlstm.data.datadir import (IDS, MANIFEST, ReadOptions, corpus_difference, corpus_record, is_data_dir,
                                   open_data_dir)
from charlstm.data.encode import ByteProgress, Counted, check_disk_space, count_corpus, encode_corpus, human_bytes
from charlstm.data.labelled import read_labelled
from charlstm.data.text import decode_text, read_bytes, read_text
from charlstm.data.vocab import Vocab, build_and_encode, build_vocab
from charlstm.errors import CharlstmError
from charlstm.files import write_text
from charlstm.model import LabelSet
from charlstm.training import conditional

IN_MEMORY_MAX_BYTES = 32 << 20   # a text file up to this size is read whole (about ten times it in memory)
RUN_DATA = "data"                # where a larger file is encoded, inside the run directory
DEFAULT_CORPUS = "corpus.txt"    # where a run without a corpus keeps its copy of the default one


@dataclass
class Corpus:
    """A corpus ready to train on: ids is None until a large file has been encoded."""

    name: str
    vocab: Vocab
    options: ReadOptions
    record: dict
    ids: np.ndarray | None
    from_data_dir: bool = False            # its reading options come from a data directory
    ids_name: str = ""                     # where the ids are, for messages about them
    labels: LabelSet | None = None         # a labelled corpus: ids are joint ids (model/stack.joint_ids)
    _counted: Counted | None = field(default=None, repr=False)
    _inputs: list | None = field(default=None, repr=False)

    def encode_into(self, run_dir: Path, progress: ByteProgress | None = None) -> None:
        """Encode a large file into run_dir/data (the caller holds run_dir) and map its ids."""
        if self.ids is not None:
            return
        target = Path(run_dir) / RUN_DATA
        encode_corpus(self._inputs, target, self.options, progress=progress, force=True, counted=self._counted)
        self.ids = open_data_dir(target, check_ids=False).ids
        self.ids_name = str(target / IDS)

    def open_encoded(self, run_dir: Path) -> None:
        """Map the ids another process encoded into run_dir/data (encode_into, on a distributed
        run's first process)."""
        target = Path(run_dir) / RUN_DATA
        self.ids = open_data_dir(target, check_ids=False).ids
        self.ids_name = str(target / IDS)


@dataclass(frozen=True)
class Resuming:
    """A checkpoint whose vocabulary the corpus is read with: the run being resumed (record: what
    it says of its corpus, None in checkpoints from before it was kept), or the weights a new run
    starts from (--init-from: record None, fine_tune True, any corpus the vocabulary can read)."""

    checkpoint: str
    record: dict | None
    vocab: Vocab
    fine_tune: bool = False

    def check(self, name: str, record: dict, vocab: Vocab | None = None) -> None:
        """Refuse a corpus other than the one the checkpoint was trained on, naming the difference."""
        difference = None if self.fine_tune else corpus_difference(self.record, record)
        if difference is None and vocab is not None and vocab != self.vocab:
            difference = "the corpus's vocabulary is not the checkpoint's"
        if difference is None:
            return
        if self.fine_tune:
            raise CharlstmError(f"{name}: cannot start from {self.checkpoint}: {difference}; a data directory or a "
                                "large file must have the vocabulary of the checkpoint it starts from "
                                "(a text file up to 32 MB is read with the checkpoint's vocabulary)")
        raise CharlstmError(f"{name}: cannot resume {self.checkpoint}: {difference}; resume with the corpus it "
                            f"was trained on, or train on this one from its weights with --init-from "
                            f"{self.checkpoint}")

    def encode(self, text: str, name: str):
        """text as ids of the checkpoint's vocabulary; a symbol it lacks (and no unknown symbol to
        map it to) is one line naming both."""
        try:
            return self.vocab.encode(text, unknown="unk")
        except CharlstmError as e:
            raise CharlstmError(f"{name}: {e} ({self.checkpoint})") from None


def default_corpus(out_dir, say: Callable[[str], None] | None = None):
    """(OUT/corpus.txt, its text, a function writing it once the run directory is locked) for a
    run given no corpus: the Python standard library's sources. A corpus.txt already there is
    used only if it is this Python's standard-library corpus (a run resumed); anything else there
    is the user's, never replaced. say: told where the copy went."""
    corpus = Path(out_dir) / DEFAULT_CORPUS
    text, summary = corpora.build_stdlib_corpus()
    if corpus.exists():
        if corpus.is_file() and corpus.stat().st_size == len(text.encode("utf-8")) \
                and read_text(corpus, max_bytes=None) == text:
            return corpus, text, lambda run_dir: None     # there already: nothing to write
        raise CharlstmError(f"{corpus}: exists and is not the built-in corpus; give it as CORPUS to train on it, "
                            "or choose another --out for the built-in one")

    def write_copy(run_dir: Path) -> None:
        write_text(corpus, text, "corpus")
        if say is not None:
            say(f"No corpus given: training on the Python standard library ({summary['files_read']} files, "
                f"{summary['bytes'] / 1e6:.1f} MB, written to {corpus}).")

    return corpus, text, write_copy


def load_corpus(corpus, text: str | None, options: ReadOptions, out_dir, resuming: Resuming | None = None,
                progress: ByteProgress | None = None, message: Callable[[str], None] | None = None,
                labels: bool = False, seed: int = 0) -> Corpus:
    """Find and check the corpus of a run (see the module docstring). resuming: the checkpoint
    being resumed, whose corpus this must be, or the one a run starts from (a text read whole is
    encoded with its vocabulary).
    progress: shown the bytes of a large file read; message: told what happens to it.
    labels: the corpus is labelled, its examples joined in an order shuffled with `seed`."""
    if labels:
        return _labelled(corpus, text, options, resuming, seed)
    if text is not None:
        if not text.strip():
            raise CharlstmError("the corpus is empty (or only whitespace)")
        return _in_memory("the text", text, text.encode("utf-8", "surrogatepass"), options, resuming)
    if corpus is None:
        raise CharlstmError("give a corpus file (or text=...)")
    path = Path(corpus)
    if path.is_dir():
        data = open_data_dir(path)
        if resuming is not None:
            resuming.check(str(path), data.record, data.vocab)
        return Corpus(name=str(path), vocab=data.vocab, options=data.options, record=data.record, ids=data.ids,
                      from_data_dir=True, ids_name=str(path / IDS))
    inputs = list_inputs([path])
    inp = inputs[0]
    if not inp.gzip and inp.stored_bytes <= IN_MEMORY_MAX_BYTES:
        raw = read_bytes(path, max_bytes=None)
        text = decode_text(raw, str(path), errors=options.encoding_errors, newline=options.newline)
        if not text.strip():
            raise CharlstmError(f"{path}: the corpus is empty (or only whitespace)")
        return _in_memory(str(path), text, raw, options, resuming)
    return _large_file(inp, inputs, options, Path(out_dir), resuming, progress, message or (lambda line: None))


def _in_memory(name: str, text: str, raw: bytes, options: ReadOptions, resuming: Resuming | None) -> Corpus:
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    if resuming is None:
        vocab, ids = build_and_encode(text, options.unit, options.min_count)
    else:
        resuming.check(name, corpus_record(digest, len(raw), None, options))     # before encoding with its vocabulary
        vocab, ids = resuming.vocab, resuming.encode(text, name)
    return Corpus(name=name, vocab=vocab, options=options, record=corpus_record(digest, len(raw), len(ids), options),
                  ids=ids)


def _labelled(corpus, text: str | None, options: ReadOptions, resuming: Resuming | None, seed: int) -> Corpus:
    """A labelled file or folder joined into joint ids (training/conditional.py)."""
    if text is not None or corpus is None:
        raise CharlstmError("--labels trains on a labelled file (label<TAB>text lines) or a folder per label: "
                            "give it as CORPUS")
    if options.newline != "keep" or options.encoding_errors != "strict":
        raise CharlstmError("--newline and --encoding-errors do not apply with --labels: a labelled file is read "
                            "as UTF-8, with its line breaks written \\n")
    path = Path(corpus)
    if is_data_dir(path):
        raise CharlstmError(f"{path}: a data directory holds no labels; --labels reads a labelled file "
                            "(label<TAB>text lines) or a folder per label")
    data = read_labelled(path)
    pieces, labels = conditional.joined_examples(data, seed)
    if path.is_dir():
        digest, size = conditional.corpus_digest(data)
    else:        # the file's own bytes, as for any corpus file (so eval --held-out can check it)
        raw = read_bytes(path, max_bytes=None)
        digest, size = "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)
    if resuming is None:
        vocab = build_vocab("".join(pieces), options.unit, options.min_count)

        def encode(piece):
            return vocab.encode(piece, unknown="unk")
    else:
        resuming.check(str(path), corpus_record(digest, size, None, options))     # before encoding with its vocabulary
        vocab, encode = resuming.vocab, (lambda piece: resuming.encode(piece, str(path)))
    ids = conditional.labelled_ids(pieces, labels, len(vocab), encode)
    return Corpus(name=str(path), vocab=vocab, options=options, record=corpus_record(digest, size, len(ids), options),
                  ids=ids, labels=conditional.label_set(data))


def _large_file(inp: Input, inputs: list, options: ReadOptions, out_dir: Path, resuming: Resuming | None,
                progress: ByteProgress | None, message: Callable[[str], None]) -> Corpus:
    target = out_dir / RUN_DATA
    if (target / MANIFEST).is_file():                 # encoded by an earlier start of this run
        data = open_data_dir(target, check_ids=False)
        records = data.manifest["inputs"]
        if len(records) == 1 and same_file(records[0], inp) and data.options == options:
            if resuming is not None:
                resuming.check(inp.name, data.record, data.vocab)
            message(f"{inp.name}: reading the ids an earlier start of this run encoded into {target}")
            return Corpus(name=inp.name, vocab=data.vocab, options=options, record=data.record, ids=data.ids,
                          ids_name=str(target / IDS))
    what = "is gzip-compressed" if inp.gzip else f"is {human_bytes(inp.stored_bytes)}, more than is read whole"
    message(f"{inp.name} {what}: encoding it once into {target} (charlstm corpus encode can do this ahead, "
            "for any number of runs)")
    counted, again = count_corpus(inputs, options, progress)
    record = corpus_record(counted.hash, counted.size, counted.symbols, options)
    if resuming is not None:
        resuming.check(inp.name, record, counted.vocab)
    check_disk_space(target, counted.ids_bytes)
    return Corpus(name=inp.name, vocab=counted.vocab, options=options, record=record, ids=None,
                  _counted=counted, _inputs=again)


__all__ = ["Corpus", "Resuming", "default_corpus", "load_corpus", "IN_MEMORY_MAX_BYTES", "RUN_DATA", "DEFAULT_CORPUS"]
