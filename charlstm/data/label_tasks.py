"""Three labelling tasks built from what a user already has: which phone sent a tweet, which
language a stretch of source code is in, and what kind of token each character of Python is.

Tweets (`tweet_sources`): the label is the client the archive records for each tweet. Three
clients wrote 95 % of the Trump Twitter Archive's own tweets (of 33,446, 585 retweets aside:
Android 14,544, Web Client 12,109, iPhone 4,591); the other 1,617 came from 16 clients (TweetDeck,
TwitLonger, Media Studio, Instagram, Facebook, ...), each small, several posting text another
service wrote. Lumped together they are a class that no device or writer stands behind, so they
are dropped unless asked for (keep_other=True labels them "other").

Code (`code_languages`): the label is the language a file's extension names (LANGUAGES), each
example a stretch of about `stretch` characters of one file cut at line ends. Stretches much
longer than asked (a minified script's one line) or much shorter (the tail of a file) are left
out, so that length says nothing of the language; so are files that say they were generated
(corpora.GENERATED_MARK), files that are binary, unreadable or not UTF-8, C++ trees of
/usr/include, whose .h files would blur the line between C and C++, and tables of data that do
not say they were generated (CODE_EXCLUDE).

Python (`python_tags`): the class of every character, from the standard tokenize module (see
TAG_NAMES and python_tags).
"""

from __future__ import annotations

import io
import keyword
import os
import re
import tokenize
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from charlstm import validate
from charlstm.data.corpora import (GENERATED_HEAD, GENERATED_MARK, STDLIB_EXCLUDE, clean_tweet_text, is_retweet,
                                   list_files, python_stdlib_dir, read_code_file, read_tweet_records)
from charlstm.data.labelled import Labelled, from_names
from charlstm.errors import CharlstmError, TextError, about

# --- tweets -----------------------------------------------------------------------------------------

#: The clients kept, and the label each gets (see the module docstring for why these three).
TWEET_CLIENTS = {"Twitter for Android": "android", "Twitter for iPhone": "iphone", "Twitter Web Client": "web"}
_TAG = re.compile(r"<[^>]*>")       # Twitter's API gives the client as a link: <a href="...">Name</a>


def tweet_files(archive) -> list[Path]:
    """The files of a tweet archive: a folder's condensed_YYYY.json files in order, or one file."""
    archive = validate.path(archive, "archive")
    if archive.is_dir():
        files = sorted(archive.glob("condensed_*.json"))
        if not files:
            raise CharlstmError(f"{archive}: holds no condensed_YYYY.json files; give the archive's folder or a file")
        return files
    if not archive.exists():
        raise CharlstmError(f"{archive}: no such file or folder")
    return [archive]


def tweet_sources(archive, keep_other: bool = False) -> Labelled:
    """Tweets labelled by the client that sent them (TWEET_CLIENTS; other clients dropped, or
    labelled "other" with keep_other). The text is cleaned as `charlstm corpus tweets` cleans it
    (entities unescaped, line breaks made spaces); retweets and repeated texts (after the first)
    are left out. Each source is FILE#ID (the tweet's id_str, else its place in the file)."""
    keep_other = validate.flag(keep_other, "keep_other")
    names, texts, sources, seen = [], [], [], set()
    for path in tweet_files(archive):
        for number, record in enumerate(read_tweet_records(path), 1):
            client = _TAG.sub("", str(record.get("source") or "")).strip()
            label = TWEET_CLIENTS.get(client, "other" if keep_other and client else None)
            raw = next((record[f] for f in ("full_text", "text") if isinstance(record.get(f), str)), None)
            if label is None or raw is None:
                continue
            text = clean_tweet_text(raw)
            if not text or is_retweet(record, text) or text in seen:
                continue
            seen.add(text)
            names.append(label)
            texts.append(text)
            sources.append(f"{path}#{record.get('id_str') or number}")
    if not texts:
        raise CharlstmError(f"{archive}: no tweets (other than retweets) from {', '.join(TWEET_CLIENTS)}")
    return from_names(names, texts, sources)


# --- code -------------------------------------------------------------------------------------------

#: Languages and their file endings: those this machine's /usr and Python hold in useful numbers
#: (shell scripts were too few: about 30 .sh files).
LANGUAGES = {"c": (".c", ".h"), "javascript": (".js",), "perl": (".pl", ".pm"), "python": (".py",),
             "rst": (".rst",)}
#: Left out of every root: the standard library's (tests, vendored code, tables of data), C++
#: header trees (libstdc++, LLVM, V8 under node, ICU), minified scripts, and Perl's Unicode tables
#: (unicore; Unicode::Collate's per-locale and CJK tables carry no "generated" line, and were a
#: tenth of the Perl examples, rows of hex numbers).
CODE_EXCLUDE = (*STDLIB_EXCLUDE, "c++", "llvm*", "node", "unicode", "*.min.js", "unicore", "Collate")
#: Where a machine keeps source files: Python's standard library, C headers, shared data
#: (Perl's modules, CMake's reStructuredText, documentation's examples), global node modules.
CODE_ROOTS = ("/usr/include", "/usr/share", "/usr/lib/node_modules", "/usr/local/lib/node_modules")
PER_FILE = 4            # stretches taken from one file, so a language's examples come from many files
MAX_FILE_BYTES = 1_000_000


def default_code_roots() -> list[Path]:
    """The roots code_languages reads by default: the standard library and CODE_ROOTS that exist."""
    return [root for root in (python_stdlib_dir(), *map(Path, CODE_ROOTS)) if root.is_dir()]


def code_roots(roots=None) -> list[Path]:
    """The folders to read: those given (one, or several), or default_code_roots() for None."""
    if roots is None:
        return default_code_roots()
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    for root in roots:
        if not validate.path(root, "roots").is_dir():
            raise CharlstmError(f"{root}: no such folder; give folders of source files")
    return [Path(root) for root in roots]


def language_files(roots=None) -> dict[str, list[Path]]:
    """The files of each language (LANGUAGES) under the roots (see code_roots), in root order then
    path order; a file reached twice (overlapping roots, a symlinked root) counts once."""
    language_of = {ext: name for name, exts in LANGUAGES.items() for ext in exts}
    found: dict[str, list[Path]] = {name: [] for name in LANGUAGES}
    seen = set()
    for root in code_roots(roots):
        for _, path in list_files(root, tuple(language_of), CODE_EXCLUDE):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                found[language_of[path.suffix.lower()]].append(path)
    return found


def stretches(text: str, stretch: int) -> list[tuple[int, str]]:
    """(first line number, text) of each stretch of whole lines reaching `stretch` characters;
    the file's tail counts if it reaches half that. Stretches over twice as long (a line of
    minified code or data) and blank ones are left out; line ends at a stretch's end are dropped."""
    out, start, lines = [], 1, []
    size = 0
    for number, line in enumerate(text.split("\n"), 1):
        lines.append(line)
        size += len(line) + 1
        if size >= stretch:
            out.append((start, "\n".join(lines)))
            start, lines, size = number + 1, [], 0
    if size - 1 >= stretch // 2:
        out.append((start, "\n".join(lines)))
    out = [(n, piece.rstrip("\n")) for n, piece in out]
    return [(n, piece) for n, piece in out if len(piece) <= 2 * stretch and piece.strip()]


def code_languages(roots=None, stretch: int = 600, per_label: int = 2000, seed: int = 0) -> Labelled:
    """Stretches of source code labelled by language (see the module docstring). Files are visited
    in an order shuffled with `seed`, each giving at most PER_FILE of its stretches (picked with the
    seed too), until a language has `per_label`; a text met before (a licence header) is not taken
    twice. Each language draws from its own generator, so one language's files do not move
    another's picks. Sources are FILE:LINE of each stretch's first line."""
    stretch = validate.size(stretch, "stretch", lo=20)
    per_label = validate.size(per_label, "per_label", lo=1)
    validate.seed(seed, "seed")
    names, texts, sources, seen = [], [], [], set()
    unread = dict.fromkeys(("unreadable", "too_large", "binary", "undecodable"), 0)    # read_code_file counts
    for language, paths in language_files(roots).items():
        rng = np.random.default_rng([seed, zlib.crc32(language.encode())])
        taken = 0
        for j in rng.permutation(len(paths)):
            text = read_code_file(paths[j], MAX_FILE_BYTES, unread)
            if text is None or GENERATED_MARK.search(text, 0, GENERATED_HEAD):
                continue
            pieces = [(n, piece) for n, piece in stretches(text, stretch) if piece not in seen]
            if len(pieces) > PER_FILE:
                pieces = [pieces[k] for k in sorted(rng.choice(len(pieces), PER_FILE, replace=False))]
            for number, piece in pieces[:per_label - taken]:
                seen.add(piece)
                names.append(language)
                texts.append(piece)
                sources.append(f"{paths[j]}:{number}")
                taken += 1
            if taken == per_label:
                break
    if not texts:
        raise CharlstmError(f"no {', '.join(LANGUAGES)} source files with text to take under "
                            f"{', '.join(map(str, code_roots(roots)))}")
    return from_names(names, texts, sources)


# --- Python, character by character ----------------------------------------------------------------

#: The class of each character of Python code (the index is the tag): keywords apart from other
#: names, since a fixed set of words and an open one are different things to learn; an f-string is
#: a string whole, replacement fields included, as Python up to 3.11 tokenizes it.
TAG_NAMES = ("other", "indent", "name", "keyword", "number", "string", "comment", "operator")
OTHER, INDENT, NAME, KEYWORD, NUMBER, STRING, COMMENT, OPERATOR = range(len(TAG_NAMES))
_KINDS = {tokenize.COMMENT: COMMENT, tokenize.STRING: STRING, tokenize.NUMBER: NUMBER, tokenize.OP: OPERATOR,
          getattr(tokenize, "FSTRING_MIDDLE", -1): STRING}
# Python 3.12 tokenizes an f-string as its parts: from its start to its end it is painted a string.
_STARTS = {getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, n)}
_ENDS = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, n)}
_LEADING = re.compile(r"[ \t\f]*")


def python_tags(source: str) -> np.ndarray:
    """(len(source),) int8: the class (TAG_NAMES) of each character of Python code.

    Tokens give string, comment, name, keyword (keyword.kwlist; soft keywords such as match are
    names), number and operator; the spaces, tabs and form feeds that begin a line are indent;
    everything else is other: spaces between tokens, line ends, a line-joining backslash. A
    token spanning lines (a multi-line string) keeps its class on every line, its leading
    spaces included. Code tokenize refuses (an unclosed string or bracket at the end, a dedent
    to no outer level, a stray character) is a TextError naming the line.
    """
    source = validate.text(source, "source")
    tags = np.zeros(len(source), dtype=np.int8)
    starts = [0] + [m.end() for m in re.finditer("\n", source)]     # where readline's lines begin
    for start in starts:
        tags[start:_LEADING.match(source, start).end()] = INDENT

    def at(row: int, col: int) -> int:      # tokenize's columns count characters of the line
        return min(starts[row - 1] + col, len(source)) if row <= len(starts) else len(source)

    opened = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            a, b = at(*token.start), at(*token.end)
            if token.type == tokenize.NAME:
                tags[a:b] = KEYWORD if keyword.iskeyword(token.string) else NAME
            elif token.type in _KINDS:
                tags[a:b] = _KINDS[token.type]
            elif token.type in _STARTS:
                opened.append(a)
            elif token.type in _ENDS:
                tags[opened.pop():b] = STRING
            elif token.type == tokenize.ERRORTOKEN and not token.string.isspace():
                raise TextError(f"line {token.start[0]}: not Python that tokenizes (a stray "
                                f"{validate.shown(token.string)})")
    except tokenize.TokenError as e:
        message, (row, _) = e.args
        raise TextError(f"line {row}: not Python that tokenizes ({message})") from None
    except SyntaxError as e:          # IndentationError, and 3.12's unterminated strings
        raise TextError(f"line {e.lineno}: not Python that tokenizes ({e.msg})") from None
    return tags


class Tagged(NamedTuple):
    """Texts of Python with their tags, and what was left out ("NAME: why", one per text)."""
    texts: tuple[str, ...]
    tags: tuple[np.ndarray, ...]
    skipped: tuple[str, ...]


def tagged_python(paths_or_texts) -> Tagged:
    """Python sources with python_tags of each, for training a tagger. Each item is a path (a
    pathlib.Path or os.PathLike: a .py file, or a folder whose .py files are taken, symlinks not
    followed) or a str of code (named "text N"). Files that are not UTF-8, not readable or over
    MAX_FILE_BYTES, blank texts and code that does not tokenize are left out and listed in
    `skipped`. A file's CRLF line ends become LF before it is tagged."""
    if isinstance(paths_or_texts, (str, os.PathLike)):
        paths_or_texts = [paths_or_texts]
    texts, tags, skipped = [], [], []
    for name, read in python_sources(paths_or_texts):
        try:
            text = read()
            if not text.strip():
                raise TextError("blank")
            tags.append(python_tags(text))
            texts.append(text)
        except CharlstmError as e:          # a file that cannot be read, or code that cannot be tagged
            skipped.append(about(name, str(e)))
    return Tagged(tuple(texts), tuple(tags), tuple(skipped))


def python_sources(items):
    """(name, read) of each item of tagged_python, a folder giving one for each of its .py files:
    read() is the text, or a CharlstmError saying why a file cannot be read."""
    for i, item in enumerate(items):
        if not isinstance(item, os.PathLike):
            text = validate.text(item, "paths_or_texts")
            yield f"text {i + 1}", lambda text=text: text
            continue
        item = Path(item)
        if not item.exists():
            raise CharlstmError(f"{item}: no such file or folder")
        for path in [p for _, p in list_files(item, ".py")] if item.is_dir() else [item]:
            yield str(path), lambda path=path: read_python_file(path)


def read_python_file(path: Path) -> str:
    """A file's text with LF line ends (corpora.read_code_file), or a CharlstmError saying why not."""
    reasons = dict.fromkeys(("unreadable", "too_large", "binary", "undecodable"), 0)
    text = read_code_file(path, MAX_FILE_BYTES, reasons)
    if text is None:
        why = {"unreadable": "cannot be read", "too_large": f"larger than {MAX_FILE_BYTES:,} bytes",
               "binary": "a binary file", "undecodable": "not UTF-8"}
        raise CharlstmError(next(why[k] for k, n in reasons.items() if n))
    return text


__all__ = ["tweet_sources", "tweet_files", "TWEET_CLIENTS", "code_languages", "language_files", "stretches",
           "code_roots", "default_code_roots", "LANGUAGES", "CODE_EXCLUDE", "CODE_ROOTS", "python_tags", "TAG_NAMES",
           "tagged_python", "Tagged"]
