"""Every code block of README.md and docs/*.md runs as written and prints what the page shows.

Per page, one fresh Python process (working directory a temporary folder,
matplotlib's Agg backend) runs the page's blocks in order, in one namespace:

* ```python blocks.  A block in doctest form (``>>>`` prompts) runs statement by
  statement; an expression's value is shown as at the prompt, and the lines
  after a prompt are the output expected of it.
* ```bash blocks: the commands ``mixedmodels ...``, ``python -c ...``, variable
  assignments and ``cd`` (pip, venv and other set-up commands are left out),
  through bash with ``mixedmodels`` and ``python`` pointing at this interpreter
  and this checkout.

What a page says is printed, is compared: a ```text block right after a code
block (at most two lines of prose between) is that block's output; a
statement ending in ``# -> value`` shows that value (its printout, or the value
of an expression or of the name assigned).  Output is compared token by token:
words equal, numbers to 10⁻³ relative or one unit of the last printed digit;
``...`` in expected output stands for any output.

Data frames print 200 characters wide, as in a wide terminal or a notebook.

A block whose first line is ``# docs-test: not run (reason)`` is compiled but
never run (it needs something the tests do not have, such as a Dask cluster);
one whose first line is ``# docs-test: slow (reason)`` runs only when the
environment variable ``MIXEDMODELS_DOCS_SLOW=1`` is set, so that the docs test
stays within its time budget.  Later blocks must not use names such blocks define.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
NOT_RUN = "# docs-test: not run"
SLOW = "# docs-test: slow"
PYTHON, SHELL, OUTPUT = ("python", "py"), ("bash", "sh", "shell", "console"), ("text", "output", "")
FENCE = re.compile(r"^```(\w*)\s*$")
COMMAND = re.compile(r"^(mixedmodels\b|python3? -c\b|[A-Za-z_]\w*=|cd\b)")
RUN_SLOW = os.environ.get("MIXEDMODELS_DOCS_SLOW") == "1"
TIMEOUT = (
    300  # seconds per page; the whole docs test takes well under 90 s when the machine is quiet
)


# ---- reading a page ----------------------------------------------------------------------------
@dataclass
class Block:
    """One fenced code block: its language, the line of its first code line and its code.

    ``expected`` is the output the page shows for it (or None); ``chunks`` the
    (line, code, expected) statements of a doctest-form block; ``commands`` the
    shell commands that are run.
    """

    kind: str
    line: int
    code: str
    expected: str | None = None
    expected_line: int = 0
    chunks: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    not_run: bool = False


def skipped(body: list[str]) -> bool:
    """True for a block marked not to run (or marked slow, unless slow blocks are asked for)."""
    first = body[0].strip() if body else ""
    return first.startswith(NOT_RUN) or (first.startswith(SLOW) and not RUN_SLOW)


def fenced_blocks(text: str) -> list[tuple[str, int, list[str], int]]:
    """(language, first code line, lines, line of the closing fence) of every fenced block."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"unclosed code fence at line {i + 1}"
        out.append((m.group(1).lower(), i + 2, lines[i + 1 : end], end + 1))
        i = end + 1
    return out


def doctest_chunks(lines: list[str], first: int) -> list[tuple[int, str, str]]:
    """Split ``>>>`` / ``...`` lines from the output that follows them."""
    chunks = []
    for k, line in enumerate(lines):
        if line.startswith(">>> "):
            chunks.append([first + k, [line[4:]], []])
        elif chunks and (line.startswith("... ") or line == "..."):
            if not chunks[-1][2]:
                chunks[-1][1].append(line[4:])
            else:
                chunks[-1][2].append(line)
        elif chunks:
            chunks[-1][2].append(line)
    return [(n, "\n".join(code), "\n".join(out).strip("\n")) for n, code, out in chunks]


def shell_commands(lines: list[str]) -> list[str]:
    """The commands of a shell block that run ``mixedmodels`` (and what they need), one per entry."""
    joined, current = [], ""
    for line in lines:
        current += line.strip()[:-1].strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            joined.append(current.strip())
            current = ""
    commands = []
    for line in joined:
        if line.startswith("#"):
            continue
        commands += [part.strip() for part in line.split("&&") if COMMAND.match(part.strip())]
    return commands


def page_blocks(text: str) -> list[Block]:
    """The code blocks of a page with the output each is expected to print."""
    blocks: list[Block] = []
    lines = text.splitlines()
    last_end = 0
    for lang, first, body, end in fenced_blocks(text):
        if (
            lang in OUTPUT
            and blocks
            and blocks[-1].expected is None
            and blocks[-1].kind != "doctest"
        ):
            prose = [x for x in lines[last_end : first - 2] if x.strip()]
            if len(prose) <= 2:
                blocks[-1].expected, blocks[-1].expected_line = "\n".join(body), first
        elif lang in PYTHON:
            code = "\n".join(body)
            doctest = any(x.startswith(">>> ") for x in body)
            blocks.append(
                Block(
                    "doctest" if doctest else "python",
                    first,
                    code,
                    chunks=doctest_chunks(body, first) if doctest else [],
                    not_run=skipped(body),
                )
            )
        elif lang in SHELL:
            blocks.append(
                Block(
                    "shell",
                    first,
                    "\n".join(body),
                    commands=shell_commands(body),
                    not_run=skipped(body),
                )
            )
        last_end = end
    return blocks


# ---- comparing output --------------------------------------------------------------------------
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?$")


def tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, without table rules (their length follows the numbers')."""
    out = []
    for tok in text.split():
        tok = tok.strip(",;")
        if tok and not re.fullmatch(r"[─━=\-–|:+]+", tok):
            out.append(tok)
    return out


def _same(expected: str, got: str) -> bool:
    if expected == got:
        return True
    if not (NUMBER.match(expected) and NUMBER.match(got)):
        return False
    e, g = float(expected.rstrip("%")), float(got.rstrip("%"))
    mantissa = expected.rstrip("%").split("e")[0].split("E")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(re.split("[eE]", expected.rstrip("%"))[1]) if re.search("[eE]", expected) else 0
    if "." not in mantissa and not exponent:  # a count or an integer statistic: no rounding slack
        return abs(e - g) <= 1e-3 * abs(e)
    unit = 10.0 ** (exponent - decimals)
    return abs(e - g) <= max(1e-3 * abs(e), unit * 1.0000001)


def _match_at(expected: list[str], got: list[str], start: int) -> bool:
    return len(got) - start >= len(expected) and all(
        _same(e, g) for e, g in zip(expected, got[start:])
    )


def output_matches(expected: str, got: str) -> bool:
    """Token-wise comparison of printed output; ``...`` in ``expected`` matches any tokens."""
    exp, out = tokens(expected), tokens(got)
    parts, part = [], []
    for t in exp:
        if t in ("...", "…"):
            parts.append(part)
            part = []
        else:
            part.append(t)
    parts.append(part)
    if len(parts) == 1:
        return len(exp) == len(out) and _match_at(exp, out, 0)
    if not _match_at(parts[0], out, 0):
        return False
    pos = len(parts[0])
    for middle in parts[1:-1]:
        pos = next((k for k in range(pos, len(out) + 1) if _match_at(middle, out, k)), None)
        if pos is None:
            return False
        pos += len(middle)
    tail = parts[-1]
    return len(out) - pos >= len(tail) and (not tail or _match_at(tail, out, len(out) - len(tail)))


def numbers_match(expected: str, got: str) -> bool:
    """For ``# -> value`` comments: the numbers shown (whole tokens), in order, same tolerance."""
    e = [t for t in tokens(expected) if NUMBER.match(t)]
    g = [t for t in tokens(got) if NUMBER.match(t)]
    return len(e) == len(g) and all(_same(a, b) for a, b in zip(e, g))


# ---- running a page ------------------------------------------------------------------------------
CHILD = r'''
import ast, contextlib, io, json, os, subprocess, sys, time, traceback

spec = json.load(open(sys.argv[1]))
import pandas
pandas.set_option("display.width", 200)
pandas.set_option("display.max_columns", 40)
lines = spec["text"].splitlines()
ns = {"__name__": "__main__"}
results = []


def expectation(end_line):
    text = lines[end_line - 1]
    return text.split("# ->", 1)[1].strip() if "# ->" in text else None


def run_statements(code, first, checks, prompt=False):
    """Run ``code`` (page lines from ``first``) statement by statement; record ``# ->`` checks."""
    tree = ast.parse("\n" * (first - 1) + code, filename=spec["page"])
    for k, stmt in enumerate(tree.body):
        want = expectation(stmt.end_lineno)
        last = prompt and k == len(tree.body) - 1
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            if isinstance(stmt, ast.Expr) and (want is not None or last):
                value = eval(compile(ast.Expression(stmt.value), spec["page"], "eval"), ns)
                shown = "" if value is None else (repr(value) if last else str(value))
            else:
                exec(compile(ast.Module([stmt], []), spec["page"], "exec"), ns)
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None
                shown = str(ns[target.id]) if want is not None and isinstance(target, ast.Name) else ""
        printed = buf.getvalue()
        sys.stdout.write(printed)
        if last and shown:
            sys.stdout.write(shown + "\n")
        if want is not None:
            checks.append([stmt.end_lineno, want, printed + shown])


def run_shell(commands):
    script = "set -euo pipefail\n" + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=spec["env"])
    if done.returncode != 0:
        raise RuntimeError(f"shell commands failed ({done.returncode}):\n{script}\n{done.stderr[-3000:]}")
    return done.stdout


for block in spec["blocks"]:
    record = {"line": block["line"], "kind": block["kind"], "stdout": "", "checks": [], "chunks": []}
    results.append(record)
    start = time.perf_counter()
    try:
        if block["not_run"]:
            sources = [c[1] for c in block["chunks"]] if block["kind"] == "doctest" else [block["code"]]
            for source in sources if block["kind"] != "shell" else []:
                compile(source, spec["page"], "exec")
            record["status"] = "not run"
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            if block["kind"] == "python":
                run_statements(block["code"], block["line"], record["checks"])
            elif block["kind"] == "doctest":
                for line, code, _ in block["chunks"]:
                    chunk = io.StringIO()
                    with contextlib.redirect_stdout(chunk):
                        run_statements(code, line, record["checks"], prompt=True)
                    record["chunks"].append(chunk.getvalue())
            elif block["commands"]:
                print(run_shell(block["commands"]), end="")
        record["stdout"] = buf.getvalue()
        record["status"] = "ran" if block["kind"] != "shell" or block["commands"] else "no commands"
    except BaseException:
        record["status"] = "error"
        record["error"] = traceback.format_exc()
        break
    finally:
        record["seconds"] = round(time.perf_counter() - start, 2)
json.dump(results, open(sys.argv[2], "w"))
'''


def _shims(folder: Path) -> Path:
    """``mixedmodels`` and ``python`` commands that run this interpreter on this checkout."""
    bin_dir = folder / ".docs-bin"
    bin_dir.mkdir()
    scripts = {
        "mixedmodels": f'exec "{sys.executable}" -c "import sys; from mixedmodels.cli import main; '
        f'sys.argv[0] = \'mixedmodels\'; sys.exit(main())" "$@"',
        "python": f'exec "{sys.executable}" "$@"',
        "python3": f'exec "{sys.executable}" "$@"',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def run_page(page: str, workdir: Path) -> tuple[list[Block], list[dict], str]:
    """Run the page's blocks in a fresh interpreter in ``workdir``; (blocks, results, stderr)."""
    text = (ROOT / page).read_text()
    blocks = page_blocks(text)
    env = dict(
        os.environ,
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    env["PATH"] = os.pathsep.join([str(_shims(workdir)), env.get("PATH", "")])
    spec = {"page": page, "text": text, "blocks": [asdict(b) for b in blocks], "env": env}
    (workdir / "spec.json").write_text(json.dumps(spec))
    (workdir / "child.py").write_text(CHILD)
    done = subprocess.run(
        [sys.executable, "child.py", "spec.json", "results.json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"the runner itself failed on {page}:\n{done.stderr[-3000:]}"
    return blocks, json.loads((workdir / "results.json").read_text()), done.stderr


def page_problems(page: str, blocks: list[Block], results: list[dict]) -> list[str]:
    """What a page shows that the run did not do or print."""
    problems = []
    for block, res in zip(blocks, results):
        where = f"{page}:{block.line}"
        if res["status"] == "error":
            return problems + [f"{where}: the block raised\n{res['error']}"]
        if res["status"] != "ran":
            continue
        if block.expected is not None and not output_matches(block.expected, res["stdout"]):
            problems.append(
                f"{where}: printed\n{res['stdout']}\nbut {page}:{block.expected_line} shows\n"
                f"{block.expected}"
            )
        for (line, _, want), got in zip(block.chunks, res["chunks"]):
            if want and not output_matches(want, got):
                problems.append(f"{page}:{line}: printed\n{got}\nbut the page shows\n{want}")
        for line, want, got in res["checks"]:
            if not numbers_match(want, got):
                problems.append(f"{page}:{line}: shows {want!r} but the value is\n{got}")
    return problems


# ---- the tests ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page_runs(tmp_path_factory):
    """Every page started at once (one process each, as many at a time as there are cores)."""
    workers = max(1, min(len(PAGES), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            page: pool.submit(run_page, page, tmp_path_factory.mktemp(Path(page).stem))
            for page in PAGES
        }
        yield futures


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_and_prints_what_it_shows(page, page_runs):
    blocks, results, stderr = page_runs[page].result()
    assert len(results) == len(blocks) or results[-1]["status"] == "error"
    problems = page_problems(page, blocks, results)
    assert not problems, "\n\n".join(problems) + f"\n\nstderr:\n{stderr[-2000:]}"


def test_every_page_output_block_belongs_to_a_code_block():
    """A ```text block must follow the code that prints it, or the test would silently skip it."""
    for page in PAGES:
        text = (ROOT / page).read_text()
        attached = {b.expected_line for b in page_blocks(text) if b.expected is not None}
        for lang, first, _, _ in fenced_blocks(text):
            if lang == "text":
                assert first in attached, f"{page}:{first}: a text block that follows no code block"


def test_no_page_hides_a_block_from_the_runner():
    """Indented fences (inside lists) and unknown languages would be skipped without a word."""
    for page in PAGES:
        text = (ROOT / page).read_text()
        indented = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"^\s+```", line)]
        assert not indented, f"{page}: indented code fences at lines {indented}"
        unknown = {lang for lang, *_ in fenced_blocks(text)} - {*PYTHON, *SHELL, *OUTPUT}
        assert not unknown, (
            f"{page}: code blocks in {sorted(unknown)}, which the docs test does not know"
        )


PAGE = textwrap.dedent("""
    Intro.

    ```python
    x = 1 + 1
    print(x * 10)
    y = x / 3   # -> 0.6667
    ```

    prints

    ```text
    20
    ```

    ```python
    >>> x + 0.5
    2.5
    >>> for i in range(2):
    ...     print(i)
    0
    1
    ```

    ```bash
    python3 -m venv .venv && . .venv/bin/activate && pip install . && mixedmodels fit "y ~ 1 + (1|g)" --data d
    mixedmodels scan --bed geno \\
        --out results.tsv
    ```

    ```python
    # docs-test: not run (slow)
    long_running()
    ```
""")


def test_page_parsing():
    python, doctest, shell, slow = page_blocks(PAGE)
    assert (python.kind, python.line, python.expected, python.expected_line) == (
        "python",
        5,
        "20",
        13,
    )
    assert [c[1:] for c in doctest.chunks] == [
        ("x + 0.5", "2.5"),
        ("for i in range(2):\n    print(i)", "0\n1"),
    ]
    assert shell.commands == [
        'mixedmodels fit "y ~ 1 + (1|g)" --data d',
        "mixedmodels scan --bed geno --out results.tsv",
    ]
    assert slow.not_run and not python.not_run


def test_output_comparison():
    assert output_matches("a  1.234  <1e-9\n───\nb 20", "a 1.2341 <1e-9 b 20")
    assert output_matches("p 0.07", "p 0.08")  # one unit in the last digit
    assert not output_matches("p 0.07", "p 0.09")
    assert not output_matches("sd 24.74", "sd 24.80")
    assert not output_matches("a 1", "a 1 2") and not output_matches("a 1", "b 1")
    assert output_matches("head 1 ... tail 3", "head 1 x y z tail 3")
    assert not output_matches("head 1 ... tail 3", "head 1 x y z tail 4")
    assert output_matches("7.0724e-10", "7.0731e-10") and not output_matches("7.07e-10", "7.2e-10")
    assert numbers_match(
        "pheno1 0.679, pheno2 0.028", "pheno1    0.678912\npheno2    0.028301\ndtype: float64"
    )
    assert not numbers_match("0.6778", "0.6812")


def test_runner_reports_a_wrong_printout(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(2 + 2)\nz = 3   # -> 4\n```\n\n```text\n5\n```\n")
    blocks = page_blocks(page.read_text())
    results = [{"status": "ran", "stdout": "4\n", "checks": [[3, "4", "3"]], "chunks": []}]
    problems = page_problems("page.md", blocks, results)
    assert len(problems) == 2 and "shows" in problems[0] and "'4'" in problems[1]
