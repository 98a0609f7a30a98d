"""Packed vs padded LSTM/GRU within length-bucketed batches: real interactions/s, training and evaluation.

    OMP_NUM_THREADS=1 python scripts/benchmarks/dkt_packing.py --data-dir DIR/assist2009 --repeats 2

ASSISTments 2009 fold 1: training windows of 200 in ``BucketSampler`` batches of 32 (forward, backward, Adam);
validation histories (windows of 1500) in token-budget batches, forward under ``no_grad``. The network is
``dkt_assist2009``'s (GRU 200; ``--backbone lstm`` for the LSTM). Best of ``--repeats``, alternating.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kt.core.sampling import BucketSampler
from kt.tracing.data.formats import read_three_line
from kt.tracing.data.sequences import SkillVocabulary, WindowDataset, collate_windows, make_windows
from kt.tracing.nets.dkt import DKTNet


def train_rate(net, optimizer, batches, packed: bool) -> float:
    start, real = time.perf_counter(), 0
    for batch in batches:
        lengths = batch["mask"].sum(1) if packed else None
        logits, _ = net(batch["skills"], batch["correct"], lengths=lengths)
        logit = logits[:, :-1].gather(-1, batch["skills"][:, 1:, None])[..., 0]
        mask = batch["mask"][:, 1:]
        loss = F.binary_cross_entropy_with_logits(logit[mask], batch["correct"][:, 1:][mask].float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        real += int(mask.sum())
    return real / (time.perf_counter() - start)


def eval_rate(net, batches, packed: bool) -> float:
    start, real = time.perf_counter(), 0
    net.eval()
    with torch.no_grad():
        for batch in batches:
            net(batch["skills"], batch["correct"], lengths=batch["mask"].sum(1) if packed else None)
            real += int(batch["mask"][:, 1:].sum())
    net.train()
    return real / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--backbone", choices=["gru", "lstm"], default="gru")
    parser.add_argument("--train-batches", type=int, default=40, help="training batches timed per repeat")
    parser.add_argument("--eval-tokens", type=int, nargs="+", default=[6432, 16000, 48032])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    train = read_three_line(args.data_dir / "assist2009_updated_train1.csv")
    valid = read_three_line(args.data_dir / "assist2009_updated_valid1.csv")
    vocab = SkillVocabulary.build(train, valid)
    train_windows = WindowDataset(make_windows(train, vocab, 200))
    eval_windows = WindowDataset(make_windows(valid, vocab, 1500))
    torch.manual_seed(0)
    net = DKTNet(len(vocab), 200, 200, 1, 0.5, args.backbone)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    sampler = BucketSampler(train_windows.lengths(), batch_size=32, seed=0)
    train_batches = [collate_windows(train_windows[i]) for i in list(sampler)[: args.train_batches]]
    eval_batches = {
        tokens: [collate_windows(eval_windows[i]) for i in BucketSampler(
            eval_windows.lengths(), max_tokens=tokens, shuffle=False, pad=False)]
        for tokens in args.eval_tokens
    }
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for packed in (False, True):
            kind = "packed" if packed else "padded"
            key = f"training, batches of 32 | {kind}"
            best[key] = max(best.get(key, 0.0), train_rate(net, optimizer, train_batches, packed))
            for tokens, batches in eval_batches.items():
                key = f"evaluation, {tokens:,} tokens per batch ({len(batches)} batches) | {kind}"
                best[key] = max(best.get(key, 0.0), eval_rate(net, batches, packed))
    print(f"{args.backbone.upper()} 200, {torch.get_num_threads()} threads, best of {args.repeats}")
    print("| batches | padded, interactions/s | packed, interactions/s | packed / padded |")
    print("|---|---:|---:|---:|")
    for key in dict.fromkeys(k.split(" | ")[0] for k in best):
        padded, packed = best[f"{key} | padded"], best[f"{key} | packed"]
        print(f"| {key} | {padded:,.0f} | {packed:,.0f} | {packed / padded:.2f} |")


if __name__ == "__main__":
    main()
