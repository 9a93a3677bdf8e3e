"""What trains and what it is held to: the policy (a causal LM, whole or with LoRA adapters),
its frozen reference, PPO's value head, and the optimizer over what trains.

The reference is the model after the supervised stage. Without adapters it is a frozen copy;
with LoRA it is the same model with the adapters disabled (``peft``'s ``disable_adapter``),
so no second copy of the weights exists.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from ppokit.lm.models import add_lora, last_hidden, token_logprobs

if TYPE_CHECKING:
    from ppokit.parallel import Comm


def device_of(name: str) -> torch.device:
    """``cpu``, ``cuda``, or for ``auto`` cuda when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class ValueHead(nn.Module):
    """V(prefix) from a trunk's last hidden state (the policy's, or a critic model's): one
    linear layer, zero at the start (the first advantages are then the rewards' own returns),
    in float32 even under bf16 autocast (values feed GAE and the value loss)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            out: Tensor = self.linear(hidden.float()).squeeze(-1)
        return out


@dataclass
class Policy:
    model: PreTrainedModel  # trains: the whole model, or a PeftModel whose adapters train
    tokenizer: Tokenizer
    reference: PreTrainedModel | None  # a frozen copy of the SFT model; None: the adapters disabled (LoRA)
    head: ValueHead | None = None  # PPO's value head
    critic: PreTrainedModel | None = None  # the value head's own trunk; None: the policy's (shared)
    replicas: Replicas | None = None  # data-parallel runs: the wrappers the loss's forward passes go through

    @property
    def forward_model(self) -> nn.Module:
        """The model the loss calls: its ``DistributedDataParallel`` wrapper in a data-parallel
        run (whose backward averages the gradient over the ranks), else the model itself."""
        return self.model if self.replicas is None else self.replicas.model

    @property
    def lora(self) -> bool:
        return self.reference is None

    @property
    def device(self) -> torch.device:
        return self.model.device

    def trainable(self) -> list[nn.Module]:
        return [m for m in (self.model, self.critic, self.head) if m is not None]

    def values(self, policy_hidden: Tensor | None, input_ids: Tensor, attention_mask: Tensor, start: int) -> Tensor:
        """V before each completion token and after the last, ``[B, L + 1]``: the head over the
        policy's hidden states (``policy_hidden``, from the same forward pass) or the critic's."""
        assert self.head is not None
        head: nn.Module = self.head if self.replicas is None or self.replicas.head is None else self.replicas.head
        if self.critic is None:
            assert policy_hidden is not None
            return head(policy_hidden)  # type: ignore[no-any-return]
        trunk = (
            self.critic.base_model if self.replicas is None or self.replicas.critic is None else self.replicas.critic
        )
        return head(last_hidden(trunk, input_ids, attention_mask, start))  # type: ignore[no-any-return]

    @torch.no_grad()
    def reference_logprobs(self, input_ids: Tensor, attention_mask: Tensor, start: int, temperature: float) -> Tensor:
        """log pi_ref of the tokens ``input_ids[:, start:]`` (``token_logprobs``)."""
        if self.reference is not None:
            return token_logprobs(self.reference, input_ids, attention_mask, start, temperature)
        with self.model.disable_adapter():  # type: ignore[operator]  # a PeftModel's
            return token_logprobs(self.model, input_ids, attention_mask, start, temperature)


@dataclass
class Replicas:
    """A data-parallel run's ``DistributedDataParallel`` wrappers of what trains: the model, the
    value head and the critic's trunk. Each wraps the module itself (no copy); its backward
    averages the gradients over the ranks, so every rank clips and steps the same gradient."""

    model: nn.Module
    head: nn.Module | None
    critic: nn.Module | None


def replicate(policy: Policy, comm: Comm) -> Policy:
    """``policy`` with ``Replicas`` for a run of several processes (one process: unchanged).
    Wrapping broadcasts rank 0's parameters and buffers, so every rank starts identical; buffers
    are not broadcast again at each forward (nothing changes them)."""
    if comm.process.world_size == 1:
        return policy
    from torch.nn.parallel import DistributedDataParallel as DDP

    def wrap(module: nn.Module | None) -> nn.Module | None:
        return None if module is None else DDP(module, forward_sync_buffers=False)

    critic = policy.critic.base_model if policy.critic is not None else None
    wrapped = wrap(policy.model)
    assert wrapped is not None
    policy.replicas = Replicas(wrapped, wrap(policy.head), wrap(critic))
    return policy


def attach(
    model: PreTrainedModel, tokenizer: Tokenizer, lora_rank: int, lora_alpha: int, critic: bool,
    separate_critic: bool = False,
) -> Policy:  # fmt: skip
    """The RL policy from the supervised model: LoRA adapters over it (``lora_rank`` > 0), or
    the whole model beside a frozen copy of it; a value head when the method has a critic, on
    the policy's trunk or on its own copy of the supervised model (``separate_critic``)."""
    own = copy.deepcopy(model) if critic and separate_critic else None  # before adapters: a plain copy
    if lora_rank > 0:
        policy = Policy(add_lora(model, lora_rank, lora_alpha), tokenizer, None)
    else:
        policy = Policy(model, tokenizer, copy.deepcopy(model).requires_grad_(False))
    if critic:
        policy.critic = own
        policy.head = ValueHead(model.config.hidden_size).to(policy.device)
    return policy


def merged(policy: Policy) -> PreTrainedModel:
    """The trained model as one ``transformers`` model: LoRA adapters merged into their base
    weights (in place: call it once training is done), or the model itself."""
    if not policy.lora:
        return policy.model
    out: PreTrainedModel = policy.model.merge_and_unload()  # type: ignore[operator]  # a PeftModel's
    return out


class AdamW:
    """torch's AdamW over the parameters that train, with the shared loop's interface (zero,
    clip and report the norm, step) and its state for checkpoints."""

    def __init__(self, modules: list[nn.Module], lr: float, weight_decay: float = 0.0) -> None:
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        return torch.nn.utils.clip_grad_norm_(self.params, max_norm)

    def step(self) -> None:
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
