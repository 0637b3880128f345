"""llama.cpp's OpenAI-compatible server over a model's GGUF file, started on loopback and stopped after.

`LlamaServer(gguf)` runs `python -m llama_cpp.server` (llama-cpp-python's server; install it with
`pip install 'llama-cpp-python[server]'`, which builds llama.cpp from source) on a free port of
127.0.0.1, waits until it answers, and stops it (and only it) on exit. Its `/v1/completions` is what
`genpi synth --model-api-base` sends the base model's roles to. `gguf_file(ref)` finds a model's GGUF:
the embedded default model is one, as is any `--model FILE.gguf`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import GenpiError

INSTALL = "pip install 'llama-cpp-python[server]' (it builds llama.cpp from source: a few minutes)"


def gguf_file(ref) -> Path:
    """The GGUF file of a model (genpi.models.ModelRef), or a one-line error naming what to pass."""
    from ..models import _embedded_gguf

    if ref.kind == "default":
        return _embedded_gguf()
    if ref.gguf_file:
        return Path(ref.path) / ref.gguf_file
    raise GenpiError(f"llama.cpp runs GGUF files and --model {ref.spec} is not one: pass --model FILE.gguf "
                     "(convert a Hugging Face folder with llama.cpp's convert_hf_to_gguf.py) or 'default'")


def available() -> bool:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A llama.cpp server for the duration of a `with` block; `.url` is its OpenAI base URL (…/v1) and
    `.name` the model name it answers to. threads: CPU threads (default: all cores)."""

    def __init__(self, gguf: str | Path, *, lora: str | Path | None = None, n_ctx: int = 4096,
                 threads: int | None = None, timeout: float = 120.0, log: str | Path | None = None):
        self.gguf, self.lora, self.n_ctx = Path(gguf), lora, n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.timeout, self.log = timeout, log
        self.name = self.gguf.stem
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "LlamaServer":
        if not available():
            raise GenpiError(f"llama.cpp's server is not installed here: {INSTALL}")
        if not self.gguf.is_file():
            raise GenpiError(f"GGUF file '{self.gguf}' not found: pass an existing .gguf file")
        port = free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.name,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads), "--verbose", "false"]
        if self.lora:
            cmd += ["--lora_path", str(self.lora)]
        if self.log is None:  # a file, not a pipe: a full pipe would stall the server mid-run
            fd, self.log = tempfile.mkstemp(prefix="genpi-llama-server-", suffix=".log")
            os.close(fd)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                         start_new_session=True)
        self.url = f"http://127.0.0.1:{port}/v1"
        self._wait()
        return self

    def _wait(self) -> None:
        import httpx

        deadline = time.time() + self.timeout
        while True:
            if self.proc.poll() is not None:
                err = Path(self.log).read_text(errors="replace")[-300:]
                raise GenpiError(f"llama.cpp's server exited at start ({' '.join(err.split())}): check the GGUF file")
            try:
                if httpx.get(self.url + "/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                self.__exit__(None, None, None)
                raise GenpiError(f"llama.cpp's server did not answer within {self.timeout:.0f} s")
            time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
