"""`cfcclone bench` in quick mode: every figure present, ratios are their parts' quotients,
missing-tutorial rows skipped, goals read from the goals file, the markdown section written.
No timing is asserted."""

import dataclasses
import json
import math
import tempfile
from pathlib import Path

import pytest
import torch

from cfcclone.bench import BenchConfig, run_bench
from cfcclone.bench.figures import make_data
from cfcclone.bench.report import format_table, goals, read_goals
from cfcclone.cli import main
from cfcclone.models.policy import bf16_supported
from cfcclone.runtime import onnx_available

pytestmark = pytest.mark.slow

QUICK = BenchConfig.quick()
GOALS = Path(__file__).resolve().parents[1] / "benchmarks" / "goals.json"
QUICK_FIGURES = {
    "storage/cfcclone",
    "storage/tutorial-export",
    "sampler/cfcclone",
    "train/tutorial-ref",
    "train/cfcclone-nature",
    "rollout/tutorial-ref",
    "rollout/tutorial-loop-nature",
    "rollout/tutorial-loop-tutorial",
    "rss/peak",
    "rss/read",
    *(f"rollout/raw-{n}" for n in QUICK.envs),
    *(
        f"{kind}/{encoder}{mode}-{n}"
        for encoder in ("nature", "tutorial")
        for kind, mode in (("rollout", "-sync"), ("rollout", "-async"), ("model", ""))
        for n in QUICK.envs
    ),
    # the torch agent's rows beside onnxruntime's, where eval runs onnxruntime
    *(
        f"{kind}/{encoder}-{mode}torch-{n}"
        for encoder in ("nature", "tutorial")
        for kind, mode in (("rollout", "async-"), ("model", ""))
        for n in QUICK.envs
        if onnx_available()
    ),
    # the bf16 encoder's rows exist where the device is fast at bf16
    *(f"rollout/tutorial-bf16-{n}" for n in QUICK.envs if bf16_supported("cpu")),
}


@pytest.fixture(scope="module")
def results(tutorial_path):
    """One quick run against the tutorial's own module (skipped where it is missing), in one
    torch thread: on a shared 2-core machine two threads waiting on each other ran 4x slower."""
    before = torch.get_num_threads()
    config = dataclasses.replace(QUICK, threads=1)
    out = run_bench(config, True, tutorial_path, GOALS, progress=False)
    assert torch.get_num_threads() == before  # --threads and collection's one thread undone
    return out


def test_quick_run_measures_every_figure(results):
    figs = results["figures"]
    assert set(figs) == QUICK_FIGURES
    measured = {k for k, f in figs.items() if f["value"] is not None}
    assert measured == QUICK_FIGURES - {"train/tutorial-ref"}  # quick trains nature only
    assert "tutorial encoder is not in this run" in figs["train/tutorial-ref"]["skipped"]
    assert all(figs[k]["value"] > 0 and math.isfinite(figs[k]["value"]) for k in measured)
    # the export stores every frame in 4 stacks, the dataset once
    ours, theirs = figs["storage/cfcclone"]["value"], figs["storage/tutorial-export"]["value"]
    assert 7.056 <= ours < 7.5 and 28.224 <= theirs < 28.5
    rss = figs["rss/peak"]  # the reader's own peak (VmHWM), from after it opened the dataset
    assert 0 < rss["opened_mb"] <= rss["value"] and rss["windows"] > 0
    assert results["reference"] is not None and results["device"] == "cpu"
    assert results["settings"]["envs"] == list(QUICK.envs) and results["settings"]["threads"] == 1
    assert results["machine"]["torch_threads"] == 1
    assert "--quick" in results["command"] and "--envs 2 4" in results["command"]
    assert f"--goals {GOALS}" in results["command"]


def test_ratios_are_the_quotients_of_their_parts(results):
    figs, rows = results["figures"], results["goals"]
    ratios = [g for g in rows if len(g["of"]) == 2 and g["value"] is not None]
    names = {g["name"] for g in ratios}
    assert names >= {
        f"rollout nature async/tutorial loop driving it, {n} envs" for n in QUICK.envs
    } | {f"rollout tutorial async/model alone, {n} envs" for n in QUICK.envs}
    for g in ratios:
        num, den = (figs[k]["value"] for k in g["of"])
        assert g["parts"] == [num, den] and g["value"] == num / den
    ops = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__}
    for g in rows:
        if g["goal"] is None or g["value"] is None:
            assert g["met"] is None
        else:
            op, target = g["goal"].split()
            target = float(target.rstrip("x").replace(",", ""))
            assert g["met"] == ops[op](float(g["value"]), target)
    # quick mode trains no tutorial encoder: its goal is left out, not judged
    assert not any(g["name"].startswith("train ours/tutorial") for g in rows)


def test_goals_follow_the_device_and_propagate_skips():
    figs = {
        "rollout/nature-async-64": {"value": 70.0},
        "rollout/raw-64": {"value": 100.0},
        "rollout/nature-async-16": {"value": 30.0},
        "rollout/raw-16": {"value": 100.0},
        "rollout/tutorial-async-16": {"value": 30.0},
        "rollout/tutorial-async-64": {"value": 40.0},
        "rollout/tutorial-ref": {"value": None, "skipped": "tutorial not found: x"},
        "train/cfcclone-tutorial": {"value": 10.0},
        "train/tutorial-ref": {"value": 2.0},
    }
    spec = read_goals(GOALS)
    by_name = {g["name"]: g for g in goals(figs, spec, "cuda", (16, 64))}
    assert by_name["rollout nature async/raw env, 64 envs"]["met"] is True  # 0.7 >= 0.7 on a GPU
    assert by_name["rollout nature async/raw env, 16 envs"]["goal"] is None  # >= 64 envs only
    assert by_name["train ours/tutorial, tutorial encoder"]["goal"] == ">= 5x"
    assert by_name["train ours/tutorial, tutorial encoder"]["met"] is True  # 5.0 >= 5
    skipped = by_name["rollout tutorial async/tutorial's own loop, 16 envs"]["skipped"]
    assert skipped == "tutorial not found: x"
    on_cpu = {g["name"]: g for g in goals(figs, spec, "cpu", (16, 64))}
    assert on_cpu["rollout nature async/raw env, 64 envs"]["goal"] is None
    assert on_cpu["train ours/tutorial, tutorial encoder"]["goal"] == ">= 1.5x"
    assert on_cpu["rollout tutorial async/tutorial's own loop, 64 envs"]["goal"] == ">= 5x"
    assert "storage ours, KB/frame" not in on_cpu  # not measured in this run: left out
    assert goals(figs, {}, "cpu", (16,)) == []  # no goals file, no goals


def test_a_bad_goals_file_is_named(tmp_path):
    bad = tmp_path / "goals.json"
    bad.write_text(json.dumps({"cpu": [{"name": "x", "of": ["a"], "op": "~", "target": 1}]}))
    with pytest.raises(ValueError, match="goals.json: bad goal"):
        read_goals(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="goals.json: unreadable goals file"):
        read_goals(bad)


def test_make_data_exports_the_same_steps_and_keeps_torch_threads(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        root, dst, info = make_data(tmp_path, 200)  # the in-process collector sets 1 thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert info["steps"] == 200 and (root / "manifest.json").exists()
    files = sorted(dst.glob("*.npz"))
    assert len(files) == info["ncps_train"] + info["ncps_val"] > 0
    assert info["ncps_steps"] == 32 * len(files)


def test_cli_without_the_tutorial_skips_its_rows_and_writes_markdown(tmp_path, capsys, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    missing = tmp_path / "nowhere" / "ncps_tutorial.py"
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    args = ["bench", "--quick", "--envs", "2", "--rss-frames", "64", "--threads", "1"]
    args += ["--tutorial", str(missing), "--goals", str(GOALS)]
    assert main([*args, "--json", str(out_json), "--markdown", str(out_md)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert results["reference"] is None
    for key in ("rollout/tutorial-ref", "train/tutorial-ref"):
        assert results["figures"][key]["value"] is None
    reason = f"tutorial not found: {missing}"
    assert results["figures"]["rollout/tutorial-ref"]["skipped"] == reason
    name = "rollout tutorial async/tutorial's own loop, 2 envs"
    ratio = next(g for g in results["goals"] if g["name"] == name)
    assert ratio["skipped"] == reason and ratio["value"] is None
    assert "skipped: tutorial not found" in printed and "met" in printed
    md = out_md.read_text()
    assert md.startswith("## cfcclone bench")
    for text in (
        "Machine:",
        f"{results['machine']['cores']} cores",
        "GPU: none",
        results["machine"]["cpu"],
        "Versions:",
        results["versions"]["torch"],
        "Command: `cfcclone bench",
        f"--tutorial {missing}",
        "| storage: cfcclone dataset ",
    ):
        assert text in md
    # its data, export and synthetic dataset are gone (torch may keep caches of its own there)
    assert not [p for p in scratch.iterdir() if p.name.startswith("cfcclone-bench")]


def test_cli_rejects_bad_options(capsys):
    assert main(["bench", "--quick", "--envs", "0"]) == 2
    assert "expected envs >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # not a number: tyro's usage error
        main(["bench", "--envs", "x"])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and "Error parsing --envs" in err and "['x']" in err


def test_table_warns_when_the_cpu_was_busy(results):
    busy = {**results, "machine": {**results["machine"], "load_avg": [3.0, 2.0, 1.0]}}
    idle = {**results, "machine": {**results["machine"], "load_avg": [0.1, 0.1, 0.1]}}
    assert "the CPU was busy (load average 3.00" in format_table(busy)
    assert "busy" not in format_table(idle)
    for g in results["goals"]:  # each goal's line carries its target and status
        status = "met" if g["met"] else "MISSED" if g["met"] is False else None
        if status:
            assert any(
                g["name"] in line and status in line and g["goal"] in line
                for line in format_table(results).splitlines()
            )
