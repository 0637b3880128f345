"""Training on several processes (data parallel, as on several GPUs; here CPU processes on gloo), gradient
checkpointing and the 4-bit (QLoRA) refusal where there is no CUDA.

Two processes with --grad-accum 1 run exactly the optimizer steps of one process with --grad-accum 2 (the
same global batch of 4 SFT examples): the adapters and the logged loss curves must agree."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_line_error
from safetensors.torch import load_file
from test_train_run import SCENARIO, one_thread, train, write_data  # noqa: F401  (one_thread: autouse fixture)

from genpi.errors import GenpiError
from genpi.scenario import load_scenario
from genpi.train import TrainConfig

# the quick preset has no LoRA dropout (so no random stream tells the runs apart) and a KL term (teacher passes
# on the prompt's KV cache); of the 8 micro-steps, on-policy batches are 0 (first process) and 5 (second)
SIZES = dict(epochs=2.0, batch_size=2, max_source_tokens=256, max_target_tokens=48, learning_rate=1e-2,
             on_policy=0.5, on_policy_every=5, precision="fp32")
FLAGS = ["--preset", "quick", "--model", "tiny", "--epochs", "2", "--batch-size", "2", "--max-source-tokens", "256",
         "--max-target-tokens", "48", "--lr", "1e-2", "--on-policy", "0.5", "--on-policy-every", "5",
         "--precision", "fp32"]

# `python -m genpi ARGS`, noting every file this process writes, renames or removes under $WATCH (an audit
# hook sees Python's own writes: json, the loss plot, adapter_config.json, checkpoints' trainer_state.json)
WATCHED_GENPI = """
import os, sys
watch, rank = os.path.realpath(os.environ["WATCH"]), os.environ["RANK"]
log = open(os.path.join(os.environ["WRITES"], f"rank-{rank}.txt"), "a")

def under(p):
    return isinstance(p, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(p)).startswith(watch)

def hook(event, args):
    if event == "open" and under(args[0]):
        mode, flags = args[1], args[2] or 0
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or flags & (os.O_WRONLY | os.O_RDWR):
            log.write(f"write {args[0]}\\n")
    elif event in ("os.rename", "os.replace") and under(args[1]):
        log.write(f"rename {args[1]}\\n")
    elif event in ("os.remove", "os.rmdir", "shutil.rmtree") and under(args[0]):
        log.write(f"{event} {args[0]}\\n")
    elif event == "os.mkdir" and under(args[0]) and not os.path.isdir(args[0]):  # a folder made, not found
        log.write(f"mkdir {args[0]}\\n")
    log.flush()

sys.addaudithook(hook)
from genpi.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_ref):
    root = tmp_path_factory.mktemp("train-dp")
    (root / "s.yaml").write_text(SCENARIO)
    (root / "watched_genpi.py").write_text(WATCHED_GENPI)
    return load_scenario(root / "s.yaml"), write_data(root / "data", n=8), root


@pytest.fixture(scope="module")
def one_process(setup, tiny_ref):
    """The reference: one process, micro-batches of 2, two per optimizer step."""
    sc, data, root = setup
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # (set up before the autouse one_thread)
    try:
        train(sc, tiny_ref, data, root / "one", preset="quick", grad_accum=2, **SIZES)
    finally:
        torch.set_num_threads(n)
    return root / "one"


def two_processes(root: Path, out: Path) -> subprocess.CompletedProcess:
    """`genpi train` under `python -m torch.distributed.run --nproc_per_node 2` (gloo), micro-batches of 2,
    one per process per optimizer step."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    writes = root / f"writes-{out.name}"
    writes.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WATCH": str(out), "WRITES": str(writes), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(root / "watched_genpi.py"), "train", str(root / "s.yaml"),
           "--data", str(root / "data"), "--out", str(out), *FLAGS, "--grad-accum", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


def adapter_gap(one: Path, two: Path) -> float:
    """The largest difference between two adapters' weights, relative to each tensor's largest weight."""
    a, b = load_file(one / "adapter_model.safetensors"), load_file(two / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    return max(float((a[k] - b[k]).abs().max()) / max(float(a[k].abs().max()), 1e-3) for k in a)


def assert_same_run(one: Path, two: Path) -> dict:
    """Equal adapters (within float tolerance, relative to the weights' scale) and equal loss curves."""
    assert adapter_gap(one, two) <= 1e-5
    m1, m2 = (json.loads((d / "genpi.json").read_text()) for d in (one, two))
    h1, h2 = m1["loss_history"], m2["loss_history"]
    assert [h["step"] for h in h1] == [h["step"] for h in h2] == [1, 2, 3, 4]
    for r1, r2 in zip(h1, h2):
        assert r1.keys() == r2.keys() and {"loss", "sft", "pg", "kl"} <= r1.keys()
        for k in r1:
            assert r2[k] == pytest.approx(r1[k], abs=2e-4), (r1["step"], k)  # terms are logged to 4 decimals
    assert any("on_policy" in h for h in h1)
    assert m1["signature"] == m2["signature"]  # 2 processes x grad_accum 1 sign as 1 x 2: the same run
    assert (m1["train"]["processes"], m2["train"]["processes"]) == (1, 2)
    assert m1["train"]["global_batch"] == m2["train"]["global_batch"] == 4
    return m2


def writes_of(root: Path, out: Path, rank: int) -> list[str]:
    f = root / f"writes-{out.name}" / f"rank-{rank}.txt"
    return f.read_text().splitlines() if f.exists() else []


def other_writes(root: Path, out: Path) -> list[str]:
    """What the second process wrote under --out, less the stock Trainer's per-process random state in each
    checkpoint (and the folder for it) and the command's `mkdir -p` of --out (its writability check)."""
    ckpt = re.escape(str(out / "checkpoints" / "checkpoint-"))
    ok = re.compile(rf"mkdir {re.escape(str(out))}|mkdir {ckpt}\d+|write {ckpt}\d+/rng_state_1\.pth")
    return [w for w in writes_of(root, out, 1) if not ok.fullmatch(w)]


def test_two_processes_train_the_one_process_adapter(setup, one_process):
    sc, data, root = setup
    out = root / "two"
    res = two_processes(root, out)
    assert res.returncode == 0, res.stderr[-4000:]
    meta = assert_same_run(one_process, out)
    assert meta["train"]["micro_steps"] == 8 and meta["train"]["optimizer_steps"] == 4
    ref = json.loads((one_process / "genpi.json").read_text())
    assert meta["train"]["tokens"] == ref["train"]["tokens"]  # counted in both processes
    # one process wrote the outputs and reported
    main = writes_of(root, out, 0)
    assert any(w.endswith("genpi.json") for w in main) and any("loss.png" in w for w in main)
    assert any("adapter_config.json" in w for w in main) and any("trainer_state.json" in w for w in main)
    assert other_writes(root, out) == []
    assert len([ln for ln in res.stdout.splitlines() if ln.startswith("{")]) == 1
    assert res.stderr.count("adapter: ") == 1 and res.stderr.count("training on 2 processes") == 1
    assert not (out / "checkpoints").exists()


def test_two_processes_resume_a_checkpoint(setup, tiny_ref, one_process, monkeypatch):
    """A run cut short after optimizer step 2 (here by one process with --grad-accum 2: the same run, signed
    the same) is finished by two processes, which skip the steps it took: the adapter is the uncut one's."""
    from genpi.train.trainer import GenpiTrainer

    sc, data, root = setup
    out = root / "cut"
    real = GenpiTrainer.compute_loss

    def stop_after_step_2(self, *a, **k):
        if self.state.global_step == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(GenpiTrainer, "compute_loss", stop_after_step_2)
        with pytest.raises(KeyboardInterrupt):
            train(sc, tiny_ref, data, out, preset="quick", grad_accum=2, **SIZES)
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / "genpi.json").exists()
    res = two_processes(root, out)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "resuming from checkpoint-2 on 2 processes" in res.stderr
    meta = assert_same_run(one_process, out)
    assert meta["train"]["resumed_from"] == "checkpoint-2" and meta["train"]["optimizer_steps"] == 4
    assert other_writes(root, out) == []


def test_unsharded_steps_are_told_apart(setup, tiny_ref, one_process):
    """The comparison has teeth: one process with --grad-accum 1 takes each micro-step as an optimizer step
    of its own, which is what two processes that each walked all the steps would train."""
    sc, data, root = setup
    train(sc, tiny_ref, data, root / "one-ga1", preset="quick", grad_accum=1, **SIZES)
    assert adapter_gap(one_process, root / "one-ga1") > 1e-2


def test_gradient_checkpointing_gives_the_same_adapter(setup, tiny_ref, monkeypatch):
    from transformers.models.llama import modeling_llama

    sc, data, root = setup
    calls = {"n": 0}
    real = modeling_llama.LlamaMLP.forward  # inside each checkpointed layer

    def counted(self, *a, **k):
        calls["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", counted)
    kw = dict(method="sft", epochs=1, batch_size=2, max_source_tokens=256, max_target_tokens=48,
              learning_rate=1e-2, lora_dropout=0.0, precision="fp32")
    runs = {}
    for gc in (False, True):
        calls["n"] = 0
        out = root / f"gc-{gc}"
        runs[gc] = train(sc, tiny_ref, data, out, gradient_checkpointing=gc, **kw), calls["n"]
    (plain, n_plain), (ckpt, n_ckpt) = runs[False], runs[True]
    assert n_ckpt == 2 * n_plain  # every layer ran again in the backward pass
    assert ckpt["train"]["gradient_checkpointing"] and plain["signature"] == ckpt["signature"]
    assert ckpt["loss_history"] and len(ckpt["loss_history"]) == len(plain["loss_history"])
    for r1, r2 in zip(plain["loss_history"], ckpt["loss_history"]):
        assert r2["loss"] == pytest.approx(r1["loss"], abs=1e-5) and r2["sft"] == pytest.approx(r1["sft"], abs=1e-4)
    a, b = load_file(root / "gc-False" / "adapter_model.safetensors"), load_file(root / "gc-True" /
                                                                                   "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
    assert "gradient_checkpointing" not in TrainConfig.from_preset("smoke", gradient_checkpointing=True).signed()


def test_load_in_4bit_needs_cuda_and_bitsandbytes(setup, cli, monkeypatch):
    import importlib.util

    from genpi.models import resolve_model
    from genpi.train.base import check_4bit

    sc, data, root = setup
    tiny = resolve_model("tiny")
    assert "load_in_4bit" not in TrainConfig.from_preset("smoke").signed()
    assert TrainConfig.from_preset("smoke", load_in_4bit=True).signed()["load_in_4bit"] is True
    with pytest.raises(GenpiError, match=r"--load-in-4bit needs a CUDA GPU .* on cpu: drop --load-in-4bit"):
        check_4bit(tiny, torch.device("cpu"))
    real = importlib.util.find_spec
    with monkeypatch.context() as m:
        m.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
        with pytest.raises(GenpiError, match="needs the bitsandbytes package.*pip install bitsandbytes"):
            check_4bit(tiny, torch.device("cuda"))
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the command-line refusal is for machines without it")
    res = cli("train", str(root / "s.yaml"), "--data", str(data), "--out", str(root / "q"), "--model", "tiny",
              "--preset", "smoke", "--load-in-4bit")
    one_line_error(res, "--load-in-4bit needs a CUDA GPU")
    assert not (root / "q" / "genpi.json").exists()
