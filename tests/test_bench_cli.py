"""`genpi bench` on the command line: bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_error

from genpi.cli import main

# every test runs a command with --model and counts its stderr lines: the models are built beforehand
pytestmark = pytest.mark.usefixtures("materialized_models")

SCENARIO = "prompt: You are a shell agent.\neval: {inputs: [\"How big is /usr?\"]}\n"


def _one_line(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("genpi bench: error:")
    return lines[0]


@pytest.mark.parametrize("flags,message", [
    (["--turns", "0"], "--turns must be at least 1"),
    (["--reply-tokens", "0"], "--reply-tokens must be at least 1"),
    (["--conversations", "0"], "--conversations must be at least 1"),
    (["--threads", "-1"], "--threads must be 0"),
    (["--adapter", "/nonexistent"], "adapter folder '/nonexistent' not found"),
])
def test_bad_flags(flags, message, write, tmp_path, capsys):
    s = write("s.yaml", SCENARIO)
    assert main(["bench", str(s), "--out", str(tmp_path / "R"), "--model", "tiny", *flags]) == 2
    assert message in _one_line(capsys)


def test_not_an_adapter_folder(write, tmp_path, capsys):
    s = write("s.yaml", SCENARIO)
    (tmp_path / "A").mkdir()
    assert main(["bench", str(s), "--out", str(tmp_path / "R"), "--model", "tiny", "--adapter", str(tmp_path / "A")]) == 2
    assert "is not an adapter folder" in _one_line(capsys)


def test_a_scenario_without_inputs(write, tmp_path, capsys):
    s = write("p.txt", "You are a shell agent.\n")
    assert main(["bench", str(s), "--out", str(tmp_path / "R"), "--model", "tiny"]) == 2
    assert "no eval inputs or seed inputs" in _one_line(capsys)


def test_exit_code_two_in_a_fresh_process(cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    res = cli("bench", str(s), "--out", str(tmp_path / "R"), "--model", "tiny", "--turns", "0", fresh=True)
    assert one_line_error(res, "--turns must be at least 1").startswith("genpi bench: error:")


def test_a_small_run_prints_its_ratios(write, tmp_path, capsys):
    s = write("s.yaml", SCENARIO)
    out = tmp_path / "R"
    assert main(["bench", str(s), "--out", str(out), "--model", "tiny", "--preset", "smoke", "--turns", "1",
                 "--reply-tokens", "2", "--env-tokens", "2", "--conversations", "1", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "no_prompt / with_prompt" in printed
    assert json.loads((out / "bench.json").read_text())["settings"]["reply_tokens"] == 2


@pytest.mark.slow
def test_agentbench_os_on_the_embedded_model(tmp_path):
    """Acceptance: on the AgentBench OS prompt the FLOPs ratio is below 0.8 and prefix caching changes no text."""
    from pathlib import Path

    from genpi.bench import BenchConfig, run_bench
    from genpi.bench.random_adapter import make_random_adapter
    from genpi.models import resolve_model
    from genpi.scenario import load_scenario

    repo = Path(__file__).resolve().parents[1]
    sc_path = repo / "benchmarks" / "agentbench-os.yaml"
    if not (repo.parent / "shared" / "data" / "agentbench-os" / "agent_prompt.txt").is_file():
        pytest.skip("the AgentBench OS data is not in ../shared/data/agentbench-os/")
    ref = resolve_model("default")
    adapter = make_random_adapter(ref, tmp_path / "adapter")
    r = run_bench(load_scenario(sc_path), ref, adapter, tmp_path / "R",
                  BenchConfig(turns=2, reply_tokens=4, env_tokens=8, conversations=1, repeats=1), progress=False)
    assert r["ratios"]["internalized"]["flops"] < 0.8
    ag = r["agreement"]["with_prompt_vs_prefix_cache"]
    assert ag["identical_replies"] == ag["replies"] == 2
