"""Every console script follows the command-line convention (moe_vla_ros/cli.py).

Each installed executable is run as a shell or `ros2 run` would run it:

- `--help` exits 0 and its usage line starts with `usage: <script name>`; the same things have the
  same names: output `-o/--out`, progress `--no-progress`, the bag positional (no `--bag`);
- a bad-input run (a path that does not exist, or a value that gets past argparse into the tool)
  exits 2 with a `<script>: error: ...` line on stderr and no traceback;
- an unknown option (argparse's usage error, or a missing required one) exits 2 with
  `<script>: error:` as well (scripts quick to start).

The runs (~50 processes, several import torch or rclpy) start once for the module, in threads.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import pytest

from moe_vla_ros.ros.testing import isolated_ros_env

TIMEOUT_S = 120
WORKERS = 4


def _declared_scripts() -> list[str]:
    source = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    namespace: dict = {}
    start = source.index("CONSOLE_SCRIPTS = [")
    exec(source[start : source.index("]", start) + 1], namespace)
    return [spec.split("=")[0].strip() for spec in namespace["CONSOLE_SCRIPTS"]]


def _installed_scripts() -> dict[str, str]:
    eps = distribution("moe_vla_ros").entry_points
    return {ep.name: ep.value for ep in eps if ep.group == "console_scripts"}


SCRIPTS = _declared_scripts()

# A bad-input run per script; {missing} is a path that does not exist, {tmp} an empty folder.
# Each must get past argparse and be refused by the tool itself (exit 2, `<script>: error: ...`).
BAD_INPUT: dict[str, list[str]] = {
    "moe_vla_bag_from_sim": ["--out", "{tmp}/bag", "--episodes", "0"],
    "moe_vla_eval_bag": ["{missing}", "--model", "{missing}", "--out", "{tmp}/report"],
    "moe_vla_bag_replay_eval": ["{missing}", "--model", "{missing}", "--out", "{tmp}/report"],
    "moe_vla_demo": ["--episodes", "0"],
    "moe_vla_eval_sim": ["--episodes", "0"],
    "moe_vla_export": ["--checkpoint", "{missing}", "--out", "{tmp}/model"],
    "moe_vla_triton_repository": ["{missing}", "--out", "{tmp}/repo"],
    "policy_node": ["--ros-args", "--params-file", "{missing}.yaml"],
    "moe_vla_bringup": ["--policy-config", "{missing}.yaml"],
    "moe_vla_train": ["--dataset", "{missing}", "--out", "{tmp}/train"],
    "sim_node": ["--ros-args", "-p", "task.color:=purple"],
    "moe_vla_generate_demos": ["--out", "{tmp}/demos", "--tasks", "fly"],
    "moe_vla_bag_record": ["--out", "{tmp}/bag", "--topics", "relative_topic"],
    "moe_vla_bag_play": ["{missing}"],
    "moe_vla_bag_to_dataset": ["{missing}", "--out", "{tmp}/dataset", "--contract", "{missing}.json"],
    "moe_vla_to_lerobot": ["{missing}", "--out", "{tmp}/lerobot"],
    "moe_vla_bag_info": ["{missing}"],
    "moe_vla_bag_reindex": ["{missing}"],
}
# Scripts that take 1-4 s to start (torch, MuJoCo + rclpy): their argparse usage error is not run
# again (the --help check already shows the parser carries the script's name).
SLOW_TO_START = {"moe_vla_train", "moe_vla_demo", "moe_vla_eval_sim", "moe_vla_eval_bag", "moe_vla_bag_from_sim",
                 "moe_vla_bag_replay_eval", "sim_node"}
# Not a console script, but a documented command (python -m ...) that follows the convention.
MODULES = {"python -m moe_vla_ros.export.golden": ["{missing}"],
           "python -m moe_vla_ros.evaluation.compare_experts": ["--out", "{tmp}/compare", "--episodes", "0"]}

# Spellings the convention replaced (in --help text): output is -o/--out, progress --no-progress,
# a bag is the positional `bag`.
FORBIDDEN_OPTIONS = {
    r"--output(?![-\w])": "an output option is called --out",
    r"--out-?dir\b|--output-dir\b": "an output option is called --out",
    r"--quiet\b": "progress output is switched off with --no-progress",
    r"(?<!no)-progress(?![-\w])": "progress output is switched off with --no-progress",
    r"--bag(?![-\w])": "a bag is the positional argument `bag`",
}


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def show(self) -> str:
        return f"$ {' '.join(self.argv)}\n-> exit {self.returncode}\nstdout:\n{self.stdout[-2000:]}\nstderr:\n{self.stderr[-3000:]}"


def _command(name: str) -> list[str]:
    if name in MODULES:
        return [sys.executable, "-m", name.split()[-1]]
    return [str(Path(sys.executable).with_name(name))]


def _run(argv: list[str], cwd: Path) -> Run:
    try:
        done = subprocess.run(argv, env=isolated_ros_env(), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or ""
        return Run(argv, -1, out, err + f"\n(timed out after {TIMEOUT_S} s)")
    return Run(argv, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], Run]:
    """{(name, "help" | "bad_input" | "usage_error"): Run} for every script and module, run in threads."""
    root = tmp_path_factory.mktemp("entry_points")
    jobs: dict[tuple[str, str], tuple[list[str], Path]] = {}
    for name, bad in {**BAD_INPUT, **MODULES}.items():
        command = _command(name)
        if name not in MODULES and not Path(command[0]).is_file():
            continue  # test_declared_entry_points_are_installed names it
        tmp = root / re.sub(r"\W", "_", name)
        tmp.mkdir()
        fill = {"missing": str(tmp / "does_not_exist"), "tmp": str(tmp)}
        jobs[name, "help"] = (command + ["--help"], tmp)
        jobs[name, "bad_input"] = (command + [arg.format(**fill) for arg in bad], tmp)
        if name not in SLOW_TO_START:
            jobs[name, "usage_error"] = (command + ["--no-such-option"], tmp)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {key: pool.submit(_run, argv, cwd) for key, (argv, cwd) in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def _get(runs: dict, name: str, kind: str) -> Run:
    if (name, kind) not in runs:
        pytest.fail(f"{name} is not installed (re-run scripts/setup.sh)")
    return runs[name, kind]


def _usage(text: str) -> str:
    """The usage block of a --help text (up to the first blank line)."""
    return text.split("\n\n", 1)[0]


def _positional_arguments(text: str) -> list[str]:
    """Names listed under "positional arguments:" in a --help text."""
    section = re.search(r"^positional arguments:\n((?:  .*\n?)*)", text, re.M)
    return re.findall(r"^  (\S+)", section.group(1), re.M) if section else []


def _error_line(run: Run, name: str) -> str | None:
    return next((line for line in run.stderr.splitlines() if line.startswith(f"{name}: error: ")), None)


def test_declared_entry_points_are_installed():
    assert SCRIPTS, "setup.py declares no console scripts"
    missing = sorted(set(SCRIPTS) - set(_installed_scripts()))
    assert not missing, f"declared but not installed (re-run scripts/setup.sh): {missing}"


def test_every_script_has_a_bad_input_case():
    assert sorted(BAD_INPUT) == sorted(SCRIPTS), "add a bad-input run for each console script to BAD_INPUT"


@pytest.mark.parametrize("name", SCRIPTS + list(MODULES))
def test_help_names_the_script_and_exits_0(runs, name):
    run = _get(runs, name, "help")
    assert run.returncode == 0, run.show()
    assert re.match(rf"usage: {re.escape(name)}(\s|$)", run.stdout), f"usage must start with 'usage: {name}':\n" + run.show()
    assert "Traceback" not in run.stderr, run.show()


@pytest.mark.parametrize("name", SCRIPTS + list(MODULES))
def test_help_uses_the_shared_option_names(runs, name):
    text = _get(runs, name, "help").stdout
    wrong = [f"{m.group(0)!r}: {why}" for pattern, why in FORBIDDEN_OPTIONS.items() for m in [re.search(pattern, text)] if m]
    assert not wrong, f"{name} --help:\n" + "\n".join(wrong) + "\n\n" + text
    positional = _positional_arguments(text)
    assert not {"output", "out"} & set(positional), f"{name}: output is the option -o/--out, not positional {positional}"
    if re.search(r"(?<![-\w])-o\b", _usage(text)):
        assert re.search(r"-o \w+, --out\b", text), f"{name}: -o is short for --out:\n{text}"


@pytest.mark.parametrize("name", SCRIPTS + list(MODULES))
def test_bad_input_exits_2_with_one_error_line(runs, name):
    run = _get(runs, name, "bad_input")
    assert run.returncode == 2, run.show()
    assert _error_line(run, name), f"no '{name}: error: ...' line on stderr:\n" + run.show()
    assert "Traceback" not in run.stderr, run.show()


@pytest.mark.parametrize("name", [n for n in SCRIPTS + list(MODULES) if n not in SLOW_TO_START])
def test_usage_error_exits_2_naming_the_script(runs, name):
    run = _get(runs, name, "usage_error")
    assert run.returncode == 2, run.show()
    assert _error_line(run, name), f"no '{name}: error: ...' line on stderr:\n" + run.show()
    assert "Traceback" not in run.stderr, run.show()
