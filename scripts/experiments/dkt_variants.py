"""Training cost of the DKT variants side by side, in one process, on ASSISTments 2009 fold 1.

    OMP_NUM_THREADS=1 python scripts/experiments/dkt_variants.py --data-dir DIR --steps 15   # or set KT_DATA_DIR

``DIR`` holds the DKVMN ASSISTments 2009 folds (assist2009_updated_train1.csv, ...; default
``$KT_DATA_DIR/assist2009``).

The CV runs' seconds per epoch depend on how loaded the machine was while each ran; this measures every
variant back to back under the same conditions: ``--steps`` optimizer steps (forward, loss with any DKT+
terms, backward, Adam) on real training batches after 2 warm-up steps, extrapolated to one epoch of the
fold's training batches (validation not included). Prints a Markdown table with parameters.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from lightning.pytorch import seed_everything

from kt.tracing import DKT
from kt.tracing.data.assist2009 import Assist2009DataModule

LSTM = dict(emb_size=200, hidden_size=200, dropout=0.5, lr=2e-3)
VARIANTS = {
    "DKT-LSTM": (LSTM, 32),
    "DKT-GRU": (LSTM | dict(backbone="gru"), 32),
    "DKT+ (LSTM)": (LSTM | dict(lambda_r=0.1, lambda_w1=0.003, lambda_w2=3.0), 32),
    "DKT-xLSTM 64, [1 mLSTM, 1 sLSTM]": (
        dict(emb_size=64, hidden_size=64, dropout=0.2, lr=3e-3, backbone="xlstm", xlstm_blocks=2),
        64,
    ),
    "DKT-xLSTM 200, [7 mLSTM, 1 sLSTM] (default stack)": (
        dict(emb_size=200, hidden_size=200, dropout=0.5, lr=2e-3, backbone="xlstm"),
        32,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "assist2009" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None,
                        help="folder with assist2009_updated_train1/valid1.csv (default: $KT_DATA_DIR/assist2009)")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = parser.parse_args()

    print(f"{torch.get_num_threads()} threads, {args.steps} steps each\n")
    print("| variant | s/step | s/epoch (extrapolated) | parameters |\n| --- | --- | --- | --- |", flush=True)
    for name, (hparams, batch_size) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        seed_everything(0, verbose=False)
        data = Assist2009DataModule(
            data_dir=str(args.data_dir),
            train_file="assist2009_updated_train1.csv",
            val_file="assist2009_updated_valid1.csv",
            test_file="assist2009_updated_valid1.csv",
            download=False,
            seq_len=200,
            batch_size=batch_size,
        )
        data.setup("fit")
        model = DKT(data_state=data.data_state, **hparams)
        model.log = lambda *a, **k: None  # no trainer: logging is a no-op
        model.log_dict = lambda *a, **k: None
        optimizer = torch.optim.Adam(model.parameters(), lr=hparams["lr"])
        loader = data.train_dataloader()
        batches = iter(loader)
        seconds = []
        for step in range(args.steps + 2):
            batch = next(batches)
            start = time.perf_counter()
            loss = model.training_step(batch, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds.append(time.perf_counter() - start)
        per_step = sum(seconds[2:]) / args.steps
        params = sum(p.numel() for p in model.parameters())
        print(
            f"| {name} (batch {batch_size}) | {per_step:.3f} | {per_step * len(loader):.0f} | {params:,} |", flush=True
        )


if __name__ == "__main__":
    main()
