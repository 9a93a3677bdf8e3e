"""The fused minibatch step (``classic.fused``): the whole step as one function, compiled and
not, against the eager step; its compile cache."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from ppokit.classic.batch import Batch
from ppokit.classic.fused import FusedStep
from ppokit.classic.objective import make_minibatch_loss
from ppokit.classic.update import update_policy
from ppokit.config import AlgoConfig
from ppokit.core.losses import Coefs
from ppokit.core.optim import FlatAdam
from ppokit.core.update import UpdatePlan
from ppokit.methods import METHODS
from tests.unit.test_update import flat_params, make_batch, make_policy


def fused_against_eager(kind: str, compile: bool, method: str = "ppo") -> tuple[FusedStep, Batch]:
    """Three epochs of four minibatches, with the entropy bonus, value clipping and a reference
    penalty: the fused step against the eager one, from the same start and shuffles."""
    base = make_policy(kind)
    batch = make_batch(base, size=32)
    algo = AlgoConfig(method=method, update_epochs=3, minibatch_size=8, ent_coef=0.01, ref_kl_coef=0.1,
                      max_grad_norm=0.05)  # fmt: skip
    coefs = Coefs(algo.ent_coef, algo.clip_coef, 0.3, 0.2, algo.ref_kl_coef)
    plan = UpdatePlan(algo.update_epochs, algo.minibatch_size, algo.max_grad_norm)
    loss_fn = make_minibatch_loss(METHODS[method], algo)
    eager, fused = copy.deepcopy(base), copy.deepcopy(base)
    optimizers = [FlatAdam(policy, lr=1e-2, eps=algo.adam_eps) for policy in (eager, fused)]
    step = FusedStep(fused, optimizers[1], loss_fn, compile=compile)
    runs = ((eager, optimizers[0], None), (fused, optimizers[1], step))
    results = [update_policy(policy, optimizer, batch, loss_fn=loss_fn, coefs=coefs, plan=plan,
                             generator=torch.Generator().manual_seed(0), fused=fused_step)
               for policy, optimizer, fused_step in runs]  # fmt: skip
    assert results[0]["grad_norm"] > algo.max_grad_norm  # clipping did bind
    assert not torch.equal(flat_params(eager), flat_params(base))
    torch.testing.assert_close(flat_params(fused), flat_params(eager), rtol=1e-5, atol=1e-6)
    assert set(results[1]) == set(results[0])
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    state = [o.state_dict()["state"][0] for o in optimizers]  # the fused step stepped FlatAdam's own state
    assert float(state[1]["step"]) == float(state[0]["step"]) == 12.0
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(state[1][key], state[0][key], rtol=1e-5, atol=1e-8)
    return step, batch


@pytest.mark.parametrize("kind", ["discrete", "box"])
@pytest.mark.parametrize("method", ["ppo", "ppo-kl", "a2c"])
def test_the_fused_step_is_the_eager_step(kind: str, method: str) -> None:
    fused_against_eager(kind, compile=False, method=method)


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_the_compiled_fused_step_is_the_eager_step_and_compiles_once(kind: str) -> None:
    step, batch = fused_against_eager(kind, compile=True)
    rows = torch.randperm(len(batch))[:8]  # as the update draws a minibatch
    with torch.compiler.set_stance("fail_on_recompile"):  # annealed coefficients and learning rates: no new graph
        for i in range(3):
            step.optimizer.param_groups[0]["lr"] = 1e-3 * (i + 1)
            step(batch, rows, Coefs(0.01 * i, 0.2 - 0.05 * i, 0.25, 0.1 * i, 0.1), 0.05)


def test_compiled_graphs_go_to_the_documented_cache_even_after_torch_chose_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Torch writes its temporary-folder default into TORCHINDUCTOR_CACHE_DIR when it first asks
    for its cache (importing torch._dynamo does, before any step is built): ppokit's folder
    replaces that default; a folder the user set is kept."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir

    from ppokit.classic.fused import CACHE_ENV, use_compile_cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "ppokit-cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert cache_dir() == default_cache_dir()  # torch has filled in its own default
    assert use_compile_cache() == tmp_path / "ppokit-cache"
    assert Path(cache_dir()) == tmp_path / "ppokit-cache"  # where inductor now writes
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache() == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()
