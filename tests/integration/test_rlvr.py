"""RLVR (plugins/rlvr) on CPU: a tiny config model, GRPO steps, rewards from the real local sandbox.

The learnable task: ``def f():\\n    return K if True else x`` is the prompt and the model writes
two more tokens. The program passes (f() == K) whenever those tokens keep the never-evaluated
``else`` branch a valid expression (``xre``, ``x.ol``) and fails on a syntax error, so a random
model passes about a fifth of the time and learns to pass more within a dozen steps.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import pytest

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[2]

from faulty_sandbox import FaultySandbox  # noqa: E402
from ra3bench_rlvr import trainer as rlvr_trainer  # noqa: E402
from ra3bench_rlvr.grpo import group_advantages  # noqa: E402
from ra3bench_rlvr.problems import PROBLEM_SETS, ProblemSet  # noqa: E402
from ra3bench_rlvr.reward import SandboxReward, sessions_on  # noqa: E402

from ra3bench.suites.base import Comparison, DataFile, Problem, Suite, TestGroup  # noqa: E402
from ra3bench.training.runner import train  # noqa: E402

SPEC = "ra3bench_rlvr:RLVRTrainer"
QUICK = [
    "model.name=tiny-random",
    "eval.suites=[mbpp+]",
    "eval.limit=1",
    "eval.n=1",
    "eval.max_new_tokens=4",
    "eval.every=0",
    "eval.sandbox=local",
    "eval.workers=2",
    "trainer.sandbox=local",
    "trainer.workers=2",
]
TOY = [
    *QUICK,
    "trainer.problems=[toy]",
    "trainer.prompt_style=completion",
    "trainer.max_new_tokens=2",
    "trainer.group_size=8",
    "trainer.prompts_per_step=4",
    "trainer.lr=1e-2",
]
STEP_METRICS = {
    "reward_mean",
    "reward_std",
    "pass_rate",
    "completion_tokens",
    "truncation_rate",
    "sandbox_time_share",
    "cache_hit_rate",
    "dropped_sandbox_error",
    "loss",
    "grad_norm",
}


class ListSuite(Suite):
    """A suite over given problems (no data file): its name, version and hash key the caches."""

    versions = {"1": DataFile("none", "0" * 64, "none", "")}  # noqa: RUF012
    default_version = "1"
    description = "problems built by a test"

    def __init__(self, name: str, problems: list[Problem]) -> None:
        super().__init__()
        self.name = name
        self._problems = problems

    def parse(self, path: Path) -> list[Problem]:
        raise NotImplementedError

    def program_from_sample(self, problem: Problem, sample: dict) -> str:
        return sample["solution"]


def value_problem(task_id: str, prompt: str, inputs: list[list], outputs: list, **extra) -> Problem:
    group = TestGroup("base", Comparison.VALUES, inputs=inputs, outputs=outputs)
    extra.setdefault("time_limit_s", 2.0)
    return Problem(task_id, prompt, prompt, "f", "", {"base": group}, **extra)


def toy_set(cfg=None, data_dir=None) -> ProblemSet:
    problems = [value_problem(f"toy/{k}", f"def f():\n    return {k} if True else x", [[]], [k]) for k in range(1, 9)]
    return ProblemSet("toy", ListSuite("toy", problems), problems, {"family": "return K if True else x<tokens>"})


@pytest.fixture
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "rlvr-cache"))


@pytest.fixture
def toy(private_cache, monkeypatch):
    monkeypatch.setitem(PROBLEM_SETS, "toy", toy_set)


@pytest.fixture
def local_sandbox():
    from ra3bench.sandbox.local import LocalSandbox

    sandbox = LocalSandbox(workers=2)
    yield sandbox
    sandbox.close()


def curve(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "curve.jsonl").read_text().splitlines()
    return [p for p in map(json.loads, lines) if p["kind"] == kind]


def test_grpo_raises_the_batch_reward_on_a_learnable_task(toy, tmp_path):
    run_dir = train(SPEC, None, [*TOY, "trainer.steps=12", f"run.out={tmp_path / 'run'}"])
    points = curve(run_dir, "train")
    assert [p["step"] for p in points] == list(range(1, 13))
    rewards = [p["reward_mean"] for p in points]
    first, last = statistics.fmean(rewards[:3]), statistics.fmean(rewards[-3:])
    assert last > first + 0.2, rewards
    for point in points:
        assert set(point) >= STEP_METRICS, point
        assert 0 < point["sandbox_time_share"] < 1 and point["dropped_sandbox_error"] == 0
        assert point["pass_rate"] == point["reward_mean"]  # binary reward: the mean is the pass rate
    assert sorted({p["step"] for p in curve(run_dir, "eval")}) == [0, 12]  # pass@k comes from ctx.evaluate
    rlvr = json.loads((run_dir / "manifest.json").read_text())["rlvr"]
    assert rlvr["problems"]["toy"]["task_ids"] == [f"toy/{k}" for k in range(1, 9)]
    assert rlvr["reward"]["mode"] == "binary" and rlvr["init"] == {"kind": "model.name", "model": "tiny-random"}


SENTINEL = "the hostile program never returns this"
FOOLING = {  # programs that try to fool the judge rather than escape the sandbox
    "exit(0) before the tests": "import sys\nsys.exit(0)\ndef f(*args):\n    return None\n",
    "os._exit(0) during the call": "def f(*args):\n    import os\n    os._exit(0)\n",
    "__eq__ always True": (
        "class Yes:\n    def __eq__(self, other):\n        return True\ndef f(*args):\n    return Yes()\n"
    ),
    "str subclass equal to everything": (
        "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def f(*args):\n    return S('x')\n"
    ),
    "prints fake success": 'def f(*args):\n    print(\'{"status": "pass"}\')\n    return None\n',
}


def test_hostile_programs_never_earn_a_reward(private_cache, local_sandbox):
    """Every attack of the sandbox issue, run with its own arguments, on a problem whose expected value it never
    returns: reward 0, or no reward (sandbox_error), never 1. A correct program on the same problem gets 1."""
    from ra3bench.sandbox.attacks import ATTACKS, Probe, backend_capabilities, plant_env_secret
    from ra3bench.sandbox.harness.protocol import decode_value

    caps = backend_capabilities(local_sandbox)
    probes, problems, programs = [], [], []
    try:
        for i, attack in enumerate(ATTACKS):
            if attack.safe_only_with and not caps & set(attack.safe_only_with):
                continue  # it would harm the host here; the sandbox check reports it as not run
            probe = Probe(local_sandbox, plant_env_secret())
            probes.append(probe)
            if attack.setup is not None:
                attack.setup(probe)
            job = attack.job(probe)
            args = [decode_value(call) for call in job.calls]
            problems.append(value_problem(f"attack/{i}", "", args, [SENTINEL] * len(args), memory_limit_mb=512))
            problems[-1].time_limit_s = job.time_limits_s[0]
            programs.append(job.program)
        for name, program in FOOLING.items():
            problems.append(value_problem(f"fool/{name}", "", [[]], [SENTINEL]))
            programs.append(program)
        problems.append(value_problem("honest", "", [[]], [SENTINEL]))
        programs.append(f"def f(*args):\n    return {SENTINEL!r}\n")
        reward = SandboxReward(
            [ProblemSet("hostile", ListSuite("hostile", problems), problems)], sessions_on(local_sandbox)
        )
        try:
            batch = reward.score([("hostile", p, prog) for p, prog in zip(problems, programs, strict=True)])
        finally:
            reward.close()
    finally:
        for probe in probes:
            probe.close()
    *hostile, honest = zip(problems, batch.rewards, batch.statuses, strict=True)
    assert honest[1:] == (1.0, "pass")
    assert len(hostile) >= 10 + len(FOOLING)
    for problem, value, status in hostile:
        assert value in (0.0, None), (problem.task_id, status)
        assert (value is None) == (status == "sandbox_error"), (problem.task_id, status)


def test_sandbox_errors_are_dropped_not_scored_zero(private_cache, local_sandbox):
    sandbox = FaultySandbox(local_sandbox)
    reward = SandboxReward([toy_set()], sessions_on(sandbox))
    problem = toy_set().problems[0]  # f() must return 1
    good, bad = "def f():\n    return 1\n", "def f():\n    return 2\n"
    faulty = good + "# FAULT\n"  # would pass: a 0 here would punish a correct program
    try:
        batch = reward.score([("toy", problem, p) for p in (good, faulty, bad, faulty)])
        assert batch.rewards == [1.0, None, 0.0, None]
        assert batch.dropped == 2 and batch.pass_rate == 0.5
        assert batch.statuses.count("sandbox_error") == 2
        assert sandbox.faulted == 3  # one run and two retries; the identical copy was not run again
        again = reward.score([("toy", problem, p) for p in (good, faulty, bad, faulty)])
        assert again.rewards == batch.rewards and again.executed == 1  # a fault is never cached
    finally:
        reward.close()
    advantages, keep = group_advantages(batch.rewards, 4)
    assert keep == [True, False, True, False]
    assert advantages[1] == advantages[3] == 0.0
    assert advantages[0] == pytest.approx(0.7071, abs=1e-3) and advantages[2] == -advantages[0]


def test_the_pass_fraction_reward_counts_tests(private_cache, local_sandbox):
    problem = value_problem("half", "", [[0], [1], [2], [3]], [0, 1, 2, 3])
    reward = SandboxReward(
        [ProblemSet("t", ListSuite("t", [problem]), [problem])], sessions_on(local_sandbox), "fraction"
    )
    halves = "def f(x):\n    return x if x < 2 else -1\n"
    try:
        batch = reward.score([("t", problem, halves), ("t", problem, "def f(x):\n    return x\n")])
    finally:
        reward.close()
    assert batch.rewards == [0.5, 1.0] and batch.pass_rate == 0.5


def test_a_training_run_drops_faulted_samples_from_the_update(toy, tmp_path, monkeypatch):
    def unlucky(program: str) -> bool:  # about a third of the programs, the same ones every time
        return int(hashlib.sha256(program.encode()).hexdigest(), 16) % 3 == 0

    def faulty_sandbox(kind, workers, ray_address=""):  # the run's one sandbox: rewards and evaluations
        from ra3bench.sandbox.local import LocalSandbox

        return FaultySandbox(LocalSandbox(workers=2), unlucky)

    seen = []
    update = rlvr_trainer.GRPOLoop.update

    def spy(self, rollouts, advantages, kept):
        seen.append((len(rollouts), len(kept)))
        return update(self, rollouts, advantages, kept)

    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))  # no verdict cached by another test
    monkeypatch.setattr("ra3bench.training.evaluation.open_sandbox", faulty_sandbox)
    monkeypatch.setattr(rlvr_trainer.GRPOLoop, "update", spy)
    run_dir = train(SPEC, None, [*TOY, "trainer.steps=3", f"run.out={tmp_path / 'run'}"])
    dropped = [p["dropped_sandbox_error"] for p in curve(run_dir, "train")]
    assert sum(dropped) > 0
    assert [n - kept for n, kept in seen] == dropped  # exactly the faulted samples left the update


def test_resume_continues_the_same_run(toy, tmp_path):
    """With a KL term and two clipped updates per batch: the reference stays the initial model across the resume."""
    overrides = [*TOY, "trainer.steps=4", "run.save_every=2", f"run.out={tmp_path / 'run'}"]
    overrides += ["trainer.beta=0.1", "trainer.updates_per_batch=2"]
    run_dir = train(SPEC, None, overrides)
    before = {p["step"]: p for p in curve(run_dir, "train")}
    (run_dir / "checkpoints" / "LATEST").write_text("step-000002\n")  # as if killed after step 2
    resumed = {p["step"]: p for p in curve(train(SPEC, None, overrides, resume=True), "train")}
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):
        assert resumed[step]["reward_mean"] == before[step]["reward_mean"]
        assert resumed[step]["loss"] == pytest.approx(before[step]["loss"], abs=1e-5)
        assert resumed[step]["kl"] == pytest.approx(before[step]["kl"], abs=1e-6) and resumed[step]["kl"] > 0


def test_ra3bench_train_with_the_rlvr_trainer_end_to_end(private_cache, tmp_path):
    """The CLI, the shipped config, MBPP training problems (601..974) with their own tests."""
    from ra3bench.cli.main import main

    out = tmp_path / "run"
    config = REPO / "examples" / "train" / "rlvr_smollm2.yaml"
    quick = [o for o in QUICK if not o.startswith("eval.suites")]
    overrides = ["trainer.max_problems=2", "trainer.steps=2", "trainer.group_size=2", "trainer.prompts_per_step=2"]
    overrides += ["trainer.max_new_tokens=16", "eval.batch_size=2", f"run.out={out}"]
    code = main(["train", "--trainer", SPEC, "--config", str(config), *quick, *overrides])
    assert code == 0
    points = curve(out, "train")
    assert [p["step"] for p in points] == [1, 2]
    assert all(set(p) >= STEP_METRICS for p in points)
    evals = curve(out, "eval")
    assert sorted({p["step"] for p in evals}) == [0, 2] and {p["suite"] for p in evals} == {"mbpp+"}
    manifest = json.loads((out / "manifest.json").read_text())
    chosen = manifest["rlvr"]["problems"]["mbpp-train"]
    assert chosen["n"] == 2 and all(601 <= int(t.split("/")[1]) <= 974 for t in chosen["task_ids"])
    assert manifest["rlvr"]["prompt_style"] == "chat"  # the tiny tokenizer has a chat template
    assert (out / "checkpoints" / "step-000002" / "trainer_state.pt").exists()


def test_init_loads_a_full_checkpoint_or_merges_a_lora_adapter(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from ra3bench_rlvr.init import load_init

    from ra3bench.tiny import tiny_model

    trained, _ = tiny_model(seed=1)
    trained.save_pretrained(tmp_path / "full")
    model, _ = tiny_model(seed=0)
    assert load_init(model, str(tmp_path / "full"))["kind"] == "full"
    for (name, a), b in zip(model.state_dict().items(), trained.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    adapted = get_peft_model(tiny_model(seed=0)[0], LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "lora")
    merged = {k: v.clone() for k, v in adapted.merge_and_unload().state_dict().items()}
    model, _ = tiny_model(seed=0)
    record = load_init(model, str(tmp_path / "lora"))
    assert record["kind"] == "lora" and record["r"] == 4
    state = model.state_dict()
    assert all(torch.allclose(state[k], v, atol=1e-6) for k, v in merged.items())
    assert not torch.equal(
        state["model.layers.0.self_attn.q_proj.weight"],
        tiny_model(seed=0)[0].state_dict()["model.layers.0.self_attn.q_proj.weight"],
    )


def test_bad_trainer_settings_are_reported_at_once_before_loading(tmp_path):
    from ra3bench.config import ConfigError
    from ra3bench.training.runner import load_train_config

    with pytest.raises(ConfigError) as caught:
        load_train_config(SPEC, None, ["trainer.group_size=1", "trainer.problems=[mbpp-test]", "trainer.reward=dense"])
    (line,) = [e for e in caught.value.errors if e.startswith("trainer")]
    for needle in ("group_size >= 2", "'mbpp-test'", "binary or fraction"):
        assert needle in line


def test_training_problems_that_are_also_evaluated_are_refused():
    from types import SimpleNamespace

    from ra3bench.errors import UsageError

    shared = value_problem("Mbpp/601", "", [[]], [1])
    plan = SimpleNamespace(suite=SimpleNamespace(name="mbpp+"), problems=[shared])
    ctx = SimpleNamespace(schedule=SimpleNamespace(plans=[plan]))
    with pytest.raises(UsageError, match="also evaluated on mbpp\\+ \\(Mbpp/601\\)"):
        rlvr_trainer.refuse_overlap([("mbpp-train", "mbpp-train", shared)], ctx)
    rlvr_trainer.refuse_overlap([("toy", "toy", value_problem("toy/1", "", [[]], [1]))], ctx)


def test_a_pad_after_a_stop_string_is_not_a_sampled_token():
    """SmolLM2 pads with its EOS id: after a stop string that pad must not enter the loss as if sampled."""
    from ra3bench_rlvr.rollout import _rollout

    from ra3bench.prompts import Prompt, PromptStyle
    from ra3bench.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    eos = tok.eos_token_id
    problem = value_problem("toy/1", "", [[]], [1])
    prompt = Prompt("toy/1", PromptStyle.CHAT, response_prefix="```python\n", stop=["\n```"])
    code = tok.encode("def f():\n    return 1\n```", add_special_tokens=False)
    stopped = _rollout("toy", problem, prompt, [1], [*code, eos, eos], tok, PromptStyle.CHAT, {eos})
    assert stopped.completion_ids == code and stopped.finish == "stop"
    assert stopped.program == "def f():\n    return 1\n"
    ended = _rollout("toy", problem, prompt, [1], [*code[:-2], eos, eos], tok, PromptStyle.CHAT, {eos})
    assert ended.completion_ids == [*code[:-2], eos] and ended.finish == "eos"


def test_skipping_samples_of_advantage_zero_leaves_the_update_as_it_was():
    """Groups that all passed or all failed add nothing to GRPO's loss: the update skips their
    forward/backward, and the weights after two updates (one batch with a signal, one without,
    where only the optimizer's momentum moves them) equal those of the full computation."""
    import copy
    import random
    from types import SimpleNamespace

    import torch
    from ra3bench_rlvr.config import RLVRConfig
    from ra3bench_rlvr.rollout import Rollout
    from ra3bench_rlvr.trainer import GRPOLoop

    from ra3bench.tiny import tiny_model

    model, tokenizer = tiny_model()
    cfg = RLVRConfig(group_size=4, micro_batch=3, lr=1e-2)
    rng = random.Random(0)

    def rollout() -> Rollout:
        prompt = [rng.randrange(5, 300) for _ in range(rng.randint(3, 6))]
        return Rollout("toy", None, prompt, [rng.randrange(5, 300) for _ in range(rng.randint(1, 5))], "eos", "")

    batches = [[rollout() for _ in range(8)] for _ in range(2)]
    signal, none = group_advantages([0, 0, 0, 0, 1, 0, 1, 1], 4)[0], group_advantages([1] * 4 + [0] * 4, 4)[0]
    assert any(signal) and not any(none)

    def trained(skip: bool) -> tuple[dict, list[dict]]:
        m = copy.deepcopy(model)
        loop = GRPOLoop(SimpleNamespace(model=m, tokenizer=tokenizer), cfg, None, [], None)
        loop.params = [p for p in m.parameters() if p.requires_grad]
        # SGD with momentum: the same momentum step on an empty batch as AdamW, and, unlike Adam's
        # normalised step, no amplification of float noise in near-zero gradients
        loop.optimizer = torch.optim.SGD(loop.params, lr=cfg.lr, momentum=0.9)
        loop.scheduler = torch.optim.lr_scheduler.LambdaLR(loop.optimizer, lambda _: 1.0)
        loop.reference = None
        if not skip:
            loop.contributing = lambda kept, advantages: kept
        stats = [loop.update(batch, adv, list(range(8))) for batch, adv in zip(batches, (signal, none), strict=True)]
        return {k: v.detach().clone() for k, v in m.state_dict().items()}, stats

    (skipped, skipped_stats), (full, full_stats) = trained(skip=True), trained(skip=False)
    for name, value in full.items():
        assert torch.allclose(skipped[name], value, atol=1e-7), name
    assert not torch.equal(full["model.embed_tokens.weight"], model.state_dict()["model.embed_tokens.weight"])
    for a, b in zip(skipped_stats, full_stats, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["grad_norm"] == pytest.approx(b["grad_norm"])


def test_rollouts_of_the_fast_path_train_as_the_static_path_did():
    """Rollouts now sample through the evaluation's continuous batching (``sample_sequences``). Greedy,
    its token ids are those of transformers' static ``generate`` (the path before), and the policy
    scores them the same: the same loss and gradient from the same weights. (Sampled, the two draw
    different random numbers; the log-probabilities always come from the training model.)"""
    import copy
    from types import SimpleNamespace

    import torch
    from ra3bench_rlvr import rollout
    from ra3bench_rlvr.config import RLVRConfig
    from ra3bench_rlvr.trainer import GRPOLoop

    from ra3bench.prompts import PromptStyle
    from ra3bench.tiny import tiny_model

    model, tokenizer = tiny_model()
    items = [("toy", "toy", p) for p in toy_set().problems]  # one rollout each: generate's greedy gives one
    settings = dict(group_size=1, style=PromptStyle.COMPLETION, max_new_tokens=6, temperature=0.0, top_p=1.0)
    fast = rollout.sample(model, tokenizer, items, generation_batch=3, **settings)
    static = rollout.sample(model, tokenizer, items, generation_batch=8, batching="static", **settings)
    assert [(r.prompt_ids, r.completion_ids, r.finish) for r in fast] == [
        (r.prompt_ids, r.completion_ids, r.finish) for r in static
    ]

    cfg = RLVRConfig(group_size=4, micro_batch=5, lr=1e-2)
    advantages = [1.0, -1.0, 0.5, -0.5] * 2

    def trained(rollouts) -> tuple[dict, dict]:
        m = copy.deepcopy(model)
        m.train()
        loop = GRPOLoop(SimpleNamespace(model=m, tokenizer=tokenizer), cfg, None, [], None)
        loop.params = [p for p in m.parameters() if p.requires_grad]
        loop.optimizer = torch.optim.SGD(loop.params, lr=cfg.lr)
        loop.scheduler = torch.optim.lr_scheduler.LambdaLR(loop.optimizer, lambda _: 1.0)
        loop.reference = None
        stats = loop.update(rollouts, advantages, list(range(len(rollouts))))
        return stats, {k: v.detach().clone() for k, v in m.state_dict().items()}

    (fast_stats, fast_weights), (static_stats, static_weights) = trained(fast), trained(static)
    assert fast_stats["loss"] == static_stats["loss"] and fast_stats["grad_norm"] == static_stats["grad_norm"]
    assert all(torch.equal(fast_weights[k], static_weights[k]) for k in fast_weights)
