"""The switches of MBPO's mechanics that are not the model loss (docs/mbpo.md "What differs between the
MBPO variants besides the loss"): ``rollout_sampling``, ``model_score``, ``model_snapshot``,
``model_epochs``. Each is checked against a truth computed here, outside the code under test: the
model's mean prediction, the weights recorded after every epoch, the validation MSE recomputed on the
replayed split, the epoch count; and the defaults are upstream's (the existing record tests pin that
the defaults change no number)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from test_mbpo_agent import AGENTS, make_agent, run_steps, tiny_config, train_model
from test_mbpo_population import _train_model_population
from vagram_bench import run
from vagram_bench.agents.mbpo import MBPOConfig
from vagram_bench.agents.mbpo.config import SWITCH_CHOICES
from vagram_bench.interfaces import AgentConfigError
from reference.model_trainer import ModelTrainer
from vagram_bench.models import EnsembleDynamicsModel, make_model_loss


# ------------------------------------------------------------------------------------------- config
def test_the_defaults_are_upstreams():
    cfg = MBPOConfig(model_loss="mle")
    assert (cfg.rollout_sampling, cfg.model_score, cfg.model_snapshot, cfg.model_epochs) == (
        "upstream", "upstream", "upstream", None)
    assert all(choices[0] == "upstream" for choices in SWITCH_CHOICES.values())


@pytest.mark.parametrize("field", sorted(SWITCH_CHOICES))
def test_an_invalid_switch_value_names_the_value_and_the_choices(field):
    with pytest.raises(AgentConfigError) as info:
        MBPOConfig(model_loss="mle", **{field: "bogus"})
    assert "'bogus'" in str(info.value) and field in str(info.value)
    assert all(choice in str(info.value) for choice in SWITCH_CHOICES[field])


def test_switch_conflicts_are_refused():
    with pytest.raises(AgentConfigError, match="needs a Gaussian model"):
        MBPOConfig(model_loss="mse", rollout_sampling="sample")
    MBPOConfig(model_loss="mse", rollout_sampling="mean")  # a deterministic model's mean: accepted
    with pytest.raises(AgentConfigError, match="exclude each other"):
        MBPOConfig(model_loss="mse", model_epochs=5, num_epochs_train_model=10)
    with pytest.raises(AgentConfigError, match="model_epochs=0"):
        MBPOConfig(model_loss="mse", model_epochs=0)


def test_the_cli_records_the_switches_in_config_json_and_refuses_a_bad_value(tmp_path, capsys):
    from vagram_bench.runner.config import parse_args

    cfg = parse_args(["agent=mbpo_mle", "env=InvertedPendulum-v5", "agent.rollout_sampling=mean",
                      "agent.model_score=loss", "agent.model_snapshot=per_member", "agent.model_epochs=7"])
    recorded = cfg.to_dict()["agent_config"]  # what config.json holds
    assert (recorded["rollout_sampling"], recorded["model_score"], recorded["model_snapshot"],
            recorded["model_epochs"]) == ("mean", "loss", "per_member", 7)
    assert run.main(["agent=mbpo_mle", "env=InvertedPendulum-v5", "agent.model_snapshot=best",
                     f"out={tmp_path}", "steps=10"]) == 2
    err = capsys.readouterr().err
    assert "model_snapshot='best'" in err and "per_member" in err and not (tmp_path / "InvertedPendulum-v5").exists()


# ------------------------------------------------------------------------------------- rollouts
@pytest.mark.parametrize("sampling", ["mean", "upstream"])
def test_mean_rollouts_store_the_models_mean_prediction(sampling):
    """One elite, rollouts of length 1: with ``mean`` every stored next state and reward is the elite's
    mean prediction for the stored state and action (``predict``, computed here); with upstream's
    sampling almost none is."""
    cls = AGENTS["mle"]
    cfg = tiny_config(cls, num_elites=1, rollout_schedule=(1, 2, 1, 1), num_sac_updates_per_step=0,
                      effective_model_rollouts_per_step=20, rollout_sampling=sampling)
    env, agent = make_agent(cls, cfg)
    run_steps(env, agent, cfg.initial_exploration_steps + cfg.freq_train_model)
    pop = agent.population
    got = pop.model_buffer.storage[0][: int(pop.model_buffer.size[0])]
    assert got.shape[0] == cfg.rollout_batch_size
    model = pop.model.member_model(0)
    with torch.no_grad():
        pred = model.predict(got["observation"], got["action"], members=model.elite_idx)
    mean_next, mean_reward = pred.next_obs[0], pred.reward[0]
    err = (got["next", "observation"] - mean_next).abs().amax(-1)
    err_r = (got["next", "reward"][:, 0] - mean_reward).abs()
    if sampling == "mean":
        assert err.max() < 1e-4 and err_r.max() < 1e-4
    else:
        assert (err > 1e-3).float().mean() > 0.9


# ---------------------------------------------------------------------------------- model training
def _data(n=400, d=3, a=1, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs, act = torch.randn(n, d, generator=g), torch.rand(n, a, generator=g) * 2 - 1
    next_obs = obs + 0.2 * torch.sin(3 * obs) + 0.1 * act + noise * torch.randn(n, d, generator=g)
    reward = obs[:, 0] * act[:, 0]
    return obs, act, reward, next_obs


def _trainer(snapshot, seed=0, **options):
    g = torch.Generator().manual_seed(seed)
    model = EnsembleDynamicsModel(3, 1, ensemble_size=5, num_elites=3, num_layers=2, hid_size=32,
                                  gaussian=True, generator=g)
    # a large learning rate on noisy data: the members' validation scores bounce, so their lowest
    # epochs differ
    options = dict(dict(batch_size=32, lr=3e-2, patience=3, improvement_threshold=0.01), **options)
    return model, ModelTrainer(model, make_model_loss("mle"), generator=g, snapshot=snapshot, **options)


def _record_every_epoch(model):
    """A training callback recording each epoch's validation scores and a copy of the weights."""
    history = []

    def callback(epoch, train_loss, val):
        history.append((val.clone(), {k: v.detach().clone() for k, v in model.named_parameters()}))

    return history, callback


def test_per_member_snapshot_returns_each_members_own_best_weights():
    model, trainer = _trainer("per_member", fixed_epochs=12)
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    history, callback = _record_every_epoch(model)
    result = trainer.train(*_data(), callback=callback)
    assert result.epochs == len(history) == 12
    scores = torch.stack([torch.tensor(result.val_scores[0])] + [v for v, _ in history])  # (1 + epochs, E)
    best_epoch = scores.argmin(0)  # 0: the pre-training weights
    assert len(set(best_epoch.tolist())) >= 2  # the members' best epochs differ: the scenario this tests
    for e, epoch in enumerate(best_epoch.tolist()):
        weights = initial if epoch == 0 else history[epoch - 1][1]
        for name, value in model.named_parameters():
            assert torch.equal(value[e], weights[name][e]), (e, epoch, name)
    assert result.best_val_scores == pytest.approx(scores.min(0).values.tolist(), rel=1e-6)
    # the restored members score what they are ranked on, and the elites are the lowest of those
    assert result.val_score == pytest.approx(result.best_val_scores, rel=1e-5)
    assert sorted(result.elites) == sorted(torch.argsort(scores.min(0).values)[:3].tolist())


def test_upstream_snapshot_restores_the_whole_ensemble_at_the_last_improving_epoch():
    """Upstream's rule, recomputed from the recorded epochs: the snapshot is the last epoch in which some
    member's score fell more than 1 % below upstream's running best; the members' recorded bests are
    the running minima, which the restored members need not score."""
    model, trainer = _trainer("upstream", fixed_epochs=12)
    history, callback = _record_every_epoch(model)
    result = trainer.train(*_data(), callback=callback)
    best, last = torch.tensor(result.val_scores[0]), None
    for epoch, (val, _) in enumerate(history, 1):
        if bool(((best - val) / best.abs() > 0.01).any()):
            best, last = torch.minimum(best, val), epoch
    assert last is not None and result.restored_best
    for name, value in model.named_parameters():
        assert torch.equal(value, history[last - 1][1][name])
    assert result.best_val_scores == pytest.approx(best.tolist(), rel=1e-6)
    assert max(abs(s - b) / b for s, b in zip(result.val_score, result.best_val_scores)) > 0.01  # stale bests


def test_last_snapshot_keeps_the_last_epochs_weights_and_scores():
    model, trainer = _trainer("last", fixed_epochs=6)
    history, callback = _record_every_epoch(model)
    result = trainer.train(*_data(), callback=callback)
    for name, value in model.named_parameters():
        assert torch.equal(value, history[-1][1][name])
    assert result.best_val_scores == pytest.approx(history[-1][0].tolist(), rel=1e-6)
    assert not result.restored_best


def test_fixed_epochs_run_exactly_that_many_epochs_where_early_stopping_stops_sooner():
    _, stopping = _trainer("upstream", patience=1)
    _, fixed = _trainer("upstream", fixed_epochs=15, patience=1)
    assert stopping.train(*_data()).epochs < 15
    assert fixed.train(*_data()).epochs == 15
    with pytest.raises(ValueError, match="excludes max_epochs"):
        _trainer("upstream", fixed_epochs=15, max_epochs=3)


@pytest.mark.parametrize("loss", ["mle", "vagram"])
def test_mbpo_fixed_model_epochs_in_every_training_call(loss):
    cls = AGENTS[loss]
    cfg = tiny_config(cls, num_epochs_train_model=None, model_epochs=4, patience=1)
    env, agent = make_agent(cls, cfg)
    rows, _ = run_steps(env, agent, cfg.initial_exploration_steps + 3 * cfg.freq_train_model)
    assert [r["model_train_epochs"] for r in rows.values()] == [4.0, 4.0, 4.0]


def _validation_mse(model, data, generator_state, ratio=0.2):
    """Each ensemble member's validation MSE of ``(s', r)``, on the split the trainer draws first
    (``randperm`` of the data from its generator; trainer.py step 2), from the model's forward pass."""
    obs, act, reward, next_obs = data
    g = torch.Generator()
    g.set_state(generator_state)
    perm = torch.randperm(obs.shape[0], generator=g)
    val = perm[: int(obs.shape[0] * ratio)]
    with torch.no_grad():
        pred = model.predict(obs[val], act[val])
    err = (pred.next_obs - next_obs[val]).pow(2).sum(-1) + (pred.reward - reward[val]).pow(2)
    return (err / (obs.shape[1] + 1)).mean(-1)  # (E,)


@pytest.mark.parametrize("snapshot", ["per_member", "upstream"])
def test_mse_score_ranks_vagrams_elites_by_the_validation_mse(snapshot):
    """``model_score=mse`` on VaGraM (whose upstream score is its own loss): with per-member snapshots
    the elites are the members with the lowest validation MSE recomputed here, and train.csv's recorded
    best, restored score and MSE all equal the elites' recomputed MSE; with upstream's snapshot the
    recorded best is the running minimum while the restored MSE is the restored members'."""
    cls = AGENTS["vagram"]
    cfg = tiny_config(cls, model_score="mse", model_snapshot=snapshot, num_epochs_train_model=None,
                      patience=3, model_lr=1e-2, ensemble_size=5, num_elites=2)
    env, agent = make_agent(cls, cfg)
    run_steps(env, agent, cfg.initial_exploration_steps + cfg.freq_train_model - 1)
    pop = agent.population
    state = pop.generators["gen_model"][0].get_state()
    records = train_model(agent, 0, cfg.initial_exploration_steps + cfg.freq_train_model)
    n = int(pop.real_buffer.size[0])
    data = pop.real_buffer.storage[0][:n]
    model = pop.model.member_model(0)
    mse = _validation_mse(model, (data["observation"], data["action"], data["next", "reward"][:, 0],
                                  data["next", "observation"]), state)
    elites = model.elite_idx.tolist()
    assert records["model_val_mse"] == pytest.approx(mse[elites].mean().item(), rel=1e-5)
    assert records["model_val_score_restored"] == pytest.approx(records["model_val_mse"], rel=1e-6)
    if snapshot == "per_member":
        assert sorted(elites) == sorted(torch.argsort(mse)[:2].tolist())
        assert records["model_val_score"] == pytest.approx(mse[elites].mean().item(), rel=1e-5)
    else:
        assert records["model_val_score"] <= records["model_val_mse"] * (1 + 1e-6)


def test_loss_score_stops_and_ranks_mle_on_its_nll():
    """``model_score=loss`` for MLE: the recorded scores are the Gaussian NLL (negative once the
    variances shrink below 1), not the MSE."""
    cls = AGENTS["mle"]
    records = {}
    for score in ("upstream", "loss"):
        cfg = tiny_config(cls, model_score=score, model_snapshot="per_member")
        env, agent = make_agent(cls, cfg)
        run_steps(env, agent, cfg.initial_exploration_steps + cfg.freq_train_model - 1)
        records[score] = train_model(agent, 0, cfg.initial_exploration_steps + cfg.freq_train_model)
    assert records["upstream"]["model_val_score"] == pytest.approx(records["upstream"]["model_val_mse"], rel=1e-5)
    assert records["loss"]["model_val_score"] != pytest.approx(records["loss"]["model_val_mse"], rel=1e-2)
    assert records["loss"]["model_val_score"] == pytest.approx(records["loss"]["model_val_score_restored"], rel=1e-5)


# ------------------------------------------------------------------------------- the population
@pytest.mark.parametrize("switches", [dict(model_snapshot="per_member"), dict(model_snapshot="last"),
                                      dict(model_score="mse", model_epochs=6),
                                      dict(model_score="loss", model_snapshot="per_member")],
                         ids=["per_member", "last", "mse-fixed", "loss-per_member"])
@pytest.mark.parametrize("loss_name", ["mle", "vagram"])
def test_population_training_under_the_switches_equals_each_members_single_trainer(loss_name, switches):
    """The population trainer implements each switch as the single trainer does, bitwise (one thread), with
    members stopping at different epochs; MLE scored on its own NLL (``model_score=loss``) included, which
    agreed only to float rounding while the NLL's ``exp``/``softplus`` ran over the stacked members."""
    max_epochs = None if "model_epochs" in switches else 25
    results, errors, _, _, _, check = _train_model_population(loss_name, [0, 1], (0.01, 0.3), max_epochs,
                                                              **switches)
    assert not errors
    if "model_epochs" in switches:
        assert [results[k].epochs for k in (0, 1)] == [6, 6]
    for k in (0, 1):
        check(k)
        assert all(math.isfinite(v) for v in results[k].val_score)


def test_a_run_recorded_before_the_switches_resumes_under_their_defaults_only():
    """config.json of a run recorded before the switches existed lacks them: resuming it with the
    defaults (the behaviour it ran with) is the same config, with another value it is not."""
    from vagram_bench.runner.config import parse_args
    from vagram_bench.runner.rundir import config_differences

    new = parse_args(["agent=mbpo_mle", "env=InvertedPendulum-v5"]).to_dict()
    old = dict(new, agent_config={k: v for k, v in new["agent_config"].items()
                                  if k not in ("model_epochs", "model_score", "model_snapshot", "rollout_sampling")})
    assert config_differences(old, new) == []
    changed = parse_args(["agent=mbpo_mle", "env=InvertedPendulum-v5", "agent.rollout_sampling=mean"]).to_dict()
    assert config_differences(old, changed) == ["agent.rollout_sampling: 'upstream' (run dir) vs 'mean' (this command)"]
