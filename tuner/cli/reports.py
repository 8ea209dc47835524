"""The subcommands that re-run, measure and report (over :mod:`tuner.api`, tables printed by the analysis):
compare, confirm, calibrate, report.

- ``compare SWEEP_DIR``: re-run the best found configuration and the hand-tuned baseline on the same fresh
  seeds (Ray Tune trials, cached in ``<sweep>/compare/<source>/``), then print and save the table;
- ``confirm SWEEP_DIR --top-k K --seeds N --set epochs=200``: the baseline and the K best at the search
  budget and a larger one, with the fidelity-transfer table;
- ``calibrate --dataset FILE --out DIR``: every penalty heuristic against the true model error;
- ``report SWEEP_DIR [SWEEP_DIR ...] --out DIR``: ``report.html`` and ``report.md`` with tables and plots;
- ``verify PATH``: re-run the first epochs of stored trials here and check that every reported field comes
  back equal (exit 1 when one differs).

Heavy modules (Ray, matplotlib, the analysis package) are imported inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tuner import api
from tuner.cli.argtypes import add_command, positive_int


# ---------------------------------------------------------------- compare and confirm
def cmd_compare(args: argparse.Namespace) -> int:
    from analysis.compare import format_comparison  # noqa: PLC0415

    out = api.compare(args.path, source=args.source, seeds=args.seeds, only=args.dataset,
                      concurrency=args.concurrency, run=not args.no_run)
    print(format_comparison(out.rows))
    print(f"wrote {out.csv} and {out.json}")
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    from analysis.confirm import format_confirmation  # noqa: PLC0415

    out = api.confirm(args.path, top_k=top_k(args.top_k), seeds=args.seeds, overrides=api.parse_overrides(args.set),
                      source=args.source, only=args.dataset, concurrency=args.concurrency, run=not args.no_run)
    print(format_confirmation(out.rows))
    print(f"wrote {out.csv} and {out.json}")
    return 0


def top_k(text: str) -> int | None:
    """``--top-k``: a positive count, or ``all`` (None)."""
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise api.UsageError(f"--top-k {text}: a positive count or 'all'")
    return int(text)


# ---------------------------------------------------------------- calibrate
def cmd_calibrate(args: argparse.Namespace) -> int:
    from analysis.calibration import format_table  # noqa: PLC0415

    cfg, policy_file = api.calibration_config(args.dataset, policy=args.policy, config=args.config, seed=args.seed,
                                              env=args.env, pool_dir=args.pool_dir,
                                              overrides=api.parse_overrides(args.set))
    out = api.calibrate(cfg, args.out, args.horizons, args.states, args.policy, policy_file)
    print(format_table(out.table))
    print(f"wrote {out.table_csv}, {out.table_json}, {out.result_path} and {len(out.figures)} scatter plots "
          f"in {Path(args.out)}")
    return 0


# ---------------------------------------------------------------- estimate
def cmd_estimate(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    for path in api.estimate(args.path, fqe_steps=args.fqe_steps, only=args.dataset).values():
        result = json.loads(path.read_text())
        print(f"{result['experiment']}: {len(result['rows'])} trials (judge pool: seed {result['judge_pool_seed']})")
        print(f"  {'trial':<22} {'score':>8} {'fqe':>10} {'model':>10}")
        for row in result["rows"]:
            print(f"  {row['trial']:<22} {row['score']:>8.2f} {row['fqe']:>10.2f} {row['model']:>10.2f}")
        for name, a in result["agreement"].items():
            print(f"  {name}: Spearman {a['spearman']:.2f} [{a['spearman_low']:.2f}, {a['spearman_high']:.2f}] "
                  f"over {a['n']} trials; regret@1 {a['regret']['1']:.2f}, regret@3 {a['regret']['3']:.2f}")
        if result["without_checkpoint"]:
            print(f"  left out (no checkpoint kept): {', '.join(result['without_checkpoint'])}")
        print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------- report
def cmd_report(args: argparse.Namespace) -> int:
    files = api.write_report(args.paths, args.out)
    print(f"wrote {files.html} and {files.markdown} ({len(files.figures)} figures in {files.html.parent / 'figures'})")
    return 0


# ---------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    results = api.verify(args.path, epochs=args.epochs, every=args.all, datasets=args.dataset or [])
    same = sum(r.equal for r in results)
    verdict = "reproduced" if same == len(results) else "NOT reproduced by all"
    print(f"{verdict}: {same} of {len(results)} trials gave every stored field equal here")
    return 0 if same == len(results) else 1


def _rerun_options(parser: argparse.ArgumentParser, seeds_help: str) -> None:
    """The options of the commands that re-run a sweep's configurations (``compare``, ``confirm``)."""
    parser.add_argument("path", help="the sweep folder (<storage>/<name>)")
    parser.add_argument("--source", default="mopo_official", help="hand-tuned baselines: mopo_official or "
                        "offlinerl_kit")
    parser.add_argument("--seeds", type=positive_int, default=3, help=seeds_help)
    parser.add_argument("--concurrency", type=positive_int, help="runs at once (default: the sweep's)")
    parser.add_argument("--dataset", nargs="+", help="only these datasets (file stems) of the sweep")
    parser.add_argument("--no-run", action="store_true", help="only tabulate the runs cached so far")


def add_analysis_commands(sub: argparse._SubParsersAction) -> None:
    """Register the analysis subcommands on the ``mbrl-tune`` parser."""
    compare = add_command(sub, "compare", "best found vs hand-tuned baseline on the same fresh seeds",
                          "mbrl-tune compare runs/sweeps/hopper-paper --seeds 5")
    _rerun_options(compare, "fresh seeds (after the sweep's largest) both configurations run on")
    compare.set_defaults(func=cmd_compare)

    confirm = add_command(sub, "confirm", "re-run the hand-tuned baseline and the K best distinct configurations "
                          "at the search budget and a larger one, on the same fresh seeds",
                          "mbrl-tune confirm runs/sweeps/hopper-paper --top-k 2 --seeds 3 --set epochs=200")
    _rerun_options(confirm, "fresh seeds (the comparison's: after the sweep's largest) every arm runs on")
    confirm.add_argument("--top-k", default="2", help="best distinct configurations to confirm, or 'all': "
                         "every finished trial on the sweep's own seeds (how the whole ranking transfers)")
    confirm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="the confirm budget (default: epochs = 10 x the sweep's)")
    confirm.set_defaults(func=cmd_confirm)

    calibrate = add_command(sub, "calibrate", "penalty heuristics against the true model error",
                            "mbrl-tune calibrate --dataset data/hopper-medium.hdf5 --horizons 1 5 10 "
                            "--out runs/sweeps/hopper-paper/calibration")
    calibrate.add_argument("--dataset", required=True, help="dataset file (D4RL schema, with infos/qpos, qvel)")
    calibrate.add_argument("--env", help="env of a dataset without metadata")
    calibrate.add_argument("--config", help="trial config whose dynamics/models to use (e.g. an exported best.yaml)")
    calibrate.add_argument("--pool-dir", help="dynamics pool folder (default: the config's, or pools/ beside "
                           "the dataset); the pool is trained there if missing")
    calibrate.add_argument("--seed", type=int, help="pool seed and seed of the measurement (default: config's)")
    calibrate.add_argument("--policy", default="data",
                           help="data (logged actions), random, or a policy.pt written by mbrl-tune train")
    calibrate.add_argument("--states", type=positive_int, default=500, help="start states from the dataset")
    calibrate.add_argument("--horizons", type=int, nargs="+", default=[1, 5],
                           help="model steps to report (rollouts go to the largest)")
    calibrate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="override the trial config (dynamics.hidden=64, num_models=5); repeatable")
    calibrate.add_argument("--out", required=True, help="output folder (use <sweep>/calibration for the report)")
    calibrate.set_defaults(func=cmd_calibrate)

    estimate = add_command(sub, "estimate", "value each finished trial's final policy offline (FQE, an independent "
                           "pool) beside its simulator score, and how well each estimate ranks the trials",
                           "mbrl-tune estimate runs/sweeps/hopper-paper --fqe-steps 20000")
    estimate.add_argument("path", help="the sweep folder (<storage>/<name>)")
    estimate.add_argument("--fqe-steps", type=positive_int, help="critic updates per FQE (default: the sweep's "
                          "estimate.fqe_steps, 20,000 unless it set one; DOPE: up to 1,000,000)")
    estimate.add_argument("--dataset", nargs="+", help="only these datasets (file stems) of the sweep")
    estimate.set_defaults(func=cmd_estimate)

    report = add_command(sub, "report", "HTML and Markdown report of one or more sweeps (or a study's)",
                         "mbrl-tune report runs/sweeps/hopper-paper runs/sweeps/hopper-random --out runs/report")
    report.add_argument("paths", nargs="+", metavar="SWEEP_DIR", help="sweep folders (several: e.g. Ax vs random), "
                        "or a study folder (its sweeps, under the study's title)")
    report.add_argument("--out", required=True, help="output folder for report.html, report.md, figures/")
    report.set_defaults(func=cmd_report)

    verify = add_command(sub, "verify", "re-run the first epochs of stored trials here and check that every "
                         "reported field comes back equal (same seed, same result); exit 1 when one differs",
                         "mbrl-tune verify runs/studies/evidence\nmbrl-tune verify runs/sweeps/hopper-paper --all "
                         "--epochs 4")
    verify.add_argument("path", help="a trial folder, or a sweep, comparison, confirmation or study folder")
    verify.add_argument("--epochs", type=positive_int, help="epochs to re-run per trial (default: up to its first "
                        "evaluation; never past its last stored epoch)")
    verify.add_argument("--all", action="store_true", help="every trial that reported (default: the first of "
                        "each experiment folder)")
    verify.add_argument("--dataset", action="append", metavar="FILE", help="a dataset file standing in, by file "
                        "name, for one no longer where the trials ran (its content must be the one the trials' "
                        "pools were trained on); repeatable")
    verify.set_defaults(func=cmd_verify)
