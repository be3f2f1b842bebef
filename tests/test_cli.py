"""The command line: `python -m fusedrnn` and the `fusedrnn` script, run as a user runs them (subprocesses).

The benchmark runs its --quick grid with one round: this checks the harness (rows, columns, checks,
--save, --json), not speed; speed belongs in benchmarks/.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fusedrnn

QUICK = ["bench", "--quick", "--repeats", "1"]
COLUMNS = ["shape", "check", "ours fwd ms", "ours f+b ms", "numpy fwd ms", "numpy f+b ms", "torch fwd ms",
           "torch f+b ms", "ours fwd GFLOP/s", "ours f+b GFLOP/s", "torch/ours fwd", "torch/ours f+b",
           "ceiling fwd", "ceiling f+b", "numpy/ours fwd", "numpy/ours f+b"]
QUICK_ROWS = ["LSTM B=4 T=5 I=8 H=16 bi", "GRU B=4 T=5 I=8 H=16 bi", "RNN B=4 T=5 I=8 H=16 bi",
              "LSTM B=3 T=7 I=6 H=10 uni", "GRU B=3 T=7 I=6 H=10 uni", "RNN B=3 T=7 I=6 H=10 uni"]
TORCH_QUICK_ROWS = [r for r in QUICK_ROWS if not r.startswith("RNN")]  # --torch: LSTM and GRU by default
# The console script pip installed beside this interpreter, if any (not on PATH in every set-up).
SCRIPT = shutil.which("fusedrnn", path=str(Path(sys.executable).parent))


def run(*args, env=None, command=(sys.executable, "-m", "fusedrnn")):
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def table(stdout):
    """-> (column names, {shape: {column: cell}}) of the markdown table in stdout."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    split = lambda line: [cell.strip() for cell in line.strip("|").split("|")]  # noqa: E731
    columns = split(lines[0])
    return columns, {cells[0]: dict(zip(columns, cells)) for cells in map(split, lines[1:])}


def test_quick_bench_table_save_and_json(tmp_path):
    result = run(*QUICK, "--save", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    columns, rows = table(result.stdout)
    assert columns == COLUMNS
    assert list(rows) == QUICK_ROWS
    for row in rows.values():
        assert row["check"].startswith("ok"), row
        for column in COLUMNS[2:]:
            assert float(row[column]) > 0, (column, row)  # torch is a test extra: installed here
    assert "sgemm" in result.stdout and "threads: " in result.stdout

    saved = list(tmp_path.iterdir())
    assert len(saved) == 1 and saved[0].name.endswith("-cpu.md")
    text = saved[0].read_text()
    assert "--save" in text and "| shape | check |" in text  # the command line and the table

    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["row"] for r in data["rows"]] == QUICK_ROWS
    assert all(r["ratio"]["torch"]["fwd+bwd"] > 0 for r in data["rows"])
    assert data["threads"] == fusedrnn.get_num_threads()


def test_save_never_overwrites(tmp_path):
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    earlier = tmp_path / f"{today}-cpu.md"
    earlier.write_text("an earlier table\n")
    result = run(*QUICK, "--cells", "rnn", "--save", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert earlier.read_text() == "an earlier table\n"
    new = [path.name for path in tmp_path.iterdir() if path != earlier]
    assert len(new) == 1 and new[0].endswith(".md"), new  # {today}-cpu-2.md (unless midnight passed)
    assert f"saved {tmp_path / new[0]}" in result.stdout


@pytest.mark.skipif(SCRIPT is None, reason="the fusedrnn script is not installed beside this Python")
def test_console_script():
    result = run(*QUICK, "--cells", "gru", "--threads", "1", command=(SCRIPT,))
    assert result.returncode == 0, result.stderr
    _, rows = table(result.stdout)
    assert list(rows) == [r for r in QUICK_ROWS if r.startswith("GRU")]
    assert "threads: 1 " in result.stdout


def test_without_torch_the_torch_columns_are_na(tmp_path):
    (tmp_path / "torch.py").write_text("raise ImportError('torch hidden for this test')\n")
    result = run(*QUICK, "--cells", "lstm", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    _, rows = table(result.stdout)
    for row in rows.values():
        assert row["torch fwd ms"] == row["torch/ours f+b"] == row["ceiling f+b"] == "n/a"
        assert float(row["numpy/ours f+b"]) > 0
    assert "torch: not installed" in result.stdout


@pytest.mark.parametrize("command", ["module", "script"])
def test_version(command):
    if command == "script" and SCRIPT is None:
        pytest.skip("the fusedrnn script is not installed beside this Python")
    result = run("--version", **({"command": (SCRIPT,)} if command == "script" else {}))
    assert result.returncode == 0
    assert result.stdout.strip() == f"fusedrnn {fusedrnn.__version__}"


TORCH_COLUMNS = ["device", "shape", "check", "ours step ms", "torch step ms", "torch/ours step", "ceiling step",
                 "ours infer ms", "torch infer ms", "torch/ours infer", "ceiling infer"]


def test_quick_torch_dropin_bench_table_save_and_json(tmp_path):
    result = run(*QUICK, "--torch", "--save", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    split = lambda line: [cell.strip() for cell in line.strip("|").split("|")]  # noqa: E731
    assert split(lines[0]) == TORCH_COLUMNS
    rows = [dict(zip(TORCH_COLUMNS, split(line))) for line in lines[1:]]
    assert [(r["device"], r["shape"]) for r in rows] == [("cpu", shape) for shape in TORCH_QUICK_ROWS]
    for row in rows:
        assert row["check"].startswith("ok"), row
        assert all(float(row[c]) > 0 for c in TORCH_COLUMNS[3:]), row
    assert "adapter" in result.stdout and "fusedrnn.ops directly" in result.stdout
    saved = list(tmp_path.iterdir())
    assert len(saved) == 1 and saved[0].name.endswith("-torch-dropin.md")
    assert "--torch" in saved[0].read_text()
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["overhead_us"]["fwd+bwd"]["module"] > 0 and len(data["rows"]) == len(TORCH_QUICK_ROWS)


@pytest.mark.parametrize("args", [["bench", "--no-such-option"], ["bench", "--repeats", "0"],
                                  ["bench", "--cells", "lstm,transformer"], ["no-such-command"], []])
def test_bad_arguments_exit_nonzero_with_usage(args):
    result = run(*args)
    assert result.returncode == 2  # argparse's status for usage errors
    assert "usage: fusedrnn" in result.stderr
    assert "Traceback" not in result.stderr
