"""RA3's EM loop: E-step (RL on comment latents), annotate the corpus, M-step (NTP), ``em_iterations`` times.

The curve's x-axis is M-step optimizer steps, as NTP's is, so the two compare at the same
budget; the E-step's compute is logged beside it (``estep_tokens``, ``estep_time_s``, at the
M-step step where it ran) and recorded in the manifest. The M-step *is* the NTP plugin's loop
(:func:`ra3bench_ntp.ntp_steps`), run on the annotated traces through a view of the context
that continues the step and token counts from one EM iteration to the next.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any

from ra3bench_ntp import NTPConfig, ntp_steps

from ra3bench import UsageError
from ra3bench.training import TrainContext, Trainer, TrainingExample
from ra3bench_ra3.annotate import Comment, strip
from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.mstep import encode_masked, ntp_takes_encode

ANNOTATED = "annotated.jsonl"


@dataclass
class AnnotatedExample(TrainingExample):
    """A trace for the M-step: ``code`` is the annotated text; ``original`` and ``comments`` say how."""

    original: str = ""
    comments: list[Comment] = field(default_factory=list)


class RA3Trainer(Trainer):
    name = "ra3"
    Config = RA3Config

    def __init__(self, config: RA3Config) -> None:
        super().__init__(config)
        self.records: list[dict] = []  # per EM iteration, for the manifest
        self._policy: Any = None

    def train(self, ctx: TrainContext) -> None:
        cfg: RA3Config = self.config
        if cfg.mask_latent_tokens and not ntp_takes_encode():
            raise UsageError("trainer.mask_latent_tokens needs ra3bench_ntp.ntp_steps(..., encode=...)")
        sizes = [cfg.steps // cfg.em_iterations + (i < cfg.steps % cfg.em_iterations) for i in range(cfg.em_iterations)]
        start, offset, tokens, resume, annotated, ended = 1, 0, 0, None, False, False
        state = ctx.resume_state()
        if state is not None:  # from a checkpoint of iteration `it`: after its annotation, or in its M-step
            it, at = state["ra3"]["iteration"], state["ra3"]["offset"]
            self.records = list(state["ra3"].get("records", []))
            if self.records:
                ctx.record(ra3=self.manifest_record())
            if state["step"] - at >= sizes[it - 1]:  # that M-step was over: the next iteration, from its E-step
                start, offset, tokens = it + 1, state["step"], state["ra3"]["tokens_offset"] + state["tokens_seen"]
                ended = True
            elif "optimizer" not in state:  # annotated, no M-step step yet: its traces, the M-step from the start
                start, offset, tokens, annotated = it, at, state["ra3"]["tokens_offset"], True
            else:  # within it: the same annotated traces, the M-step from its checkpoint
                start, offset, tokens = it, at, state["ra3"]["tokens_offset"]
                resume = {**state, "step": state["step"] - at}
        rows = _read_rows(ctx, keep_below=start + (resume is not None or annotated))
        ctx.evaluate(0)
        if ended:  # killed after the iteration's last checkpoint, before (or during) that step's evaluation
            ctx.evaluate(offset, tokens)
        for it in range(start, cfg.em_iterations + 1):
            if it != start or (resume is None and not annotated):
                rows = [r for r in rows if r["em_iteration"] < it] + self.expectation(ctx, it, offset, tokens)
                _write_rows(ctx, rows)
                # the E-step and the annotation are the costly part: a checkpoint keeps them from being redone
                ctx.save_checkpoint(offset, {"ra3": self.where(it, offset, tokens), "tokens_seen": 0})
            examples = mstep_examples([r for r in rows if r["em_iteration"] == it], cfg, it)
            view = MStepContext(
                ctx, it, offset, tokens, resume if it == start else None, self.where(it, offset, tokens)
            )
            extra = {"encode": encode_masked} if cfg.mask_latent_tokens else {}
            ntp_steps(view, examples, self.ntp_config(sizes[it - 1]), seed=ctx.config.run.seed + it - 1, **extra)
            offset, tokens = offset + sizes[it - 1], tokens + view.tokens_seen

    def ntp_config(self, steps: int) -> NTPConfig:
        c = self.config
        return NTPConfig(
            steps, c.batch_size, c.grad_accum, c.mstep_lr, c.warmup_steps, c.schedule, c.weight_decay, c.max_grad_norm
        )

    def expectation(self, ctx: TrainContext, it: int, offset: int, tokens: int) -> list[dict]:
        """E-step on a copy of the model, then annotate: this iteration's rows of ``annotated.jsonl``."""
        import time

        import torch

        from ra3bench_ra3.estep import annotate, estep, rollout_stats
        from ra3bench_ra3.plots import ESTEP_PNG, plot_estep
        from ra3bench_ra3.probe import held_out, probe
        from ra3bench_ra3.rollout import Snippet

        cfg, model = self.config, ctx.model
        policy = self.policy(ctx)
        snippets = [Snippet(e.prompt, e.code, i) for i, e in enumerate(ctx.examples)]
        fits = [s for s in snippets if s.bounds and _length(policy, s) <= cfg.estep_max_tokens]
        picked = set(random.Random(cfg.seed * 1_000 + it).sample(range(len(snippets)), _share(len(snippets), cfg)))
        log = lambda metrics: ctx.log(offset, tokens, em_iteration=it, **metrics)  # noqa: E731
        cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):  # the M-step's random stream stays NTP's
            torch.manual_seed(cfg.seed * 1_000 + it)
            q = copy.deepcopy(model)
            stats = {"estep_tokens": 0, "estep_time_s": 0.0}
            probes, pool = held_out(fits, cfg.probe_snippets, cfg.seed)  # the same ones every iteration
            before = probe(q, model, probes, policy, cfg) if probes else None
            if pool and cfg.estep_steps > 0:
                stats = estep(q, model, pool, policy, cfg, log)
            if before is not None:
                after = probe(q, model, probes, policy, cfg)
                log({**before.fields("before"), **after.fields("after"), "probe_snippets": len(probes)})
            started = time.perf_counter()
            chosen = [s for s in fits if s.index in picked]
            rollouts, spent = annotate(q, chosen, policy, cfg.estep_batch_size * cfg.group_size)
            del q
        done = {r.snippet.index: r for r in rollouts}
        summary = {f"annotate_{k}": v for k, v in rollout_stats(rollouts).items()}
        summary |= {"annotate_tokens": spent, "annotate_time_s": time.perf_counter() - started}
        log({**summary, "annotated": len(done)})
        plot_estep(ctx.run_dir / "curve.jsonl", ctx.run_dir / ESTEP_PNG)
        self.records.append({"iteration": it, **stats, **summary, "annotated": len(done)})
        ctx.record(ra3=self.manifest_record())
        return [_row(it, i, e, done.get(i)) for i, e in enumerate(ctx.examples)]

    def manifest_record(self) -> dict:
        return {"iterations": self.records, "estep_tokens": sum(r["estep_tokens"] for r in self.records)}

    def where(self, it: int, offset: int, tokens: int) -> dict:
        """What a checkpoint of iteration ``it`` needs to resume it (the E-step records travel with it)."""
        return {"iteration": it, "offset": offset, "tokens_offset": tokens, "records": self.records}

    def policy(self, ctx: TrainContext) -> Any:
        """The sampling setup (think and stop tokens from the vocabulary), built once."""
        if self._policy is None:
            from ra3bench_ra3.rollout import Policy

            vocab = ctx.model.get_output_embeddings().weight.shape[0]
            self._policy = Policy.build(ctx.tokenizer, self.config, vocab)
        return self._policy


class MStepContext:
    """``ctx`` as ``ntp_steps`` sees it in EM iteration ``it``: its steps 1..n are the run's offset+1..offset+n."""

    def __init__(self, ctx: TrainContext, it: int, offset: int, tokens: int, resume: dict | None, where: dict) -> None:
        self._ctx, self._it, self._offset, self._tokens, self._resume = ctx, it, offset, tokens, resume
        self._where = where
        self.tokens_seen = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def resume_state(self) -> dict | None:
        state, self._resume = self._resume, None
        return state

    def log(self, step: int, tokens_seen: int, **metrics: float) -> None:
        self.tokens_seen = tokens_seen
        self._ctx.log(step + self._offset, tokens_seen + self._tokens, em_iteration=self._it, **metrics)

    def evaluate(self, step: int, tokens_seen: int = 0, *, force: bool = False) -> list[dict] | None:
        return self._ctx.evaluate(step + self._offset, tokens_seen + self._tokens, force=force)

    def save_checkpoint(self, step: int, state: dict) -> Any:
        return self._ctx.save_checkpoint(step + self._offset, {**state, "ra3": self._where})


def mstep_examples(rows: list[dict], cfg: RA3Config, it: int) -> list[TrainingExample]:
    """The iteration's traces in the corpus' order, then raw copies of a ``raw_data_mix`` share of the annotated."""
    examples: list[TrainingExample] = [
        AnnotatedExample(r["prompt"], r["annotated"], r["source_id"], r["code"], [Comment(**c) for c in r["comments"]])
        for r in rows
    ]
    annotated = [r for r in rows if r["status"] == "annotated"]
    extra = random.Random(cfg.seed * 1_000 + it).sample(annotated, round(cfg.raw_data_mix * len(annotated)))
    return examples + [TrainingExample(r["prompt"], r["code"], r["source_id"]) for r in extra]


def _row(it: int, index: int, example: TrainingExample, rollout: Any) -> dict:
    comments = rollout.comments if rollout is not None else []
    annotated = rollout.annotated if rollout is not None else example.code
    if strip(annotated, comments) != example.code:  # the invariant the M-step relies on
        raise AssertionError(f"example {index}: stripping the comments does not give the snippet back")
    return {
        "em_iteration": it,
        "index": index,
        "source_id": example.source_id,
        "status": "annotated" if rollout is not None else "raw",
        "thinks": len(comments),
        "boundaries": len(rollout.snippet.bounds) if rollout is not None else 0,
        "comments": [{"line": c.line, "text": c.text} for c in comments],
        "prompt": example.prompt,
        "code": example.code,
        "annotated": annotated,
    }


def _read_rows(ctx: TrainContext, keep_below: int) -> list[dict]:
    path = ctx.run_dir / ANNOTATED
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["em_iteration"] < keep_below]


def _write_rows(ctx: TrainContext, rows: list[dict]) -> None:
    path = ctx.run_dir / ANNOTATED
    tmp = path.with_name(f".{ANNOTATED}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def _share(n: int, cfg: RA3Config) -> int:
    return min(n, round(cfg.annotate_fraction * n))


def _length(policy: Any, snippet: Any) -> int:
    return len(policy.encoder.prompt_ids(snippet.prompt)) + len(policy.encoder.code(snippet.code)[0])
