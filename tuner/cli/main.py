"""The ``mbrl-tune`` command line. Each subcommand is a small function over the packages' APIs; input
errors end with one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tuner import api
from tuner.cli.argtypes import OneLineParser, add_command, positive_int
from tuner.cli.reports import add_analysis_commands, cmd_report


# ---------------------------------------------------------------- datasets
def cmd_datasets_generate(args: argparse.Namespace) -> int:
    settings = api.GenerateConfig(medium_max_steps=args.medium_max_steps, expert_steps=args.expert_steps,
                                  learning_starts=min(args.learning_starts, args.medium_max_steps, args.expert_steps),
                                  eval_every=args.eval_every, device=args.device)
    start = time.perf_counter()
    ds = api.generate_dataset(args.env, args.level, args.size, args.seed, args.out, settings, args.policy_dir,
                              progress=not args.quiet)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.out}: {len(ds)} transitions of {args.env}-{args.level} in {elapsed:.1f} s; behaviour "
          f"return {ds.meta.behaviour_return:.1f} (normalised {ds.meta.behaviour_normalized_score:.1f})")
    return 0


def cmd_datasets_info(args: argparse.Namespace) -> int:
    info = api.dataset_summary(args.file, env=args.env)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"{key:<{width}}  {shown}")
    return 0


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    cfg = api.trial_config(args.config, api.parse_overrides(args.set))
    out = Path(args.out) if args.out else Path("runs/train") / time.strftime("%Y%m%d-%H%M%S")
    results = api.train(cfg, out, progress=not args.quiet)
    print(f"{results['status']}: normalised score {results['normalized_score']:.1f} "
          f"(return {results['return_mean']:.1f}; behaviour data {results['behaviour_normalized_score']:.1f}) "
          f"in {results['wall_seconds']:.0f} s; wrote {out / 'results.json'} and {out / 'policy.pt'}")
    return 0


# ---------------------------------------------------------------- sweeps
def cmd_sweep(args: argparse.Namespace) -> int:
    spec = api.new_sweep(name=args.name, storage=args.storage, space=args.space, datasets=args.dataset,
                         trials=args.trials, concurrency=args.concurrency,
                         seeds=list(range(args.seeds)) if args.seed_list is None else args.seed_list,
                         searcher=args.searcher, init_trials=args.init_trials, early_stop=args.early_stop,
                         baselines=args.baselines, warm_start=args.warm_start, base_file=args.base,
                         preset=args.preset, overrides=api.parse_overrides(args.set), search_seed=args.search_seed,
                         gpus_per_trial=args.gpus_per_trial, log=args.log, objective=args.objective)
    return _sweep_and_status(spec)


def cmd_resume(args: argparse.Namespace) -> int:
    return _sweep_and_status(api.load_sweep(args.path), resume=True)


def _sweep_and_status(spec: api.SweepSpec, resume: bool = False) -> int:
    """Run a sweep, then print its status; a Ctrl-C or SIGTERM (the sweep saved, stopped at that
    experiment) exits 130 after the same status and resume hint."""
    try:
        api.run_sweep(spec, resume=resume)
    except api.Interrupted:
        _print_status(spec.root)
        return 130
    return _print_status(spec.root)


def _print_status(sweep_dir: Path) -> int:
    """Print the trials table and, for experiments short of their count or with errored trials, a summary
    on stderr; returns 0 when every experiment is complete, else 1 (what ``sweep`` and ``resume`` exit
    with)."""
    status = api.sweep_status(sweep_dir)
    print(status.table)
    for line in status.confirm_lines:
        print(line)
    if status.complete:
        return 0
    for dataset, c in status.incomplete.items():
        print(f"mbrl-tune: incomplete: {Path(dataset).stem}: {c.ended} finished, {c.errored} errored, {c.missing} "
              f"missing of {c.target}", file=sys.stderr)
    if status.storage_full or any(c.disk_full for c in status.incomplete.values()):
        print(f"mbrl-tune: error: the filesystem of {sweep_dir} is full (no space left on device); free space "
              f"there, then resume", file=sys.stderr)
    print(f"mbrl-tune: continue with: mbrl-tune resume {sweep_dir}", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    if api.is_study(args.path):
        print(api.study_status(args.path))
        return 0
    _print_status(Path(args.path))  # a running sweep is no error of the status command
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    for path in api.export_best(args.path, args.out, args.top, args.dataset):
        print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------- study
def cmd_study(args: argparse.Namespace) -> int:
    return api.run_study(args.file)


# ---------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default job: a real sweep (local Ray, Ax, quick.yaml) on a generated hopper dataset,
    then the product's core result: the best configuration against the hand-tuned baseline on fresh
    seeds, with the difference's confidence interval, and the report."""
    from analysis.compare import format_comparison  # noqa: PLC0415

    start = time.perf_counter()
    out = Path(args.out)
    data = out / f"hopper-random-{args.size // 1000}k.hdf5"
    if not data.exists():
        api.generate_dataset("hopper", "random", args.size, 0, data, policy_dir=out / "behaviour")
        print(f"generated {data}")
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    spec = api.new_sweep(name=name, storage=str(out / "sweeps"), space="quick", datasets=[str(data)],
                         trials=args.trials, concurrency=args.concurrency, preset=args.preset,
                         init_trials=min(6, args.trials))
    code = _sweep_and_status(spec)
    print(f"\ncomparing the best configuration with the hand-tuned baseline on {args.fresh_seeds} fresh seeds:")
    table = api.compare(spec.root, seeds=args.fresh_seeds, concurrency=args.concurrency)
    print(format_comparison(table.rows))
    report_dir = out / "reports" / name
    cmd_report(build_parser().parse_args(["report", str(spec.root), "--out", str(report_dir)]))
    print(f"demo done in {time.perf_counter() - start:.0f} s: sweep results in {spec.root}, report at "
          f"{report_dir / 'report.html'} (mbrl-tune status {spec.root}; mbrl-tune export {spec.root} --out best.yaml)")
    return code


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mbrl-tune", description=__doc__)
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads of this process (default 1: trials run side by side)")
    sub = parser.add_subparsers(dest="command", required=True)

    ds = add_command(sub, "datasets", "generate and inspect D4RL-schema datasets",
                      "mbrl-tune datasets generate --env hopper --level medium --size 100000 "
                      "--out data/hopper-medium.hdf5")
    ds_sub = ds.add_subparsers(dest="datasets_command", required=True)
    gen = add_command(ds_sub, "generate", "generate a D4RL-style dataset in real MuJoCo",
                      "mbrl-tune datasets generate --env hopper --level medium --size 100000 "
                      "--out data/hopper-medium.hdf5")
    gen.add_argument("--env", required=True, choices=api.DATASET_ENVS)
    gen.add_argument("--level", required=True, choices=list(api.LEVEL_NAMES))
    gen.add_argument("--size", type=positive_int, default=1_000_000, help="transitions in the file")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="output HDF5 path (written atomically)")
    gen.add_argument("--medium-max-steps", type=positive_int, default=api.GenerateConfig().medium_max_steps,
                     help="env-step budget of the medium SAC run if it never reaches 1/3 of expert")
    gen.add_argument("--expert-steps", type=positive_int, default=api.GenerateConfig().expert_steps,
                     help="env-step budget of the expert SAC run")
    gen.add_argument("--learning-starts", type=int, default=api.GenerateConfig().learning_starts)
    gen.add_argument("--eval-every", type=positive_int, default=api.GenerateConfig().eval_every)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--policy-dir", help="behaviour-policy cache (default: <out dir>/behaviour)")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    gen.set_defaults(func=cmd_datasets_generate)
    info = add_command(ds_sub, "info", "size, episodes, returns and behaviour score of a dataset",
                      "mbrl-tune datasets info data/hopper-medium.hdf5")
    info.add_argument("file", help="HDF5 path, d4rl:<env>-<level>-v<N> (a local D4RL file), or minari:<id>")
    info.add_argument("--env", help="env of a file without metadata (D4RL's own files)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_datasets_info)

    train = add_command(sub, "train", "run one trial (one offline MBRL run) without a sweep",
                      "mbrl-tune train --config best.yaml --set epochs=200 --out runs/train/best")
    train.add_argument("--config", required=True, help="trial config YAML/JSON (or an exported best.yaml)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, dotted for groups (rollout.horizon=5); repeatable")
    train.add_argument("--out", help="output folder for results.json and policy.pt (default runs/train/<time>)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    sweep = add_command(sub, "sweep", "Bayesian-optimisation sweep over a search space (Ray Tune + Ax)",
                      "mbrl-tune sweep --space paper --dataset data/hopper-medium.hdf5 --trials 40 --concurrency 2 "
                      "--name hopper-paper")
    sweep.add_argument("--space", required=True, help="search-space YAML, or a built-in name (quick, paper)")
    sweep.add_argument("--dataset", required=True, nargs="+", help="dataset file(s) or d4rl:<env>-<level>-v<N> names "
                       "(local files only); one experiment each")
    sweep.add_argument("--trials", type=positive_int, required=True, help="trials per dataset (baseline included)")
    sweep.add_argument("--concurrency", type=positive_int, default=1, help="trials at once, one CPU each")
    sweep.add_argument("--seeds", type=positive_int, default=1, help="seeds per configuration (0..S-1)")
    sweep.add_argument("--seed-list", type=int, nargs="+", help="explicit seeds instead of --seeds")
    sweep.add_argument("--storage", default="runs/sweeps", help="root folder of sweeps (shared path on clusters)")
    sweep.add_argument("--name", required=True, help="sweep name (a folder under --storage)")
    sweep.add_argument("--searcher", default="ax", help="ax (Bayesian optimisation), random or optuna")
    sweep.add_argument("--init-trials", type=positive_int, default=8, help="Ax initial design size")
    sweep.add_argument("--early-stop", choices=["none", "asha"], default="none")
    sweep.add_argument("--objective", choices=list(api.OBJECTIVES), default="simulator",
                       help="what the searcher optimises: the simulator score, or an offline estimate of the final "
                            "policy from the dataset alone, fqe or model (the trials still evaluate in the simulator "
                            "where one exists, so the two can be compared)")
    sweep.add_argument("--baselines", default="mopo_official", help="hand-tuned baseline evaluated first")
    sweep.add_argument("--warm-start", nargs="*", default=[], help="earlier sweep folders to learn from")
    sweep.add_argument("--base", help="base trial config YAML (budget, architecture)")
    sweep.add_argument("--preset", default="demo", choices=sorted(api.PRESETS), help="built-in base config")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the base")
    sweep.add_argument("--search-seed", type=int, default=0, help="seed of the searcher")
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0,
                       help="GPUs per trial (with --set device=cuda; 0.5 lets two trials share a GPU)")
    sweep.add_argument("--log", default="tensorboard", help="experiment trackers, comma-separated: tensorboard "
                       "(default), mlflow, wandb, or none (see tuner/run/trackers.py)")
    sweep.set_defaults(func=cmd_sweep)

    resume = add_command(sub, "resume", "continue an interrupted sweep to its trial count",
                      "mbrl-tune resume runs/sweeps/hopper-paper")
    resume.add_argument("path", help="the sweep folder (<storage>/<name>)")
    resume.set_defaults(func=cmd_resume)
    status = add_command(sub, "status", "print a sweep's trials table, or where a study stands",
                      "mbrl-tune status runs/sweeps/hopper-paper; mbrl-tune status runs/studies/evidence")
    status.add_argument("path")
    status.set_defaults(func=cmd_status)
    export = add_command(sub, "export", "write the best configurations as train-ready YAML",
                      "mbrl-tune export runs/sweeps/hopper-paper --out best.yaml --top 3")
    export.add_argument("path", help="the sweep folder")
    export.add_argument("--out", required=True, help="output YAML (rank k > 1 goes to <stem>-k.yaml)")
    export.add_argument("--top", type=positive_int, default=1)
    export.add_argument("--dataset", help="which dataset's experiment (default: the first)")
    export.set_defaults(func=cmd_export)

    add_analysis_commands(sub)

    study = add_command(sub, "study", "a whole experiment from one YAML file: generate, sweep, compare, calibrate, "
                        "report (the same command resumes it)", "mbrl-tune study docs/results/evidence.yaml")
    study.add_argument("file", help="study file (keys documented in tuner/store/study_spec.py)")
    study.set_defaults(func=cmd_study)

    demo = add_command(sub, "demo", "the embedded default job",
                      "mbrl-tune demo --out runs/demo")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--trials", type=positive_int, default=10)
    demo.add_argument("--fresh-seeds", type=positive_int, default=3, help="fresh seeds of the comparison")
    demo.add_argument("--concurrency", type=positive_int, default=2)
    demo.add_argument("--preset", choices=list(api.PRESETS), default="demo", help="trial budget (tiny: a smoke run)")
    demo.add_argument("--size", type=positive_int, default=20_000, help="transitions of the generated dataset")
    demo.set_defaults(func=cmd_demo)
    return parser


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's or an orchestrator's stop) gets what Ctrl-C gets: Ray Tune's SIGINT handler
    saves the experiment and ends the run gracefully; outside a run it is a KeyboardInterrupt."""
    os.kill(os.getpid(), signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    # Ax and Ray log INFO lines at import and per trial; the CLI prints its own progress instead.
    logging.disable(logging.INFO)
    # Ray Tune logs each failed trial's traceback; the CLI prints one line per failure (with the trial's
    # error file) and a summary instead.
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    import torch  # noqa: PLC0415  (a 1-3 s import: after the arguments are read, so a usage error is quick)

    torch.set_num_threads(args.threads)
    try:
        return func(args)
    except api.INPUT_ERRORS as exc:
        print(f"mbrl-tune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mbrl-tune: interrupted", file=sys.stderr)
        return 130
    except api.StorageFullError as exc:
        print(f"mbrl-tune: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        line = api.full_filesystem_line(exc, "mbrl-tune " + " ".join(sys.argv[1:] if argv is None else argv))
        if line is None:
            raise
        print(f"mbrl-tune: error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
