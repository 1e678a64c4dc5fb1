"""Next-token prediction on expert traces: loss on the code tokens, not on the prompt.

The loop a reader can follow in one screen: a deterministic order of examples (a fresh
permutation per epoch from the run's seed, so a resumed run sees exactly the batches an
uninterrupted one would), AdamW with warmup and a decaying learning rate, gradient clipping,
and a per-token mean loss over the whole optimizer step (micro-batches weighted by their
target tokens). RA3's M-step calls :func:`ntp_steps` on annotated traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ra3bench.training import TrainContext, Trainer, TrainingExample, tokenize_example


@dataclass
class NTPConfig:
    steps: int = 100  # optimizer steps
    batch_size: int = 8  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-5
    warmup_steps: int = 10
    schedule: str = "cosine"  # cosine | linear | constant (transformers.get_scheduler names)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0


class NTPTrainer(Trainer):
    name = "ntp"
    Config = NTPConfig

    def train(self, ctx: TrainContext) -> None:
        ntp_steps(ctx, ctx.examples, self.config, seed=ctx.config.run.seed)


def ntp_steps(
    ctx: TrainContext, examples: list[TrainingExample], cfg: NTPConfig, *, seed: int = 0, encode=tokenize_example
) -> float:
    """Train ``cfg.steps`` optimizer steps (resuming from ``ctx``'s checkpoint); the last loss.
    ``encode`` turns an example into input ids and labels (RA3 masks its comments with it)."""
    import torch
    from transformers import get_scheduler

    if not examples:
        raise ValueError("no training examples")
    model, tokenizer = ctx.model, ctx.tokenizer
    encoded = [encode(e, tokenizer, ctx.config.data.max_length) for e in examples]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
    step, tokens_seen, loss_value = 0, 0, float("nan")
    state = ctx.resume_state()
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, tokens_seen = state["step"], state["tokens_seen"]
    ctx.evaluate(step, tokens_seen)
    model.train()
    per_step = cfg.batch_size * cfg.grad_accum
    while step < cfg.steps:
        step += 1
        order = batch_order(len(encoded), per_step, step, seed)
        micro = [order[i : i + cfg.batch_size] for i in range(0, per_step, cfg.batch_size)]
        batches = [collate([encoded[j] for j in ids], tokenizer.pad_token_id) for ids in micro]
        targets = sum(int((b["labels"] != -100).sum()) for b in batches)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for batch in batches:
            loss_sum = batch_loss(model, batch)
            (loss_sum / max(1, targets)).backward()
            total += loss_sum.item()
            tokens_seen += int(batch["attention_mask"].sum())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        optimizer.step()
        scheduler.step()
        loss_value = total / max(1, targets)
        ctx.log(step, tokens_seen, loss=loss_value, lr=scheduler.get_last_lr()[0], grad_norm=grad_norm)
        save_every = ctx.config.run.save_every
        if step == cfg.steps or (save_every and step % save_every == 0):
            ctx.save_checkpoint(
                step,
                {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "tokens_seen": tokens_seen},
            )
        ctx.evaluate(step, tokens_seen)
    return loss_value


def batch_order(n_examples: int, per_step: int, step: int, seed: int) -> list[int]:
    """The example indices of optimizer step ``step`` (1-based): a function of the step alone."""
    import torch

    start = (step - 1) * per_step
    picked = []
    for position in range(start, start + per_step):
        epoch, offset = divmod(position, n_examples)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        picked.append(int(torch.randperm(n_examples, generator=generator)[offset]))
    return picked


def collate(rows: list[dict], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest row; padding gets label -100 and attention 0."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def batch_loss(model: Any, batch: dict[str, Any]):
    """Summed next-token cross-entropy over the target tokens of ``batch``."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
    shifted = logits[:, :-1].reshape(-1, logits.size(-1)).float()
    labels = batch["labels"][:, 1:].reshape(-1).to(device)
    return F.cross_entropy(shifted, labels, ignore_index=-100, reduction="sum")
