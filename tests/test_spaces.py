import subprocess
import sys
import time

import pytest

from search_spaces import BINDING_LAM, BUILTIN_BS, BUILTIN_LAMS, SPACES, get_space, list_spaces
from study.config import StudyConfig
from study.plan import plan_study
from trainables.registry import UnknownNameError

REQUIRED = {
    "penalty_grid",
    "b_sweep",
    "lambda_sweep",
    "backbones",
    "baselines",
    "pareto_search",
    "smoke",
}


def test_required_spaces_exist_and_sizes():
    assert set(SPACES.names()) >= REQUIRED
    n = len(BUILTIN_BS) * len(BUILTIN_LAMS)
    assert get_space("penalty_grid").num_trials() == n == 28
    assert get_space("penalty_grid").num_trials(seeds=3) == 3 * n
    assert get_space("paper_grid").num_trials() == 36
    assert get_space("b_sweep").fixed == {"lam": BINDING_LAM}
    assert get_space("lambda_sweep").fixed == {"B": 0.1}
    ps = get_space("pareto_search")
    assert ps.is_search and ps.objectives == {"top1": "max", "cmap": "min"}


def test_unknown_space_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="valid search spaces are: .*penalty_grid"):
        get_space("penalty_gird")


@pytest.mark.parametrize("name", SPACES.names())
def test_every_space_plans_valid_trials(name):
    plan = plan_study(StudyConfig(space=name, scale="smoke"))
    assert plan.trials and len(plan.shared_configs) >= 1


def test_plan_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown config keys"):
        plan_study(StudyConfig(space="smoke", set=("minimax_epoch=1",)))
    with pytest.raises(ValueError, match="the space b_sweep sets these itself"):
        plan_study(StudyConfig(space="b_sweep", set=("lam=0.5",)))
    with pytest.raises(ValueError, match="--identity-epochs must be >= 0"):
        plan_study(StudyConfig(space="penalty_grid", set=("identity_epochs=-1",)))
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        plan_study(StudyConfig(space="smoke", seeds=0))
    with pytest.raises(ValueError, match="batch_size='two': expected an integer"):
        plan_study(StudyConfig(space="smoke", set=("batch_size=two",)))
    with pytest.raises(ValueError, match="amp='maybe': expected true or false"):
        plan_study(StudyConfig(space="smoke", set=("amp=maybe",)))
    with pytest.raises(ValueError, match="B='x': expected a number"):
        plan_study(StudyConfig(space="b_sweep", grid=("B=0.1,x",)))
    with pytest.raises(ValueError, match="the space b_sweep sets these itself"):
        plan_study(StudyConfig(space="b_sweep", grid=("B=0.1",), set=("B=0.2",)))


def test_an_ad_hoc_grid_replaces_the_spaces_axes():
    plan = plan_study(StudyConfig(space="b_sweep", scale="smoke", grid=("B=0.05,0.1,0.15",)))
    assert [c.B for c in plan.trials] == [0.05, 0.1, 0.15]
    assert {c.lam for c in plan.trials} == {BINDING_LAM}
    plan = plan_study(StudyConfig(space="lambda_sweep", scale="smoke", grid=("B=0.1,0.2",)))
    assert len(plan.trials) == 2 * len(get_space("lambda_sweep").grid["lam"])
    assert {c.B for c in plan.trials} == {0.1, 0.2}


def _launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "study.launch", *args], capture_output=True, text=True, timeout=120
    )


def test_list_spaces_is_fast_and_complete():
    t0 = time.time()
    r = _launch("--list-spaces")
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert {line.split()[0] for line in lines} == set(SPACES.names())
    assert time.time() - t0 < 20
    assert [n for n, _ in list_spaces()] == SPACES.names()


def test_launch_rejects_bad_input_before_starting_anything(tmp_path):
    r = _launch("--space", "nope", "--study-dir", str(tmp_path))
    assert r.returncode == 2 and "unknown search space 'nope'" in r.stderr
    r = _launch("--space", "smoke", "--set", "anonymizer=unet9", "--study-dir", str(tmp_path))
    assert r.returncode == 2 and "unknown anonymizer 'unet9'" in r.stderr
    assert not any(tmp_path.iterdir())  # no server, no study dir
    h = _launch("--help")
    for flag in (
        "--scale",
        "--dataset",
        "--seeds",
        "--max-concurrent",
        "--cpus-per-trial",
        "--gpus-per-trial",
        "--address",
        "--tracking-uri",
        "--experiment",
        "--study-dir",
        "--resume",
    ):
        assert flag in h.stdout


def test_samplers_for_small_budgets():
    import optuna

    from study.search import SAMPLERS, build_sampler, startup_trials

    assert set(SAMPLERS.names()) == {"tpe", "gp", "nsga2", "random"}
    assert [startup_trials(n) for n in (4, 12, 40, 400)] == [2, 3, 10, 10]
    tpe = build_sampler("tpe", 12)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    # Random for 3 of 12 trials (Optuna's default would be 10), a liar for parallel trials.
    assert tpe._n_startup_trials == 3 and tpe._constant_liar and tpe._multivariate
    assert isinstance(build_sampler("nsga2", 12), optuna.samplers.NSGAIISampler)
    assert get_space("pareto_search").sampler == "tpe"
    # Every sampler proposes within the ranges, for two objectives.
    for name in SAMPLERS.names():
        study = optuna.create_study(
            directions=["maximize", "minimize"], sampler=build_sampler(name, 4)
        )
        study.optimize(lambda t: (t.suggest_float("B", 0, 1), t.suggest_float("lam", 0, 2)), 5)
        assert all(0 <= t.params["B"] <= 1 for t in study.trials), name


def test_sampler_flag_is_checked():
    assert plan_study(StudyConfig(space="pareto_search", sampler="nsga2")).study.sampler == "nsga2"
    with pytest.raises(ValueError, match="--sampler: penalty_grid is a grid"):
        plan_study(StudyConfig(space="penalty_grid", sampler="tpe"))
    with pytest.raises(ValueError, match="--sampler: unknown sampler 'cma'; valid samplers"):
        plan_study(StudyConfig(space="pareto_search", sampler="cma"))
