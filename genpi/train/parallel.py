"""Data parallelism: several processes (one per GPU) train one adapter, each on its share of the steps.

    torchrun --nproc-per-node 4 -m genpi train SCENARIO --data DATA_DIR --out ADAPTER_DIR ...
    accelerate launch --multi_gpu --num_processes 4 -m genpi train SCENARIO --data DATA_DIR --out ADAPTER_DIR ...

(Without GPUs the same commands start CPU processes that talk over gloo; the tests do that.)
The launcher starts the processes and sets RANK / WORLD_SIZE / LOCAL_RANK; accelerate's PartialState (the
one the stock Trainer uses) reads them, joins the process group and gives each process its own device. The
Trainer wraps the model in DDP and deals out the list of micro-steps: process k runs micro-steps k, k + N,
k + 2N, ... So N processes with --grad-accum G take exactly the optimizer steps of one process with
--grad-accum N*G (--batch-size is per process; one optimizer step sees batch_size * G * N SFT examples).
Only the main process writes files; loss terms and token counts are summed over the processes before
they are logged.
"""

from __future__ import annotations


def process_state():
    """This process's place in the run (one process, or one of those a launcher started), set up before
    the model is loaded so that each process loads it onto its own device."""
    from accelerate import PartialState

    from ..models import default_device

    return PartialState(cpu=default_device() == "cpu")


def is_main_process() -> bool:
    return process_state().is_main_process


def summed(accelerator, values: list[float]) -> list[float]:
    """Each value summed over all processes (a collective: every process calls it at the same point)."""
    if accelerator.num_processes == 1:
        return list(values)
    import torch

    t = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(t, reduction="sum").tolist()
