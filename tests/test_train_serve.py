"""`genpi train --merge` writes a model folder that a stock server loads: served on loopback, it answers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from test_train_run import SCENARIO, write_data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_merged_model_is_served_by_transformers_serve(tmp_path, cli):
    exe = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    (tmp_path / "s.yaml").write_text(SCENARIO)
    data = write_data(tmp_path / "data")
    out = tmp_path / "adapter"
    res = cli("train", str(tmp_path / "s.yaml"), "--data", str(data), "--out", str(out), "--model", "tiny",
              "--preset", "smoke", "--epochs", "1", "--method", "sft", "--max-target-tokens", "48", "--merge",
              "--quiet")
    assert res.returncode == 0, res.stderr
    merged = out / "merged"
    assert json.loads((out / "genpi.json").read_text())["merged"] == str(merged)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([exe, "serve", str(merged), "--host", "127.0.0.1", "--port", str(port),
                               "--device", "cpu", "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "transformers serve did not come up in 180 s"
            time.sleep(1)
        r = httpx.post(f"{base}/v1/chat/completions", timeout=120,
                       json={"model": str(merged), "max_tokens": 8, "temperature": 0,
                             "messages": [{"role": "user", "content": "New problem: What is in /srv/1?"}]})
        assert r.status_code == 200, r.text
        reply = r.json()["choices"][0]["message"]
        assert reply["role"] == "assistant" and isinstance(reply["content"], str) and reply["content"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
