"""Plain-PyTorch exploration of MLP variants on covid.train.csv, on the folds of ``cv_mlp_covid.py``.

Not kt: a short loop (AdamW, mini-batches, early stopping on the validation split, the best epoch's test
MSE) to try variants quickly before confirming one with ``kt fit``. Each argument is a JSON dict of options
over this base: ``{"h": [16, 8], "lr": 1e-3, "wd": 1e-2, "bs": 64, "pat": 50, "k": null}``:

* ``k``: the top k of the 79 survey features (no state columns) by |corr| on the training rows (null: all 79);
  ``"nostate": false`` ranks all 116 columns instead;
* ``h``: hidden sizes ([] is a linear model); ``skip``: add a linear map of the inputs (``MLP(skip=True)``);
* ``m``: members, networks averaged (``MLPRegressor(members=m)``), each trained on its own loss;
* ``do``: dropout; ``white``: ZCA-whiten the standardised inputs (eigenvalue floor); ``huber``: Huber loss;
* ``refit``: after early stopping, train again from the same initialisation on the training and validation rows
  together (features and scaler refitted on them) for ``refit`` times the best epoch count, and score that
  network on the test fold (the test fold still chooses nothing).

For each of ``row`` and ``state`` it prints the mean validation MSE, the 5-fold test MSE and its per-fold values.

    OMP_NUM_THREADS=1 python scripts/experiments/covid_mlp_explore.py '{"k": 24, "skip": true, "m": 5, "h": [8]}'
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kt.core.splits import train_val_test
from kt.tabular.covid_reader import read_covid_csv, state_of_rows
from kt.tabular.features import univariate_scores

STATES = 37
BASE = {"h": [16, 8], "lr": 1e-3, "wd": 1e-2, "bs": 64, "pat": 50, "k": None}


def folds(n: int, groups: np.ndarray | None):
    for fold in range(5):
        rows = train_val_test(n, 0.2, 5201314, fold, 5, groups)
        yield rows["train"], rows["val"], rows["test"]


def train(cfg: dict, x: np.ndarray, y: np.ndarray, tri, vai, tei, seed: int = 0) -> tuple[float, np.ndarray, int]:
    """Best validation MSE, the test predictions at that epoch and the epochs trained up to it; with
    ``cfg["fixed"]``, exactly that many epochs and no validation (``vai`` may be empty)."""
    cols = np.arange(STATES, x.shape[1]) if cfg.get("nostate", True) else np.arange(x.shape[1])
    if cfg.get("k"):
        cols = cols[np.argsort(-univariate_scores(x[tri][:, cols], y[tri]))[: cfg["k"]]]
    mu, sd = x[tri][:, cols].mean(0), x[tri][:, cols].std(0)
    sd[sd == 0] = 1
    w = np.eye(len(cols))
    if cfg.get("white"):
        evals, u = np.linalg.eigh(np.cov((x[tri][:, cols] - mu) / sd, rowvar=False))
        w = u @ np.diag(1 / np.sqrt(np.maximum(evals, 0) + cfg["white"])) @ u.T

    def enc(i):
        return torch.tensor(((x[i][:, cols] - mu) / sd) @ w, dtype=torch.float32)

    xt, xv, xe = enc(tri), enc(vai), enc(tei)
    yt = torch.tensor(y[tri], dtype=torch.float32)
    torch.manual_seed(seed)
    m = cfg.get("m", 1)

    def make():
        layers, n = [], len(cols)
        for h in cfg["h"]:
            layers += [torch.nn.Linear(n, h), torch.nn.ReLU()] + (
                [torch.nn.Dropout(cfg["do"])] if cfg.get("do") else []
            )
            n = h
        return torch.nn.Sequential(*layers, torch.nn.Linear(n, 1))

    nets = torch.nn.ModuleList([make() for _ in range(m)])
    skips = torch.nn.ModuleList([torch.nn.Linear(len(cols), 1) for _ in range(m)]) if cfg.get("skip") else None

    def each(v):
        return torch.stack([nets[i](v).squeeze(-1) + (skips[i](v).squeeze(-1) if skips else 0) for i in range(m)])

    params = list(nets.parameters()) + (list(skips.parameters()) if skips else [])
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["wd"])
    loss_fn = torch.nn.functional.huber_loss if cfg.get("huber") else torch.nn.functional.mse_loss
    gen = torch.Generator().manual_seed(seed)
    best_val, best_pred, best_epoch = np.inf, None, 0
    for epoch in range(cfg.get("fixed") or cfg.get("epochs", 2000)):
        nets.train()
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), cfg["bs"]):
            b = perm[s : s + cfg["bs"]]
            opt.zero_grad()
            out = each(xt[b])
            (loss_fn(out, yt[b].expand_as(out)) * m).backward()
            opt.step()
        nets.eval()
        if cfg.get("fixed"):
            continue
        with torch.no_grad():
            val = float(((each(xv).mean(0) - torch.tensor(y[vai])) ** 2).mean())
            if val < best_val:
                best_val, best_pred, best_epoch = val, each(xe).mean(0).double().numpy(), epoch
            elif epoch - best_epoch >= cfg["pat"]:
                break
    if cfg.get("fixed"):
        with torch.no_grad():
            return np.nan, each(xe).mean(0).double().numpy(), cfg["fixed"]
    return best_val, best_pred, best_epoch + 1


def main() -> None:
    torch.set_num_threads(1)
    data_dir = Path(os.environ.get("KT_DATA_DIR", "data")) / "covid"
    table = read_covid_csv(data_dir / "covid.train.csv")
    x, y = table.values[:, :-1], table.values[:, -1]
    for arg in sys.argv[1:]:
        cfg = BASE | json.loads(arg)
        start, line = time.perf_counter(), []
        for by, groups in (("row", None), ("state", state_of_rows(table))):
            vals, tests = [], []
            for tri, vai, tei in folds(len(x), groups):
                val, pred, epochs = train(cfg, x, y, tri, vai, tei)
                if cfg.get("refit"):
                    fixed = max(1, round(cfg["refit"] * epochs))
                    pred = train(cfg | {"fixed": fixed}, x, y, np.concatenate([tri, vai]), vai[:0], tei)[1]
                vals.append(val)
                tests.append(float(np.mean((pred - y[tei]) ** 2)))
            line.append(
                f"{by}: val {np.mean(vals):.4f} test {np.mean(tests):.4f} (" + " ".join(f"{t:.3f}" for t in tests) + ")"
            )
        print(cfg, " | ".join(line), f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
