"""Experiment trackers: a training run's curve also goes to TensorBoard, W&B or MLflow (``run.report_to``).

``curve.jsonl`` stays the source of truth: :class:`~ra3bench.training.curves.CurveLog` writes each
line there first, then hands it to :class:`Trackers`, which passes it on to every tracker the run
names. As in TRL / transformers' ``report_to``, each tracker takes its settings from its own
environment variables (W&B: ``WANDB_MODE=offline``, ``WANDB_PROJECT``, ``WANDB_DIR``; MLflow:
``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``), and its package is imported only when named.

What a tracker receives, at the curve's optimizer step:

* each ``train`` line as ``train/<metric>`` (``train/loss``, ``train/lr``, ``train/tokens_seen``...);
* each ``eval`` line as ``eval/<suite>/<group>/pass@<k>`` with ``.../ci_low`` and ``.../ci_high``
  (MLflow allows fewer characters in a name and cannot nest one under another:
  ``eval/mbpp_/plus/pass_1`` as transformers would write it, ``..._ci_low``, ``..._ci_high``);
* once, the resolved config (W&B config, MLflow params) and the run's identity (its folder, git
  commit, model, data and task hashes: W&B config ``ra3bench.*``, MLflow tags ``ra3bench.*``), so a
  tracked number leads back to the run folder and its manifest.

A resumed run (``--resume``) continues the same tracked run: its id is kept in ``tracking.json`` in
the run folder. What the interrupted session logged after the checkpoint is cut from
``curve.jsonl`` and logged again by the resumed session; TensorBoard drops its own copies
(``purge_step``), W&B and MLflow cannot rewind a run, so they keep the first values of those points
and are not sent them twice. A tracker that fails (its folder is gone, the disk is full) is dropped
with one warning on stderr; training and ``curve.jsonl`` go on.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

STATE = "tracking.json"
TENSORBOARD = "tensorboard"
# tracker name -> (module it imports, what to pip install)
PACKAGES = {
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow-skinny"),
    "tensorboard": ("tensorboard", "tensorboard"),
}
WANDB_STEP = "train/global_step"  # W&B's x axis for every key, as transformers' WandbCallback defines it


def missing_packages(names: Iterable[str]) -> list[str]:
    """The trackers among ``names`` whose package cannot be imported here."""
    return [name for name in names if name in PACKAGES and importlib.util.find_spec(PACKAGES[name][0]) is None]


def install_hint(names: Sequence[str]) -> str:
    """One line: which trackers are missing and the pip command that adds them."""
    packages = " ".join(PACKAGES[name][1] for name in names)
    verb = "is" if len(names) == 1 else "are"
    return f'report_to: {", ".join(names)} {verb} not installed; pip install {packages} (or "ra3bench[tracking]")'


def eval_tag(suite: str, group: str, k: int) -> str:
    return f"eval/{suite}/{group}/pass@{k}"


class Tracker(abc.ABC):
    """One tracker of a run: metrics at a step, the run's config and identity once, close."""

    name: ClassVar[str] = "?"
    rewinds: ClassVar[bool] = False  # rewind(step) drops what it holds after ``step``

    def log_train(self, step: int, metrics: Mapping[str, float]) -> None:
        self.log_metrics(step, {f"train/{name}": value for name, value in metrics.items()})

    def log_eval(
        self, step: int, suite: str, group: str, k: int, pass_at_k: float, ci_low: float, ci_high: float
    ) -> None:
        tag = eval_tag(suite, group, k)
        self.log_metrics(step, {tag: pass_at_k, f"{tag}/ci_low": ci_low, f"{tag}/ci_high": ci_high})

    @abc.abstractmethod
    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    @abc.abstractmethod
    def log_run(self, config: Mapping[str, Any], identity: Mapping[str, str]) -> None:
        """The resolved config and the run's identity (:func:`run_identity`), once per session."""

    def rewind(self, step: int) -> None:
        raise NotImplementedError(f"{self.name} cannot rewind a run")

    @abc.abstractmethod
    def close(self) -> None: ...


class TensorBoardTracker(Tracker):
    """Event files under ``folder/tensorboard`` (torch's SummaryWriter)."""

    name = "tensorboard"
    rewinds = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer = self._open()

    def _open(self, purge_step: int | None = None) -> Any:
        from torch.utils.tensorboard import SummaryWriter  # lazy: torch and tensorboard are optional

        return SummaryWriter(log_dir=str(self.folder / TENSORBOARD), purge_step=purge_step)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for tag, value in metrics.items():
            self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def log_run(self, config: Mapping[str, Any], identity: Mapping[str, str]) -> None:
        pass  # the run folder holds config.yaml and manifest.json next to the event files

    def rewind(self, step: int) -> None:
        self._writer.close()
        self._writer = self._open(purge_step=step + 1)  # TensorBoard hides its events after ``step``

    def close(self) -> None:
        self._writer.close()


class WandbTracker(Tracker):
    """A W&B run; ``WANDB_MODE=offline`` writes it under ``WANDB_DIR`` (default: the run folder) for
    ``wandb sync`` later. Every key is drawn against ``train/global_step``, the curve's step."""

    name = "wandb"

    def __init__(self, folder: Path) -> None:
        import wandb

        known = read_state(folder).get(self.name, {})
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "ra3bench",
            name=os.environ.get("WANDB_NAME") or folder.name,
            dir=os.environ.get("WANDB_DIR") or str(folder),
            id=known.get("id") or os.environ.get("WANDB_RUN_ID") or None,
            resume="allow",
            reinit="create_new",
        )
        self.run.define_metric(WANDB_STEP)
        self.run.define_metric("*", step_metric=WANDB_STEP, step_sync=True)
        write_state(folder, self.name, {"id": self.run.id, "project": self.run.project})

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log({**metrics, WANDB_STEP: step})

    def log_run(self, config: Mapping[str, Any], identity: Mapping[str, str]) -> None:
        nested = {key.removeprefix("ra3bench."): value for key, value in identity.items()}
        self.run.config.update({**config, "ra3bench": nested}, allow_val_change=True)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker(Tracker):
    """An MLflow run at ``MLFLOW_TRACKING_URI``, or in a file store under ``folder/mlruns``; the
    experiment is ``MLFLOW_EXPERIMENT_NAME`` (default ``ra3bench``)."""

    name = "mlflow"

    def __init__(self, folder: Path) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # mlflow-skinny 3 refuses a file store unless asked; this default is one
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (folder / "mlruns").resolve().as_uri()
        self.client = MlflowClient(uri)
        self.run_id = read_state(folder).get(self.name, {}).get("run_id") or os.environ.get("MLFLOW_RUN_ID")
        try:
            resumed = self.run_id is not None and self.client.get_run(self.run_id) is not None
        except MlflowException:
            resumed = False
        if resumed:
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            tags = json.loads(os.environ.get("MLFLOW_TAGS") or "{}")
            run = self.client.create_run(self._experiment_id(), run_name=folder.name, tags=tags)
            self.run_id = run.info.run_id
        write_state(folder, self.name, {"run_id": self.run_id, "tracking_uri": uri})

    def _experiment_id(self) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "ra3bench"
        experiment = self.client.get_experiment_by_name(name)
        return experiment.experiment_id if experiment else self.client.create_experiment(name)

    def log_eval(
        self, step: int, suite: str, group: str, k: int, pass_at_k: float, ci_low: float, ci_high: float
    ) -> None:
        # a file store keeps a metric as a file named by its key: pass@1/ci_low cannot sit under pass@1
        tag = eval_tag(suite, group, k)
        self.log_metrics(step, {tag: pass_at_k, f"{tag}_ci_low": ci_low, f"{tag}_ci_high": ci_high})

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(mlflow_key(tag), float(value), now, step) for tag, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_run(self, config: Mapping[str, Any], identity: Mapping[str, str]) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        # a param cannot change once logged: a resumed run keeps the first session's values
        logged = self.client.get_run(self.run_id).data.params
        params = [
            Param(key, value[:MAX_PARAM_VAL_LENGTH])
            for key, value in ((mlflow_key(k), v) for k, v in flatten(config).items())
            if key not in logged
        ]
        tags = [RunTag(mlflow_key(key), value) for key, value in identity.items()]
        for i in range(0, max(len(params), len(tags)), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = slice(i, i + MAX_PARAMS_TAGS_PER_BATCH)
            self.client.log_batch(self.run_id, params=params[chunk], tags=tags[chunk])

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")


OPENERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


class Trackers:
    """The run's trackers behind one call each. A tracker that raises is dropped with one warning
    on stderr: the caller (the curve) has already written the point to ``curve.jsonl``."""

    def __init__(self, trackers: Sequence[Tracker] = ()) -> None:
        self.trackers = list(trackers)
        # points an interrupted session sent already, that a resumed one logs again: not sent twice
        self._sent: dict[str, Counter] = {t.name: Counter() for t in self.trackers}

    @classmethod
    def open(cls, names: Sequence[str], folder: Path) -> Trackers:
        opened = []
        for name in names:
            try:
                opened.append(OPENERS[name](folder))
            except Exception as exc:  # a tracker must not stop training: curve.jsonl is the record
                hint = f"; {install_hint([name])}" if isinstance(exc, ImportError) else ""
                _warn(f"{name} tracking could not start ({_one_line(exc)}){hint}; curve.jsonl keeps every point")
        return cls(opened)

    def log(self, record: Mapping[str, Any]) -> None:
        """One ``curve.jsonl`` line, to every tracker that does not hold it already."""
        key = record_key(record)
        step = int(record["step"])
        for tracker in list(self.trackers):
            if self._sent[tracker.name][key] > 0:
                self._sent[tracker.name][key] -= 1
                continue
            if record["kind"] == "eval":
                self._call(
                    tracker,
                    tracker.log_eval,
                    step,
                    *(record[f] for f in ("suite", "group", "k", "pass_at_k", "ci_low", "ci_high")),
                )
            else:
                self._call(tracker, tracker.log_train, step, train_metrics(record))

    def log_run(self, config: Mapping[str, Any], identity: Mapping[str, str]) -> None:
        for tracker in list(self.trackers):
            self._call(tracker, tracker.log_run, config, identity)

    def rewind(self, step: int, dropped: Sequence[Mapping[str, Any]]) -> None:
        """``curve.jsonl`` lost ``dropped`` (logged after the checkpoint at ``step``): a tracker that
        rewinds drops what it holds after ``step``; the others keep those points and are not sent
        them again (nor is any tracker sent again a point at ``step`` itself)."""
        for tracker in list(self.trackers):
            if tracker.rewinds:
                self._call(tracker, tracker.rewind, step)
                held = [r for r in dropped if int(r["step"]) <= step]
            else:
                held = list(dropped)
                if held:
                    steps = sorted({int(r["step"]) for r in held})
                    _say(
                        f"{tracker.name} keeps the {len(held)} points logged at steps {steps[0]}-{steps[-1]} before "
                        "the interruption (it cannot rewind a run); curve.jsonl holds the resumed values"
                    )
            self._sent[tracker.name] = Counter(record_key(r) for r in held)

    def close(self) -> None:
        for tracker in list(self.trackers):
            self._call(tracker, tracker.close)
        self.trackers = []

    def _call(self, tracker: Tracker, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:  # the JSONL has the point already; the tracker is dropped
            self.trackers.remove(tracker)
            _warn(f"{tracker.name} tracking stopped ({_one_line(exc)}); curve.jsonl keeps every point")


def record_key(record: Mapping[str, Any]) -> tuple:
    if record.get("kind") == "eval":
        return ("eval", record["step"], record["suite"], record["group"], record["k"])
    return (record.get("kind"), record["step"])


def train_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a ``train`` line a tracker can plot (tokens_seen and wall_time_s included)."""
    return {
        name: value
        for name, value in record.items()
        if name not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def run_identity(manifest: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """What ties a tracked number to its run: the folder, code, model, data and evaluated tasks."""
    identity = {"ra3bench.run_dir": str(Path(folder).resolve())}
    for key in ("trainer", "created"):
        if key in manifest:
            identity[f"ra3bench.{key}"] = str(manifest[key])
    code = manifest.get("code") or {}
    identity.update({f"ra3bench.{key}": str(code[key]) for key in ("git_sha", "git_dirty", "ra3bench") if key in code})
    for key, value in flatten(manifest.get("model") or {}, "ra3bench.model").items():
        identity["ra3bench.model" if key == "ra3bench.model.model" else key] = value
    data = manifest.get("data") or {}
    facts = ("source", "data_file", "source_sha256", "examples_sha256")
    identity.update({f"ra3bench.data.{key}": str(data[key]) for key in facts if key in data})
    for suite, facts in ((manifest.get("evaluation") or {}).get("suites") or {}).items():
        if isinstance(facts, Mapping) and "tasks_sha256" in facts:
            identity[f"ra3bench.eval.{suite}.tasks_sha256"] = str(facts["tasks_sha256"])
    return identity


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested sections as dotted keys (``model.lora.r``), values as text (lists as JSON)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value if isinstance(value, str) else json.dumps(value, default=str)
    return flat


def mlflow_key(name: str) -> str:
    """A name MLflow accepts (letters, digits, ``_ - . : /`` and spaces), as transformers' MLflowCallback
    writes it: ``eval/mbpp+/plus/pass@1`` -> ``eval/mbpp_/plus/pass_1``."""
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", name)


def read_state(folder: Path) -> dict[str, dict]:
    """``tracking.json``: each tracker's run id, so that ``--resume`` continues the same run."""
    try:
        state = json.loads((Path(folder) / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(folder: Path, name: str, facts: dict) -> None:
    path = Path(folder) / STATE
    tmp = path.with_name(f".{STATE}.tmp")
    tmp.write_text(json.dumps(read_state(folder) | {name: facts}, indent=2) + "\n")
    tmp.replace(path)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _warn(message: str) -> None:
    _say(f"warning: {message}")


def _say(message: str) -> None:
    print(f"ra3bench: {message}", file=sys.stderr, flush=True)
