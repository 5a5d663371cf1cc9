"""Build training corpora: source-code trees, tweet archives and synthetic languages.

Everything here returns data plus a summary dict; printing and writing files is the
CLI's job. Problems a user can fix (missing paths, bad formats, unknown task names)
raise CharlstmError with a one-line message.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import html
import io
import json
import os
import pathlib
import re
import stat
import sysconfig
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import regex

from charlstm.errors import CharlstmError
from charlstm.files import read_bounded

# --------------------------------------------------------------------------------------
# Code corpora
# --------------------------------------------------------------------------------------

#: Header line put before each file of a code corpus; ``{path}`` is the POSIX path
#: relative to the corpus root. It looks like a comment in most languages, so a model
#: trained on the corpus learns it as just another (rare) kind of line.
CODE_HEADER = "### FILE: {path}\n"

# Enough bytes to spot the NUL bytes that practically every binary format contains
# early on; text files in any common encoding except UTF-16/32 never contain NUL.
_BINARY_SNIFF_BYTES = 8192

# Directories of the standard library left out of the default corpus: the test suite
# is huge and repetitive, and the others are vendored tools or third-party code.
_STDLIB_EXCLUDE = ("site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3")


def python_stdlib_dir() -> pathlib.Path:
    """The directory holding the running interpreter's standard-library sources."""
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def _is_excluded(rel_path: str, patterns: Sequence[str]) -> bool:
    """True when a glob matches the whole relative path or any single part of it.

    Matching parts lets a bare name like ``tests`` or ``test*`` drop a directory at
    any depth, while patterns with slashes (``*/tests/*``) match the full path.
    """
    parts = rel_path.split("/")
    return any(
        fnmatch.fnmatchcase(rel_path, pat) or any(fnmatch.fnmatchcase(p, pat) for p in parts)
        for pat in patterns
    )


def _normalise_exts(exts: Iterable[str] | str) -> tuple[str, ...]:
    # A bare string would otherwise be iterated character by character.
    if isinstance(exts, str):
        exts = (exts,)
    out = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in exts if e)
    if not out:
        raise CharlstmError("no file extensions given; pass at least one, e.g. .py")
    return out


def _walk_candidates(
    root: pathlib.Path, exts: tuple[str, ...], exclude: Sequence[str], summary: dict
) -> list[tuple[str, pathlib.Path]]:
    """List (relative POSIX path, path) of files worth reading, sorted by relative path.

    Symlinks are never followed (a link back up the tree would loop forever) and are
    counted as skipped; excluded directories are pruned without being walked.
    """

    def on_error(err: OSError) -> None:
        # An unreadable directory is skipped like an unreadable file.
        summary["unreadable"] += 1

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        base = pathlib.Path(dirpath)
        rel_base = base.relative_to(root).as_posix()
        kept_dirs = []
        for name in dirnames:
            rel = name if rel_base == "." else f"{rel_base}/{name}"
            if (base / name).is_symlink():
                summary["symlinks"] += 1
            elif _is_excluded(rel, exclude):
                summary["excluded"] += 1
            else:
                kept_dirs.append(name)
        dirnames[:] = kept_dirs  # os.walk only descends into what is left here
        for name in filenames:
            if not name.lower().endswith(exts):
                continue  # other file types are not part of the corpus at all
            rel = name if rel_base == "." else f"{rel_base}/{name}"
            if (base / name).is_symlink():
                summary["symlinks"] += 1
            elif _is_excluded(rel, exclude):
                summary["excluded"] += 1
            else:
                found.append((rel, base / name))
    found.sort(key=lambda item: item[0])
    return found


def list_files(root, exts: Iterable[str] | str, exclude: Sequence[str] = ()) -> list[tuple[str, pathlib.Path]]:
    """(relative POSIX path, path) of the files under root with one of the endings, sorted by
    relative path, as build_code_corpus takes them (symlinks never followed, excluded globs pruned)."""
    summary = dict.fromkeys(("symlinks", "excluded", "unreadable"), 0)
    return _walk_candidates(pathlib.Path(root), _normalise_exts(exts), tuple(exclude), summary)


def _read_code_file(path: pathlib.Path, max_file_bytes: int, summary: dict) -> str | None:
    """The file's text with LF line ends, or None after counting why it was skipped."""
    try:
        info = path.stat()
    except OSError:  # PermissionError included
        summary["unreadable"] += 1
        return None
    if not stat.S_ISREG(info.st_mode):   # a FIFO or a device named like a source file
        summary["unreadable"] += 1
        return None
    if info.st_size > max_file_bytes:
        summary["too_large"] += 1
        return None
    try:
        data = read_bounded(path, max_file_bytes)     # bounded even if it grows meanwhile
    except CharlstmError as e:
        summary["too_large" if "limit" in str(e) else "unreadable"] += 1
        return None
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        summary["binary"] += 1
        return None
    try:
        # utf-8-sig drops a leading byte-order mark, which would otherwise be
        # learned as a stray invisible character at the start of some files.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        summary["undecodable"] += 1
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def build_code_corpus(
    root: str | os.PathLike,
    exts: Iterable[str] | str = (".py",),
    max_bytes: int | None = None,
    max_file_bytes: int = 1_000_000,
    exclude: Sequence[str] = (),
    headers: bool = True,
) -> tuple[str, dict]:
    """Concatenate the source files under ``root`` into one training text.

    Files are taken in sorted order of their relative POSIX paths, so the same tree
    always gives the same corpus. With ``headers`` each file is preceded by the line
    ``### FILE: relative/posix/path`` (see CODE_HEADER). Each file's text gets LF line
    ends and ends with exactly one newline; whitespace-only files are left out.

    Skipped, and counted in the summary: symlinks (``symlinks``, never followed),
    ``exclude`` glob matches on the relative path or any part of it (``excluded``; a
    pruned directory counts once), files over ``max_file_bytes`` (``too_large``), files
    with a NUL byte in their first 8 KiB (``binary``), files that are not UTF-8
    (``undecodable``), files or directories that cannot be read (``unreadable``) and
    whitespace-only files (``empty``). Once the next file would push the output past
    ``max_bytes`` UTF-8 bytes, it and all later files are left out (``over_cap``).

    Returns ``(text, summary)``; summary also has ``files_read`` and ``bytes``.
    """
    root_path = pathlib.Path(root)
    if not root_path.exists():
        raise CharlstmError(f"no such directory: {root_path}")
    if not root_path.is_dir():
        raise CharlstmError(f"not a directory: {root_path}; pass the root of a source tree")
    if max_bytes is not None and max_bytes < 1:
        raise CharlstmError(f"max_bytes must be at least 1, got {max_bytes}")
    if max_file_bytes < 1:
        raise CharlstmError(f"max_file_bytes must be at least 1, got {max_file_bytes}")
    exts = _normalise_exts(exts)

    summary = dict.fromkeys(
        ("files_read", "bytes", "binary", "undecodable", "too_large", "unreadable",
         "symlinks", "excluded", "empty", "over_cap"),
        0,
    )
    candidates = _walk_candidates(root_path, exts, tuple(exclude), summary)

    chunks: list[str] = []
    for index, (rel, path) in enumerate(candidates):
        text = _read_code_file(path, max_file_bytes, summary)
        if text is None:
            continue
        body = text.rstrip("\n")
        if not body.strip():
            summary["empty"] += 1
            continue
        chunk = (CODE_HEADER.format(path=rel) if headers else "") + body + "\n"
        size = len(chunk.encode("utf-8"))
        if max_bytes is not None and summary["bytes"] + size > max_bytes:
            # Stop rather than hunt for smaller files further on, so a capped corpus
            # is always a prefix of the uncapped one.
            summary["over_cap"] = len(candidates) - index
            break
        chunks.append(chunk)
        summary["bytes"] += size
        summary["files_read"] += 1

    if not chunks:
        wanted = ", ".join(exts)
        if summary["over_cap"]:
            raise CharlstmError(
                f"the first {wanted} file under {root_path} is larger than max_bytes="
                f"{max_bytes}; raise the cap"
            )
        raise CharlstmError(f"no readable {wanted} files found under {root_path}")
    return "".join(chunks), summary


def build_stdlib_corpus(max_bytes: int | None = 5_000_000) -> tuple[str, dict]:
    """The default code corpus: the Python standard library's ``.py`` files, capped.

    Test suites, idlelib, lib2to3 and installed third-party packages are left out.
    """
    return build_code_corpus(
        python_stdlib_dir(), exts=(".py",), max_bytes=max_bytes, exclude=_STDLIB_EXCLUDE
    )


# --------------------------------------------------------------------------------------
# Tweets
# --------------------------------------------------------------------------------------

_TEXT_FIELDS = ("full_text", "text", "content")
_DATE_FIELDS = ("created_at", "date", "timestamp")
_URL_MODES = ("keep", "drop", "placeholder")
_DROP_REASONS = ("no_text", "empty", "retweet", "date", "duplicate")

# A run of whitespace that contains at least one line break, using every break that
# str.splitlines knows; the run becomes one space so each tweet stays on one line.
_BREAK_RUN = re.compile(r"\s*[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]\s*")

# An http(s) URL, not counting trailing punctuation that usually ends the sentence.
_URL = r"https?://\S*[^\s.,;:!?)\]}'\"]"
_URL_WITH_SPACE = re.compile(r"\s*" + _URL)
_URL_ONLY = re.compile(_URL)

# Twitter's created_at, e.g. "Wed Oct 10 20:19:24 +0000 2018". Parsed by hand because
# strptime's %a/%b depend on the process locale.
_TWITTER_DATE = re.compile(
    r"[A-Za-z]{3} ([A-Za-z]{3}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{2})(\d{2}) (\d{4})"
)
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
)}


def _parse_date(value: object) -> dt.datetime | None:
    """A naive UTC datetime from a Twitter, ISO 8601 or epoch-seconds value, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            stamp = dt.datetime.fromtimestamp(value, dt.timezone.utc)
        else:
            value = str(value).strip()
            m = _TWITTER_DATE.fullmatch(value)
            if m:
                mon, day, hh, mm, ss, tzh, tzm, year = m.groups()
                sign = -1 if tzh.startswith("-") else 1
                offset = dt.timedelta(hours=int(tzh), minutes=sign * int(tzm))
                stamp = dt.datetime(
                    int(year), _MONTHS[mon.lower()], int(day), int(hh), int(mm), int(ss),
                    tzinfo=dt.timezone(offset),
                )
            elif re.fullmatch(r"\d{9,11}(\.\d+)?", value):
                stamp = dt.datetime.fromtimestamp(float(value), dt.timezone.utc)
            else:
                stamp = dt.datetime.fromisoformat(value)
    except (KeyError, ValueError, OverflowError, OSError):
        return None
    # Dates are compared and sorted together, so put all of them on UTC, naive.
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return stamp


MAX_ARCHIVE_BYTES = 512 * 1024 * 1024   # a tweet archive, read or unpacked


def _load_text(path: pathlib.Path) -> str:
    """The file's text, gunzipped first when it starts with the gzip magic bytes; reading and
    unpacking both stop at MAX_ARCHIVE_BYTES, whatever the file's size says."""
    data = read_bounded(path, MAX_ARCHIVE_BYTES, "use a part of it", what="tweet archive")
    if data[:2] == b"\x1f\x8b":
        packed, parts, size = data, [], 0
        try:
            while packed and size <= MAX_ARCHIVE_BYTES:       # one gzip member after another
                unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
                parts.append(unpacker.decompress(packed, MAX_ARCHIVE_BYTES + 1 - size))
                size += len(parts[-1])
                if not unpacker.eof and size <= MAX_ARCHIVE_BYTES:
                    raise CharlstmError(f"{path} looks gzip-compressed but is corrupt: it is cut short")
                packed = unpacker.unused_data
        except zlib.error as err:
            raise CharlstmError(f"{path} looks gzip-compressed but is corrupt: {err}") from None
        data = b"".join(parts)
        if len(data) > MAX_ARCHIVE_BYTES:
            raise CharlstmError(f"{path}: unpacks to more than the {MAX_ARCHIVE_BYTES:,}-byte limit on a "
                                "tweet archive; use a part of it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CharlstmError(f"{path} is not UTF-8 text; convert it to UTF-8") from None


def _json_records(path: pathlib.Path, text: str) -> list[dict]:
    """Tweet objects from a JSON array (or a tweets.js whose array follows a `=`)."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise CharlstmError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
        ) from None
    if not isinstance(items, list):
        raise CharlstmError(f"{path}: expected a JSON array of tweet objects")
    records = []
    for i, item in enumerate(items):
        item = _unwrap_tweet(item)
        if not isinstance(item, dict):
            raise CharlstmError(f"{path}: item {i} of the JSON array is not a tweet object")
        records.append(item)
    return records


def _unwrap_tweet(item):
    """X/Twitter account archives wrap each tweet as {"tweet": {...}}."""
    if isinstance(item, dict) and isinstance(item.get("tweet"), dict):
        return item["tweet"]
    return item


def _jsonl_records(path: pathlib.Path, text: str) -> list[dict]:
    records = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise CharlstmError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
        item = _unwrap_tweet(item)
        if not isinstance(item, dict):
            raise CharlstmError(f"{path}, line {lineno}: expected a JSON object")
        records.append(item)
    return records


def _csv_records(path: pathlib.Path, text: str) -> list[dict]:
    # strict mode turns quoting mistakes into errors instead of silently merged fields.
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        return list(reader)
    except csv.Error as err:
        # DictReader's own line_num lags one row behind; the inner reader's is current.
        line = reader.reader.line_num
        raise CharlstmError(f"{path}, line {line}: malformed CSV ({err})") from None


def _read_records(path: pathlib.Path) -> list[dict]:
    """Parse one tweet file, choosing the format from its first characters."""
    text = _load_text(path)
    head = text.lstrip()
    if head.startswith("window."):
        # tweets.js: `window.YTD.tweets.part0 = [ ... ]` is JSON after the assignment.
        start = head.find("[")
        if start < 0:
            raise CharlstmError(f"{path} looks like a tweets.js file but has no [ ... ] array")
        return _json_records(path, head[start:].rstrip().rstrip(";"))
    if head.startswith("["):
        return _json_records(path, head)
    if head.startswith("{"):
        return _jsonl_records(path, text)
    if not head:
        return []
    return _csv_records(path, text)


def _pick_field(record: dict, wanted: str | None, choices: Sequence[str]) -> str | None:
    """The name of the field to use: ``wanted`` if given, else the first choice present."""
    if wanted is not None:
        return wanted if wanted in record else None
    return next((name for name in choices if name in record), None)


def _is_true(value: object) -> bool:
    # CSV gives strings; JSON gives real booleans.
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def _clean_text(raw: str, urls: str) -> str:
    text = html.unescape(raw)  # once only: "&amp;amp;" is meant to read "&amp;"
    text = _BREAK_RUN.sub(" ", text).strip()
    if urls == "drop":
        # Take the whitespace before each URL with it so no double space is left.
        text = _URL_WITH_SPACE.sub("", text).strip()
    elif urls == "placeholder":
        text = _URL_ONLY.sub("<URL>", text)
    return text


def read_tweets(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    text_field: str | None = None,
    keep_retweets: bool = False,
    urls: str = "keep",
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> tuple[list[str], dict]:
    """Read tweets from archive files and clean them into one-line training examples.

    Formats, detected from content (any of them may be gzip-compressed): an X/Twitter
    archive's ``tweets.js``, a JSON array of tweet objects, JSON Lines, or CSV with a
    header row. The text is ``text_field`` if given, else the first of ``full_text``,
    ``text``, ``content``; the date (for ``since``/``until``, inclusive, in UTC) comes
    from ``created_at``, ``date`` or ``timestamp``.

    Cleaning: HTML entities are unescaped once, whitespace runs with line breaks become
    one space, ends are stripped; then empty texts, retweets (unless ``keep_retweets``),
    records outside the date range or without a date when a range is given, and exact
    duplicates (the first is kept) are dropped. ``urls`` is ``keep``, ``drop`` or
    ``placeholder`` (each URL becomes ``<URL>``). Characters are never normalised, so
    emoji sequences survive byte for byte.

    Tweets come out oldest first when every kept tweet has a date, else in input order.
    The summary has ``files``, ``read``, ``kept``, ``dropped`` (reason -> count for
    ``no_text``, ``empty``, ``retweet``, ``date``, ``duplicate``) and
    ``distinct_symbols`` (distinct grapheme clusters in the kept text plus newline).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [pathlib.Path(p) for p in paths]
    if not paths:
        raise CharlstmError("no tweet files given")
    if urls not in _URL_MODES:
        raise CharlstmError(f"unknown URL mode {urls!r}; use one of {', '.join(_URL_MODES)}")
    # A datetime is also a date; compare on the calendar day either way.
    since = since.date() if isinstance(since, dt.datetime) else since
    until = until.date() if isinstance(until, dt.datetime) else until
    if since is not None and until is not None and since > until:
        raise CharlstmError(f"since ({since}) is after until ({until}); swap them")

    dropped = dict.fromkeys(_DROP_REASONS, 0)
    read = 0
    kept: list[tuple[str, dt.datetime | None]] = []
    seen: set[str] = set()
    for path in paths:
        records = _read_records(path)
        read += len(records)
        _check_has_text(path, records, text_field)
        for record in records:
            field = _pick_field(record, text_field, _TEXT_FIELDS)
            raw = record.get(field) if field else None
            if not isinstance(raw, str):
                dropped["no_text"] += 1
                continue
            text = _clean_text(raw, urls)
            if not text:
                dropped["empty"] += 1
                continue
            is_retweet = (
                text.startswith("RT @")
                or _is_true(record.get("is_retweet"))
                or "retweeted_status" in record
            )
            if is_retweet and not keep_retweets:
                dropped["retweet"] += 1
                continue
            date_field = _pick_field(record, None, _DATE_FIELDS)
            stamp = _parse_date(record[date_field]) if date_field else None
            if since is not None or until is not None:
                if (
                    stamp is None
                    or (since is not None and stamp.date() < since)
                    or (until is not None and stamp.date() > until)
                ):
                    dropped["date"] += 1
                    continue
            # Duplicates are checked last so a copy outside the date range or a
            # retweet does not shadow the one that would have been kept.
            if text in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(text)
            kept.append((text, stamp))

    if kept and all(stamp is not None for _, stamp in kept):
        kept.sort(key=lambda item: item[1])  # stable: same-second tweets keep input order
    lines = [text for text, _ in kept]
    if not lines:
        reasons = ", ".join(f"{k}={v}" for k, v in dropped.items() if v) or "the files are empty"
        raise CharlstmError(f"no tweets left after cleaning ({reasons}); check the filters")

    symbols = {"\n"}
    for line in lines:
        symbols.update(regex.findall(r"\X", line))
    summary = {
        "files": len(paths),
        "read": read,
        "kept": len(lines),
        "dropped": dropped,
        "distinct_symbols": len(symbols),
    }
    return lines, summary


def _check_has_text(path: pathlib.Path, records: list[dict], text_field: str | None) -> None:
    """Fail with the columns found when no record of a file has a usable text field."""
    if not records or any(_pick_field(r, text_field, _TEXT_FIELDS) for r in records):
        return
    columns: list[str] = []
    for record in records:
        columns.extend(str(k) for k in record if str(k) not in columns)
    wanted = text_field or "/".join(_TEXT_FIELDS)
    raise CharlstmError(
        f"{path} has no {wanted} column; columns found: {', '.join(columns) or 'none'}"
        "; pick one with --text-field"
    )


# --------------------------------------------------------------------------------------
# Synthetic languages
# --------------------------------------------------------------------------------------

#: Formal languages from the "Exploring LSTMs" experiments, one example per line.
SYNTH_TASKS = ("counting", "selective", "remember", "copy")

_COPY_LENGTH = 3  # copy-task strings are always this long; max_n does not apply

# Each pattern's first group is the "prompt" that fixes the example's size, so a line
# can be sized even when the model got the rest of it wrong.
_PROMPTS = {
    "counting": re.compile(r"(a+)X"),
    "selective": re.compile(r"(a[aX]*)Y"),
    "remember": re.compile(r"[AB](x+)Y"),
    "copy": re.compile(r"([abc]{%d})X" % _COPY_LENGTH),
}
_SELECTIVE_LINE = re.compile(r"((?:aX{0,2})+)Y(b+)")


def _check_task(task: str) -> None:
    if task not in SYNTH_TASKS:
        raise CharlstmError(f"unknown task {task!r}; choose one of {', '.join(SYNTH_TASKS)}")


def _synth_one(task: str, max_n: int, rng: np.random.Generator) -> str:
    if task == "copy":
        s = "".join(rng.choice(list("abc"), size=_COPY_LENGTH))
        return f"{s}X{s}"
    n = int(rng.integers(1, max_n + 1))
    if task == "counting":
        return "a" * n + "X" + "b" * n
    if task == "selective":
        # Distractor X's after each a: the model must count the a's and ignore them.
        a_part = "".join("a" + "X" * int(k) for k in rng.integers(0, 3, size=n))
        return a_part + "Y" + "b" * n
    first = "AB"[int(rng.integers(0, 2))]
    return first + "x" * n + "Y" + first.lower()  # remember


def synth_lines(
    task: str, n_lines: int, max_n: int = 10, rng: np.random.Generator | None = None
) -> list[str]:
    """Generate ``n_lines`` examples of a synthetic language (no trailing newlines).

    - counting: N ``a``, ``X``, N ``b`` (``aaaXbbb``), N uniform in 1..max_n
    - selective: N ``a`` each followed by 0-2 distractor ``X``, ``Y``, N ``b``
      (``aXaaXXaYbbbb``)
    - remember: ``A`` or ``B``, 1..max_n ``x``, ``Y``, the first letter in lower case
      (``AxxxYa``)
    - copy: 3 letters from ``abc``, ``X``, the same 3 letters (``abcXabc``)

    ``rng`` is required; it is a keyword with a default only so it can follow max_n.
    """
    _check_task(task)
    if rng is None:
        raise TypeError("synth_lines needs rng, e.g. numpy.random.default_rng(seed)")
    if n_lines < 1:
        raise CharlstmError(f"n_lines must be at least 1, got {n_lines}")
    if max_n < 1:
        raise CharlstmError(f"max_n must be at least 1, got {max_n}")
    # Refused before a line is made: the lines are held in memory (a line is at most 4 N + 2).
    if n_lines > MAX_SYNTH_LINES or n_lines * (4 * max_n + 2) > MAX_SYNTH_BYTES:
        raise CharlstmError(f"{n_lines:,} lines of N up to {max_n:,} could take {n_lines * (4 * max_n + 2):,} "
                            f"bytes; at most {MAX_SYNTH_LINES:,} lines and {MAX_SYNTH_BYTES:,} bytes are made "
                            "(lower the number of lines or max-n)")
    return [_synth_one(task, max_n, rng) for _ in range(n_lines)]


MAX_SYNTH_LINES = 10_000_000
MAX_SYNTH_BYTES = 1 << 30


def check_line(task: str, line: str) -> tuple[bool, int | None]:
    """Whether ``line`` belongs to the task's language, and the example's size.

    The size is the number of ``a`` (counting, selective), of ``x`` (remember) or 3
    (copy), read from the line's prompt part; it is None when even that is malformed.
    A trailing line break is ignored.
    """
    _check_task(task)
    line = line.rstrip("\r\n")
    prompt = _PROMPTS[task].match(line)
    if prompt is None:
        return False, None
    # The prompt group is all a's (counting), all x's (remember) or the 3-letter copy
    # string, so its length is the size; only selective mixes in distractor X's.
    size = prompt.group(1).count("a") if task == "selective" else len(prompt.group(1))
    if task == "counting":
        valid = line == "a" * size + "X" + "b" * size
    elif task == "selective":
        m = _SELECTIVE_LINE.fullmatch(line)
        valid = m is not None and len(m.group(2)) == m.group(1).count("a")
    elif task == "remember":
        valid = line == line[0] + "x" * size + "Y" + line[0].lower()
    else:  # copy
        valid = line == prompt.group(1) + "X" + prompt.group(1)
    return valid, size


def check_lines(task: str, lines: Iterable[str]) -> dict:
    """Validity of many lines, overall and grouped by example size.

    Returns ``n``, ``valid``, ``valid_share`` (0.0 for no lines), ``unparsed`` (lines
    whose size could not be read; they are left out of ``by_n``) and ``by_n``: str(size)
    -> {"lines", "valid", "valid_share"}, in increasing numeric order of size.
    """
    _check_task(task)
    total = valid_total = unparsed = 0
    groups: dict[int, list[int]] = {}
    for line in lines:
        valid, size = check_line(task, line)
        total += 1
        valid_total += valid
        if size is None:
            unparsed += 1
            continue
        group = groups.setdefault(size, [0, 0])
        group[0] += 1
        group[1] += valid
    by_n = {
        str(size): {"lines": n, "valid": v, "valid_share": v / n}
        for size, (n, v) in sorted(groups.items())
    }
    return {
        "n": total,
        "valid": valid_total,
        "valid_share": valid_total / total if total else 0.0,
        "unparsed": unparsed,
        "by_n": by_n,
    }

