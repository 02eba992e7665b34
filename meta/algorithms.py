"""Meta-learning algorithms around the GRURecommender, by name: what the inner loop adapts and how.

Every entry wraps a model in an object with learn2learn's interface, which the engines use:
``clone()`` -> a learner with ``adapt(loss)`` and ``learner(prefixes, lengths)``; ``.module`` is the
GRURecommender; ``parameters()`` are the meta-parameters (the outer loop's). All first-order.
- ``maml``: learn2learn's MAML, every parameter adapted at one inner rate.
- ``anil``: learn2learn's MAML around the output layer only (Raghu et al. 2020, "ANIL"); the body
  (embedding and GRU) is shared by all tasks and changed by the outer loop only.
- ``metasgd``: learn2learn's MetaSGD (Li et al. 2017): one inner rate per parameter entry,
  initialised at the inner rate and learned by the outer loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import learn2learn as l2l
import torch
from learn2learn.algorithms.meta_sgd import meta_sgd_update
from learn2learn.utils import clone_module, clone_parameters
from torch import nn
from torch.autograd import grad

from bench.core.errors import BenchError
from meta.batched import BatchedMAML
from meta.batched_anil import BatchedANIL
from meta.batched_metasgd import BatchedMetaSGD


class ANILLearner:
    """One task's learner: the shared body and a clone of the head (learn2learn MAML).

    The body is not adapted, so a prefix batch's features are the same at every inner step: they
    are computed once per learner and reused (as in learn2learn's ANIL example), so inner steps
    cost only the head. The cache holds the last input by identity (the support set, called once
    per step); the query set is a different tensor, so its features (and their gradient to the
    body) are fresh. In training, the support features' dropout mask is thus drawn once per task.
    """

    def __init__(self, module: nn.Module, head):
        self.module, self.head = module, head
        self._input: tuple | None = None
        self._features: torch.Tensor | None = None

    def features(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self._input is None or self._input[0] is not prefixes or self._input[1] is not lengths:
            self._input, self._features = (prefixes, lengths), self.module.features(prefixes, lengths)
        return self._features

    def __call__(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if getattr(self.module, "repeat", None) is None:
            return self.head(self.features(prefixes, lengths))
        return self.head(self.features(prefixes, lengths), prefixes, lengths)  # RepeatOutput reads the prefixes

    def adapt(self, loss: torch.Tensor) -> None:
        self.head.adapt(loss)


class RepeatOutput(nn.Module):
    """A repeat-aware model's head as one module: its output layer and RepeatHead (baselines/model.py),
    the same tensors as the model's, so ANIL adapts both (forward as ``GRURecommender.scores``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.output, self.repeat = model.output, model.repeat

    def forward(self, features: torch.Tensor, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.repeat(self.output(features), features, prefixes, lengths)


class ANIL(nn.Module):
    """ANIL: learn2learn's ``MAML`` (first-order) around ``model.output`` (with a repeat-aware model's
    RepeatHead: around both, ``RepeatOutput``); the rest is the body.

    ``parameters()`` are the whole model's (the body and the head are both meta-trained; the head's
    tensors are registered twice, under ``module`` and ``head``, and counted once).
    """

    def __init__(self, model: nn.Module, lr: float, first_order: bool = True):
        super().__init__()
        self.module = model
        head = model.output if getattr(model, "repeat", None) is None else RepeatOutput(model)
        self.head = l2l.algorithms.MAML(head, lr=lr, first_order=first_order)
        self.lr = lr

    @property
    def first_order(self) -> bool:
        return self.head.first_order

    def forward(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.module(prefixes, lengths)

    def clone(self) -> ANILLearner:
        return ANILLearner(self.module, self.head.clone())


class MetaSGD(l2l.algorithms.MetaSGD):
    """learn2learn's MetaSGD, plus MAML's ``allow_nograd``: a frozen parameter (requires_grad
    False, e.g. a frozen embedding) gets no inner gradient, keeps its value, and its inner rates
    are frozen too (they would never receive an outer gradient)."""

    def __init__(self, model: nn.Module, lr: float = 1.0, first_order: bool = False, lrs=None):
        super().__init__(model, lr=lr, first_order=first_order, lrs=lrs)
        if lrs is None:
            for param, rate in zip(model.parameters(), self.lrs):
                rate.requires_grad_(param.requires_grad)

    def clone(self) -> MetaSGD:
        return MetaSGD(clone_module(self.module), lrs=clone_parameters(self.lrs), first_order=self.first_order)

    def adapt(self, loss: torch.Tensor, first_order: bool | None = None) -> None:
        second_order = not (self.first_order if first_order is None else first_order)
        params = list(self.module.parameters())
        trainable = [p for p in params if p.requires_grad]
        grads = iter(grad(loss, trainable, retain_graph=second_order, create_graph=second_order))
        # l2l's meta_sgd_update leaves a parameter whose gradient is None unchanged.
        gradients = [next(grads) if p.requires_grad else None for p in params]
        self.module = meta_sgd_update(self.module, self.lrs, gradients)


def wrap_maml(model: nn.Module, lr: float, allow_nograd: bool) -> l2l.algorithms.MAML:
    return l2l.algorithms.MAML(model, lr=lr, first_order=True, allow_nograd=allow_nograd)


def wrap_anil(model: nn.Module, lr: float, allow_nograd: bool) -> ANIL:
    return ANIL(model, lr, first_order=True)  # the head never holds a frozen tensor


def wrap_metasgd(model: nn.Module, lr: float, allow_nograd: bool) -> MetaSGD:
    return MetaSGD(model, lr=lr, first_order=True)


@dataclass(frozen=True)
class Algorithm:
    wrap: Callable[[nn.Module, float, bool], nn.Module]  # (model, inner lr, allow_nograd) -> wrapper
    engines: tuple[str, ...]  # the inner-loop engines (meta/engines.py) that implement it
    wrapper: type  # the class ``wrap`` returns: how an engine tells which algorithm it is handed
    batched: type  # its task-batched inner loop (the "batched" engine's), instantiated on first use


ALGORITHMS: dict[str, Algorithm] = {
    "maml": Algorithm(wrap_maml, ("per-task", "batched", "notebook"), l2l.algorithms.MAML, BatchedMAML),
    "anil": Algorithm(wrap_anil, ("per-task", "batched"), ANIL, BatchedANIL),
    "metasgd": Algorithm(wrap_metasgd, ("per-task", "batched"), MetaSGD, BatchedMetaSGD),
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise BenchError(f"unknown meta-learning algorithm {name!r}", f"choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def algorithm_of(wrapper) -> Algorithm:
    """The registry entry whose wrapper class ``wrapper`` is (exact type first, then a subclass)."""
    for algorithm in ALGORITHMS.values():
        if type(wrapper) is algorithm.wrapper:
            return algorithm
    for algorithm in ALGORITHMS.values():  # a subclass of a wrapper (exact matches first: MetaSGD here subclasses l2l's)
        if isinstance(wrapper, algorithm.wrapper):
            return algorithm
    raise BenchError(
        f"no meta-learning algorithm wraps a {type(wrapper).__name__}", f"wrap the model with one of {', '.join(ALGORITHMS)} (meta/algorithms.py)"
    )


def check_engine(algorithm: str, engine: str) -> None:
    """Refuse an engine that does not implement ``algorithm``."""
    engines = get_algorithm(algorithm).engines
    if engine not in engines:
        raise BenchError(f"engine {engine!r} does not implement {algorithm}", f"set engine to one of {', '.join(engines)}")


def wrap(algorithm: str, model: nn.Module, lr: float, allow_nograd: bool) -> nn.Module:
    """``model`` wrapped by the named algorithm, inner rate ``lr``, first-order."""
    return get_algorithm(algorithm).wrap(model, lr, allow_nograd)
