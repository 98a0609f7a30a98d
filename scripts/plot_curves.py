"""Learning curves of a run as a PNG, from its TensorBoard event files.

    python scripts/plot_curves.py lightning_logs/dkt_synthetic/version_0 -o curves.png

One figure, one panel per logged metric (loss, auc, acc, mse...), each holding the train/val/test series
against the epoch; per-step training values are drawn faintly at fractional epochs (``--no-steps`` drops
them), the learning rate gets its own panel; ``--log-y mse`` draws the mse panel on a log scale.
"""

from __future__ import annotations

import argparse

from kt.errors import one_line_errors
from kt.plots import plot_curves


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="lightning_logs/<name>/version_N (or lightning_logs/<name> with one version)")
    parser.add_argument("-o", "--out", default="curves.png", help="output PNG (default: %(default)s)")
    parser.add_argument("--no-steps", action="store_true", help="leave out per-step series such as train/loss_step")
    parser.add_argument("--log-y", nargs="+", default=[], metavar="PANEL", help="panels on a log scale, e.g. mse")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)
    with one_line_errors("plot_curves"):
        panels = plot_curves(args.run_dir, args.out, steps=not args.no_steps, log_y=args.log_y, dpi=args.dpi)
    print(f"{args.out}: {', '.join(panels)}")


if __name__ == "__main__":
    main()
