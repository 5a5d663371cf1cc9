"""Labelled corpora: texts, each with one label, for a classifier.

Two formats are read (`read_labelled` tells them apart by whether the path is a folder):

A. A UTF-8 file of one example per line, `label<TAB>text`. Lines end at LF (a CR before it is
   dropped, so CRLF files read the same); empty and blank lines are skipped. The first tab ends the
   label; label and text are otherwise taken as they are, with four escapes, so that any text
   fits on one line:

       \\t  a tab      \\n  a line feed      \\r  a carriage return      \\\\  a backslash

   Any other backslash, or one at the end of a field, is an error: a text holding a Windows path
   is meant to be written `C:\\\\dir`, and one written `C:\\dir` is caught, not misread. A second raw
   tab on a line is an error too (a table with a third column would otherwise merge it into the
   text). A label may not be empty nor start or end with white space; a text may not be empty.
   Each problem is one line naming FILE:LINE. `write_labelled` writes this format.

B. A folder with one sub-folder per label, one example per file below it (any depth). Hidden
   files and folders (a leading dot) are skipped; a file beside the label folders, a file that is
   not UTF-8 or is empty, and a label folder with no examples are errors naming the path. A file's
   CRLF line ends become LF and one final line end is dropped, so an example reads the same as it
   would in format A.

Examples keep the order they were read in (format B: label folders, then paths, sorted).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm import validate
from charlstm.data.text import read_bytes
from charlstm.errors import ArgumentError, CharlstmError
from charlstm.files import require_regular_file, write_text

ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.?)", re.DOTALL)
_UTF8_BOM = "\ufeff"


@dataclass(frozen=True, eq=False)    # eq=False: a dataclass's == would compare arrays, which raises
class Labelled:
    """Examples for a classifier. labels: the label names, sorted; texts[i] has the label
    labels[targets[i]] and came from sources[i] ("FILE:LINE", a file, or wherever a task says)."""
    labels: tuple[str, ...]
    texts: tuple[str, ...]
    targets: np.ndarray          # (N,) int64, read-only
    sources: tuple[str, ...]

    def __post_init__(self):
        targets = np.array(self.targets, dtype=np.int64).reshape(-1)
        targets.setflags(write=False)        # frozen means the indices too
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "targets", targets)
        if list(self.labels) != sorted(set(self.labels)):
            raise ValueError("labels must be sorted and distinct")
        if not len(self.texts) == len(targets) == len(self.sources):
            raise ValueError(f"{len(self.texts)} texts, {len(targets)} targets and {len(self.sources)} sources")
        if len(targets) and (targets.min() < 0 or targets.max() >= len(self.labels)):
            raise ValueError("a target is not an index into labels")

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        """Examples per label, in label order (a label with none counts 0)."""
        return dict(zip(self.labels, np.bincount(self.targets, minlength=len(self.labels)).tolist()))


def from_names(names, texts, sources=None, labels=None) -> Labelled:
    """A Labelled from each example's label name. labels: the label set to index into (sorted;
    default: the names that occur), so that parts of one corpus share their indices."""
    names, texts = list(names), list(texts)
    if len(names) != len(texts):
        raise CharlstmError(f"{len(names)} labels for {len(texts)} texts; give one label per text")
    labels = tuple(sorted(set(names) if labels is None else set(labels)))
    index = {name: k for k, name in enumerate(labels)}
    missing = sorted(set(names) - set(index))
    if missing:
        raise CharlstmError(f"label {validate.shown(missing[0])} is not one of {', '.join(labels)}")
    sources = [f"example {i + 1}" for i in range(len(texts))] if sources is None else list(sources)
    return Labelled(labels, tuple(texts), np.array([index[n] for n in names], dtype=np.int64), tuple(sources))


def take(data: Labelled, indices) -> Labelled:
    """The examples at `indices`, in that order, with the same labels (so targets keep their meaning)."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    return Labelled(data.labels, tuple(data.texts[i] for i in indices), data.targets[indices],
                    tuple(data.sources[i] for i in indices))


def check_label(label, where: str) -> str:
    """A label name as both formats allow it: a non-empty str with no white space at its ends
    (" pos" and "pos" would otherwise be two labels no one can tell apart)."""
    if not isinstance(label, str) or not label:
        raise CharlstmError(f"{where}: the label is empty; write label<TAB>text")
    if label != label.strip():
        raise CharlstmError(f"{where}: the label {validate.shown(label)} starts or ends with white space")
    return label


# --- format A: label<TAB>text lines ---------------------------------------------------------------

def unescape(field: str, where: str) -> str:
    """A field of a line with its escapes resolved (see the module docstring)."""
    def resolve(match: re.Match) -> str:
        code = match.group(1)
        if code not in ESCAPES:
            what = "a backslash ends the field" if not code else f"unknown escape {validate.shown(chr(92) + code)}"
            raise CharlstmError(f"{where}: {what}; the escapes are \\t \\n \\r and \\\\ (a backslash)")
        return ESCAPES[code]
    return _ESCAPE.sub(resolve, field) if "\\" in field else field


def escape(field: str) -> str:
    """A field as one line of format A: the backslash first, so the escapes it adds stay escapes."""
    return field.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def parse_line(line: str, where: str) -> tuple[str, str]:
    """(label, text) of one non-blank line of format A, escapes resolved."""
    label, tab, text = line.partition("\t")
    if not tab:
        raise CharlstmError(f"{where}: no tab; write label<TAB>text")
    if "\t" in text:
        raise CharlstmError(f"{where}: a second tab; write a tab inside the text as \\t")
    label = check_label(unescape(label, where), where)
    text = unescape(text, where)
    if not text:
        raise CharlstmError(f"{where}: the text is empty; every line is one example")
    return label, text


def read_lines(path: Path) -> Labelled:
    """Format A (see the module docstring)."""
    names, texts, sources = [], [], []
    for number, raw in enumerate(read_bytes(path).split(b"\n"), 1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharlstmError(f"{where}: not UTF-8 (byte {e.start + 1} of the line is 0x{raw[e.start]:02x}); "
                                "convert the file to UTF-8") from None
        if number == 1:
            line = line.removeprefix(_UTF8_BOM)
        line = line.removesuffix("\r")
        if not line.strip(" \t"):
            continue
        label, text = parse_line(line, where)
        names.append(label)
        texts.append(text)
        sources.append(where)
    if not texts:
        raise CharlstmError(f"{path}: holds no examples; write one label<TAB>text line per example")
    return from_names(names, texts, sources)


def write_labelled(path, labels_of_each, texts) -> None:
    """Write examples as format A (one label<TAB>text line each, escaped), atomically: a crash
    leaves the old file or none, never half of one. Read it back with read_labelled."""
    labels_of_each, texts = list(labels_of_each), list(texts)
    if len(labels_of_each) != len(texts):
        raise CharlstmError(f"{len(labels_of_each)} labels for {len(texts)} texts; give one label per text")
    lines = []
    for i, (label, text) in enumerate(zip(labels_of_each, texts)):
        where = f"example {i + 1}"
        check_label(label, where)
        if not isinstance(text, str) or not text:
            raise CharlstmError(f"{where}: the text is empty or not a str; every example needs a text")
        lines.append(f"{escape(label)}\t{escape(text)}\n")
    write_text(validate.path(path, "path"), "".join(lines), what="labelled corpus")


# --- format B: a folder per label -----------------------------------------------------------------

def read_example_file(path: Path) -> str:
    """One example of format B: the file's UTF-8 text, LF line ends, one final line end dropped."""
    require_regular_file(path, "text file")
    data = read_bytes(path)
    if b"\0" in data:
        raise CharlstmError(f"{path}: holds a NUL byte; is it a binary file? Every file is one text example")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CharlstmError(f"{path}: not UTF-8 (at byte offset {e.start}); convert it to UTF-8") from None
    text = text.replace("\r\n", "\n").removesuffix("\n")
    if not text:
        raise CharlstmError(f"{path}: is empty; every file is one example")
    return text


def read_folder(folder: Path) -> Labelled:
    """Format B (see the module docstring)."""
    names, texts, sources = [], [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise CharlstmError(f"{entry}: a file beside the label folders; move it into one, or remove it")
        label = check_label(entry.name, str(entry))
        found = 0
        for where, subfolders, files in os.walk(entry):        # symlinked folders are not followed
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(f for f in files if not f.startswith(".")):
                path = Path(where) / name
                names.append(label)
                texts.append(read_example_file(path))
                sources.append(str(path))
                found += 1
        if not found:
            raise CharlstmError(f"{entry}: holds no examples; put one text file per example in it, or remove it")
    if not texts:
        raise CharlstmError(f"{folder}: holds no examples; make one sub-folder per label with one text file "
                            "per example")
    return from_names(names, texts, sources)


def read_labelled(path) -> Labelled:
    """A labelled corpus: format A from a file, format B from a folder (see the module docstring)."""
    path = validate.path(path, "path")
    if path.is_dir():
        return read_folder(path)
    if not path.exists():
        raise CharlstmError(f"{path}: no such file or folder")
    # a device or a FIFO is refused before it is opened (/dev/zero never ends, a FIFO no one
    # writes to would block the open)
    require_regular_file(path, "labelled file", "give a file of label<TAB>text lines or a folder per label")
    return read_lines(path)


# --- using one ------------------------------------------------------------------------------------

def split_labelled(data: Labelled, fraction: float = 0.1, seed: int = 0) -> tuple[Labelled, Labelled]:
    """(train, held_out): about `fraction` of each label's examples held out, chosen with `seed`.

    Examples with the same text always go to the same part (a duplicate on both sides would let a
    classifier score by remembering), so the draw is over distinct texts, each counted under the
    label it first has. A label with at least two distinct texts has at least one in each part; one
    with a single text stays in train. Both parts keep the corpus's order and all its labels.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ArgumentError("fraction", f"{{name}} must be a number between 0 and 1 (both left out), got {fraction!r}")
    rng = validate.seed(seed, "seed")
    unit_of_text: dict[str, int] = {}
    unit_label: list[int] = []
    for text, target in zip(data.texts, data.targets.tolist()):
        if text not in unit_of_text:
            unit_of_text[text] = len(unit_label)
            unit_label.append(target)
    unit_label = np.array(unit_label, dtype=np.int64)
    held_unit = np.zeros(len(unit_label), dtype=bool)
    for k in range(len(data.labels)):
        units = np.flatnonzero(unit_label == k)
        if len(units) < 2:
            continue
        held = min(max(int(np.floor(fraction * len(units) + 0.5)), 1), len(units) - 1)
        held_unit[rng.permutation(units)[:held]] = True
    held_example = held_unit[[unit_of_text[t] for t in data.texts]] if len(data) else np.zeros(0, bool)
    return take(data, np.flatnonzero(~held_example)), take(data, np.flatnonzero(held_example))


def require_labels(data: Labelled, least: int = 2) -> Labelled:
    """The data, if at least `least` labels have examples (a classifier needs two to tell apart)."""
    present = {label: n for label, n in data.counts().items() if n}
    if len(present) < least:
        found = ", ".join(f"{validate.shown(label)}: {n}" for label, n in present.items()) or "no examples"
        raise CharlstmError(f"a classifier needs examples of at least {least} labels; found "
                            f"{len(present)} ({found})")
    return data


__all__ = ["Labelled", "from_names", "take", "read_labelled", "write_labelled", "split_labelled",
           "require_labels", "check_label", "escape", "unescape", "ESCAPES"]
