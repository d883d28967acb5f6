"""Irregular time: frame-skip jitter in the env, step durations in the shards, and a policy that
feeds them to its cell as ncps's timespans, the same in training, the agent, ONNX and predict."""

import numpy as np
import pytest
import torch
from ncps.torch import LTC, CfC
from ncps.wirings import AutoNCP

from cfcclone import ConvCfC, PolicyConfig, StatefulAgent, collect, make_env, make_vector_env
from cfcclone.checkpoint import load_policy, save_policy
from cfcclone.data import SequenceDataset
from cfcclone.data.format import open_shard
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig
from cfcclone.models.cores import run_timed
from cfcclone.rollout import elapsed_times, rollout

JITTER = EnvConfig(frame_skip_jitter=[2, 6], max_episode_frames=800)


@pytest.mark.parametrize(
    "make",
    [lambda: CfC(6, 5, proj_size=3, batch_first=True),
     lambda: CfC(6, 5, batch_first=True, mixed_memory=True, mode="pure"),
     lambda: CfC(6, AutoNCP(8, 3), batch_first=True),
     lambda: LTC(6, 5, batch_first=True),
     lambda: LTC(6, AutoNCP(8, 3), batch_first=True, mixed_memory=True)],
    ids=["cfc", "cfc_mixed_pure", "cfc_autoncp", "ltc", "ltc_autoncp_mixed"],
)  # fmt: skip
def test_batched_timespans_equal_one_sample_calls_of_ncps(make):
    """ncps #81/#82: its forward breaks timespans of a batch; ours equals it row by row."""
    torch.manual_seed(0)
    rnn = make()
    b = rnn.state_size  # B equal to the units: where ncps's own broadcast goes wrong silently
    x, ts = torch.randn(b, 4, 6), torch.rand(b, 4) * 2 + 0.25
    with torch.no_grad():
        ours, hx = run_timed(rnn, x, None, ts)
        for i in range(b):
            ref, ref_hx = rnn(x[i : i + 1], None, ts[i : i + 1])
            torch.testing.assert_close(ours[i : i + 1], ref, rtol=1e-5, atol=1e-6)
            mine = tuple(h[i : i + 1] for h in hx) if isinstance(hx, tuple) else hx[i : i + 1]
            torch.testing.assert_close(mine, ref_hx, rtol=1e-5, atol=1e-6)
        whole, _ = rnn(x)  # and where every step is one unit, it is ncps's own batched forward
        ones, _ = run_timed(rnn, x, None, torch.ones(b, 4))
    torch.testing.assert_close(ones, whole, rtol=1e-5, atol=1e-6)


def test_jitter_draws_each_steps_frames_from_the_reset_seed():
    env = make_env(**JITTER.to_dict())
    _, info = env.reset(seed=5)
    assert info["duration"] == 1.0
    durations = [env.step(0)[-1]["duration"] for _ in range(200)]
    assert set(durations) == {k / 4 for k in range(2, 7)}  # 2..6 frames of a nominal 4
    env.reset(seed=5)
    assert [env.step(0)[-1]["duration"] for _ in range(200)] == durations
    with pytest.raises(ValueError, match="frame_skip_jitter as LO HI"):
        EnvConfig(frame_skip_jitter=[6, 2])
    with pytest.raises(ValueError, match="frame_skip_jitter as LO HI"):
        EnvConfig(frame_skip_jitter=[2, 6], max_pool=False)
    assert "duration" not in make_env().reset(seed=0)[1]  # fixed frame skip: no durations


@pytest.fixture(scope="module")
def jittered_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("jitter") / "ds"
    collect(out, "breakout", "tracker", frames=600, envs=1, seed=2, progress=False,
            **{k: v for k, v in JITTER.to_dict().items() if k != "game"})  # fmt: skip
    return out


def test_the_shards_keep_each_steps_duration_as_the_env_reported_it(jittered_data):
    manifest = Manifest.read(jittered_data)
    assert manifest.env.frame_skip_jitter == [2, 6]
    meta, arrays = open_shard(manifest.shard_dirs(jittered_data)[0])
    seg = meta["segments"][0]
    env = make_vector_env(num_envs=1, config=manifest.env)  # replay the episode's actions
    obs, info = env.reset(seed=seg.seed)
    replayed = [1.0]
    for a in arrays["actions"][: seg.length - 1]:
        obs, *_, info = env.step(np.array([a]))
        replayed.append(float(elapsed_times(info, np.zeros(1, bool))[0]))
    env.close()
    np.testing.assert_array_equal(arrays["elapsed"][: seg.length], np.float32(replayed))
    ds = SequenceDataset(jittered_data, seq_len=8, split="all")
    batch = ds.collate([(0, 0), (0, 5)])
    np.testing.assert_array_equal(batch.elapsed[0].numpy(), arrays["elapsed"][:8])
    assert batch.elapsed[0, 0] == 1.0 and batch.elapsed[1].tolist() != [1.0] * 8


def _timed_policy(**options) -> ConvCfC:
    torch.manual_seed(0)
    config = PolicyConfig(n_actions=4, encoder="nature", units=8, timespans=True, **options)
    return ConvCfC(config).eval()


@pytest.mark.parametrize("options", [{}, dict(core="ltc", wiring="autoncp")], ids=["cfc", "ltc"])
def test_a_timed_policy_plays_alike_in_torch_onnx_and_predict(tmp_path, options):
    pytest.importorskip("onnxruntime")
    from cfcclone.export import OnnxAgent, export_onnx

    path = tmp_path / "p.safetensors"
    save_policy(path, _timed_policy(**options), JITTER)
    policy = load_policy(path).policy
    onnx = OnnxAgent(export_onnx(path, tmp_path / "p.onnx"), 2)
    agent, state, steps = StatefulAgent(policy, 2), None, 0
    env = make_vector_env(num_envs=2, config=JITTER)
    for t in rollout(env, agent, seed=3):
        elapsed = elapsed_times(t.info, t.episode_start)
        out = onnx.logits(t.obs, t.episode_start, None, elapsed=elapsed)
        actions, state = policy.predict(t.obs, state, t.episode_start, elapsed=elapsed)
        assert (out.argmax(-1) == t.actions).all() and (actions == t.actions).all()
        steps += 1
        if steps == 120:
            break
    env.close()


def test_the_elapsed_time_changes_what_a_timed_policy_does_and_no_other():
    obs = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    short, long = torch.full((2, 3), 0.5), torch.full((2, 3), 1.5)
    timed, plain = _timed_policy(), ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8))
    with torch.no_grad():
        assert not torch.allclose(timed(obs, timespans=short)[0], timed(obs, timespans=long)[0])
        torch.testing.assert_close(timed(obs)[0], timed(obs, timespans=torch.ones(2, 3))[0])
        assert torch.equal(plain(obs, timespans=short)[0], plain(obs)[0])
    with pytest.raises(ValueError, match="timespans go to a cell"):
        PolicyConfig(n_actions=4, core="none", timespans=True)


def test_training_reads_the_durations(jittered_data, tmp_path):
    from cfcclone.cli import main

    run = tmp_path / "run"
    args = ["train", "--data", jittered_data, "--out", run, "--encoder", "nature", "--units",
            "8", "--seq-len", "8", "--batch", "4", "--batches-per-epoch", "2", "--epochs", "1",
            "--eval-episodes", "1", "--eval-envs", "1", "--timespans"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    loaded = load_policy(run / "best.safetensors")
    assert loaded.policy.config.timespans and loaded.env_config.frame_skip_jitter == [2, 6]
