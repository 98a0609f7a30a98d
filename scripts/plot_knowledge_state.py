"""A student's knowledge state under a trained DKT model as a PNG heatmap (the DKT paper's figure).

    python scripts/plot_knowledge_state.py CKPT --data-file data.txt --student 0 -o knowledge_state.png
    python scripts/plot_knowledge_state.py CKPT --predictions predictions.csv --student 17 --steps 40

Rows are the skills the student practised (the ``--max-skills`` most practised), columns the student's
answers, the colour the model's P(correct) on each skill after each answer; every column is labelled with
the skill answered and ✓/✗, and its cell is outlined. The student comes from a 3-line file (``--student`` is
the 0-based position in it) or from the CSV of `kt predict` with a DKT checkpoint (``--student`` is its
``student`` column). Skill ids must be in the checkpoint's vocabulary; its skill names label the rows.
"""

from __future__ import annotations

import argparse

from kt.errors import one_line_errors
from kt.plots import load_dkt, plot_knowledge_state, student_sequence


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a DKT checkpoint written by `kt fit` (best or last.ckpt)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-file", help="3-line file: per student a length line, skill ids, 0/1 answers")
    source.add_argument("--predictions", help="CSV of `kt predict` (columns student, step, skill_id, correct)")
    parser.add_argument("--student", default="0", help="which student (default: %(default)s)")
    parser.add_argument("--start", type=int, default=0, help="first answer drawn, 0-based (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=50, help="answers drawn (default: %(default)s)")
    parser.add_argument("--max-skills", type=int, default=20, help="rows at most (default: %(default)s)")
    parser.add_argument("-o", "--out", default="knowledge_state.png", help="output PNG (default: %(default)s)")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)
    with one_line_errors("plot_knowledge_state"):
        skills, correct = student_sequence(args.student, args.data_file, args.predictions)
        model = load_dkt(args.checkpoint)
        result = plot_knowledge_state(
            model, skills, correct, args.out, start=args.start, steps=args.steps, max_skills=args.max_skills,
            title=f"student {args.student}: P(correct) on each skill after each answer", dpi=args.dpi,
        )
    print(f"{args.out}: {len(result['rows'])} skills x {len(result['columns'])} answers")


if __name__ == "__main__":
    main()
