"""The language-model trainer's gradient in two real processes on gloo: through
``DistributedDataParallel`` (``ppokit.lm.policy.replicate``) every rank's gradient is the mean of
the gradients each rank's own minibatch has in one process, for GRPO's loss (the whole model and
LoRA adapters) and PPO's (the value head on the policy's trunk, and on a critic model of its
own), and one optimizer step leaves the ranks' weights bit-identical."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytest.importorskip("transformers")

from ppokit import parallel
from ppokit.lm.config import LMConfig
from ppokit.lm.group import LMBatch, group_loss
from ppokit.lm.models import tiny_causal_lm, token_logprobs
from ppokit.lm.policy import AdamW, Policy, attach, replicate
from ppokit.lm.ppo import PPOBatch, ppo_loss
from ppokit.lm.tasks import get_task
from ppokit.lm.tokenizer import char_tokenizer
from tests.integration.test_parallel import free_port

KINDS: dict[str, dict[str, Any]] = {"grpo": {"lora_rank": 0}, "grpo-lora": {"lora_rank": 4}, "ppo": {"critic": "head"},
         "ppo-critic-model": {"critic": "model"}}  # fmt: skip
PROMPT, LENGTH, ROWS = 3, 5, 6  # each rank's minibatch: 6 sequences of 3 prompt and 5 completion tokens


def make_policy(kind: str) -> Policy:
    settings = KINDS[kind]
    tokenizer = char_tokenizer(get_task("sort").alphabet)
    model = tiny_causal_lm("gpt2", tokenizer, width=32, layers=2, seed=0)
    ppo = kind.startswith("ppo")
    return attach(model, tokenizer, int(settings.get("lora_rank", 0)), 8, critic=ppo,
                  separate_critic=settings.get("critic") == "model")  # fmt: skip


def loss(policy: Policy, kind: str, rank: int) -> torch.Tensor:
    """The trainer's loss of ``kind`` over rank ``rank``'s minibatch (its own tokens, masks and
    advantages; old log-probs away from the current ones, so that some ratios clip)."""
    gen = torch.Generator().manual_seed(100 + rank)
    vocab = len(policy.tokenizer)
    ids = torch.randint(3, vocab, (ROWS, PROMPT + LENGTH), generator=gen)
    attention = torch.ones_like(ids)
    mask = torch.ones(ROWS, LENGTH)
    mask[rank::3, LENGTH - 1 - rank :] = 0.0  # some completions end early: other token counts per rank
    with torch.no_grad():
        now = token_logprobs(policy.model, ids, attention, PROMPT)
    old = now + 0.3 * torch.randn(now.shape, generator=gen)
    advantages = 2.0 * torch.randn(ROWS, generator=gen)
    config = LMConfig(kl_coef=0.1)
    if kind.startswith("grpo"):
        batch = LMBatch(ids, attention, mask, old, now - 0.1, advantages, PROMPT)
        return group_loss(policy, config, "token-mean", LENGTH, batch)[0]
    values = torch.randn(ROWS, LENGTH, generator=gen)
    tokens = advantages[:, None].expand(ROWS, LENGTH)
    batch = PPOBatch(ids, attention, mask, old, values, tokens, values + tokens, PROMPT)  # type: ignore[assignment]
    return ppo_loss(policy, batch, 1.0, 0.2, 0.2, 0.2, 0.5)[0]  # type: ignore[arg-type]


def gradients(policy: Policy) -> list[torch.Tensor]:
    return [p.grad.clone() for m in policy.trainable() for p in m.parameters() if p.grad is not None]


def weights(policy: Policy) -> list[torch.Tensor]:
    return [p.detach().clone() for m in policy.trainable() for p in m.parameters()]


def worker(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    comm = parallel.TorchComm()
    out: dict[str, Any] = {}
    for kind in KINDS:
        policy = replicate(make_policy(kind), comm)
        assert policy.replicas is not None
        optimizer = AdamW(policy.trainable(), 1e-2)
        optimizer.zero_grad()
        loss(policy, kind, rank).backward()  # type: ignore[no-untyped-call]
        out[kind] = {"grad": gradients(policy)}
        optimizer.clip_grad_norm(1.0)
        optimizer.step()
        out[kind]["weights"] = weights(policy)
        policy.replicas = None
    (Path(folder) / f"rank{rank}.pkl").write_bytes(pickle.dumps(out))
    parallel.shutdown()


def test_two_ranks_average_the_language_model_gradient_and_stay_identical(tmp_path: Path) -> None:
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in (0, 1)]
    for kind in KINDS:
        alone = []
        for rank in (0, 1):  # each rank's minibatch in one process, from the same start
            policy = make_policy(kind)
            loss(policy, kind, rank).backward()  # type: ignore[no-untyped-call]
            alone.append(gradients(policy))
        expected = [(a + b) / 2 for a, b in zip(*alone, strict=True)]
        assert len(expected) == len(ranks[0][kind]["grad"]) > 0, kind
        assert not all(torch.allclose(a, b) for a, b in zip(*alone, strict=True))  # the ranks' gradients differ
        for rank in ranks:
            for got, want in zip(rank[kind]["grad"], expected, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        for a, b in zip(ranks[0][kind]["weights"], ranks[1][kind]["weights"], strict=True):
            assert torch.equal(a, b), kind  # one step later the ranks still agree, bit for bit
