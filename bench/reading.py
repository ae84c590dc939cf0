"""Is a table's reading true? Ablate each listed latent on the demo prompts and compare the drop in the ')' logit:
the top row's latent must lower it more than any lower row's.

    python bench/reading.py --store demo-store [--rows 8] [--query feeders|drivers] [--order-by measured]

For each of the first ``--rows`` rows of ``scd query feeders -p token=")"`` (by default ranked by Σ|weight|;
``--order-by measured``: by the measured ablation effects stored at ingest) or of ``drivers`` (ranked by the
measured drop of the target per circuit; SAE latents only, the default), the latent is zero-ablated at every
position but BOS of every stored prompt whose target is ')' -- only that SAE spliced, its error term kept, so only
the latent's decoder contribution is removed -- and the mean drop of the ')' logit (minus the mean logit, the
demo's --metric logit) is printed, with whether the table's ranking agrees. An intervention on the plain model,
independent of what the store holds.
"""

from __future__ import annotations

import argparse

import torch

from scd.core.config import StoreConfig
from scd.models.bundle import load_bundle
from scd.queries.runner import query


def logit_drop(bundle, prompts, hook: str, index: int) -> float:
    """Mean over prompts of m(clean) - m(latent `index` at `hook` zero-ablated everywhere but BOS)."""
    target = bundle.tokenizer.single_token_id(")")
    sae = bundle.saes[hook]
    drops = []
    for text in prompts:
        tokens = torch.tensor([bundle.tokenizer.encode(text)], device=bundle.device)

        def ablate(x, hook):
            f = sae.encode(x)
            g = f.clone()
            g[:, 1:, index] = 0
            return x + (sae.decode(g) - sae.decode(f)).to(x.dtype)

        def metric(logits):
            last = logits[0, -1]
            return float(last[target] - last.mean())

        with torch.no_grad():
            clean = metric(bundle.model(tokens))
            ablated = metric(bundle.model.run_with_hooks(tokens, fwd_hooks=[(hook, ablate)]))
        drops.append(clean - ablated)
    return sum(drops) / len(drops)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="demo-store")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--query", choices=["feeders", "drivers"], default="feeders")
    ap.add_argument("--order-by", default=None, help="the query's order_by (default: its own default)")
    args = ap.parse_args()
    config = StoreConfig(path=args.store)
    extra = {} if args.order_by is None else {"order_by": args.order_by}
    rows = query(args.query, config, token=")", limit=args.rows, **extra)
    score = "measured" if args.query == "drivers" or args.order_by == "measured" else "abs_weight"
    prompts = list(query("circuits", config, limit=10_000).query("target == ')'")["prompt"])
    bundle = load_bundle("demo")
    print(f"{len(prompts)} stored prompts whose target is ')'")
    drops = []
    for r in rows.itertuples():
        hook, index = r.feature.split("/")[-2], int(r.feature.split("/")[-1])
        drops.append(logit_drop(bundle, prompts, hook, index))
        print(
            f"{r.feature:40} {score} {getattr(r, score):8.3f}  ')' logit drop when ablated {drops[-1]:+.3f}"
        )
    top_wins = all(drops[0] > d for d in drops[1:])
    print(f"top row's drop exceeds every lower row's: {top_wins}")


if __name__ == "__main__":
    main()
