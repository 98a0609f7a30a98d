"""Confusion matrix of a classifier's predictions as a PNG: counts and row-normalised, accuracy in the title.

    kt predict --config configs/cnn_fashion_mnist.yaml --ckpt_path BEST.ckpt --prediction_writer.output_path pred.csv
    python scripts/plot_confusion.py pred.csv -o confusion.png

The CSV needs integer columns ``label`` (true class) and ``pred`` (predicted class); class names come from
``--classes`` or else from its ``pred_name`` column.
"""

from __future__ import annotations

import argparse

from kt.errors import one_line_errors
from kt.plots import plot_confusion


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", help="CSV written by `kt predict` (columns label, pred[, pred_name])")
    parser.add_argument("-o", "--out", default="confusion.png", help="output PNG (default: %(default)s)")
    parser.add_argument("--classes", help="comma-separated class names, in class-index order")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    with one_line_errors("plot_confusion"):
        result = plot_confusion(args.predictions, args.out, classes=classes, dpi=args.dpi)
    print(f"{args.out}: accuracy {result['accuracy']:.4f} over {result['counts'].sum()} examples")


if __name__ == "__main__":
    main()
