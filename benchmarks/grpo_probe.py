"""Can GRPO get a learning signal on this model? Sample answers, count non-zero rewards.

GRPO learns only from groups whose rewards differ. This samples ``--group`` completions (the
same sampler, temperature and reward as the consolidation method) for the first ``--facts``
new facts of a round of the benchmark's fact stream and prints how many completions earn a
non-zero reward, and which first tokens the model produces.

    python benchmarks/grpo_probe.py --model gemma3-270m --reward prefix
    python benchmarks/grpo_probe.py --model gemma3-270m --reward prefix --demo   # 3-shot format

``--demo`` puts three answered questions of the same form (general knowledge, not the
stream's facts) before each question: does a format the model can follow give a signal?
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from memkit.consolidate.examples import TrainExample, encode_example  # noqa: E402
from memkit.consolidate.methods_extra import GRPO  # noqa: E402
from memkit.consolidate.model import load_base  # noqa: E402
from memkit.consolidate.synthetic import make_fact_stream  # noqa: E402

DEMO = ("what is the color of the sky ? blue\nwhat is the city of the eiffel tower ? paris\n"
        "what is the pet of a shepherd ? dog\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--reward", default="prefix", choices=["exact", "prefix"])
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--facts", type=int, default=12)
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--demo", action="store_true", help="a 3-shot format prefix")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_base(args.model)
    model.eval()
    stream = make_fact_stream(n_rounds=max(args.round, 1), facts_per_round=args.facts,
                              updates_per_round=0, n_general=10, seed=args.seed)
    method = GRPO(group=args.group, reward=args.reward)
    gen = torch.Generator().manual_seed(args.seed)
    rewards: list[float] = []
    firsts: collections.Counter[str] = collections.Counter()
    for fact in stream.rounds[args.round][:args.facts]:
        prompt_text = (DEMO if args.demo else "") + fact.question
        ids, _, answer = encode_example(TrainExample(prompt_text, fact.value, fact.question),
                                        tok, 128)
        first = answer.index(True)
        prompt, target = ids[:first], ids[first:]
        for c, _, reward in method.rollouts(model, tok, prompt, target, gen):
            rewards.append(reward)
            firsts[tok.decode(c[:1])] += 1
    nonzero = sum(r > 0 for r in rewards)
    print(f"{args.model}, reward {args.reward}, group {args.group}, "
          f"{'3-shot' if args.demo else 'bare'} prompt: {nonzero} of "
          f"{len(rewards)} completions rewarded (mean {sum(rewards) / len(rewards):.3f})")
    print("first tokens:", ", ".join(f"{t!r} {n}" for t, n in firsts.most_common(8)))


if __name__ == "__main__":
    main()
