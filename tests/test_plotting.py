"""`plot_run`: a PNG from metrics.jsonl, clear errors without data or matplotlib."""

import builtins
import json

import pytest
from PIL import Image

from cfcclone.plotting import PlottingUnavailable, plot_run, read_metrics

ROWS = [
    {
        "epoch": 1,
        "train_loss": 1.0,
        "val_loss": 0.9,
        "train_acc": 0.5,
        "val_acc": 0.6,
        "return_mean": 2.0,
    },
    {
        "epoch": 2,
        "train_loss": 0.5,
        "val_loss": 0.6,
        "train_acc": 0.7,
        "val_acc": 0.7,
        "return_mean": None,
    },
]


def _run(tmp_path, text):
    (tmp_path / "metrics.jsonl").write_text(text)
    return tmp_path


def test_curves_png_from_the_metrics(tmp_path):
    pytest.importorskip("matplotlib")
    run = _run(tmp_path, "".join(json.dumps(r) + "\n" for r in ROWS))
    assert read_metrics(run) == ROWS
    out = plot_run(run)
    assert out == run / "curves.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
    assert {p.name for p in run.iterdir()} == {"metrics.jsonl", "curves.png"}  # no temporary


def test_missing_metrics_and_missing_matplotlib(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no metrics; is .* a cfcclone run directory"):
        plot_run(tmp_path)
    run = _run(tmp_path, json.dumps(ROWS[0]) + "\n")
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(PlottingUnavailable, match=r"pip install 'cfcclone\[plot\]'"):
        plot_run(run)


def test_a_wired_checkpoint_draws_its_wiring_and_a_dense_one_is_refused(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("networkx")
    from cfcclone import ConvCfC, PolicyConfig
    from cfcclone.checkpoint import save_policy
    from cfcclone.cli import main
    from cfcclone.envs import EnvConfig

    meanings = ["NOOP", "FIRE", "RIGHT", "LEFT"]
    wired = PolicyConfig(n_actions=4, encoder="nature", units=19, wiring="autoncp", features=32,
                         action_meanings=meanings)  # fmt: skip
    save_policy(tmp_path / "ncp.safetensors", ConvCfC(wired), EnvConfig())
    assert main(["plot", "--wiring", str(tmp_path / "ncp.safetensors")]) == 0
    png = tmp_path / "ncp.wiring.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert Image.open(png).size == (900, 600)
    dense = PolicyConfig(n_actions=4, encoder="nature", units=8)
    save_policy(tmp_path / "dense.safetensors", ConvCfC(dense), EnvConfig())
    assert main(["plot", "--wiring", str(tmp_path / "dense.safetensors")]) == 2
    assert "no wiring to draw" in capsys.readouterr().err
    assert not (tmp_path / "dense.wiring.png").exists()
