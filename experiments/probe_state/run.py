"""Can a clone that sees the game's exact state learn the planner? BC and DAgger on RAM.

A small MLP reads what the 4 stacked frames show, exactly: the ball's and the paddle's RAM
positions (`cfcclone.experts.ram`) at the last 4 steps, padded at an episode's start as the
frame stack is. Round 0 trains it on the planner's own steps (BC); each later round plays
`--episodes` full games with the MLP (the planner labelling every state, `--beta` the odds it
plays instead), adds them to the data, and retrains from scratch on all of it. Each round
prints the agreement on its states and the MLP's return (full games, sticky actions 0.25, the
quota rule of `cfcclone.evaluation.run_episodes`).

It separates the two halves of cloning: if a clone with perfect perception reaches the
planner, the frames' clones most likely lose in perception (the encoder); if it does not,
the planner's decision itself is what a small network does not learn from this much data.

`--labels-per-round N --finetune B --class-weights sqrt --beta-decay D` runs the frames' DAgger
protocol on the MLP instead (`cfcclone dagger`'s: N labels of the beta-mixture a round, the
last round's student trained on for B batches of 256, beta halving each round), so a gap
between the two protocols' clones can be told from one between the two inputs.

`--cnn` asks the perception half on the frames: the nature CNN and a linear head, per step,
trained on the planner's own stacks (no DAgger), with an auxiliary linear head that regresses
the MLP's inputs (standardised) from the CNN's features, weighted `--aux-weight` against the
cross-entropy (0: no auxiliary loss). It prints the val accuracy, the move recall and the
auxiliary R^2 every `--every` steps; `--class-weights sqrt`, as the Pong runs.

    python experiments/probe_state/run.py --game pong --steps 200000 --rounds 4 --episodes 10
    python experiments/probe_state/run.py --game pong --steps 100000 --cnn --aux-weight 1
    python experiments/probe_state/run.py --game pong --rounds 25 --labels-per-round 20000 \
        --finetune 900 --class-weights sqrt --beta 0.5 --beta-decay 0.5
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch import nn

from cfcclone.atomic import atomic_write_text
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import run_episodes
from cfcclone.experts import make_expert
from cfcclone.experts.ram import READERS, state_vector
from cfcclone.rollout import rollout
from cfcclone.vector_env import make_vector_env

STACK = 4


def features(history: np.ndarray) -> np.ndarray:
    """(N, STACK, k) readings, oldest first -> (N, STACK * k): the newest, scaled, then its
    differences from each older one (the motion the stack shows)."""
    now = history[:, -1]
    motion = [now - history[:, i] for i in range(STACK - 1)]
    return np.concatenate([now / 100.0] + [m / 10.0 for m in motion], 1)


class Recorder:
    """An Actor: the expert labels every step; the MLP `policy` plays (the expert instead with
    odds `beta`, and always while `policy` is None). Keeps every (features, label)."""

    def __init__(
        self,
        game,
        num_envs,
        policy=None,
        beta=0.0,
        seed=0,
        prev_action=False,
        temperature=0.0,
        keep_obs=False,
    ):
        self.game, self.policy, self.beta, self.prev_action = game, policy, beta, prev_action
        self.temperature = temperature
        self.expert = make_expert("planner", game, num_envs)
        self.moves = np.sort(self.expert.ACTIONS)  # the planner's actions, for the one-hot
        self.history = None
        self.rng = np.random.default_rng(seed)
        self.x, self.y, self.obs, self.keep_obs = [], [], [], keep_obs

    def act(self, obs, episode_start, info):
        state = state_vector(self.game, info["ram"])
        start = np.asarray(episode_start, bool)
        if self.history is None:
            self.history = np.repeat(state[:, None], STACK, 1)
        self.history = np.concatenate([self.history[:, 1:], state[:, None]], 1)
        self.history[start] = state[start, None]
        label = self.expert.act(obs, episode_start, info)
        x = features(self.history)
        if self.prev_action:  # the move the env executed last step, one-hot (0 at a start)
            sent = np.where(start, 0, np.asarray(info.get("action", np.zeros(len(start)))))
            x = np.concatenate([x, (sent[:, None] == self.moves).astype(np.float32)], 1)
        self.x.append(x)
        self.y.append(label)
        if self.keep_obs:
            self.obs.append(np.array(obs, np.uint8))
        if self.policy is None:
            return label
        mine = self.policy.act(x, self.temperature, self.rng)
        return np.where(self.rng.random(len(label)) < self.beta, label, mine)


class MLP(nn.Module):
    def __init__(self, inputs: int, actions: tuple[int, ...], hidden: int = 256):
        super().__init__()
        self.actions = np.asarray(actions)
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, len(actions)),
        )

    def forward(self, x):
        return self.net(x)

    def act(self, x: np.ndarray, temperature: float = 0.0, rng=None) -> np.ndarray:
        """Greedy actions, or sampled from softmax(logits / temperature) where it is > 0."""
        with torch.no_grad():
            logits = self(torch.as_tensor(x)).numpy().astype(np.float64)
        if temperature == 0:
            return self.actions[logits.argmax(1)]
        z = np.exp((logits - logits.max(1, keepdims=True)) / temperature)
        u = rng.random((len(z), 1)) * z.sum(1, keepdims=True)
        return self.actions[(np.cumsum(z, 1) < u).sum(1)]


def train(
    x,
    y,
    actions,
    epochs,
    seed,
    val_share=0.1,
    model=None,
    batches=0,
    lr=1e-3,
    batch=512,
    weighting="none",
):
    """An MLP on (x, y); the last `val_share` of the steps held out. A fresh one for `epochs`
    epochs (one-cycle lr); or, given `model` and `batches`, that one further trained for
    `batches` random batches (cosine lr from `lr`), as DAgger's students are. `weighting`:
    class weights as the trainer's (`training.steps.class_weights`). Returns the MLP and its
    val accuracy and move recall."""
    from cfcclone.training.steps import class_weights

    torch.manual_seed(seed)
    index = np.searchsorted(actions, y)
    cut = int(len(x) * (1 - val_share))
    xt, yt = torch.as_tensor(x), torch.as_tensor(index)
    weights = class_weights(np.bincount(index[:cut], minlength=len(actions)), weighting)
    gen = torch.Generator().manual_seed(seed)
    fresh = model is None or not batches
    if fresh:
        model = MLP(x.shape[1], tuple(actions))
        steps = epochs * (cut // batch + 1)
        order = torch.cat([torch.randperm(cut, generator=gen) for _ in range(epochs)])
    else:
        steps = batches
        order = torch.randint(cut, (batches * batch,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if fresh:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for rows in order.split(batch)[:steps]:
        loss = nn.functional.cross_entropy(model(xt[rows]), yt[rows], weight=weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = model(xt[cut:]).argmax(1)
    truth = yt[cut:]
    moves = truth != 0
    acc = float((pred == truth).float().mean())
    recall = float((pred[moves] == truth[moves]).float().mean()) if moves.any() else float("nan")
    return model, acc, recall


def train_cnn(obs, x, y, args) -> None:
    """The nature CNN per step on the planner's stacks, with the auxiliary state head."""
    from cfcclone.models import ConvCfC, PolicyConfig
    from cfcclone.training.steps import class_weights

    torch.manual_seed(args.seed)
    actions = np.unique(y)
    index = torch.as_tensor(np.searchsorted(actions, y))
    cut = int(len(y) * 0.9)
    mu, sd = x[:cut].mean(0), x[:cut].std(0) + 1e-3
    target = torch.as_tensor((x - mu) / sd)
    encoder = ConvCfC(
        PolicyConfig(
            encoder="nature", n_actions=len(actions), stack=obs.shape[1], screen_size=obs.shape[-1]
        )
    )
    head = nn.Linear(encoder.conv_block.features, len(actions))
    aux = nn.Linear(encoder.conv_block.features, x.shape[1])
    params = [*encoder.conv_block.parameters(), *head.parameters(), *aux.parameters()]
    opt = torch.optim.Adam(params, lr=3e-4)
    counts = np.bincount(index[:cut].numpy(), minlength=len(actions))
    weights = class_weights(counts, "sqrt")
    rng = np.random.default_rng(args.seed)
    val = np.arange(cut, len(y))[:: max(1, (len(y) - cut) // 2048)]

    def run(rows):
        f = encoder.encode(torch.as_tensor(obs[rows])[:, None])[:, 0]
        return head(f), aux(f)

    for step in range(1, args.cnn_steps + 1):
        rows = rng.integers(cut, size=256)
        logits, guess = run(rows)
        loss = nn.functional.cross_entropy(logits, index[rows], weight=weights)
        mse = nn.functional.mse_loss(guess, target[rows])
        opt.zero_grad()
        (loss + args.aux_weight * mse).backward()
        opt.step()
        if step % args.every == 0:
            with torch.no_grad():
                out = [run(b) for b in np.array_split(val, 8)]
            pred = torch.cat([o[0].argmax(1) for o in out])
            guess = torch.cat([o[1] for o in out])
            truth, moves = index[val], index[val] != 0
            r2 = 1 - float(((guess - target[val]) ** 2).mean())
            print(
                f"step {step}: loss {loss.item():.3f} aux mse {mse.item():.3f}, val accuracy "
                f"{(pred == truth).float().mean():.1%}, move recall "
                f"{(pred[moves] == truth[moves]).float().mean():.1%}, aux R^2 {r2:.3f}",
                flush=True,
            )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--game", default="pong", choices=sorted(READERS))
    ap.add_argument("--steps", type=int, default=200_000, help="the planner's steps (round 0)")
    ap.add_argument("--rounds", type=int, default=4, help="DAgger rounds after BC")
    ap.add_argument("--episodes", type=int, default=10, help="games a round (and its score)")
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--beta-decay", type=float, default=1.0, help="round i's beta: beta * decay^i")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument(
        "--labels-per-round",
        type=int,
        default=0,
        help="label this many steps of the beta-mixture a round, and score the MLP alone on "
        "games of its own (0: the scored games' steps are the round's labels)",
    )
    ap.add_argument(
        "--finetune",
        type=int,
        default=0,
        help="rounds after BC train the last round's MLP on for this many batches of 256 at "
        "lr 3e-4, cosine, as cfcclone dagger's students (0: a fresh MLP, --epochs of all)",
    )
    ap.add_argument("--class-weights", default="none", choices=["none", "sqrt", "balanced"])
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prev-action",
        action="store_true",
        help="also show the MLP the action the env executed last step",
    )
    ap.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="the MLP samples its actions at this temperature (0: greedy)",
    )
    ap.add_argument("--cnn", action="store_true", help="probe the nature CNN on the frames")
    ap.add_argument("--aux-weight", type=float, default=0.0, help="--cnn: auxiliary loss weight")
    ap.add_argument("--cnn-steps", type=int, default=1500, help="--cnn: Adam steps of 256")
    ap.add_argument("--every", type=int, default=250, help="--cnn: steps between reports")
    ap.add_argument("--json", help="write the rounds' rows here (not with --cnn)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    config = EnvConfig(game=args.game)
    env = make_vector_env(num_envs=args.envs, config=config, ram=True)
    rows = []
    try:
        expert = Recorder(
            args.game,
            env.num_envs,
            seed=args.seed,
            prev_action=args.prev_action,
            keep_obs=args.cnn,
        )
        for _ in rollout(env, expert, seed=args.seed):
            if len(expert.y) * env.num_envs >= args.steps:
                break
        x, y = np.concatenate(expert.x), np.concatenate(expert.y)
        if args.cnn:
            obs = np.concatenate(expert.obs)
            expert.obs = []
            train_cnn(obs, x, y, args)
            return
        actions = np.unique(y)
        model = None
        for r in range(args.rounds + 1):
            tune = dict(model=model, batches=args.finetune, lr=3e-4, batch=256) if r else {}
            model, acc, recall = train(
                x, y, actions, args.epochs, args.seed + r, weighting=args.class_weights, **tune
            )
            beta = args.beta * args.beta_decay**r
            player = Recorder(
                args.game,
                env.num_envs,
                model,
                0.0 if args.labels_per_round else beta,
                args.seed + 1000 + r,
                args.prev_action,
                args.temperature,
            )
            result = run_episodes(player, env, args.episodes, args.seed + 1000 * (r + 1))
            px, py = np.concatenate(player.x), np.concatenate(player.y)
            agree = float(np.mean(model.act(px) == py))
            if args.labels_per_round:  # the round's labels: the beta-mixture's own steps
                player = Recorder(
                    args.game,
                    env.num_envs,
                    model,
                    beta,
                    args.seed + 2000 + r,
                    args.prev_action,
                    args.temperature,
                )
                for _ in rollout(env, player, seed=args.seed + 1000 * (r + 1) + 500):
                    if len(player.y) * env.num_envs >= args.labels_per_round:
                        break
                px, py = np.concatenate(player.x), np.concatenate(player.y)
            row = {
                "round": r,
                "labels": len(y),
                "val_accuracy": acc,
                "val_move_recall": recall,
                "agreement": agree,
                **result.summary(),
            }
            rows.append(row)
            print(
                f"round {r}: {len(y):,} labels, val accuracy {acc:.1%}, move recall "
                f"{recall:.1%}; on its own states agreement {agree:.1%}, {result.line()}",
                flush=True,
            )
            x, y = np.concatenate([x, px]), np.concatenate([y, py])
            if args.json:  # each round as it ends: nothing lost if the run is stopped
                atomic_write_text(args.json, json.dumps(rows, indent=1))
    finally:
        env.close()


if __name__ == "__main__":
    main()
