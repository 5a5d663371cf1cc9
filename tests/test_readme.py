"""The README's examples, run as written, so that the manual cannot drift from the program.

Every ```sh block of README.md is split into its commands (one a line), and the commands run in
order, each through bash in one fresh temporary directory, as a reader who starts at the
Quickstart and types every example would run them: each file a command reads must have been made
by an earlier one (or be one of FIXTURES, the files the README tells the reader to bring).
`charlstm` and `python3` are this checkout and this interpreter.

What is changed, and only that:
- a command that trains (`charlstm ... train`) gets a tiny budget: `--max-time N` becomes
  `--max-time N/300` (600 s: 2 s), `--max-steps N` at most 5 steps, a run with no bound
  `--max-steps 5`; and a new run of the character model (not `--resume`, which takes no such
  option, nor `classify train` or `tag train`, whose held-out sets are small) reads at most
  2,000 held-out symbols per evaluation (`--val-symbols 2000`), so an evaluation is tiny too;
- `python3 -m pip install ... &&` in front of a command is dropped: charlstm is already importable.

What is skipped, and why (SKIPPED names each one):
- the Quickstart's `python3 -m pip install '.[test]' && python3 -m pytest`: it is this suite;
- `python3 -m pip install '.[torch,onnx]'` and `'.[torch]'`: installing is not this test's
  business; the commands after it run when torch and onnx are installed (CI installs them), and
  are skipped otherwise, each listed in the skip message.
- `--device cuda` becomes `--device cpu` on a machine without a CUDA device: no test needs a GPU.

docs/handoff.md's Python blocks run as written in tests/test_handoff.py, and the README's
notebook block in tests/test_api.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

# Commands left out, each with the reason (matched exactly, after the prefix below is dropped).
SKIPPED = {
    "python3 -m pip install '.[test]' && python3 -m pytest": "the test suite itself",
    "python3 -m pip install '.[torch,onnx]'": "installs packages; the commands that need them are checked below",
    "python3 -m pip install '.[torch]'": "installs PyTorch; the commands that need it are checked below",
}
INSTALL_PREFIX = re.compile(r"^python3 -m pip install \S+ && ")

# Commands that need an optional package, by a word they contain.
NEEDS = {"best.pt": ("torch",), "best.onnx": ("onnx", "onnxruntime"), "--engine torch": ("torch",)}


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch
    return torch.cuda.is_available()


def tweets_archive() -> str:
    """The reader's own archive (`archive/data/tweets.js`), here 2,000 generated tweets and a retweet."""
    words = ["charlstm", "trains", "on", "my", "own", "tweets", "today", "#python", "and", "it", "writes", "🙂"]
    tweets = [{"tweet": {"full_text": " ".join(words[(i * k) % len(words)] for k in range(1, 9)) + f" {i}",
                         "created_at": f"Wed Oct {10 + i % 18} 20:{i % 60:02d}:24 +0000 2018"}}
              for i in range(2000)]
    tweets.append({"tweet": {"full_text": "RT @someone: not mine", "created_at": "Wed Oct 10 20:19:24 +0000 2018"}})
    return "window.YTD.tweets.part0 = " + json.dumps(tweets, ensure_ascii=False)


FIXTURES = {"archive/data/tweets.js": tweets_archive}


def readme_commands() -> list[str]:
    """Every command of every ```sh block, in order (one a line; comments kept for bash)."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def bare(command: str) -> str:
    """The command without its trailing comment (two spaces and a #, as the README writes them)."""
    return command.partition("  #")[0].rstrip()


def tiny_budget(command: str) -> str:
    """A training command with the budget described in the module docstring; others unchanged
    (each part of a `a && b` line on its own)."""
    if " && " in command:
        return " && ".join(map(tiny_budget, command.split(" && ")))
    if "--device cuda" in command and not cuda_available():
        command = command.replace("--device cuda", "--device cpu")
    words = shlex.split(command, comments=True)
    if "charlstm" not in words or "train" not in words:
        return command

    def seconds(match):
        return f"--max-time {max(0.5, float(match.group(1)) / 300):g}"

    command = re.sub(r"--max-time (\d+(?:\.\d+)?)", seconds, command)
    command = re.sub(r"--max-steps (\d+)", lambda m: f"--max-steps {min(int(m.group(1)), 5)}", command)
    extra = []
    if not any(bound in words for bound in ("--max-time", "--max-steps", "--epochs")):
        extra.append("--max-steps 5")
    character_model = not any(group in words for group in ("classify", "tag"))
    if character_model and "--resume" not in words and "--val-symbols" not in words:
        extra.append("--val-symbols 2000")
    if extra:
        body, hash_, comment = command.partition("  #")
        command = body.rstrip() + " " + " ".join(extra) + ("  #" + comment if hash_ else "")
    return command


def missing_packages(command: str) -> list[str]:
    return [name for word, names in NEEDS.items() if word in command for name in names
            if importlib.util.find_spec(name) is None]


def run(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -o pipefail; " + command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_readme_sh_blocks_have_the_commands_this_test_expects():
    commands = readme_commands()
    quickstart = re.search(r"## Quickstart\s+```sh\n(.*?)```", README.read_text("utf-8"), re.S).group(1)
    assert len([c for c in quickstart.splitlines() if c.strip()]) == 2      # what .ci/run parses
    assert bare(commands[1]) in SKIPPED
    for skipped in SKIPPED:
        assert skipped in map(bare, commands), f"SKIPPED names a command the README no longer has: {skipped}"
    assert tiny_budget("charlstm train code.txt --out r --max-time 600") == \
        "charlstm train code.txt --out r --max-time 2 --val-symbols 2000"
    assert tiny_budget("charlstm train c --out r --resume r/latest.npz --max-time 1200   # ten more") == \
        "charlstm train c --out r --resume r/latest.npz --max-time 4   # ten more"
    assert tiny_budget("charlstm classify train l.tsv --out r --max-time 300") == \
        "charlstm classify train l.tsv --out r --max-time 1"


def test_the_readme_examples_run_as_written_in_order(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "charlstm").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m charlstm "$@"\n')
    (bin_dir / "charlstm").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    work = tmp_path / "work"
    work.mkdir()
    for name, make in FIXTURES.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(make(), encoding="utf-8")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    skipped, ran = [], []
    for command in readme_commands():
        if bare(command) in SKIPPED:
            skipped.append(command)
            continue
        command = INSTALL_PREFIX.sub("", command)
        if missing_packages(command):
            skipped.append(f"{command} (needs {', '.join(missing_packages(command))})")
            continue
        actual = tiny_budget(command)
        done = run(actual, work, env)
        assert done.returncode == 0, f"README command failed: {actual}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, actual
        ran.append(actual)

    # What the walk-through says it makes, it made.
    for made in ("run/best.npz", "run/corpus.txt", "code.txt", "heldout.txt", "code-run/previous-1/best.npz",
                 "onehot-run/best.npz", "numpy.txt", "tweets.txt", "tweets-run/best.npz", "data/manifest.json",
                 "data-run/best.npz", "trace.npz", "viz.html", "report.html", "counting-run/best.npz",
                 "page.html", "page-int8.html", "languages.tsv", "lang-run/best.npz", "tag-run/best.npz",
                 "tags.html"):
        assert (work / made).exists(), f"the README's walk-through did not make {made}"
    # The README shows the refusal of a second run in one directory word for word.
    readme = README.read_text(encoding="utf-8")
    shown = re.search(r"```\n(charlstm: error: code-run: holds another run.*?)\n```", readme, re.S).group(1)
    refused = run("charlstm train code.txt --out code-run --max-steps 1", work, env)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1] == shown
    print(f"ran {len(ran)} README commands; skipped: {skipped}")
