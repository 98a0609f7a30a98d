"""Cost of one KnowledgeTracer.add() early and late in a student's history, against re-running the whole history.

    OMP_NUM_THREADS=1 python scripts/benchmarks/knowledge_tracer.py                 # dkt_assist2009's size, 110 skills
    OMP_NUM_THREADS=1 python scripts/benchmarks/knowledge_tracer.py --ckpt BEST.ckpt  # a trained DKT checkpoint

Without --ckpt the network is untrained (the cost does not depend on the weights). Prints the median time of
add() + probabilities() at steps 1-100 and 901-1000 of one student, and the time to run the whole 1,000-step
history through the model (what a stateless API would pay for every new answer).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import kt
from kt.tracing import DKT
from kt.tracing.knowledge_state import KnowledgeTracer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a DKT checkpoint (default: an untrained dkt_assist2009-sized DKT)")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.ckpt:
        model = kt.load_checkpoint(args.ckpt)
    else:
        skills = [str(i) for i in range(110)]
        model = DKT(emb_size=200, hidden_size=200, data_state={"skills": skills, "names": skills}).eval()
    tracer = KnowledgeTracer(model)
    vocab = model.vocabulary.skills
    history = torch.randint(len(vocab), (args.steps,))
    answers = torch.randint(2, (args.steps,))
    times = []
    for skill, correct in zip(history.tolist(), answers.tolist()):
        start = time.perf_counter()
        tracer.add("student", vocab[skill], correct)
        tracer.probabilities("student")
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        start = time.perf_counter()
        model(history[None], answers[None])
        full = time.perf_counter() - start
    early, late = statistics.median(times[:100]), statistics.median(times[-100:])
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"add() + probabilities(), median: steps 1-100 {early * 1e3:.3f} ms, "
          f"steps {args.steps - 99}-{args.steps} {late * 1e3:.3f} ms")
    print(f"whole {args.steps}-step history through the model: {full * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
