"""`cfcclone bench` in quick mode: every figure present, ratios are their parts' quotients,
missing-reference rows skipped, the markdown section written. No timing is asserted."""

import json
import math
import tempfile

import pytest
import torch

from cfcclone.bench import QUICK, format_table, goals, make_data, parse_envs, run_bench
from cfcclone.cli import main
from cfcclone.models.policy import bf16_supported

QUICK_FIGURES = {
    "storage/cfcclone",
    "storage/tutorial-export",
    "sampler/cfcclone",
    "train/tutorial-ref",
    "train/cfcclone-nature",
    "rollout/tutorial-ref",
    "rss/peak",
    "rss/read",
    *(f"rollout/{who}-{n}" for who in ("cfcclone", "raw") for n in QUICK.envs),
    # the bf16 encoder's rows exist where the device is fast at bf16
    *(f"rollout/cfcclone-bf16-{n}" for n in QUICK.envs if bf16_supported("cpu")),
}


@pytest.fixture(scope="module")
def results(tutorial):
    """One quick run against the tutorial's own module (skipped where it is missing), in one
    torch thread: on a shared 2-core machine two threads waiting on each other ran 4x slower."""
    before = torch.get_num_threads()
    out = run_bench(quick=True, progress=False, threads=1)
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
    assert "--quick" in results["command"] and "--envs 2,4" in results["command"]


def test_ratios_are_the_quotients_of_their_parts(results):
    figs, rows = results["figures"], results["goals"]
    ratios = [g for g in rows if len(g["of"]) == 2 and g["value"] is not None]
    assert {g["name"] for g in ratios} >= {f"rollout ours/tutorial, {n} envs" for n in QUICK.envs}
    for g in ratios:
        num, den = (figs[k]["value"] for k in g["of"])
        assert g["parts"] == [num, den] and g["value"] == num / den
    for g in rows:
        if g["goal"] is None or g["value"] is None:
            assert g["met"] is None
        else:
            op, target = g["goal"].split()
            target = float(target.rstrip("x").replace(",", ""))
            assert (
                g["met"]
                == {
                    ">=": g["value"] >= target,
                    "<=": g["value"] <= target,
                    "<": g["value"] < target,
                }[op]
            )
    train = next(g for g in rows if g["name"].startswith("train ours/tutorial"))
    assert train["value"] is None and train["met"] is None and "skipped" in train


def test_goals_follow_the_device_and_propagate_skips():
    figs = {
        "rollout/cfcclone-64": {"value": 70.0},
        "rollout/raw-64": {"value": 100.0},
        "rollout/cfcclone-16": {"value": 30.0},
        "rollout/raw-16": {"value": 100.0},
        "rollout/tutorial-ref": {"value": None, "skipped": "reference not found: x"},
    }
    by_name = {g["name"]: g for g in goals(figs, "cuda", (16, 64))}
    assert by_name["rollout ours/raw, 64 envs"]["met"] is True  # 0.7 >= 0.7 on a GPU
    assert by_name["rollout ours/raw, 16 envs"]["goal"] is None  # only >= 64 envs has one
    assert by_name["train ours/tutorial, tutorial encoder"]["goal"] == ">= 5x"
    assert by_name["rollout ours/tutorial, 16 envs"]["skipped"] == "reference not found: x"
    on_cpu = {g["name"]: g for g in goals(figs, "cpu", (16, 64))}
    assert on_cpu["rollout ours/raw, 64 envs"]["goal"] is None
    assert on_cpu["train ours/tutorial, tutorial encoder"]["goal"] == ">= 1.5x"
    assert on_cpu["rollout ours/tutorial, 64 envs"]["goal"] == ">= 5x"


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


def test_parse_envs_names_what_it_got():
    assert parse_envs("16,64") == (16, 64)
    for bad in ("", "16;64", "0,4"):
        with pytest.raises(ValueError, match=f"like 16,64, got {bad!r}"):
            parse_envs(bad)


def test_cli_without_reference_skips_its_rows_and_writes_markdown(tmp_path, capsys, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    missing = tmp_path / "nowhere" / "ncps_tutorial.py"
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert (
        main(
            [
                "bench",
                "--quick",
                "--envs",
                "2",
                "--rss-frames",
                "64",
                "--threads",
                "1",
                "--reference",
                str(missing),
                "--json",
                str(out_json),
                "--markdown",
                str(out_md),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert json.loads(printed.strip().splitlines()[-1]) == results
    assert results["reference"] is None
    for key in ("rollout/tutorial-ref", "train/tutorial-ref"):
        assert results["figures"][key]["value"] is None
    reason = f"reference not found: {missing}"
    assert results["figures"]["rollout/tutorial-ref"]["skipped"] == reason
    ratio = next(g for g in results["goals"] if g["name"] == "rollout ours/tutorial, 2 envs")
    assert ratio["skipped"] == reason and ratio["value"] is None
    assert "skipped: reference not found" in printed and "met" in printed
    md = out_md.read_text()
    assert md.startswith("## cfcclone bench")
    for text in (
        "Machine:",
        f"{results['machine']['cores']} cores",
        "GPU: none",
        results["machine"]["cpu"],
        "Versions:",
        "python",
        "torch",
        "ncps",
        "ale-py",
        "gymnasium",
        "cfcclone",
        results["versions"]["torch"],
        "Command: `cfcclone bench",
        f"--reference {missing}",
        "| storage: cfcclone dataset ",
    ):
        assert text in md
    assert list(scratch.iterdir()) == []  # data, export and synthetic dataset are gone


def test_cli_rejects_bad_options(capsys):
    assert main(["bench", "--quick", "--envs", "x"]) == 2
    assert "expected --envs as positive integers" in capsys.readouterr().err


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
