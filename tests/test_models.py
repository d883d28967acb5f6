"""ConvCfC and its encoders: shapes, the tutorial's exact parameters, and input checks."""

import dataclasses

import pytest
import torch

from cfcclone.models import ENCODERS, ConvCfC, PolicyConfig


def _obs(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 4, 84, 84), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("mixed", [False, True])
def test_output_shapes(encoder, mixed):
    policy = ConvCfC(PolicyConfig(n_actions=6, encoder=encoder, units=16, mixed_memory=mixed))
    logits, hx = policy(_obs(2, 3))
    assert logits.shape == (2, 3, 6) and logits.dtype == torch.float32
    states = hx if mixed else (hx,)
    assert all(h.shape == (2, 16) for h in states)


def test_cfc_options_reach_ncps():
    policy = ConvCfC(
        PolicyConfig(n_actions=4, encoder="nature", units=32, mode="pure", backbone_units=48)
    )
    assert policy.rnn.state_size == 32
    assert policy.rnn.rnn_cell.mode == "pure"
    assert policy.rnn.rnn_cell.backbone[0].out_features == 48


def test_the_skip_head_adds_a_linear_readout_of_the_features_to_the_cfc_logits():
    torch.manual_seed(0)
    plain = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8))
    skip = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8, skip_head=True))
    assert plain.skip is None and skip.skip.in_features == 512 and skip.skip.out_features == 4
    missing = skip.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["skip.weight", "skip.bias"]
    obs, starts = _obs(2, 5), torch.zeros(2, 5, dtype=torch.bool)
    starts[1, 2] = True  # a reset inside the window: the readout is per step, the state is cut
    with torch.no_grad():
        base, h0 = plain(obs, None, starts)
        ours, h1 = skip(obs, None, starts)
        readout = skip.skip(skip.encode(obs))
    torch.testing.assert_close(ours, base + readout)
    torch.testing.assert_close(h1, h0)
    assert readout.abs().min() > 0


def test_prev_action_feeds_a_one_hot_of_the_executed_action_none_at_a_start():
    torch.manual_seed(0)
    config = PolicyConfig(n_actions=4, encoder="nature", units=8, skip_head=True)
    policy = ConvCfC(dataclasses.replace(config, prev_action=True)).eval()
    assert policy.rnn.rnn_cell.backbone[0].in_features == 512 + 4 + 8  # features, one-hot, state
    assert policy.skip.in_features == 512 + 4
    obs, starts = _obs(2, 6), torch.zeros(2, 6, dtype=torch.bool)
    starts[:, 0] = starts[1, 3] = True
    prev = torch.tensor([[2, 1, 3, 0, 2, 2], [-1, 3, 3, 1, 0, 1]])
    with pytest.raises(ValueError, match="reads the previous action"):
        policy(obs, None, starts)
    with pytest.raises(ValueError, match=r"expected prev_action \(2, 6\) int64, got \(2, 5\)"):
        policy(obs, None, starts, prev[:, :5])
    with torch.no_grad():
        ours, _ = policy(obs, None, starts, prev)
        none = prev.clone()
        none[:, 0] = none[1, 3] = -1  # where an episode starts the action is read as none
        torch.testing.assert_close(policy(obs, None, starts, none)[0], ours)
        other = prev.clone()
        other[0, 1:] = (other[0, 1:] + 1) % 4
        moved = policy(obs, None, starts, other)[0]
    torch.testing.assert_close(moved[1], ours[1])  # rows are independent
    assert (moved[0, 1:] - ours[0, 1:]).abs().min() > 0  # each step reads its own input
    torch.testing.assert_close(moved[0, 0], ours[0, 0])
    plain = ConvCfC(config)  # a policy without it ignores the argument
    with torch.no_grad():
        torch.testing.assert_close(plain(obs, None, starts, prev)[0], plain(obs, None, starts)[0])


def test_tutorial_parameter_count():
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="tutorial"))
    assert sum(p.numel() for p in policy.parameters()) == 1_515_716


def test_tutorial_state_dict_moves_both_ways_unchanged(tutorial):
    ours = ConvCfC(PolicyConfig(n_actions=4)).eval()
    theirs = tutorial.ConvCfC(4).eval()
    ours_shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert ours_shapes == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict(), strict=True)
    obs = _obs(2, 4)
    with torch.no_grad():
        # The tutorial feeds float frames / 255; ours takes the uint8 frames and scales itself.
        assert torch.equal(ours(obs)[0], theirs(obs.float() / 255)[0])
        torch.nn.init.normal_(theirs.conv_block.conv1.weight)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        assert torch.equal(ours(obs)[0], theirs(obs.float() / 255)[0])


def test_unknown_encoder_and_mode_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet'; expected one of \['tutorial'"):
        PolicyConfig(n_actions=4, encoder="resnet")
    with pytest.raises(ValueError, match=r"unknown mode 'fast'; expected one of \['default'"):
        PolicyConfig(n_actions=4, mode="fast")
    with pytest.raises(ValueError, match="expected n_actions >= 1, got 0"):
        ConvCfC(PolicyConfig(encoder="nature"))


def test_the_encoder_choices_are_the_encoders_built():
    from typing import get_args

    from cfcclone.models.config import EncoderName

    assert set(get_args(EncoderName)) == set(ENCODERS)


@pytest.mark.parametrize(
    "obs, message",
    [
        (torch.zeros(2, 3, 4, 84, 84), r"got \(2, 3, 4, 84, 84\) float32; pass raw uint8"),
        (torch.zeros(3, 4, 84, 84, dtype=torch.uint8), r"got \(3, 4, 84, 84\) uint8"),
        (torch.zeros(1, 1, 84, 84, 4, dtype=torch.uint8), r"got \(1, 1, 84, 84, 4\) uint8"),
    ],
)
def test_bad_observations_raise(obs, message):
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature"))
    with pytest.raises(ValueError, match=r"expected obs \(B, T, 4, 84, 84\) uint8, " + message):
        policy(obs)


def test_config_round_trips():
    cfg = PolicyConfig(n_actions=4, encoder="impala", action_meanings=["NOOP", "FIRE", "R", "L"])
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"PolicyConfig: unknown fields \[.width.\]"):
        PolicyConfig.from_dict({"n_actions": 4, "width": 3})


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_bf16_encoder_keeps_the_cfc_and_its_state_in_fp32(encoder):
    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder=encoder, units=8)).eval()
    obs = _obs(2, 3)
    with torch.no_grad():
        exact, _ = policy(obs)
        logits, hx = policy.use_bf16()(obs)
    assert logits.dtype == torch.float32 and hx.dtype == torch.float32
    torch.testing.assert_close(logits, exact, atol=0.05, rtol=0.05)
    fresh = ConvCfC(policy.config).eval()
    fresh.load_state_dict({k: v.contiguous() for k, v in policy.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(fresh(obs)[0], exact)


@pytest.mark.parametrize("mixed", [False, True])
def test_episode_start_inside_a_sequence_zeroes_the_state_of_that_row(mixed):
    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8, mixed_memory=mixed))
    obs = _obs(2, 7)
    start = torch.zeros(2, 7, dtype=torch.bool)
    start[0, 3] = True  # row 0 begins a new episode at step 3, row 1 runs on
    with torch.no_grad():
        masked, _ = policy(obs, None, start)
        whole, _ = policy(obs)
        fresh, _ = policy(obs[:1, 3:])
    torch.testing.assert_close(masked[0, :3], whole[0, :3], rtol=0, atol=0)
    torch.testing.assert_close(masked[0, 3:], fresh[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(masked[1], whole[1], rtol=0, atol=1e-6)
    assert not torch.allclose(masked[0, 3:], whole[0, 3:])


def test_episode_start_at_step_zero_discards_the_given_state():
    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8))
    obs, hx = _obs(2, 3), torch.randn(2, 8)
    start = torch.tensor([[True, False, False], [False, False, False]])
    with torch.no_grad():
        masked, _ = policy(obs, hx, start)
        zero, _ = policy(obs[:1])
        carried, _ = policy(obs[1:], hx[1:])
    torch.testing.assert_close(masked[0], zero[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(masked[1], carried[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected episode_start \(2, 3\) bool, got \(2, 4\)"):
        policy(obs, hx, torch.zeros(2, 4, dtype=torch.bool))


def test_nature_and_impala_features_start_at_a_learnable_scale():
    # PyTorch's default init gave nature features near 0.01, and a ConvCfC on them did not
    # learn; orthogonal init (SB3, CleanRL) keeps them near 0.1 on Breakout-like frames.
    frames = torch.zeros(8, 1, 4, 84, 84, dtype=torch.uint8)
    frames[..., 20:26, 8:76] = 140  # a band of bricks
    frames[..., 75:77, 30:38] = 110  # the paddle
    for encoder in ("nature", "impala"):
        torch.manual_seed(0)
        features = ConvCfC(PolicyConfig(n_actions=4, encoder=encoder)).encode(frames)
        assert 0.03 < features.abs().mean().item() < 2.0, encoder  # default: ~0.006


# cells and wirings (cfcclone.models.cores): built from ncps's classes

CORES = {
    "cfc": {},
    "cfc_autoncp": dict(wiring="autoncp", units=10, features=16),
    "cfc_ncp_mixed": dict(wiring="ncp", units=10, ncp=[4, 2, 3, 2, 2, 2], mixed_memory=True),
    "ltc": dict(core="ltc"),
    "ltc_autoncp": dict(core="ltc", wiring="autoncp", units=10),
}


@pytest.mark.parametrize("core", CORES)
def test_every_cell_and_wiring_steps_as_its_sequence(core):
    torch.manual_seed(0)
    options = {"n_actions": 4, "encoder": "nature", "units": 8, **CORES[core]}
    policy = ConvCfC(PolicyConfig(**options)).eval()
    obs, start = _obs(2, 6), torch.zeros(2, 6, dtype=torch.bool)
    start[:, 0], start[1, 4] = True, True  # a reset inside the sequence
    with torch.no_grad():
        whole, hx_whole = policy(obs, None, start)
        hx, steps = None, []
        for t in range(6):
            out, hx = policy(obs[:, t : t + 1], hx, start[:, t : t + 1])
            steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), whole, rtol=0, atol=1e-5)
    state = hx[0] if isinstance(hx, tuple) else hx
    assert state.shape == (2, policy.rnn.state_size) and whole.shape == (2, 6, 4)


def test_wirings_are_ncps_own_and_seeded():
    from ncps.wirings import AutoNCP

    from cfcclone.models.cores import make_wiring, wiring_of

    config = PolicyConfig(n_actions=4, encoder="nature", units=19, wiring="autoncp", features=32)
    a, b = ConvCfC(config), ConvCfC(config)
    assert isinstance(wiring_of(a.rnn), AutoNCP) and a.rnn.state_size == 19
    assert (wiring_of(a.rnn).adjacency_matrix == wiring_of(b.rnn).adjacency_matrix).all()
    reference = make_wiring(config)
    reference.build(32)
    assert (reference.adjacency_matrix == wiring_of(a.rnn).adjacency_matrix).all()
    assert (reference.sensory_adjacency_matrix == wiring_of(a.rnn).sensory_adjacency_matrix).all()
    assert wiring_of(ConvCfC(dataclasses.replace(config, wiring="dense", units=8)).rnn) is None


def test_bad_cell_and_wiring_options_are_named():
    for options, message in [
        (dict(wiring="autoncp", units=6), "needs more than n_actions \\+ 2 = 6 units, got 6"),
        (dict(wiring="ncp", units=10), "wiring ncp needs --ncp with 6 numbers"),
        (dict(wiring="ncp", units=10, ncp=[4, 4, 3, 2, 2, 2]), "has 12 units, not 10"),
        (dict(core="ltc", mode="pure"), "apply to the CfC, not to the LTC"),
        (dict(wiring="autoncp", backbone_units=32), "apply to a dense CfC, not a wired one"),
        (dict(core="none", wiring="ncp"), "wiring ncp needs a cell"),
        (dict(ncp=[1, 1, 1, 1, 1, 1]), "--ncp goes with --wiring ncp"),
        (dict(encoder="tutorial", features=32), "the tutorial's ends in a pooling"),
    ]:
        with pytest.raises(ValueError, match=message):
            PolicyConfig(**{"n_actions": 4, "encoder": "nature", **options})
