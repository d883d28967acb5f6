"""The planners: Breakout and Pong experts that read the emulator RAM; deterministic, batched.

Named `planner` on the command line (`scripted`, its old name, still works). Both
experts predict where the ball meets the paddle from its position and its velocity over
the last step (what two stacked frames show), simulate the paddle's momentum under every plan
of the next <= 3 steps (27 sequences of NOOP/up/down, then NOOP), and play the first action of
the cheapest plan. The cost counts misses and off-aim hits, averaged over sticky-action delays
(each change of action late by 0, 1 or 2 frames with odds .75, .19, .06), plus 1 per press and
a 0.1 tie-break for pressing early: so the paddle moves once, early, then waits (NOOP on 74%
of Breakout and 91% of Pong steps), and the press cost keeps it from dithering on near-ties.
A Breakout ball more than 3 steps away allows only holds (press.., then release), no
tap-and-back gambles. While the ball moves away the paddle rests, moving only when its
target is more than a wide dead-band away. Inputs are RAM positions; the velocities and the
paddle's momentum they are combined with are what the 4 stacked frames show as motion. The
last move in that momentum is the one the env executed (`info["action"]`, where info has it):
labelling a DAgger student's states, the planner models the student's paddle, not its own
labels (reading their own labels instead, they changed 6.6% of the labels on the states of
the Pong planner with 5% random errors, experiments/log.md).

Breakout (positions from `cfcclone.experts.ram`): the paddle catches the ball while the
  ball's centre is in [left, right + 1], right clipped at 151. Momentum: the paddle halves its
  gap to the knob's rest point each frame with one frame of lag (one step held moves it
  ~24 px, half of it coasting after release): that rest point is the paddle's momentum.
  Rule: falling ball, keep the ball's landing x (walls folded) >= 3 px inside the catch span
  (`SAFETY`); rising ball, bring the rest point within 14 px of where the ball lands if it
  bounces off the lowest brick row (y 84).
Pong (RAM units throughout, from `cfcclone.experts.ram`): our paddle's face at x 188, the ball
  reflecting at y 44 and 207; RIGHT moves the paddle up, LEFT down.
  The paddle moves 3/4 of the way to its knob per step and a press moves the knob 24; the
  knob is read from the paddle's motion (its RAM copy, ram[4], is there on alternate frames
  only). The ball is returned at offset o = ball y - paddle y in [-2, 16] on the frame it
  reaches x 188 (-1..15 as predicted from step positions: a still paddle misses at -2 and 16);
  o in [-2, 0] sends it up at 2 px/frame, [13, 16] down at 2 px/frame, anything else at most
  1 px/frame. In 5 games the CPU missed 1 of 496 shallow balls, 31/31 steep balls hit down
  from y <= 118, 37/40 hit up from y in 128..167, and 7/122 other steep balls. Rule: aim for
  the zone that wins from the predicted hit height, else the paddle centre; from 2.5 steps
  before contact only a miss is worth a press. The game freezes ~65,200 frames into an
  episode (the ball vanishes, no serve: a timer overflow, it seems), so only points won in
  the first ~16,300 steps count: winning fast matters.
"""

from __future__ import annotations

import itertools

import numpy as np

from cfcclone.experts.ram import Breakout, Pong

DELAYS = ((0, 0.75), (1, 0.1875), (2, 0.0625))  # sticky 0.25: frames a new action is late
PLANS = {k: np.array(list(itertools.product((0, 1, -1), repeat=k)), float) for k in (1, 2, 3)}
PRESS_COST, EARLY_BONUS = 1.0, 0.1


def fold(x, lo: float, hi: float):
    """Position of a ball travelling x in a 1-D box [lo, hi] with elastic walls."""
    w = hi - lo
    y = np.mod(np.asarray(x, float) - lo, 2 * w)
    return lo + np.where(y > w, 2 * w - y, y)


def unfold_velocity(x, x0, v0, lo: float, hi: float):
    """x - x0 over a step in a box [lo, hi], signed as the ball moves now: of x and its mirror
    images in the walls, the one nearest x0 + v0 (x0 + the raw step if v0 is unknown) is
    where the ball would be without the wall; behind a mirror the motion is reversed."""
    images = np.stack([x, 2 * hi - x, 2 * lo - x])
    guess = x0 + np.where(np.isfinite(v0), v0, x - x0)
    k = np.argmin(np.abs(images - guess), axis=0)
    return np.where(k == 0, 1, -1) * (images[k, np.arange(len(x))] - x0)


def is_hold(plans: np.ndarray) -> np.ndarray:
    """Plans that press one way from now on, then release: (d, .., d, 0, .., 0)."""
    tail_free = np.all((plans[:, 1:] == 0) | (plans[:, 1:] == plans[:, :1]), axis=1)
    released = np.cumsum(plans == 0, axis=1) > 0
    return tail_free & ~np.any(released & (plans != 0), axis=1)


def best_first_move(plans: np.ndarray, miss_cost, far: np.ndarray) -> np.ndarray:
    """First move (-1, 0, 1) of the cheapest plan; miss_cost(delay) -> (M, P) costs. Where
    `far` (M,), the ball lands after the plans end: only holds, no tap-and-back gambles."""
    pressed = plans != 0
    first = np.where(pressed.any(1), np.argmax(pressed, axis=1), plans.shape[1])
    cost = PRESS_COST * pressed.sum(1) + EARLY_BONUS * first
    cost = cost + sum(w * miss_cost(d) for d, w in DELAYS)
    cost = np.where(far[:, None] & ~is_hold(plans)[None], np.inf, cost)
    return plans[np.argmin(cost, axis=1), 0]


class _RamExpert:
    """Input checks and per-env memory: last ball x, y, velocity, paddle, action."""

    game = ""
    ACTIONS = (0, 2, 3)  # NOOP, then the actions that move by +1 and by -1

    def __init__(self, num_envs: int = 1):
        if num_envs < 1:
            raise ValueError(f"expected num_envs >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.prev = np.full((num_envs, 5), np.nan)  # x, y, vx, vy, paddle
        self.last = np.zeros(num_envs)  # last move, -1 / 0 / +1

    def act(self, obs: np.ndarray, episode_start: np.ndarray, info: dict) -> np.ndarray:
        n = self.num_envs
        obs, start = np.asarray(obs), np.asarray(episode_start)
        if obs.ndim != 4 or obs.shape[0] != n:
            raise ValueError(f"expected obs ({n}, stack, H, W), got shape {obs.shape}")
        if not isinstance(info, dict) or "ram" not in info:
            raise ValueError(f"expected info to be a dict with 'ram' ({n}, 128), got {info!r:.80}")
        ram = np.asarray(info["ram"])
        if ram.shape != (n, 128):
            raise ValueError(f"expected info['ram'] of shape ({n}, 128), got {ram.shape}")
        if start.shape != (n,):
            raise ValueError(f"expected episode_start of shape ({n},), got {start.shape}")
        start = start.astype(bool)
        self.last = self.played(info, self.last)
        self.prev[start], self.last[start] = np.nan, 0.0
        move = self.decide(ram)
        self.last = move
        return np.array(self.ACTIONS, np.int64)[np.where(move > 0, 1, np.where(move < 0, 2, 0))]

    def played(self, info: dict, last: np.ndarray) -> np.ndarray:
        """The move (-1 / 0 / +1) the env executed last step, from `info["action"]` (the
        action sent, after the fire protocol): where another policy plays (a DAgger student)
        the paddle's momentum follows its action, not the expert's label. Rows without it
        (`info["_action"]` false, or no key) keep `last`, the expert's own last move."""
        if "action" not in info:
            return last
        sent = np.asarray(info["action"])
        if sent.shape != (self.num_envs,):
            raise ValueError(
                f"expected info['action'] of shape ({self.num_envs},), got {sent.shape}"
            )
        has = np.asarray(info.get("_action", np.ones(self.num_envs, bool)), bool)
        move = np.where(sent == self.ACTIONS[1], 1.0, np.where(sent == self.ACTIONS[2], -1.0, 0.0))
        return np.where(has, move, last)

    def remember(self, x, y, vx, vy, known, paddle, inplay) -> None:
        nan = np.nan
        self.prev = np.stack([x, y, np.where(known, vx, nan), np.where(known, vy, nan), paddle], 1)
        self.prev[~inplay, :2] = np.nan


class BreakoutExpert(_RamExpert):
    """Catches every ball it can reach with the paddle's momentum modelled frame by frame,
    keeping the ball 3 px inside the catch span; waits under the ball's likely return."""

    game = "breakout"
    ACTIONS = (0, 2, 3)  # NOOP, RIGHT (x + 1), LEFT (x - 1)
    X_LO, X_HI, CONTACT, SAFETY, UP_DEADBAND, BRICKS_Y = 8.0, 152.0, 177.0, 3.0, 14.0, 84.0

    def velocity(self, x, y, inplay):
        """Ball velocity over the last step, undoing a wall bounce inside the step."""
        vx = unfold_velocity(x, self.prev[:, 0], self.prev[:, 2], self.X_LO, self.X_HI)
        vy, vy0 = y - self.prev[:, 1], self.prev[:, 3]
        # a bounce off the paddle or a brick inside the step hides part of the speed
        flip = np.isfinite(vy0) & (np.sign(vy) != np.sign(vy0)) & (vy != 0)
        vy = np.where(flip, np.sign(vy) * np.maximum(np.abs(vy), np.abs(vy0)), vy)
        known = inplay & np.isfinite(vx) & (vy != 0) & (np.abs(vy) < 40)
        return np.where(known, vx, 0.0), np.where(known, vy, 0.0), known

    @staticmethod
    def paddle_at(left, rest, plans, frames, prev_move, delay):
        """Paddle left edge (M, P) at frame `frames` (M,) after each plan, frame by frame."""
        fmax = int(frames.max())
        held = np.zeros((len(left), len(plans), fmax + delay + 4 * plans.shape[1]))
        held[:, :, delay : delay + 4 * plans.shape[1]] = np.repeat(plans, 4, axis=1)
        held[:, :, :delay] = prev_move[:, None, None]
        p = np.repeat(left[:, None], len(plans), 1)
        t = np.repeat(rest[:, None], len(plans), 1)
        out = p.copy()
        for f in range(1, fmax + 1):
            p = p + (t - p) / 2  # the paddle halves its gap to the knob's rest point...
            t = np.clip(t + 6 * held[:, :, f - 1], 8.0, 144.0)  # ...which moves a frame later
            out = np.where((frames == f)[:, None], p, out)
        return out

    def decide(self, ram):
        s = Breakout.read(ram)
        x, y, width, left, rest = s.ball_x, s.ball_y, s.width, s.paddle, s.rest
        inplay = (y > 0) & (y < self.CONTACT)
        vx, vy, known = self.velocity(x, y, inplay)
        move = np.zeros(len(x))
        falling = np.nonzero(known & (vy > 0))[0]
        if len(falling):
            frames = np.ceil((self.CONTACT - y[falling]) * 4 / vy[falling])
            land = fold(x[falling] + vx[falling] * frames / 4, self.X_LO, self.X_HI)
            far = frames > 12
            frames = np.clip(frames, 1, 24).astype(int)  # the paddle has settled by then
            plans = PLANS[int(min(3, np.ceil(frames.max() / 4)))]

            def miss_cost(delay):
                p = self.paddle_at(
                    left[falling], rest[falling], plans, frames, self.last[falling], delay
                )
                right = np.minimum(p + width[falling, None] - 1, 151.0)
                margin = np.minimum(land[:, None] - p, right + 1 - land[:, None])
                return np.maximum(self.SAFETY - margin, 0)

            move[falling] = best_first_move(plans, miss_cost, far)
        rising = known & (vy < 0)
        path = np.maximum(y - self.BRICKS_Y, 0) + self.CONTACT - self.BRICKS_Y  # up, then down
        steps = path / -np.minimum(vy, -1)
        error = fold(x + vx * steps, self.X_LO, self.X_HI) - (rest + width / 2)
        move[rising] = (np.sign(error) * (np.abs(error) > self.UP_DEADBAND))[rising]
        self.remember(x, y, vx, vy, known, left, inplay)
        return move


class PongExpert(_RamExpert):
    """Returns every ball, steeply where the CPU then misses: the paddle's edge meets the
    ball when the predicted hit height is in a winning band, its centre otherwise."""

    game = "pong"
    ACTIONS = (0, 3, 2)  # NOOP, LEFT (paddle down, y + 1), RIGHT (paddle up, y - 1)
    Y_LO, Y_HI, FACE, P_LO, P_HI = 44.0, 207.0, 188.0, 38.0, 203.0
    CATCH = (-1.0, 15.0)  # ball y - paddle y at contact, as predicted, that returns the ball
    MISS, OFF_AIM = 10.0, 0.5  # costs of a miss and of an off-aim return (a press costs 1)
    # (highest hit y, aimed offsets): steep down wins below 118, steep up in 128..167
    ZONES = ((118.0, (13.0, 15.0)), (127.0, (4.0, 10.0)), (167.0, (-1.0, 0.0)))
    CENTRE, NEAR, HOME, HOME_DEADBAND, FOLLOW, KNOB_LAG = (4.0, 10.0), 2.5, 118.0, 16.0, 0.74, 0.27

    def knob(self, p):
        """Where the paddle comes to rest, inverted from its last step: p' = p + .74 (k - p) +
        .27 (k' - k); k' = k + 24 move. At rest (no move, no press) it is the paddle itself."""
        p0 = np.where(np.isfinite(self.prev[:, 4]), self.prev[:, 4], p)
        moved = p - p0
        k0 = p0 + (moved - self.KNOB_LAG * 24 * self.last) / self.FOLLOW
        k = np.clip(k0 + 24 * self.last, self.P_LO, self.P_HI)
        return np.where((np.abs(moved) <= 1) & (self.last == 0), p, k)

    def paddle_at(self, p, k, plans, steps, prev_move, delay):
        """Paddle y (M, P) after `steps` (M,) fractional steps of each plan, step by step."""
        p = np.repeat(p[:, None], len(plans), 1)
        k = np.repeat(k[:, None], len(plans), 1)
        last = np.repeat(prev_move[:, None], len(plans), 1)
        out = p.copy()
        for s in range(int(np.ceil(steps.max()))):
            a = plans[None, :, s] if s < plans.shape[1] else np.zeros((1, len(plans)))
            held = np.where(a != last, delay * last + (4 - delay) * a, 4 * a)  # frames
            k2 = np.clip(k + 6 * held, self.P_LO, self.P_HI)
            p2 = p + self.FOLLOW * (k - p) + self.KNOB_LAG * (k2 - k)
            phase = np.clip(steps - s, 0, 1)[:, None]
            out = np.where((phase > 0) & (phase <= 1), p + phase * (p2 - p), out)
            p, k, last = p2, k2, np.broadcast_to(a, p.shape)
        return out

    def aim(self, y_hit):
        """(lo, hi) offsets to aim for at each predicted hit height (ZONES, else centre)."""
        lo, hi = np.full(len(y_hit), self.CENTRE[0]), np.full(len(y_hit), self.CENTRE[1])
        for top, zone in reversed(self.ZONES):
            lo, hi = np.where(y_hit <= top, zone[0], lo), np.where(y_hit <= top, zone[1], hi)
        return lo, hi

    def decide(self, ram):
        s = Pong.read(ram)
        x, y, p = s.ball_x, s.ball_y, s.paddle
        inplay = (x > 0) & (y > 0)
        vx = x - self.prev[:, 0]
        vy = unfold_velocity(y, self.prev[:, 1], self.prev[:, 3], self.Y_LO, self.Y_HI)
        known = inplay & np.isfinite(vx) & np.isfinite(vy) & (np.abs(vx) < 30)
        vx, vy = np.where(known, vx, 0.0), np.where(known, vy, 0.0)
        k = self.knob(p)
        move = np.zeros(len(x))
        coming = np.nonzero(known & (vx > 0) & (x < self.FACE))[0]
        if len(coming):
            steps = (self.FACE - x[coming]) / vx[coming]
            y_hit = fold(y[coming] + vy[coming] * steps, self.Y_LO, self.Y_HI)
            lo, hi = self.aim(y_hit)
            steps = np.minimum(steps, 8.0)  # the paddle has settled by then
            plans = PLANS[int(min(3, np.ceil(steps.max())))]
            near = (steps <= self.NEAR)[:, None]

            def miss_cost(delay):
                o = y_hit[:, None] - self.paddle_at(
                    p[coming], k[coming], plans, steps, self.last[coming], delay
                )
                out = np.maximum(self.CATCH[0] - o, 0) + np.maximum(o - self.CATCH[1], 0)
                off_aim = ~near & ((o < lo[:, None]) | (o > hi[:, None]))
                return np.where(out > 0, self.MISS + out, 0.0) + self.OFF_AIM * off_aim

            move[coming] = best_first_move(plans, miss_cost, np.zeros(len(coming), bool))
        home = self.HOME - k
        away = np.sign(home) * (np.abs(home) > self.HOME_DEADBAND)
        move = np.where(known & (vx > 0) & (x < self.FACE), move, away)
        self.remember(x, y, vx, vy, known, p, inplay)
        return move


PLANNERS = {"breakout": BreakoutExpert, "pong": PongExpert}
