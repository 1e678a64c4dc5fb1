"""RA3 on CPU with the tiny random model: the method's sanity checks (RA3_METHOD.md) and a full run.

c huge -> no comment and the M-step is NTP; c = 0 with a policy nudged to think -> comments at
most boundaries, every annotated trace strips back to its snippet and parses; the E-step's
reward rises; batched scoring is per-line scoring; `ra3bench train` writes the curve with
E-step metrics, annotated.jsonl and the evaluations."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[2]

import torch  # noqa: E402
from ra3bench_ntp import NTPConfig, ntp_steps  # noqa: E402
from ra3bench_ra3 import RA3Config, RA3Trainer  # noqa: E402
from ra3bench_ra3.annotate import Comment, insert, line_spans, strip  # noqa: E402
from ra3bench_ra3.estep import Scored, advantages, crosstalk, estep, group_ends, group_rewards, latent_terms, rewards  # noqa: E402
from ra3bench_ra3.known_answer_experiment import NoEvaluation  # noqa: E402
from ra3bench_ra3.rollout import Policy, Rollout, Snippet, sample  # noqa: E402
from ra3bench_ra3.scoring import Encoder, decision_logprobs, line_scores, logits_at, token_logprobs  # noqa: E402

from ra3bench.config import load_config  # noqa: E402
from ra3bench.tiny import tiny_model  # noqa: E402
from ra3bench.training import TrainContext, TrainingExample  # noqa: E402
from ra3bench.training.data import load_examples  # noqa: E402
from ra3bench.training.runner import config_schema, train  # noqa: E402

PROMPT = '"""Solve the task."""\n'
CODES = [
    "def add(a, b):\n    s = a + b\n    return s\n",
    "def total(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n",
    "import math\n\n\ndef root(x):\n    # the snippet's own comment\n"
    "    y = math.sqrt(x)\n    return (y +\n            1)\n",
    "class Box:\n    def __init__(self, v):\n        self.v = v\n\n    def get(self):\n        return self.v\n",
]
EXAMPLES = [TrainingExample(PROMPT, code, f"hand/{i}") for i, code in enumerate(CODES)]
QUICK = ["group_size=2", "estep_batch_size=2", "max_latent_tokens=3", "batch_size=2", "warmup_steps=1"]


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's ops are too small to share out: one thread is faster, and much faster on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ra3-cache"))


def context(run_dir: Path, overrides: list[str], examples: list[TrainingExample], resume: bool = False) -> TrainContext:
    config = load_config(config_schema(RA3Config), None, ["data.max_length=256", *overrides])
    model, tokenizer = tiny_model(seed=0)
    return TrainContext(
        config=config,
        trainer_name="ra3",
        run_dir=run_dir,
        model=model,
        tokenizer=tokenizer,
        examples=examples,
        schedule=NoEvaluation(config.trainer.steps),  # type: ignore[arg-type]
        manifest={},
        resume=resume,
    )


def run_ra3(
    run_dir: Path, overrides: list[str], examples: list[TrainingExample] = EXAMPLES, *, resume: bool = False, dies=None
) -> TrainContext:
    """RA3 on ``examples``; ``dies(step, metrics)`` true: killed there, as a machine going down would be."""
    core = [o for o in overrides if o.startswith("run.")]
    trainer = [f"trainer.{o}" for o in [*QUICK, *overrides] if not o.startswith("run.")]
    ctx = context(run_dir, [*core, *trainer], examples, resume)
    if dies is not None:
        log = ctx.log

        def dying_log(step: int, tokens_seen: int, **metrics: Any) -> None:
            if dies(step, metrics):
                raise KeyboardInterrupt
            log(step, tokens_seen, **metrics)

        ctx.log = dying_log  # type: ignore[method-assign]
    try:
        RA3Trainer(ctx.config.trainer).train(ctx)
    finally:
        ctx.close()
    return ctx


def curve(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "curve.jsonl").read_text().splitlines()]


def annotated(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "annotated.jsonl").read_text().splitlines()]


def policy_for(tokenizer: Any, cfg: RA3Config) -> Policy:
    return Policy.build(tokenizer, cfg, len(tokenizer))


def test_a_huge_penalty_writes_no_comment_and_the_m_step_is_ntp(tmp_path):
    # q starts out thinking at ~30% of the boundaries (think_bias); c = 1e6 must train that away
    steps = ["steps=6", "mstep_lr=3e-3"]
    ctx = run_ra3(tmp_path / "ra3", [*steps, "penalty_c=1e6", "think_bias=5", "estep_steps=4", "estep_lr=0.05"])
    points = curve(ctx.run_dir)
    estep_lines = [p for p in points if "estep_reward" in p]
    assert estep_lines[0]["estep_think_rate"] > 0.1  # it did think, and paid for it
    rows = annotated(ctx.run_dir)
    assert len(rows) == len(EXAMPLES) and all(r["annotated"] == r["code"] and not r["comments"] for r in rows)
    ra3_loss = {p["step"]: p["loss"] for p in points if "loss" in p}

    ntp = context(tmp_path / "ntp", [], EXAMPLES)
    ntp_steps(ntp, EXAMPLES, NTPConfig(steps=6, batch_size=2, lr=3e-3, warmup_steps=1), seed=0)
    ntp.close()
    ntp_loss = {p["step"]: p["loss"] for p in curve(ntp.run_dir) if "loss" in p}
    assert sorted(ra3_loss) == sorted(ntp_loss) == list(range(1, 7))
    for step, loss in ntp_loss.items():
        assert ra3_loss[step] == pytest.approx(loss, abs=1e-5)


@pytest.fixture(scope="module")
def mbpp_snippets() -> list[TrainingExample]:
    from ra3bench.training.base import DataConfig

    return load_examples(DataConfig(source="mbpp-train", max_examples=6, shuffle_seed=1))


def test_no_penalty_comments_most_boundaries_and_every_trace_strips_back_and_parses(tmp_path, mbpp_snippets):
    examples = [*EXAMPLES, *mbpp_snippets]
    ctx = run_ra3(tmp_path, ["steps=1", "penalty_c=0", "think_bias=8", "estep_steps=1", "estep_lr=1e-4"], examples)
    rows = annotated(ctx.run_dir)
    assert [r["source_id"] for r in rows] == [e.source_id for e in examples]
    assert all(r["status"] == "annotated" for r in rows)
    thinks, bounds = sum(r["thinks"] for r in rows), sum(r["boundaries"] for r in rows)
    assert thinks > 0.6 * bounds, (thinks, bounds)
    for row, example in zip(rows, examples, strict=True):
        comments = [Comment(**c) for c in row["comments"]]
        assert row["code"] == example.code
        assert strip(row["annotated"], comments) == example.code  # byte for byte
        assert ast.dump(ast.parse(row["annotated"])) == ast.dump(ast.parse(example.code))
        for c in comments:
            assert c.text.lstrip(" \t").startswith("#") and c.text.endswith("\n") and c.text.count("\n") == 1
    # the snippet's own comment is still there, once
    assert rows[2]["annotated"].count("# the snippet's own comment\n") == 1


def test_the_e_step_reward_rises(tmp_path):
    # thinking costs c = 0.5 and q starts thinking at ~half the boundaries: RL must learn to stop
    cfg = RA3Config(penalty_c=0.5, think_bias=6, estep_lr=0.02, estep_steps=6, group_size=4, estep_batch_size=4)
    cfg.max_latent_tokens = 3
    model, tokenizer = tiny_model(seed=0)
    q = __import__("copy").deepcopy(model)
    pool = [Snippet(e.prompt, e.code, i) for i, e in enumerate(EXAMPLES)]
    lines: list[dict] = []
    torch.manual_seed(0)
    estep(q, model, pool, policy_for(tokenizer, cfg), cfg, lines.append)
    reward = [line["estep_reward"] for line in lines]
    think = [line["estep_think_rate"] for line in lines]
    assert sum(reward[-2:]) / 2 > sum(reward[:2]) / 2 + 0.2, reward
    assert think[-1] < think[0], think
    assert all(line["estep_tokens"] > 0 and line["estep_time_s"] > 0 for line in lines)


def test_batched_scoring_equals_one_forward_pass_per_line():
    model, tokenizer = tiny_model(seed=0)
    encoder = Encoder(tokenizer)
    cases = [
        (CODES[1], [Comment(2, "    # walk the list\n"), Comment(4, "    # done\n")]),
        (CODES[2], [Comment(0, "# imports\n")]),
        (CODES[0], []),
    ]
    encs = [encoder(PROMPT, insert(code, comments)) for code, comments in cases]
    batched = token_logprobs(model, [e.ids for e in encs], tokenizer.pad_token_id, micro=8)
    for (code, comments), enc, lp in zip(cases, encs, batched, strict=True):
        starts, _ = line_spans(code, comments)
        sums, counts = line_scores(lp, enc, starts, len(starts))
        token_line = enc.token_lines(starts)
        for line in range(len(starts)):
            where = [enc.n_prompt + k for k, owner in enumerate(token_line) if owner == line]
            assert counts[line] == len(where)
            if not where:
                continue
            with torch.no_grad():  # this line alone: its prefix, one pass
                logits = model(input_ids=torch.tensor([enc.ids[: where[-1] + 1]])).logits[0].float()
            single = sum(float(logits[k - 1].log_softmax(-1)[enc.ids[k]]) for k in where)
            assert sums[line] == pytest.approx(single, abs=1e-4)


SMOLLM2_TOKENIZER = Path.home() / ".cache" / "ra3bench" / "models" / "smollm2-135m" / "hf"


def random_model(kind: str) -> tuple[Any, Any]:
    """The tiny model, or a one-layer random model on SmolLM2's tokenizer (which has a `` #`` token)."""
    if kind == "tiny":
        return tiny_model(seed=0)
    if not (SMOLLM2_TOKENIZER / "tokenizer.json").exists():
        pytest.skip("SmolLM2's tokenizer is not in the model cache (ra3bench models fetch smollm2-135m)")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(SMOLLM2_TOKENIZER))
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    config.num_attention_heads, config.num_key_value_heads = 2, 1
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.mark.parametrize("kind", ["tiny", "smollm2-tokenizer"])
def test_the_policy_gradient_sees_each_decision_in_the_context_it_was_sampled_in(kind, mbpp_snippets):
    cfg = RA3Config(think_bias=4 if kind == "tiny" else 9, max_latent_tokens=4)
    model, tokenizer = random_model(kind)
    policy = policy_for(tokenizer, cfg)
    rollouts = [Rollout(Snippet(e.prompt, e.code)) for e in [*EXAMPLES, *mbpp_snippets] for _ in range(2)]
    torch.manual_seed(0)
    sample(model, rollouts, policy)
    encs = [policy.encoder(r.snippet.prompt, r.annotated) for r in rollouts]
    terms = [latent_terms(r, e) for r, e in zip(rollouts, encs, strict=True)]
    positions = [[p for _, p, _ in t.decisions] for t in terms]
    thinks = 0
    with torch.no_grad():
        for i, logits in logits_at(model, [e.ids for e in encs], positions, tokenizer.pad_token_id, 8):
            r, t = rollouts[i], terms[i]
            assert [j for j, _, _ in t.decisions] == [j for j, p in enumerate(r.probs) if p is not None]
            if not t.decisions:
                continue
            again = decision_logprobs(logits, policy.mask, cfg.latent_temperature, cfg.think_bias)[:, 1].exp()
            for (j, _, think), p in zip(t.decisions, again.tolist(), strict=True):
                assert think == r.thinks[j] and p == pytest.approx(r.probs[j], abs=1e-5)
            thinks += sum(r.thinks)
            assert {j for j, _, _ in t.latent} <= {j for j, _, a in t.decisions if a}  # comment tokens: thinks only
    assert thinks > 10


def test_rewards_per_horizon_and_norm():
    snippet = Snippet("", "a = 1\nb = 2\nc = 3\n")  # three boundaries, one line each
    r = Rollout(snippet, thinks=[True, False, True], malformed=[False, True])
    scored = Scored(seg_lp=[-2.0, -4.0, -6.0], seg_n=[1, 2, 3], lp=-12.0, n=6)
    c, w = 0.5, 0.25
    per, total = rewards(r, scored, RA3Config(penalty_c=c, format_reward_weight=w, reward_horizon="next_line"))
    assert per == [-2.0 - c, -2.0, -2.0 - c - w] and total == -2.0 - 2 * c - w
    per, _ = rewards(r, scored, RA3Config(penalty_c=c, format_reward_weight=w, reward_horizon="until_next_think"))
    assert per == [-6.0 / 3 - c, -6.0 / 3, -2.0 - c - w]
    per, total = rewards(r, scored, RA3Config(penalty_c=c, reward_horizon="return_to_go", reward_norm="sum"))
    assert per == [-12.0 - 2 * c, -10.0 - c, -6.0 - c] and total == -12.0 - 2 * c
    adv = advantages([[1.0, 2.0], [3.0, 2.0], [0.0, 0.0], [0.0, 4.0]], group=2, normalize=False)
    assert adv == [[-1.0, 0.0], [1.0, 0.0], [0.0, -2.0], [0.0, 2.0]]
    adv = advantages([[1.0, 2.0], [3.0, 2.0]], group=2, normalize=True)
    assert adv[0][0] == pytest.approx(-1 / 2**0.5, rel=1e-4) and adv[0][1] == 0.0


def test_the_group_horizon_scores_every_rollout_of_a_group_over_the_same_lines_and_crosstalk_sees_the_rest():
    """until_next_think: an act's horizon ends at the rollout's own next think, so two rollouts that both
    acted at a boundary are compared over different lines; until_group_think ends it where any of them
    thinks. The cross-talk statistic is the |advantage| where the whole group acted."""
    snippet = Snippet("", "a = 1\nb = 2\nc = 3\n")
    thinker = Rollout(snippet, thinks=[False, True, False], widths=[0, 0, 0], malformed=[False])
    actor = Rollout(snippet, thinks=[False, False, False], widths=[0, 0, 0])
    easy = Scored(seg_lp=[-1.0, -1.0, -1.0], seg_n=[1, 1, 1], lp=-3.0, n=3)
    hard_tail = Scored(seg_lp=[-1.0, -1.0, -7.0], seg_n=[1, 1, 1], lp=-9.0, n=3)  # the same first line
    assert group_ends([thinker, actor]) == [1, 3, 3]
    own = RA3Config(penalty_c=0.0, group_size=2, reward_horizon="until_next_think")
    shared = RA3Config(penalty_c=0.0, group_size=2, reward_horizon="until_group_think")
    # boundary 0: both acted, on the same first line; until_next_think scores the thinker on line 0 only and
    # the actor on all three lines (its hard tail): a difference that boundary 0's decision did not make
    per = [p for p, _ in group_rewards([thinker, actor], [easy, hard_tail], own)]
    assert per[0][0] == -1.0 and per[1][0] == pytest.approx(-3.0)
    per = [p for p, _ in group_rewards([thinker, actor], [easy, hard_tail], shared)]
    assert per[0][0] == per[1][0] == -1.0
    adv = advantages(per, 2, False)
    assert adv[0][0] == adv[1][0] == 0.0  # the decision that made no difference gets no advantage
    # boundary 2 (both acted) still differs: the thinker's comment at 1 made line 2 likelier (an earlier
    # comment's effect, in every horizon); the span part is gone
    own_adv = advantages([p for p, _ in group_rewards([thinker, actor], [easy, hard_tail], own)], 2, False)
    assert 0 < crosstalk([thinker, actor], adv, 2) < crosstalk([thinker, actor], own_adv, 2)


def test_the_kl_to_the_initial_policy_starts_at_zero_and_grows():
    cfg = RA3Config(kl_coef=0.1, think_bias=4, estep_lr=0.02, estep_steps=2, group_size=2, estep_batch_size=2)
    cfg.max_latent_tokens = 3
    model, tokenizer = tiny_model(seed=0)
    lines: list[dict] = []
    torch.manual_seed(0)
    pool = [Snippet(e.prompt, e.code, i) for i, e in enumerate(EXAMPLES)]
    estep(__import__("copy").deepcopy(model), model, pool, policy_for(tokenizer, cfg), cfg, lines.append)
    assert lines[0]["estep_kl"] == pytest.approx(0.0, abs=1e-6) and lines[1]["estep_kl"] > 1e-4


def test_annotate_fraction_keeps_the_rest_raw_and_raw_data_mix_adds_originals(tmp_path):
    from ra3bench_ra3.trainer import mstep_examples

    ctx = run_ra3(tmp_path, ["steps=1", "estep_steps=0", "annotate_fraction=0.5", "think_bias=8"])
    rows = annotated(ctx.run_dir)
    assert [r["status"] for r in rows].count("annotated") == 2 and [r["status"] for r in rows].count("raw") == 2
    assert all(r["annotated"] == r["code"] for r in rows if r["status"] == "raw")
    mixed = mstep_examples(rows, RA3Config(raw_data_mix=0.5), 1)
    assert len(mixed) == 5 and mixed[-1].code in [r["code"] for r in rows if r["status"] == "annotated"]


def test_masking_latent_tokens_runs_through_the_ntp_hook(tmp_path):
    from ra3bench_ra3.mstep import ntp_takes_encode

    assert ntp_takes_encode()
    overrides = ["steps=1", "estep_steps=0", "think_bias=8", "mask_latent_tokens=true"]
    assert annotated(run_ra3(tmp_path, overrides).run_dir)


def test_a_killed_run_resumes_to_the_same_traces_and_losses(tmp_path):
    overrides = ["steps=4", "em_iterations=2", "estep_steps=2", "think_bias=4", "mstep_lr=3e-3", "run.save_every=1"]
    straight = run_ra3(tmp_path / "straight", overrides).run_dir
    kills = {  # during iteration 2's E-step (resumes from step 2), within its M-step (resumes from step 3),
        # before iteration 1's first M-step step (resumes from the checkpoint written after annotating)
        "estep": lambda step, m: m.get("em_iteration") == 2 and m.get("estep_step") == 2,
        "mstep": lambda step, m: step == 4 and "loss" in m,
        "annotated": lambda step, m: step == 1 and "loss" in m,
    }
    for name, dies in kills.items():
        with pytest.raises(KeyboardInterrupt):
            run_ra3(tmp_path / name, overrides, dies=dies)
        resumed = run_ra3(tmp_path / name, overrides, resume=True).run_dir
        assert annotated(resumed) == annotated(straight), name
        expected = {p["step"]: p["loss"] for p in curve(straight) if "loss" in p}
        got = {p["step"]: p["loss"] for p in curve(resumed) if "loss" in p}
        assert sorted(got) == [1, 2, 3, 4] and got == pytest.approx(expected, abs=1e-5), name
        e_steps = [(p["em_iteration"], p["estep_step"]) for p in curve(resumed) if "estep_step" in p]
        assert e_steps == [(1, 1), (1, 2), (2, 1), (2, 2)], name  # no E-step done twice, none lost


def test_a_run_killed_in_its_final_evaluation_resumes_into_that_evaluation(tmp_path, monkeypatch):
    """The last checkpoint is written before the last step's evaluation; a resume must still run it."""
    overrides = ["steps=2", "estep_steps=0", "think_bias=4", "mstep_lr=3e-3"]
    asked: list[int] = []

    def dying_evaluate(self, step, tokens_seen=0, *, force=False):
        if step == 2:
            raise KeyboardInterrupt

    def recording_evaluate(self, step, tokens_seen=0, *, force=False):
        asked.append(step)

    monkeypatch.setattr(TrainContext, "evaluate", dying_evaluate)
    with pytest.raises(KeyboardInterrupt):
        run_ra3(tmp_path, overrides)
    monkeypatch.setattr(TrainContext, "evaluate", recording_evaluate)
    run_ra3(tmp_path, overrides, resume=True)
    assert 2 in asked


def test_ra3_trains_end_to_end_through_ra3bench_train(private_cache, tmp_path):
    out = tmp_path / "run"
    overrides = [
        "model.name=tiny-random",
        "data.max_examples=4",
        "data.max_length=256",
        *(f"trainer.{o}" for o in QUICK),
        "trainer.steps=4",
        "trainer.em_iterations=2",
        "trainer.estep_steps=2",
        "trainer.think_bias=4",
        "trainer.mstep_lr=3e-3",
        "eval.every=0",
        "eval.limit=2",
        "eval.n=1",
        "eval.max_new_tokens=8",
        "eval.sandbox=local",
        "eval.workers=2",
        f"run.out={out}",
    ]
    run_dir = train("ra3bench_ra3:RA3Trainer", None, overrides)
    points = curve(run_dir)
    losses = {p["step"]: p for p in points if p["kind"] == "train" and "loss" in p}
    assert sorted(losses) == [1, 2, 3, 4] and [losses[s]["em_iteration"] for s in (1, 2, 3, 4)] == [1, 1, 2, 2]
    esteps = [p for p in points if "estep_reward" in p]
    assert [(p["em_iteration"], p["estep_step"], p["step"]) for p in esteps] == [
        (1, 1, 0),
        (1, 2, 0),
        (2, 1, 2),
        (2, 2, 2),
    ]
    for p in esteps:
        for key in ("estep_think_rate", "estep_comment_tokens", "estep_format_violation_rate", "estep_tokens"):
            assert key in p
    assert sorted({p["step"] for p in points if p["kind"] == "eval"}) == [0, 4]
    assert losses[3]["tokens_seen"] > losses[2]["tokens_seen"]  # the x-axes go on across EM iterations
    rows = annotated(run_dir)
    assert sorted({r["em_iteration"] for r in rows}) == [1, 2] and len(rows) == 8
    assert all(strip(r["annotated"], [Comment(**c) for c in r["comments"]]) == r["code"] for r in rows)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [i["iteration"] for i in manifest["ra3"]["iterations"]] == [1, 2]
    assert manifest["ra3"]["estep_tokens"] > 0
    assert (run_dir / "checkpoints" / "step-000004").is_dir()


def test_the_horizon_measurement_runs_every_horizon_from_one_set_of_rollouts():
    """benchmarks/ra3_horizons.py's core on the tiny model: only until_next_think scores an act over other
    lines than the rest of its group."""
    from ra3bench_ra3.horizon_measure import measure_horizons

    model, tokenizer = tiny_model(seed=0)
    snippets = [Snippet(PROMPT, CODES[1]) for _ in range(3)]
    out = measure_horizons(model, tokenizer, snippets, RA3Config(group_size=4, think_bias=3, max_latent_tokens=3))
    assert out["rollouts"] == 12 and out["thinks"] > 0
    for horizon in ("until_group_think", "next_line", "return_to_go"):
        assert out[horizon]["span_differs"] == 0.0
    assert out["until_next_think"]["span_differs"] > 0.0
    assert all(out[h]["noise_to_signal"] >= 0 for h in ("until_next_think", "until_group_think"))
