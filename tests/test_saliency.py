"""Saliency: VisualBackProp's geometry, gradient maps, the Breakout object boxes, the ratio that
says whether a map means something, and `play --saliency`."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cfcclone import ConvCfC, PolicyConfig, load_policy
from cfcclone.cli import main
from cfcclone.saliency import (
    breakout_boxes,
    encoder_stages,
    gradient_saliency,
    object_mass,
    rollout_saliency,
    visual_backprop,
)

SHIPPED = Path(__file__).parents[1] / "checkpoints" / "breakout_nature.safetensors"


def _policy(encoder="nature", **options) -> ConvCfC:
    torch.manual_seed(0)
    return ConvCfC(PolicyConfig(n_actions=4, encoder=encoder, units=8, **options)).eval()


def test_visual_backprop_spreads_a_deep_unit_over_its_receptive_field():
    stages = encoder_stages(_policy().conv_block)
    assert [s[1:] for s in stages] == [(8, 4, 0), (4, 2, 0), (3, 1, 0)]
    deep = torch.zeros(1, 1, 7, 7)
    deep[0, 0, 2, 5] = 1.0  # one unit of the last conv: its receptive field is 36 x 36 pixels
    maps = [torch.ones(1, 1, 20, 20), torch.ones(1, 1, 9, 9), deep]
    out = visual_backprop(maps, stages, 84)[0]
    rows, cols = np.nonzero(out.numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 51, 40, 75)
    assert out.max() == 1.0 and out.min() == 0.0


@pytest.mark.parametrize("encoder", ["nature", "tutorial", "impala"])
def test_both_maps_cover_the_frame_in_unit_range(encoder):
    policy = _policy(encoder)
    obs = np.random.default_rng(0).integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m, *_ in
             encoder_stages(policy.conv_block)]  # fmt: skip
    with torch.no_grad():
        policy(torch.as_tensor(obs)[:, None])
    for h in hooks:
        h.remove()
    for maps in (visual_backprop(seen, encoder_stages(policy.conv_block), 84),
                 gradient_saliency(policy, obs)):  # fmt: skip
        assert maps.shape == (2, 84, 84) and maps.min() == 0 and maps.max() == 1


def test_the_gradient_map_follows_the_recurrent_state():
    policy, obs = _policy(), np.full((1, 4, 84, 84), 90, np.uint8)
    obs[..., 40:44, 40:44] = 200
    zero = gradient_saliency(policy, obs, torch.zeros(1, 8))
    other = gradient_saliency(policy, obs, torch.full((1, 8), 3.0))
    assert not torch.allclose(zero, other)


def test_object_mass_is_one_for_a_map_that_ignores_the_objects():
    boxes = np.zeros((3, 84, 84), bool)
    boxes[:, 10:20, 30:40] = True
    flat = object_mass(np.ones((3, 84, 84)), boxes)
    assert flat["ratio"] == pytest.approx(1.0) and flat["area"] == pytest.approx(100 / 84**2)
    assert object_mass(boxes.astype(float), boxes)["ratio"] == pytest.approx(84**2 / 100)


def test_the_paddle_box_holds_the_paddles_pixels():
    loaded = load_policy(SHIPPED)
    run = rollout_saliency(loaded.policy, loaded.env_config, 60, "vbp", seed=1)
    boxes = breakout_boxes(run.ram)
    rows, inside = slice(75, 78), slice(5, 79)  # screen rows 189..192, between the walls
    lit = run.frames[:, rows, inside] > 0
    assert lit.any() and not (lit & ~boxes[:, rows, inside]).any()


def test_the_shipped_clone_looks_at_the_ball_and_the_paddle():
    """The check of the issue, shortened: the saliency mass in the ball and paddle boxes is
    several times their share of the frame (BENCHMARKS.md has the 500-step figures)."""
    loaded = load_policy(SHIPPED)
    run = rollout_saliency(loaded.policy, loaded.env_config, 150, "vbp", seed=1)
    assert object_mass(run.maps, breakout_boxes(run.ram))["ratio"] >= 3
    # and the rollout leaves no hook on the policy's encoder
    assert not any(m._forward_hooks for m in loaded.policy.conv_block.modules())


def test_play_overlays_the_maps_on_a_recording(tmp_path, capsys):
    gif = tmp_path / "s.gif"
    args = ["play", str(SHIPPED), "--saliency", "gradient", "--max-steps", "20"]
    assert main([*args, "--record", str(gif)]) == 0
    from PIL import Image

    image = Image.open(gif)
    assert image.size == (252, 252) and image.n_frames == 10
    capsys.readouterr()
    assert main(args) == 2  # a window cannot show the maps (here: no display either)
    assert "pass --record" in capsys.readouterr().err
