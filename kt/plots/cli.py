"""``kt plot``: pictures as PNG files, one subcommand each.

    kt plot curves lightning_logs/dkt_synthetic/version_0 -o curves.png
    kt plot knowledge-state CKPT --data-file data.txt --student 0 -o knowledge_state.png
    kt plot confusion pred.csv -o confusion.png
    kt plot batch --config cnn_fashion_mnist -o batch.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from kt.core.errors import InputError, one_line_errors


def curves(args: argparse.Namespace) -> str:
    from kt.plots.curves import plot_curves

    panels = plot_curves(args.run_dir, args.out, steps=not args.no_steps, log_y=args.log_y, dpi=args.dpi)
    return f"{args.out}: {', '.join(panels)}"


def knowledge_state(args: argparse.Namespace) -> str:
    from kt.plots.knowledge_state import load_dkt, plot_knowledge_state, student_sequence

    skills, correct = student_sequence(args.student, args.data_file, args.predictions)
    model = load_dkt(args.checkpoint)
    result = plot_knowledge_state(
        model, skills, correct, args.out, start=args.start, steps=args.steps, max_skills=args.max_skills,
        title=f"student {args.student}: P(correct) on each skill after each answer", dpi=args.dpi,
    )
    return f"{args.out}: {len(result['rows'])} skills x {len(result['columns'])} answers"


def confusion(args: argparse.Namespace) -> str:
    from kt.plots.confusion import plot_confusion

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    result = plot_confusion(args.predictions, args.out, classes=classes, dpi=args.dpi)
    return f"{args.out}: accuracy {result['accuracy']:.4f} over {result['counts'].sum()} examples"


def batch(args: argparse.Namespace) -> str:
    from kt.cli import resolve_config
    from kt.plots.batch_grid import plot_batch
    from kt.vision.mnist import MNISTDataModule

    if args.config:
        path = Path(resolve_config(args.config))
        if not path.is_file():
            raise InputError(f"--config {args.config}: no such file or shipped config")
        data = (yaml.safe_load(path.read_text()) or {}).get("data", {})
        options = dict(data.get("init_args", {}))
        if args.data_dir:
            options["data_dir"] = args.data_dir
        dm = MNISTDataModule(**options)
    else:
        dm = MNISTDataModule(dataset=args.dataset, data_dir=args.data_dir, rotation=args.rotation,
                             translate=args.translate, hflip=args.hflip)  # fmt: skip
    plot_batch(dm, args.split, args.out, rows=args.rows, cols=args.cols, seed=args.seed, dpi=args.dpi)
    return str(args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kt plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = parser.add_subparsers(dest="picture", required=True, metavar="{curves,knowledge-state,confusion,batch}")

    def add(name: str, run, help: str, default_out: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
        p.set_defaults(run=run)
        p.add_argument("-o", "--out", default=default_out, help="output PNG (default: %(default)s)")
        p.add_argument("--dpi", type=int, default=100)
        return p

    p = add("curves", curves, "learning curves of a run, from its TensorBoard event files", "curves.png")
    p.add_argument("run_dir", help="lightning_logs/<name>/version_N (or lightning_logs/<name> with one version)")
    p.add_argument("--no-steps", action="store_true", help="leave out per-step series such as train/loss_step")
    p.add_argument("--log-y", nargs="+", default=[], metavar="PANEL", help="panels on a log scale, e.g. mse")

    p = add("knowledge-state", knowledge_state,
            "a student's knowledge state under a DKT, DKVMN, SAKT or AKT checkpoint (the DKT paper's heatmap)",
            "knowledge_state.png")
    p.add_argument("checkpoint", help="a knowledge-tracing checkpoint written by `kt fit` (best or last.ckpt)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-file", help="3-line file: per student a length line, skill ids, 0/1 answers")
    source.add_argument("--predictions", help="CSV of `kt predict` (columns student, step, skill_id, correct)")
    p.add_argument("--student", default="0",
                   help="0-based position in --data-file, or the `student` of --predictions (default: %(default)s)")
    p.add_argument("--start", type=int, default=0, help="first answer drawn, 0-based (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="answers drawn (default: %(default)s)")
    p.add_argument("--max-skills", type=int, default=20, help="rows at most (default: %(default)s)")

    p = add("confusion", confusion, "confusion matrix of a classifier's `kt predict` CSV", "confusion.png")
    p.add_argument("predictions", help="CSV written by `kt predict` (columns label, pred[, pred_name])")
    p.add_argument("--classes", help="comma-separated class names, in class-index order")

    p = add("batch", batch, "a grid of images as the CNN sees them (training augmentation applied)", "batch.png")
    p.add_argument("--config", help="experiment config (a path or a shipped name) whose data section to use")
    p.add_argument("--dataset", default="fashion_mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--data-dir")
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--rotation", type=float, default=0.0)
    p.add_argument("--translate", type=int, default=0)
    p.add_argument("--hflip", action="store_true")
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with one_line_errors("kt plot"):
        print(args.run(args))
