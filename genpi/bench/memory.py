"""Peak memory of one conversation: the model's weights plus the peak of tensors made while it runs.

A dispatch mode sees every tensor an operator returns; each new storage is counted until Python drops
it (activations, logits, the KV cache as it grows). Storages that existed before (the weights, a
prompt cache built earlier) are not counted as new. Used in the untimed warm-up pass only, since
watching every operator slows the model down.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

METHOD = ("weights + peak bytes of tensors created during one conversation (activations, logits, KV cache), "
          "counted per storage by a torch dispatch mode in the untimed warm-up pass")


class PeakMemory(TorchDispatchMode):
    """`with PeakMemory(model, existing=[...]) as pm: ...` then read `pm.peak` (bytes)."""

    method = METHOD

    def __init__(self, model, existing=()):
        super().__init__()
        self._known = WeakIdKeyDictionary()
        self._refs = set()
        tensors = list(model.parameters()) + list(model.buffers()) + [t for t in existing if t is not None]
        for t in tensors:
            self._known[t.untyped_storage()] = 0
        self.weights = sum(st.nbytes() for st in {id(p.untyped_storage()): p.untyped_storage()
                                                   for p in model.parameters()}.values())
        self.live = 0
        self.peak_new = 0

    @property
    def peak(self) -> int:
        return self.weights + self.peak_new

    def _freed(self, n: int, ref) -> None:
        self.live -= n
        self._refs.discard(ref)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                if st not in self._known:
                    n = st.nbytes()
                    self._known[st] = n
                    self._refs.add(weakref.ref(st, lambda r, n=n: self._freed(n, r)))
                    self.live += n
                    self.peak_new = max(self.peak_new, self.live)
        return out
