"""The command lines a new user meets: no silent traps (abbreviations, overrides the study owns,
grid/search mix-ups, resuming with other flags, scale-blind help, stray files), and the dry
run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from search_spaces import BUILTIN_BS, BUILTIN_LAMS
from study.config import build_parser, from_args
from study.plan import plan_study


def _plan(*argv: str):
    return plan_study(from_args(build_parser().parse_args(list(argv))))


def _refused(parse, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        parse(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_no_cli_takes_an_abbreviated_flag(capsys):
    from analysis.report import build_parser as report_parser
    from study.bench.__main__ import main as bench_main
    from trainables import anonymize, calibrate, run
    from trainables.data.datasets import check

    # study.launch --seed 3 used to be read as --seeds 3: 90 trials instead of 30.
    err = _refused(build_parser().parse_args, ["--seed", "3"], capsys)
    assert "unrecognized arguments: --seed" in err
    for parse, argv in (
        (run.build_parser().parse_args, ["--minimax", "1"]),
        (calibrate.build_parser().parse_args, ["--minimax", "1"]),
        (report_parser().parse_args, ["--experiment", "x", "--out-dir", "y"]),
        (anonymize.build_parser().parse_args, ["--weights", "a", "--input", "b", "--out", "c"]),
        (bench_main, ["quality", "--seed", "3"]),
        (check.main, ["--data", "ucf101", "--root", "x"]),
    ):
        err = _refused(parse, argv, capsys)
        assert "unrecognized arguments" in err or "arguments are required" in err, argv


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--set", "seed=5"], "--set seed: use --seeds N"),
        (["--set", "scale=smoke"], "--set scale: use --scale"),
        (["--set", "dataset=synthetic"], "--set dataset: use --dataset"),
        (["--set", "amp=ture"], "amp='ture': expected true or false"),
        (["--set", "minimax_epochs=abc"], "minimax_epochs='abc': expected an integer"),
        (["--num-samples", "3"], "--num-samples: penalty_grid is a grid of 28 points"),
        (["--space", "b_sweep", "--num-samples", "2"], "applies to search spaces"),
    ],
)
def test_overrides_the_study_owns_are_refused(argv, needle):
    with pytest.raises(ValueError) as e:
        _plan(*argv)
    assert needle in str(e.value)


def test_the_launcher_refuses_them_before_starting_anything(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "study.launch", "--study-dir", str(tmp_path), "--set", "seed=5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "use --seeds N" in r.stderr
    assert not any(tmp_path.iterdir())
    r = subprocess.run(
        [sys.executable, "-m", "study.launch", "--scale", "huge"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "invalid choice: 'huge'" in r.stderr


def test_seeds_replicate_each_sampled_configuration_of_a_search(tmp_path):
    from study.replicates import TRIAL_INDEX, seeded
    from study.tuner import param_space, tune_config

    plan = _plan("--space", "pareto_search", "--num-samples", "3", "--seeds", "2",
                 "--study-dir", str(tmp_path))  # fmt: skip
    plan.study.root.mkdir(parents=True)
    assert plan.num_trials == 6
    assert "seed" not in param_space(plan)  # the repeater numbers the copies
    tc = tune_config(plan)
    assert tc.num_samples == 6 and tc.search_alg.repeat == 2
    assert seeded({"B": 0.2, TRIAL_INDEX: 1}) == {"B": 0.2, "seed": 1, "data_seed": 1}
    # The repeater gives the searcher one result per configuration: each objective's mean.
    rep = tc.search_alg
    rep.set_search_properties(None, None, param_space(plan))
    first = rep.suggest("a")
    second = rep.suggest("b")
    assert first[TRIAL_INDEX] == 0 and second[TRIAL_INDEX] == 1
    assert {k: v for k, v in first.items() if k != TRIAL_INDEX} == {
        k: v for k, v in second.items() if k != TRIAL_INDEX
    }
    told = []
    rep.searcher.on_trial_complete = lambda tid, result=None, **kw: told.append((tid, result))
    rep.on_trial_complete("a", {"top1": 0.8, "cmap": 0.5})
    assert told == []
    rep.on_trial_complete("b", {"top1": 0.6, "cmap": 0.7})
    assert told == [("a", {"top1": pytest.approx(0.7), "cmap": pytest.approx(0.6)})]


def test_replicates_change_the_model_and_the_data_seed_not_the_eval_seed(tmp_path):
    from study.replicates import seeded
    from study.tuner import param_space
    from trainables.game.keys import init_key, raw_key

    plan = _plan("--space", "smoke", "--seeds", "3", "--set", "data_seed=5",
                 "--study-dir", str(tmp_path))  # fmt: skip
    seeds = sorted({(t.seed, t.data_seed, t.eval_seed) for t in plan.trials})
    assert seeds == [(0, 5, 0), (1, 6, 0), (2, 7, 0)]
    # Each replicate has its own shared stages and raw reference.
    assert len({init_key(t) for t in plan.trials}) == len({raw_key(t) for t in plan.trials}) == 3
    # Ray's grid gives the replicate index as ``seed``; the trial sees the same seeds as the plan.
    ps = param_space(plan)
    ray_cfg = {k: v for k, v in ps.items() if not isinstance(v, dict)}
    assert seeded({**ray_cfg, "seed": 2})["data_seed"] == 7
    assert seeded({"seed": 0}) == {"seed": 0, "data_seed": 0}  # replicate 0: as given


def test_resume_with_other_flags_is_refused_listing_the_differences(tmp_path):
    from study import record

    plan = _plan("--study-dir", str(tmp_path), "--set", "minimax_epochs=2")
    plan.study.root.mkdir(parents=True)
    record.write(plan)
    same = _plan("--study-dir", str(tmp_path), "--set", "minimax_epochs=2", "--resume")
    assert record.resume_problem(same) == ""
    # Runtime flags may change on resume; what the trials compute may not.
    busy = _plan("--study-dir", str(tmp_path), "--set", "minimax_epochs=2", "--resume",
                 "--max-concurrent", "1")  # fmt: skip
    assert record.resume_problem(busy) == ""
    other = _plan("--study-dir", str(tmp_path), "--seeds", "2", "--scale", "smoke", "--resume")
    problem = record.resume_problem(other)
    from study.dryrun import describe

    assert "--seeds: 1 when started" in describe(other)  # the dry run says so too
    assert "--seeds: 1 when started, 2 now" in problem
    assert "--scale: 'default' when started, 'smoke' now" in problem
    assert "--set: ['minimax_epochs=2'] when started, [] now" in problem


def test_help_shows_the_values_of_the_scale_asked_for(capsys):
    from trainables import run

    for scale, needle in (("smoke", "(smoke: 32)"), ("paper", "(paper: 224)")):
        with pytest.raises(SystemExit):
            run.main(["--scale", scale, "--help"])
        out = capsys.readouterr().out
        size_help = out[out.index("  --size SIZE") :].split("--frames")[0]
        assert needle in " ".join(size_help.split()), size_help
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "{smoke,default,paper}" in capsys.readouterr().out


def test_a_report_of_an_unknown_study_creates_nothing(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--experiment", "typo",
         "--study-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "no study records" in r.stderr
    assert not (tmp_path / "typo").exists()


def test_dry_run_prints_the_trials_sharing_reuse_and_time_and_starts_nothing(tmp_path):
    args = [sys.executable, "-m", "study.launch", "--dry-run", "--study-dir", str(tmp_path)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit() and "S1" in line]
    n, bs = len(BUILTIN_BS) * len(BUILTIN_LAMS), len(BUILTIN_BS)
    assert len(rows) == n
    # lambda = 0 is inert at every B: one of those trials trains, the others reuse it.
    assert sum("reuses" in line for line in out.splitlines()) == bs - 1
    assert "S1:" in out and "to compute" in out and f"{n} trials: {n - bs + 1} train" in out
    assert "Estimated wall time:" in out and "reference figures" in out
    assert not any(tmp_path.iterdir())  # no study dir, no mlflow.db, no server
    # With figures an earlier study recorded on this machine for the same config (B, lambda and
    # seed aside), the estimate uses them.
    from study.timings import cost_key

    cfg = _plan().trials[0]
    other = _plan("--set", "minimax_epochs=1").trials[0]
    assert cost_key(cfg) == cost_key(_plan().trials[7])  # another B and lambda
    assert cost_key(cfg) != cost_key(other)
    timing_rows = [
        {"host": socket.gethostname(), "key": cost_key(other), "shared_seconds": 1.0,
         "trial_seconds": 1.0},
        {"host": socket.gethostname(), "key": cost_key(cfg), "shared_seconds": 100.0,
         "trial_seconds": 60.0},
        {"host": "elsewhere", "key": cost_key(cfg), "shared_seconds": 1.0, "trial_seconds": 1.0},
    ]  # fmt: skip
    (tmp_path / "timings.jsonl").write_text("".join(json.dumps(x) + "\n" for x in timing_rows))
    r = subprocess.run(
        [*args, "--max-concurrent", "1"], capture_output=True, text=True, timeout=120
    )
    assert "recorded on this machine" in r.stdout
    trained = n - bs + 1
    minutes = (100 + trained * 60) / 60  # the shared stages, then each trained trial, one at a time
    assert f"Estimated wall time: {minutes:.1f} min" in r.stdout
    # With nothing shared (the ratios bench's second grid), each trial pays its own stages.
    r = subprocess.run(
        [*args, "--max-concurrent", "1", "--no-reuse", "--private-stages"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Shared stages: none shared (--private-stages)" in r.stdout and "S1" not in r.stdout
    assert f"{n} trials: {n} train" in r.stdout
    assert f"Estimated wall time: {n * 160 / 60:.1f} min" in r.stdout  # n x (100 s + 60 s)


def test_anonymize_writes_the_file_an_output_names_or_refuses_it_before_loading(tmp_path, capsys):
    """One input file and a file-like --output: that file, not a folder named like a file."""
    from trainables import anonymize

    video, image = tmp_path / "clip.avi", tmp_path / "photo.png"
    video.write_bytes(b"x")
    image.write_bytes(b"x")
    assert anonymize.output_path(video, video, tmp_path / "anon.mp4") == tmp_path / "anon.mp4"
    assert anonymize.output_path(image, image, tmp_path / "a.jpg") == tmp_path / "a.jpg"
    assert anonymize.output_path(video, video, tmp_path / "out") == tmp_path / "out" / "clip.mp4"
    (tmp_path / "dir.mp4").mkdir()  # an existing folder is a folder, whatever its name
    assert anonymize.output_path(video, video, tmp_path / "dir.mp4") == (
        tmp_path / "dir.mp4" / "clip.mp4"
    )
    for inp, out, needle in (
        (video, "anon.avi", "a video is written as H.264 MP4; name a .mp4 file"),
        (image, "anon.mp4", "photo.png is an image; name an image file"),
        (tmp_path, "anon.mp4", "is a directory, so --output must be a directory"),
    ):
        rc = anonymize.main(["--weights", "missing.pt", "--input", str(inp),
                             "--output", str(tmp_path / out)])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and needle in err, err
        assert "missing.pt" not in err  # refused before the weights are looked at
    assert not (tmp_path / "anon.mp4").exists()


def test_the_calibration_command_defaults_to_the_scale_a_study_records_it_at():
    from study.config import StudyConfig
    from trainables import calibrate

    assert calibrate.build_parser().parse_args([]).scale == StudyConfig().scale == "default"
