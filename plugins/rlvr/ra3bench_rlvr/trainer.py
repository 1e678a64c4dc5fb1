"""RLVR: GRPO on training problems, rewarded by the ra3bench sandbox; measured by ``ctx.evaluate``.

One training step: pick ``prompts_per_step`` problems (a seeded order, a function of the step
alone, so a resumed run sees the same problems), sample ``group_size`` completions each, judge
their programs in the sandbox (reward.py), turn rewards into group-normalised advantages and take
``updates_per_batch`` optimizer updates on the clipped policy loss (grpo.py). The reward is a
training signal logged per step; the benchmark metric (pass@k on held-out suites) comes only from
``ctx.evaluate``. docs/rlvr.md says why this is ra3bench's own loop rather than TRL's GRPOTrainer.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from pathlib import Path
from typing import Any

from ra3bench import Problem, UsageError
from ra3bench.training import TrainContext, Trainer
from ra3bench_rlvr.config import RLVRConfig
from ra3bench_rlvr.grpo import Rows, completion_logprobs, group_advantages, policy_loss
from ra3bench_rlvr.init import load_init
from ra3bench_rlvr.problems import load_problem_sets, problem_record
from ra3bench_rlvr.reward import SandboxReward
from ra3bench_rlvr.rollout import Rollout, prompt_style, sample

Item = tuple[str, str, Problem]  # (problem set, suite name, problem)


class RLVRTrainer(Trainer):
    name = "rlvr"
    Config = RLVRConfig
    curve_metric = "reward_mean"  # GRPO's loss hovers near 0 whatever happens; the batch reward shows learning

    def train(self, ctx: TrainContext) -> None:
        cfg: RLVRConfig = self.config
        init = load_init(ctx.model, cfg.init) if cfg.init else {"kind": "model.name", "model": ctx.config.model.name}
        sets = load_problem_sets(cfg, _data_dir(ctx, cfg))
        one_sandbox(cfg, ctx)
        reward: SandboxReward | None = None
        try:
            reward = SandboxReward(sets, ctx.judge_session, cfg.reward)
            pool: list[Item] = [(s.name, s.suite.name, p) for s in sets for p in s.problems]
            refuse_overlap(pool, ctx)
            style = prompt_style(ctx.tokenizer, cfg.prompt_style)
            judging = reward.describe()
            ctx.record(
                rlvr={
                    "algorithm": "GRPO, ra3bench_rlvr's own loop (docs/rlvr.md)",
                    "init": init,
                    "problems": problem_record(sets, reward.unusable),
                    "n_problems": len(pool),
                    "prompt_style": style.value,
                    "reward": {
                        "mode": cfg.reward,
                        "sandbox": judging["sandbox"],
                        "settings": judging["settings"],
                        "sandbox_error": "no reward: dropped from the update and counted",
                    },
                }
            )
            GRPOLoop(ctx, cfg, reward, pool, style).run()
        finally:
            if reward is not None:
                reward.close()


def one_sandbox(cfg: RLVRConfig, ctx: TrainContext) -> None:
    """A training run has one sandbox (``eval.sandbox``, ``eval.workers``) for rewards and evaluations;
    ``trainer.sandbox`` / ``trainer.workers`` may only repeat it."""
    for knob in ("sandbox", "workers"):
        mine, theirs = getattr(cfg, knob), getattr(ctx.config.eval, knob)
        if mine and mine != theirs:
            raise UsageError(
                f"trainer.{knob}={mine!r} but eval.{knob}={theirs!r}: a training run judges rewards and "
                f"evaluations in one sandbox; set eval.{knob} (and drop trainer.{knob})"
            )


class GRPOLoop:
    def __init__(self, ctx: TrainContext, cfg: RLVRConfig, reward: SandboxReward, pool: list[Item], style) -> None:
        self.ctx, self.cfg, self.reward, self.pool, self.style = ctx, cfg, reward, pool, style

    def run(self) -> None:
        import torch
        from transformers import get_scheduler

        ctx, cfg, model = self.ctx, self.cfg, self.ctx.model
        self.reference = self._reference() if cfg.beta > 0 else None  # the init weights, taken before a resume
        params = [p for p in model.parameters() if p.requires_grad]
        self.params = params
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = get_scheduler("constant_with_warmup", self.optimizer, num_warmup_steps=cfg.warmup_steps)
        step, tokens_seen = 0, 0
        state = ctx.resume_state()
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            step, tokens_seen = state["step"], state["tokens_seen"]
        ctx.evaluate(step, tokens_seen)
        model.train()
        while step < cfg.steps:
            step += 1
            metrics, tokens = self.step(step)
            tokens_seen += tokens
            ctx.log(step, tokens_seen, **metrics)
            save_every = ctx.config.run.save_every
            if step == cfg.steps or (save_every and step % save_every == 0):
                state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
                ctx.save_checkpoint(step, {**state, "tokens_seen": tokens_seen})
            ctx.evaluate(step, tokens_seen)

    def step(self, step: int) -> tuple[dict[str, float], int]:
        """One batch: sample, score, update. The metrics of ``curve.jsonl`` and the tokens processed."""
        cfg = self.cfg
        started = time.perf_counter()
        picked = pick(len(self.pool), cfg.prompts_per_step, step, self.ctx.config.run.seed)
        rollouts = sample(
            self.ctx.model,
            self.ctx.tokenizer,
            [self.pool[i] for i in picked],
            group_size=cfg.group_size,
            style=self.style,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            generation_batch=cfg.generation_batch,
            seed=self.ctx.config.run.seed * 1_000_003 + step,
            batching=cfg.generation_batching,
            sampler=self.ctx.sample_sequences,
        )
        generation_s = time.perf_counter() - started
        batch = self.reward.score([(r.set_name, r.problem, r.program) for r in rollouts])
        advantages, keep = group_advantages(batch.rewards, cfg.group_size, scale=cfg.scale_rewards)
        kept = [i for i, k in enumerate(keep) if k]
        update = self.update(rollouts, advantages, kept)
        step_s = time.perf_counter() - started
        scored = [r for r in batch.rewards if r is not None]
        groups = [advantages[i : i + cfg.group_size] for i in range(0, len(advantages), cfg.group_size)]
        lengths = [len(r.completion_ids) for r in rollouts]
        metrics = {
            "reward_mean": statistics.fmean(scored) if scored else 0.0,
            "reward_std": statistics.pstdev(scored) if scored else 0.0,
            "pass_rate": batch.pass_rate,
            "completion_tokens": statistics.fmean(lengths),
            "truncation_rate": sum(r.finish == "length" for r in rollouts) / len(rollouts),
            "sandbox_time_share": batch.sandbox_s / step_s,
            "sandbox_time_s": batch.sandbox_s,
            "generation_time_s": generation_s,
            "update_time_s": step_s - generation_s - batch.sandbox_s,
            "step_time_s": step_s,
            "cache_hit_rate": batch.cache_hit_rate,
            "executed_programs": batch.executed,
            "dropped_sandbox_error": batch.dropped,
            "groups_with_signal": sum(any(a != 0 for a in g) for g in groups) / len(groups),
            "lr": self.scheduler.get_last_lr()[0],
            **self.ctx.generation_metrics(),
            **update,
        }
        tokens = sum(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)
        return metrics, tokens

    def update(self, rollouts: list[Rollout], advantages: list[float], kept: list[int]) -> dict[str, float]:
        """``updates_per_batch`` optimizer updates on the kept samples; loss, clip fraction, KL, grad norm."""
        import torch

        cfg, model = self.cfg, self.ctx.model
        if not kept:  # every sample lost to sandbox errors: nothing to learn from
            self.scheduler.step()
            return {"loss": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
        pad = self.ctx.tokenizer.pad_token_id
        # the loss is normalised by every kept sample's tokens, as if all took part...
        n_tokens = max(1.0, float(sum(len(rollouts[j].completion_ids) for j in kept)))
        # ...but one with advantage 0 adds nothing to it or its gradient (no KL term): skip its passes
        active = self.contributing(kept, advantages)
        chunks = [active[i : i + cfg.micro_batch] for i in range(0, len(active), cfg.micro_batch)]
        rows = [
            Rows.build([rollouts[j].prompt_ids for j in c], [rollouts[j].completion_ids for j in c], pad)
            for c in chunks
        ]
        advs = [torch.tensor([advantages[j] for j in c]) for c in chunks]
        with torch.no_grad():
            old = [completion_logprobs(model, r, cfg.temperature) for r in rows] if cfg.updates_per_batch > 1 else None
            ref = [self._reference_logprobs(r) for r in rows] if self.reference is not None else None
        for _ in range(cfg.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            loss_sum = clipped = kl = 0.0
            for k, (r, adv) in enumerate(zip(rows, advs, strict=True)):
                device = next(model.parameters()).device
                logp = completion_logprobs(model, r, cfg.temperature)
                loss, stats = policy_loss(
                    logp,
                    old[k].to(device) if old is not None else logp.detach(),
                    adv.to(device),
                    r.completion_mask.to(device),
                    clip_eps=cfg.clip_eps,
                    beta=cfg.beta,
                    ref_logp=ref[k].to(device) if ref is not None else None,
                )
                (loss / n_tokens).backward()
                loss_sum += float(loss.detach())
                clipped += stats["clipped_tokens"]
                kl += stats.get("kl_sum", 0.0)
            if not rows:  # no signal in the batch: a zero gradient, so AdamW's momentum still steps as it would
                for param in self.params:
                    param.grad = torch.zeros_like(param)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
            self.optimizer.step()
        self.scheduler.step()
        out = {"loss": loss_sum / n_tokens, "clip_fraction": clipped / n_tokens, "grad_norm": grad_norm}
        if self.reference is not None:
            out["kl"] = kl / n_tokens
        return out

    def contributing(self, kept: list[int], advantages: list[float]) -> list[int]:
        """The kept samples whose forward/backward can change the update: with no KL term, a
        sample of advantage 0 (a group that all passed or all failed) has zero loss and zero
        gradient, and skipping it saves most of the update when few groups have any signal."""
        if self.cfg.beta > 0:
            return kept
        return [j for j in kept if advantages[j] != 0]

    def _reference(self) -> Any:
        """LoRA: the same model with its adapters off. Otherwise a frozen copy of the initial weights."""
        model = self.ctx.model
        if hasattr(model, "disable_adapter"):
            return model
        reference = copy.deepcopy(model).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return reference

    def _reference_logprobs(self, rows: Rows) -> Any:
        if self.reference is self.ctx.model:
            with self.ctx.model.disable_adapter():
                return completion_logprobs(self.ctx.model, rows, self.cfg.temperature)
        return completion_logprobs(self.reference, rows, self.cfg.temperature)


def pick(n: int, k: int, step: int, seed: int) -> list[int]:
    """The problem indices of training step ``step`` (1-based): a fresh permutation per pass over the pool."""
    picked = []
    for position in range((step - 1) * k, step * k):
        epoch, offset = divmod(position, n)
        order = list(range(n))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        picked.append(order[offset])
    return picked


def refuse_overlap(pool: list[Item], ctx: TrainContext) -> None:
    """A training problem that is also evaluated would make the curve measure memorisation: refuse it."""
    train_ids = {problem.task_id for _, _, problem in pool}
    for plan in ctx.schedule.plans:
        both = sorted(train_ids & {p.task_id for p in plan.problems})
        if both:
            raise UsageError(
                f"{len(both)} training problem(s) are also evaluated on {plan.suite.name} ({', '.join(both[:5])}); "
                "keep data.source=mbpp-train (its task ids are left out of MBPP+), evaluate LiveCodeBench on a later "
                "window (eval.select.livecodebench.start_date after trainer.lcb_end_date), or pick other eval.suites"
            )


def _data_dir(ctx: TrainContext, cfg: RLVRConfig) -> Path | None:
    """``trainer.data_dir``, else the folder the evaluation reads its suites from (``--data-dir``)."""
    if cfg.data_dir:
        return Path(cfg.data_dir).expanduser()
    return next((plan.suite.data_dir for plan in ctx.schedule.plans if plan.suite.data_dir), None)
