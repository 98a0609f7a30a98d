"""How much expanding multi-skill problems inflates DKT's AUC, on a simulated raw skill-builder CSV.

    OMP_NUM_THREADS=1 python scripts/experiments/multiskill_leak.py --out-dir DIR    # 3 seeds, a Markdown table
    python scripts/experiments/multiskill_leak.py --out-dir DIR --write-only         # just write the CSVs

In the raw ASSISTments 2009 file a problem tagged with k skills is k rows with one order_id and one answer.
Expanded (one interaction per row, as the DKT seed does), the 2nd..k-th rows repeat an answer the model saw
one step earlier. This script simulates such a file (students, skills, problems with 1-3 skills, learning),
then trains the same DKT three ways and scores validation students:

* ``expand``, all positions -- the usual, leaky number;
* ``expand``, first position of each problem only (``score_positions: first``), same trained model;
* ``join`` -- one interaction per problem, its skills joined into one token.

Each seed simulates a new data set. Everything is seeded; the CSV has the published column names kt reads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lightning.pytorch import Trainer, seed_everything

from kt.tracing import DKT
from kt.tracing.data.assist2009 import Assist2009DataModule


def simulate_raw_csv(
    path: Path,
    seed: int,
    num_students: int = 600,
    num_skills: int = 30,
    num_problems: int = 400,
    attempts: int = 80,
    guess: float = 0.15,
    learning_gain: float = 0.15,
) -> dict[str, float]:
    """Write a raw skill-builder CSV; returns counts (rows, problems with several skills, ...)."""
    rng = np.random.default_rng(seed)
    # 60% of problems test one skill, 30% two, 10% three (distinct skills).
    sizes = rng.choice([1, 2, 3], size=num_problems, p=[0.6, 0.3, 0.1])
    problem_skills = [rng.choice(num_skills, size=k, replace=False) for k in sizes]
    # A problem's difficulty is mostly its skills' (what a skill-level model can learn), plus its own noise;
    # a student's ability is a general level plus a smaller part per skill.
    skill_difficulty = rng.normal(size=num_skills)
    difficulty = np.array([skill_difficulty[s].mean() for s in problem_skills]) + 0.3 * rng.normal(size=num_problems)
    ability = rng.normal(size=(num_students, 1)) + 0.5 * rng.normal(size=(num_students, num_skills))
    rows, order_id = [], 0
    for student in range(num_students):
        for problem in rng.integers(num_problems, size=attempts):
            skills = problem_skills[problem]
            # A problem needs all its skills: its logit is the mean ability over them, minus the difficulty.
            p = guess + (1 - guess) / (1 + np.exp(difficulty[problem] - ability[student, skills].mean()))
            correct = int(rng.random() < p)
            ability[student, skills] += learning_gain
            order_id += 1
            for skill in skills:  # one row per skill, all with the problem's one answer
                rows.append((order_id, 1000 + student, problem, correct, skill, f"Skill {skill}"))
    frame = pd.DataFrame(rows, columns=["order_id", "user_id", "problem_id", "correct", "skill_id", "skill_name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="ISO-8859-15")
    return {
        "rows": len(frame),
        "problems answered": order_id,
        "share of multi-skill problems": float((sizes > 1).mean()),
    }


def train_and_score(csv: Path, multi_skill: str, seed: int, epochs: int) -> dict[str, float]:
    seed_everything(seed, verbose=False)
    data = Assist2009DataModule(
        data_dir=str(csv.parent),
        format="raw",
        train_file=csv.name,
        test_file=None,
        download=False,
        multi_skill=multi_skill,
        seq_len=100,
        batch_size=32,
        val_fraction=0.2,
        test_fraction=0.0,
        split_seed=seed,
    )
    model = DKT(emb_size=64, hidden_size=64, dropout=0.2, lr=3e-3)
    trainer = Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    scores = {}
    for positions in ("all", "first") if multi_skill == "expand" else ("all",):
        model.hparams.score_positions = positions
        result = trainer.validate(model, datamodule=data, verbose=False)[0]
        scores[f"{multi_skill}/{positions}"] = result["val/auc"]
        scores[f"{multi_skill}/{positions}/acc"] = result["val/acc"]
    scores[f"{multi_skill}/seconds"] = seconds
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="where the simulated CSVs go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--write-only", action="store_true")
    args = parser.parse_args()

    runs = []
    for seed in args.seeds:
        csv = Path(args.out_dir) / f"seed{seed}" / "skill_builder_sim.csv"
        counts = simulate_raw_csv(csv, seed)
        print(f"seed {seed}: {csv} {counts}", flush=True)
        if args.write_only:
            continue
        scores = {}
        for multi_skill in ("expand", "join"):
            scores |= train_and_score(csv, multi_skill, seed, args.epochs)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
        runs.append(scores)
    if not runs:
        return

    def cell(key: str) -> str:
        values = [r[key] for r in runs]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {std:.4f}"

    print(f"\n{len(runs)} simulated data sets (seeds {args.seeds}), {args.epochs} epochs, validation students\n")
    print("| multi_skill | scored steps | val AUC | val accuracy |\n|---|---|---|---|")
    print(f"| expand | all rows (leaky) | {cell('expand/all')} | {cell('expand/all/acc')} |")
    print(f"| expand | first row of each problem | {cell('expand/first')} | {cell('expand/first/acc')} |")
    print(f"| join | one per problem | {cell('join/all')} | {cell('join/all/acc')} |")


if __name__ == "__main__":
    main()
