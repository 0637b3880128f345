"""`genpi train --merge` writes a model folder that a stock server loads: served on loopback, it answers."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import transformers_server

from test_train_run import SCENARIO, write_data


@pytest.mark.slow
def test_merged_model_is_served_by_transformers_serve(tmp_path, cli):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    data = write_data(tmp_path / "data")
    out = tmp_path / "adapter"
    res = cli("train", str(tmp_path / "s.yaml"), "--data", str(data), "--out", str(out), "--model", "tiny",
              "--preset", "smoke", "--epochs", "1", "--method", "sft", "--max-target-tokens", "48", "--merge",
              "--quiet")
    assert res.returncode == 0, res.stderr
    merged = out / "merged"
    assert json.loads((out / "genpi.json").read_text())["merged"] == str(merged)
    with transformers_server(merged) as base:
        r = httpx.post(f"{base}/v1/chat/completions", timeout=120,
                       json={"model": str(merged), "max_tokens": 8, "temperature": 0,
                             "messages": [{"role": "user", "content": "New problem: What is in /srv/1?"}]})
    assert r.status_code == 200, r.text
    reply = r.json()["choices"][0]["message"]
    assert reply["role"] == "assistant" and isinstance(reply["content"], str) and reply["content"]
