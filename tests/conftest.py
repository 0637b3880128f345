"""Shared fixtures: the tiny random Llama (real SmolLM2 tokenizer and chat template) and helpers."""

from __future__ import annotations

import os

# Tests use tiny tensors, where thread start-up costs more than it saves, and a busy machine makes
# torch's spinning worker threads many times slower: one thread for the tests and the CLIs they start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from templates import TEMPLATES, with_template  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def materialized_models():
    """Build the cached model folders (the embedded model's fp32 folder, then the tiny one) once.

    Not autouse: pure tests never build a model. Request it (through `tiny_ref`, or with
    `@pytest.mark.usefixtures("materialized_models")`) from a test that loads a model, and from a CLI
    test that counts stderr lines of a command given `--model`: a first use prints a conversion line.
    """
    from genpi.models import resolve_model

    return resolve_model("tiny")


@pytest.fixture(scope="session")
def tiny_ref(materialized_models):
    return materialized_models


@pytest.fixture(scope="session")
def tiny_tok(tiny_ref):
    from genpi.models import load_tokenizer

    return load_tokenizer(tiny_ref)


@pytest.fixture(scope="session", params=list(TEMPLATES))
def chat_tok(request, tiny_tok):
    """(the tiny tokenizer with each chat template of tests/templates.py in turn, the template's name)."""
    return with_template(tiny_tok, request.param), request.param


@pytest.fixture(scope="session")
def tiny_model(tiny_ref):
    from genpi.models import load_model

    return load_model(tiny_ref)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, input: str | None = None,
            fresh: bool = False):
    """Run `genpi ARGS`; return a CompletedProcess (text mode). In this process (the CLI's own `main`,
    stdout and stderr captured, no interpreter start-up per call), unless `fresh` or stdin / a working
    folder is given: then in a fresh process, as a user's shell runs it."""
    if fresh or cwd is not None or input is not None:
        return subprocess.run([sys.executable, "-m", "genpi", *args], capture_output=True, text=True,
                              cwd=cwd, timeout=timeout, input=input)
    import contextlib
    import io
    import warnings

    from genpi.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors, --help and --version
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(["genpi", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


def one_line_error(res, *needles: str) -> str:
    """Assert `res` (a finished `genpi` process) failed the CLI way: exit code 2, one line on stderr
    (`genpi VERB: error: ...`, or `genpi: error: ...` for a usage mistake), no traceback, and that line naming the problem (every needle in it)."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(lines) == 1, res.stderr[-3000:]
    assert re.match(r"genpi( [a-z]+)?: error: ", lines[0]), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def write(tmp_path):
    """write('name', text_or_bytes) -> Path inside tmp_path."""

    def _write(name: str, content):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    return _write


@contextlib.contextmanager
def transformers_server(model_dir: str | Path, timeout: float = 180):
    """Serve `model_dir` with `transformers serve` on a free loopback port; yield its base URL; stop it."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([exe, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                pytest.fail(f"transformers serve did not come up in {timeout:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
