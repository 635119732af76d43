"""A run directory's integrity: one study at a time writes into it, a finished stage proves its files before it is
reused (and is recomputed when they were cut, edited or deleted), a full disk is one line, no name leads out of the
run directory, sweep points keep their values in every file named after them, and a recipe's text is checked."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import re
import socket
import sysconfig
import threading
from pathlib import Path

import pytest
from test_study import RECIPE, SMALL, _run, _statuses

from medrlvr.cli import main
from medrlvr.rundir import RunDirError, inside, locked
from medrlvr.store import JsonlError, JsonlStore, OutputError, read_jsonl, write_json, write_jsonl
from medrlvr.study.arms import point_name
from medrlvr.study.runner import RecipeError, load_recipe, run_study

SRC = Path(__file__).resolve().parents[1] / "src" / "medrlvr"


@pytest.fixture
def recipe(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDRLVR_DATA_DIR", raising=False)
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE.format(model=tiny_checkpoint))
    return path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- 1. one study at a time per run directory ---------------------------------------------------------------------


def test_a_second_run_on_a_busy_folder_fails_fast_and_the_first_keeps_its_rows(recipe, tmp_path, capsys):
    """The first study pauses inside its first stage (holding the lock) while a second `medrlvr run` on the same
    folder starts: the second says who holds it and touches nothing; the first ends with the rows of one run."""
    run_dir = tmp_path / "run"
    inside_first_stage, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def log(line: str) -> None:
        if line.startswith("[filter tiny] running") and not inside_first_stage.is_set():
            inside_first_stage.set()
            go_on.wait(600)

    def first() -> None:
        try:
            run_study(recipe, SMALL, run_dir=str(run_dir), progress=False, log=log)
        except BaseException as e:  # re-raised in the test's thread below
            errors.append(e)
            inside_first_stage.set()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside_first_stage.wait(600) and not errors
        capsys.readouterr()
        code = main(["run", str(recipe), *SMALL, "--run-dir", str(run_dir)])
        err = _one_line(capsys)
    finally:
        go_on.set()
        thread.join()
    assert not errors, errors
    assert code == 2 and f"pid {os.getpid()} on {socket.gethostname()} since " in err and "in use" in err
    predictions = [json.loads(x) for x in (run_dir / "eval/sft/demo/predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == len({p["id"] for p in predictions}) == 2
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"
    assert (run_dir / ".lock").read_text() == ""  # released: the holder's details are gone with it


def test_stage_commands_take_the_lock_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # a lock file left by a process that died: the OS released its lock, its details are simply overwritten
    (run_dir / ".lock").write_text(json.dumps({"pid": 2**22 + 1, "host": "gone", "command": "medrlvr run x"}))
    select = ["select", "--pool", "demo:train", "--limit", "12", "--strategy", "random", "--n", "4",
              "--run-dir", str(run_dir)]  # fmt: skip
    with locked(run_dir, "medrlvr run holder.yaml"):
        commands = [
            select,
            ["filter", "--pool", "demo:train", "--run-dir", str(run_dir), "--model", "some-model"],
            ["eval", "--benchmarks", "demo", "--run-dir", str(run_dir), "--model", "some-model"],
            ["train", f"train_file={run_dir}/select/random/train.jsonl", f"output_dir={run_dir}/train/x"],
        ]
        for argv in commands:
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = _one_line(capsys)
            assert "in use by pid" in err and "medrlvr run holder.yaml" in err, err
        assert not (run_dir / "select").exists() and not (run_dir / "filter").exists()
    capsys.readouterr()
    assert main(select) == 0 and (run_dir / "select" / "random" / "train.jsonl").exists()


# --- 2. a finished stage proves itself ----------------------------------------------------------------------------

# What a rerun after damage must give back exactly as a clean run left it (timings and paths aside).
COMPARED = ["filter/tiny/labels.jsonl", "filter/tiny/responses.jsonl", "select/random/train.jsonl",
            "select/hard/train.jsonl", "train/sft/adapter/adapter_model.safetensors",
            "eval/sft/demo/predictions.jsonl", "report/table1.md"]  # fmt: skip


def _cut_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 10])  # the last line cut after 9 bytes


def _cut_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _repeat_first_row(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data + data.splitlines(keepends=True)[0])


DAMAGE = [
    ("eval/sft/demo/predictions.jsonl", _cut_line, "eval sft demo"),
    ("filter/tiny/responses.jsonl", _cut_half, "filter tiny"),
    ("eval/sft/demo/predictions.jsonl", _repeat_first_row, "eval sft demo"),
    ("filter/tiny/labels.jsonl", _repeat_first_row, "filter tiny"),
    ("train/sft/adapter/adapter_model.safetensors", Path.unlink, "train sft"),
]


def test_damaged_outputs_are_found_set_aside_and_recomputed_as_a_clean_run(recipe, tmp_path, capsys):
    run_dir = _run(recipe, tmp_path / "run", *SMALL)
    clean = {p: (run_dir / p).read_bytes() for p in COMPARED}
    for rel, damage, stage in DAMAGE:
        damage(run_dir / rel)
        if damage is _repeat_first_row and rel.endswith("predictions.jsonl"):
            # a standalone report does not count a question twice either: one line naming file, line and id
            capsys.readouterr()
            assert main(["report", "--run-dir", str(run_dir)]) == 2
            assert re.search(
                r"predictions.jsonl: line 3: id '.*' is there twice \(first on line 1\)", _one_line(capsys)
            )
        lines: list[str] = []
        run_study(recipe, SMALL, run_dir=str(run_dir), progress=False, log=lines.append)
        said = [line for line in lines if "damaged output" in line]
        assert len(said) == 1 and said[0].startswith(f"[{stage}]") and str(run_dir / rel) in said[0], (rel, lines)
        assert _statuses(run_dir)[stage] == "ran", (rel, _statuses(run_dir))
        assert {p: (run_dir / p).read_bytes() for p in COMPARED} == clean, rel
        assert (run_dir / ".damaged" / rel).parent.is_dir(), rel  # the damaged copy is kept for a look
    # a clean rerun trusts what it checked
    _run(recipe, run_dir, *SMALL)
    assert set(_statuses(run_dir).values()) == {"cached"}


def test_verify_hashes_large_files_too(recipe, tmp_path, monkeypatch):
    """A large file is checked by size and rows on every run; `--verify` reads its hash as well (an edit that keeps
    the size: one byte of the adapter flipped)."""
    from medrlvr.study import stagedirs

    run_dir = _run(recipe, tmp_path / "run", *SMALL)
    monkeypatch.setattr(stagedirs, "HASHED_ALWAYS", 0)  # every file counts as large here
    adapter = run_dir / "train/sft/adapter/adapter_model.safetensors"
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 1
    adapter.write_bytes(bytes(data))
    _run(recipe, run_dir, *SMALL)
    assert _statuses(run_dir)["train sft"] == "cached"  # same size: not seen without --verify
    run_study(recipe, SMALL, run_dir=str(run_dir), progress=False, log=lambda line: None, verify=True)
    assert _statuses(run_dir)["train sft"] == "ran" and adapter.read_bytes() != bytes(data)


def test_the_store_refuses_a_repeated_id_naming_file_line_and_id(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "q1", "x": 1}\n{"id": "q2"}\n{"id": "q1", "x": 2}\n')
    with pytest.raises(JsonlError, match=r"predictions.jsonl: line 3: id 'q1' is there twice \(first on line 1\)"):
        list(JsonlStore(path))
    with pytest.raises(JsonlError, match="line 3: id 'q1'"):
        list(read_jsonl(path, unique="id"))
    assert len(list(read_jsonl(path))) == 3  # files without one row per id read as before


# --- 3. a full disk -------------------------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_the_temporary_file_is_removed_and_the_old_file_kept(tmp_path, monkeypatch):
    labels, stats, store = tmp_path / "labels.jsonl", tmp_path / "stats.json", tmp_path / "responses.jsonl"
    write_jsonl(labels, [{"id": "q1"}])
    write_json(stats, {"n": 1})
    JsonlStore(store).append([{"id": "q1"}])
    before = {p: p.read_bytes() for p in (labels, stats, store)}
    monkeypatch.setattr(os, "fsync", _disk_full)  # the kernel reports ENOSPC when the data reaches the disk
    with pytest.raises(OutputError, match=r"cannot write .*labels.jsonl: No space left on device \(.* MB free on "):
        write_jsonl(labels, [{"id": "q2"}])
    with pytest.raises(OutputError, match=r"cannot write .*stats.json"):
        write_json(stats, {"n": 2})
    with pytest.raises(OutputError, match=r"cannot write .*responses.jsonl"):
        JsonlStore(store).append([{"id": "q2"}])
    assert {p: p.read_bytes() for p in (labels, stats, store)} == before  # the half batch was cut off again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl", "responses.jsonl", "stats.json"]


def test_a_full_disk_during_a_command_is_one_line_and_nothing_finished_is_touched(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    select = ["select", "--pool", "demo:train", "--limit", "12", "--strategy", "random", "--n", "4",
              "--run-dir", str(run_dir)]  # fmt: skip
    assert main(select) == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    capsys.readouterr()
    monkeypatch.setattr(os, "fsync", _disk_full)
    assert main([*select, "--seed", "7"]) == 2
    err = _one_line(capsys)
    assert "No space left on device" in err and "MB free on" in err and str(run_dir / "select" / "random") in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # no .tmp left, none changed

    def full_chart(args):  # a write the store does not make (a chart): one line as well
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "report" / "radar_demo.png"))

    monkeypatch.undo()
    monkeypatch.setattr("medrlvr.cli._select", full_chart)
    assert main(select) == 2 and "MB free on" in _one_line(capsys)


# --- 4. names are names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, where",
    [
        (
            ["select={'../../../esc': {strategy: random, n: 4}}", "train.policies={p: {selection: '../../../esc'}}"],
            r"select.../../../esc: the name '../../../esc' holds a path separator",
        ),
        (["train.policies={'/tmp/abs': {selection: random}}"], r"train.policies./tmp/abs: the name '/tmp/abs' holds"),
        (["train.policies={'..': {selection: random}}"], r"train.policies...: the name '..' starts with '.'"),
        (["eval.benchmarks=[{benchmark: demo, name: '../x'}]"], r"eval.benchmarks\[0\]: the name '../x' holds"),
        (["filter.0.name=' '", "select.hard.filter=' '"], r"filter\[0\].name: the name ' ' is empty"),
        (
            ["train.policies={Sft: {selection: random}, sft: {selection: hard}}"],
            r"train.policies.sft: policy 'sft' would share one folder with .*train.policies.Sft",
        ),
        (["sweep={name: a/b, selection: random, grid: {select.n: [3, 4]}}"], r"sweep.name: the name 'a/b' holds"),
        (["sweep={name: s, selection: random, grid: {train.seed: [1, '1']}}"], r"sweep.grid: the point .* is named"),
    ],
)
def test_names_that_would_leave_their_folder_are_one_line_naming_the_key(recipe, overrides, where, capsys):
    with pytest.raises(RecipeError, match=where):
        load_recipe(recipe, overrides)
    assert main(["run", str(recipe), *overrides, "--plan"]) == 2
    assert "tiny.yaml" in _one_line(capsys)


def test_inside_refuses_a_path_out_of_the_run_directory(tmp_path):
    assert inside(tmp_path / "run", "select", "a") == tmp_path / "run" / "select" / "a"
    for parts in (("..", "x"), ("/etc",), ("select", "../../..")):
        with pytest.raises(RunDirError, match="outside the run directory"):
            inside(tmp_path / "run", *parts)


def test_every_file_a_study_writes_lies_inside_its_run_directory(recipe, tmp_path, monkeypatch):
    """Every write medrlvr's own code makes (open for writing, os.open, renames) is recorded, and the files under the
    test's folder are compared before and after: none lies outside the run directory."""
    run_dir = (tmp_path / "deep" / "er" / "run").resolve()
    writes: list[tuple[str, str]] = []
    real_open, real_os_open, real_replace = builtins.open, os.open, os.replace

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()

    def ours() -> bool:
        """Whether the write comes from medrlvr's code (through pathlib, json, shutil ... of the standard library)."""
        import sys

        frame = sys._getframe(2)
        while frame and Path(frame.f_code.co_filename).resolve().is_relative_to(stdlib):
            frame = frame.f_back
        return bool(frame) and Path(frame.f_code.co_filename).resolve().is_relative_to(SRC)

    def spy_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and set(str(mode)) & set("wax+") and ours():
            writes.append(("open", os.fspath(file)))
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and ours():
            writes.append(("os.open", os.fspath(path)))
        return real_os_open(path, flags, *args, **kwargs)

    def spy_replace(src, dst, *args, **kwargs):
        if ours():
            writes.append(("replace", os.fspath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    before = {p for p in tmp_path.rglob("*")}
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)  # pathlib's write_text opens through io.open
    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(os, "replace", spy_replace)
    _run(recipe, run_dir, *SMALL)
    monkeypatch.undo()
    assert writes and any(w[1].endswith("predictions.jsonl") for w in writes)
    # os.devnull is where a child process's output goes, not a file
    outside = [w for w in writes if w[1] != os.devnull and not Path(w[1]).resolve().is_relative_to(run_dir)]
    assert outside == []
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p.resolve() == run_dir or p.resolve().is_relative_to(run_dir) or p in run_dir.parents
                       for p in new), sorted(map(str, new))  # fmt: skip


# --- 5. sweep points keep their values ------------------------------------------------------------------------------


def test_sweep_point_names_keep_every_value_distinct():
    names = {point_name("lr", {"train.learning_rate": v}) for v in (1e-3, 1.0000001e-3, 5e-4, 1e-5, -1, -1.5, 2e20)}
    assert len(names) == 7 and "lr-learning_rate0.001" in names and "lr-learning_rate-1.5" in names


def test_a_sweep_over_a_float_and_a_negative_value_reports(recipe, tmp_path):
    sweep = "sweep={name: lr, selection: random, grid: {train.learning_rate: [1.0e-3, 5.0e-4], select.seed: [-3]}}"
    run_dir = _run(recipe, tmp_path / "run", sweep, "train.policies={}", "eval.base=false", "eval.limit=2")
    names = ["lr-learning_rate0.001-seed-3", "lr-learning_rate0.0005-seed-3"]
    assert {s for s in _statuses(run_dir) if s.startswith("train")} == {f"train {n}" for n in names}
    report = run_dir / "report"
    for name in names:
        assert (run_dir / "train" / name / "adapter").is_dir()
        assert (report / f"dynamics_{name}.svg").is_file() and (report / f"dynamics_{name}.png").is_file()
    assert not list(report.glob("dynamics_lr-learning_rate0.svg"))  # nothing cut at the "."
    table = (report / "table1.md").read_text()
    assert all(name in table for name in names)


# --- 6. recipes ---------------------------------------------------------------------------------------------------


def test_a_key_given_twice_names_both_lines(recipe, capsys):
    text = recipe.read_text().replace("  batch_size: 2\n", "  batch_size: 2\n  max_steps: 3\n")
    recipe.write_text(text)
    first = text.splitlines().index("  max_steps: 3") + 1
    second = text.splitlines().index("  max_steps: 1") + 1
    with pytest.raises(RecipeError, match=rf"line {second}: key 'max_steps' is given twice \(lines {first} and "):
        load_recipe(recipe)
    assert main(["run", str(recipe), "--plan"]) == 2
    assert "max_steps" in _one_line(capsys)
    recipe.write_text("name: x\nselect: {a: {strategy: random}, a: {strategy: ratio}}\n")
    with pytest.raises(RecipeError, match=r"line 2: key 'a' is given twice \(lines 2 and 2\)"):
        load_recipe(recipe)


def test_a_recipe_that_is_not_utf8_is_one_line(recipe, capsys):
    recipe.write_bytes(recipe.read_bytes().replace(b"name: tiny", b"name: caf\xe9"))
    with pytest.raises(RecipeError, match=r"tiny.yaml: line 2: not UTF-8 text \(byte 0xe9\)"):
        load_recipe(recipe)
    assert main(["run", str(recipe), "--plan"]) == 2
    assert "UTF-8" in _one_line(capsys)


def test_a_yaml_merge_key_is_not_a_repeated_key(tmp_path):
    """`<<: *anchor` (one policy's settings reused by another, as recipes/med-rlvr/study.yaml does) reads as YAML does;
    a key the merging mapping sets again overrides the merged one."""
    from medrlvr.study.recipe import _yaml_load

    text = "a: &base {x: 1, y: 2}\nb:\n  <<: *base\n  y: 3\n"
    assert _yaml_load(text, tmp_path / "r.yaml") == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}
