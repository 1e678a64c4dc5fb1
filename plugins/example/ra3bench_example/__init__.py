"""A mid-training method in ~40 lines: next-token prediction that trains only the last layers.

It shows the whole contract: a ``Config`` dataclass (the ``trainer:`` section of the YAML),
``train(ctx)`` that takes optimizer steps on ``ctx.examples``, logs with ``ctx.log`` and lets
the harness measure it with ``ctx.evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ra3bench.training import TrainContext, Trainer, tokenize_example


@dataclass
class LastLayersConfig:
    steps: int = 20
    lr: float = 1e-3
    train_last: int = 1  # how many of the last decoder layers are trained (the rest stay frozen)


class LastLayersTrainer(Trainer):
    name = "last-layers"
    Config = LastLayersConfig

    def train(self, ctx: TrainContext) -> None:
        import torch

        model, cfg = ctx.model, self.config
        layers = model.model.layers
        for p in model.parameters():
            p.requires_grad = False
        trainable = [p for layer in layers[-cfg.train_last :] for p in layer.parameters()]
        for p in trainable:
            p.requires_grad = True
        optimizer = torch.optim.AdamW(trainable, lr=cfg.lr)
        rows = [tokenize_example(e, ctx.tokenizer, ctx.config.data.max_length) for e in ctx.examples]
        ctx.evaluate(0)
        tokens = 0
        model.train()
        for step in range(1, cfg.steps + 1):
            row = rows[(step - 1) % len(rows)]
            ids = torch.tensor([row["input_ids"]])
            loss = model(input_ids=ids, labels=torch.tensor([row["labels"]])).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tokens += ids.numel()
            ctx.log(step, tokens, loss=loss.item())
            ctx.evaluate(step, tokens)
