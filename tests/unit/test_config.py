"""Typed configs: defaults < YAML file < overrides, every problem reported at once, one line each."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from ra3bench.config import ConfigError, config_to_dict, load_config, save_config
from ra3bench.errors import UsageError


@dataclass
class Lora:
    r: int = 8
    alpha: float = 16.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class Model:
    name: str = "smollm2-135m"
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    lora: Lora | None = None
    revision: str | None = None


@dataclass
class Train:
    lr: float = 3e-4
    epochs: int = 1
    bf16: bool = True
    eval_steps: list[int] = field(default_factory=lambda: [10, 100])
    weights: list[float] = field(default_factory=list)
    max_steps: int | None = None
    output: Path = Path("runs")


@dataclass
class Run:
    model: Model = field(default_factory=Model)
    train: Train = field(default_factory=Train)
    seed: int = 0


@dataclass
class Needs:
    suite: str
    limit: int = 10


@dataclass
class Checked:
    k: int = 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be at least 1")


@dataclass
class Grpo:
    group_size: int = 8
    kl: float = 0.04


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def errors_of(*args, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def test_defaults_alone_give_the_schema_defaults():
    assert load_config(Run) == Run()


def test_yaml_beats_defaults_and_overrides_beat_yaml(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.001\n  epochs: 3\nseed: 7\n")
    config = load_config(Run, path, ["train.lr=1e-4", "seed=9"])
    assert config.train.lr == pytest.approx(1e-4)  # override over file
    assert config.train.epochs == 3  # file over default
    assert config.seed == 9
    assert config.model == Model()  # untouched section keeps its defaults
    assert config.train.bf16 is True


def test_later_overrides_win_and_data_stands_in_for_a_file():
    config = load_config(Run, overrides=["seed=1", "seed=2"], data={"seed": 5, "train": {"epochs": 4}})
    assert (config.seed, config.train.epochs) == (2, 4)


def test_an_empty_override_gives_a_str_field_the_empty_string_and_an_optional_none():
    """`--each trainer.init=base:,...` sets `trainer.init=` (start from model.name)."""
    config = load_config(Run, overrides=["model.name=", "model.revision="])
    assert config.model.name == "" and config.model.revision is None


def test_override_values_are_read_as_yaml_then_checked():
    config = load_config(
        Run,
        overrides=[
            "train.lr=1e-4",  # PyYAML reads this as a str; a float field takes it
            "train.epochs=5",
            "train.bf16=no",
            "model.name=123",  # a str field keeps the text
            "model.revision=007",
            "train.max_steps=50",
            "train.output=/tmp/out",
        ],
    )
    assert config.train.lr == pytest.approx(1e-4) and isinstance(config.train.lr, float)
    assert config.train.epochs == 5
    assert config.train.bf16 is False
    assert config.model.name == "123"
    assert config.model.revision == "007"
    assert config.train.max_steps == 50
    assert config.train.output == Path("/tmp/out")


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("1", True), ("yes", True), ("0", False), ("False", False)]
)
def test_bool_overrides(text, expected):
    assert load_config(Run, overrides=[f"train.bf16={text}"]).train.bf16 is expected


def test_ints_are_accepted_for_floats_and_null_for_optionals(tmp_path):
    path = write(tmp_path, "train: {lr: 1, max_steps: 10}\nmodel: {revision: main}\n")
    config = load_config(Run, path, ["model.revision=null", "train.max_steps=none"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.model.revision is None and config.train.max_steps is None


def test_lists_from_yaml_and_from_overrides(tmp_path):
    path = write(tmp_path, "train:\n  eval_steps: [1, 2, 3]\n  weights: [0.5, 1]\n")
    assert load_config(Run, path).train.eval_steps == [1, 2, 3]
    assert load_config(Run, path).train.weights == [0.5, 1.0]
    assert load_config(Run, path, ["train.eval_steps=1,5,10"]).train.eval_steps == [1, 5, 10]
    assert load_config(Run, path, ["train.eval_steps=[1, 5]"]).train.eval_steps == [1, 5]
    assert load_config(Run, path, ["train.eval_steps=7"]).train.eval_steps == [7]
    assert load_config(Run, path, ["train.eval_steps=[]"]).train.eval_steps == []
    assert load_config(Run, overrides=["model.lora.targets=q_proj,k_proj"]).model.lora.targets == ["q_proj", "k_proj"]


def test_a_list_with_a_bad_item_names_the_item():
    (line,) = errors_of(Run, overrides=["train.eval_steps=1,x,3"])
    assert line.startswith("train.eval_steps[1]: expected an int, got 'x' (str)")


def test_literal_accepts_its_choices_and_suggests_the_closest():
    assert load_config(Run, overrides=["model.dtype=fp32"]).model.dtype == "fp32"
    (line,) = errors_of(Run, overrides=["model.dtype=fp23"])
    assert "model.dtype: expected one of 'bf16', 'fp16', 'fp32'" in line
    assert "did you mean 'fp32'?" in line


def test_optional_section_from_yaml_is_built_from_its_defaults(tmp_path):
    path = write(tmp_path, "model:\n  lora: {r: 16}\n")
    assert load_config(Run, path).model.lora == Lora(r=16)
    assert load_config(Run, write(tmp_path, "model: {lora: null}\n")).model.lora is None
    assert load_config(Run, write(tmp_path, "model: {lora: {}}\n")).model.lora == Lora()


def test_override_creates_an_optional_section_from_defaults():
    config = load_config(Run, overrides=["model.lora.r=16", "model.lora.alpha=32"])
    assert config.model.lora == Lora(r=16, alpha=32.0)
    assert load_config(Run, overrides=["model.lora.r=16", "model.lora=null"]).model.lora is None


def test_override_merges_into_a_section_the_file_made(tmp_path):
    path = write(tmp_path, "model:\n  lora: {r: 4, alpha: 8}\n")
    assert load_config(Run, path, ["model.lora.r=2"]).model.lora == Lora(r=2, alpha=8.0)


def test_unknown_keys_suggest_the_closest_and_list_the_known(tmp_path):
    (line,) = errors_of(Run, write(tmp_path, "train: {lrr: 0.1}\n"))
    assert line.startswith("train.lrr: unknown key; did you mean 'lr'?")
    assert "keys of 'train': lr, epochs, bf16" in line
    (line,) = errors_of(Run, overrides=["sed=1"])
    assert "sed: unknown key; did you mean 'seed'?" in line and "top-level keys: model, train, seed" in line
    assert "(override 'sed=1')" in line


def test_wrong_types_name_the_key_the_expected_type_and_the_value(tmp_path):
    (line,) = errors_of(Run, write(tmp_path, "train: {lr: fast}\n"))
    assert line == "train.lr: expected a float, got 'fast' (str)"
    assert errors_of(Run, data={"train": {"epochs": 1.5}}) == ["train.epochs: expected an int, got 1.5 (float)"]
    assert errors_of(Run, data={"train": {"bf16": 1}})[0].startswith("train.bf16: expected a bool")
    assert errors_of(Run, data={"model": {"name": [1]}})[0].startswith("model.name: expected a str")
    assert errors_of(Run, data={"train": {"epochs": None}})[0] == "train.epochs: expected an int, got null"


def test_a_mapping_where_a_value_belongs_and_a_value_where_a_section_belongs(tmp_path):
    (line,) = errors_of(Run, write(tmp_path, "train:\n  lr: {value: 1}\n"))
    assert line.startswith("train.lr: expected a float, got a mapping")
    (line,) = errors_of(Run, write(tmp_path, "train: 5\n"))
    assert line.startswith("train: expected a section (a mapping of its keys), got 5 (int); its keys: lr,")
    (line,) = errors_of(Run, overrides=["train=5"])
    assert "set its keys instead, e.g. train.lr=VALUE" in line
    (line,) = errors_of(Run, overrides=["train.lr.x=1"])
    assert line.startswith("train.lr: expected a float, got a mapping")


@pytest.mark.parametrize("item", ["lr 3", "=3", "train..lr=1", "--seed=1", "a b=1"])
def test_bad_override_syntax(item):
    (line,) = errors_of(Run, overrides=[item])
    assert line.startswith(f"override '{item}' must look like key=value")


def test_missing_file(tmp_path):
    (line,) = errors_of(Run, tmp_path / "nope.yaml")
    assert "nope.yaml not found" in line


def test_unparseable_yaml_is_one_line_with_its_line_number(tmp_path):
    (line,) = errors_of(Run, write(tmp_path, "seed: 1\ntrain:\n  lr: [1, 2\n"))
    assert "is not valid YAML at line" in line and "\n" not in line


def test_top_level_must_be_a_mapping(tmp_path):
    (line,) = errors_of(Run, write(tmp_path, "- a\n- b\n"))
    assert "the top level must be a mapping" in line
    assert load_config(Run, write(tmp_path, "")) == Run()  # an empty file is no change
    assert "must be a mapping" in errors_of(Run, data=[1])[0]


def test_every_error_is_reported_at_once_and_nothing_is_built(tmp_path):
    path = write(tmp_path, "train:\n  lrr: 0.1\n  epochs: many\n")
    errors = errors_of(Run, path, ["lr 3"])
    assert len(errors) == 3
    assert errors[0].startswith("train.lrr: unknown key")
    assert errors[1].startswith("train.epochs: expected an int, got 'many' (str)")
    assert errors[2].startswith("override 'lr 3' must look like key=value")


def test_file_errors_do_not_stop_the_overrides_being_checked(tmp_path):
    errors = errors_of(Run, tmp_path / "missing.yaml", ["seed=x", "model.dtype=int8"])
    assert len(errors) == 3


def test_config_error_is_a_usage_error_and_pickles():
    with pytest.raises(UsageError) as info:
        load_config(Run, overrides=["seed=x", "sed=1"])
    assert info.value.exit_code == 2
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.errors == info.value.errors


def test_required_fields_must_be_set():
    (line,) = errors_of(Needs)
    assert line.startswith("suite: required and has no default")
    assert load_config(Needs, overrides=["suite=humaneval+"]) == Needs("humaneval+")


def test_post_init_failures_are_reported_as_config_errors():
    assert errors_of(Checked, overrides=["k=0"]) == ["Checked: k must be at least 1"]


def test_a_composite_schema_made_at_runtime():
    """A trainer picks the method's config class at run time and joins it to the common sections."""
    method_cls = Grpo
    schema = dataclasses.make_dataclass(
        "TrainRun",
        [
            ("model", Model, field(default_factory=Model)),
            ("method", method_cls, field(default_factory=method_cls)),
            ("notes", str | None, field(default=None)),
        ],
    )
    config = load_config(schema, overrides=["method.group_size=4", "model.lora.r=2"], data={"method": {"kl": 0}})
    assert config.method == Grpo(group_size=4, kl=0.0)
    assert config.model.lora == Lora(r=2)
    (line,) = errors_of(schema, overrides=["method.group=4"])
    assert "did you mean 'group_size'?" in line and "keys of 'method': group_size, kl" in line
    # a field with a dataclass type and no default starts from that class's defaults
    bare = dataclasses.make_dataclass("Bare", [("method", Grpo)])
    assert load_config(bare).method == Grpo()


def test_save_then_load_gives_the_same_config(tmp_path):
    config = load_config(
        Run,
        overrides=[
            "model.lora.r=4",
            "model.name=123",
            "model.revision=yes",
            "train.lr=1e-10",
            "train.weights=0.5,2",
            "train.output=out/dir",
        ],
    )
    path = tmp_path / "nested" / "resolved.yaml"
    save_config(config, path)
    text = path.read_text()
    assert text.startswith("# ")
    assert load_config(Run, path) == config
    plain = config_to_dict(config)
    assert yaml.safe_load(text) == plain
    assert plain["train"]["output"] == "out/dir" and plain["model"]["lora"]["r"] == 4
