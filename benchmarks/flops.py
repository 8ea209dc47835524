"""FLOP counts from layer sizes: the work a kernel cannot avoid, used for GFLOP/s and "% of peak".

Conventions (one multiply-add = 2 FLOPs; only matrix multiplies are counted: biases, activations,
losses, Adam, Polyak averaging, sampling and penalties are elementwise and left out, so a row's
"% of peak" is an upper bound on the useful work done):

- forward of an MLP with layer widths ``d0, d1, ..., dL``, per sample: ``F = 2 * sum_i d_i * d_{i+1}``;
- backward with weight gradients: ``F`` again (``dW = x^T dy``);
- gradient with respect to a layer's input: ``2 * d_i * d_{i+1}`` for that layer; the first layer's
  is only computed when the input itself needs a gradient (the actor's action fed to the critics).
"""

from __future__ import annotations

from collections.abc import Sequence


def mlp_dims(in_dim: int, hidden: int, layers: int, out_dim: int) -> list[int]:
    """Layer widths ``[in, hidden x layers, out]``."""
    return [in_dim, *([hidden] * layers), out_dim]


def forward(dims: Sequence[int]) -> int:
    """Forward FLOPs per sample: ``2 * sum_i d_i * d_{i+1}``."""
    return 2 * sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=False))


def input_grads(dims: Sequence[int], first_layer: bool) -> int:
    """FLOPs per sample of back-propagating to the input of every layer (the first one optionally)."""
    return forward(dims) - (0 if first_layer else 2 * dims[0] * dims[1])


def train(dims: Sequence[int]) -> int:
    """Forward plus backward with weight gradients, no gradient for the network input, per sample:
    ``3F - 2 d0 d1``."""
    return forward(dims) + forward(dims) + input_grads(dims, first_layer=False)


def sac_update(obs_dim: int, act_dim: int, hidden: int, layers: int) -> int:
    """One SAC update (twin critics, auto-alpha) per sample of the batch, counted as::

        target:  F_actor + 2 F_critic                       (next action, both target critics)
        critic:  2 * train(critic)                           (both critics, weight gradients)
        actor:   train(actor) + 2 F_critic + 2 G_critic     (critics frozen: input gradients only,
                                                             G = F with the first layer included)
    """
    actor = mlp_dims(obs_dim, hidden, layers, 2 * act_dim)
    critic = mlp_dims(obs_dim + act_dim, hidden, layers, 1)
    target = forward(actor) + 2 * forward(critic)
    critic_step = 2 * train(critic)
    actor_step = train(actor) + 2 * forward(critic) + 2 * input_grads(critic, first_layer=True)
    return target + critic_step + actor_step


def dynamics_dims(obs_dim: int, act_dim: int, hidden: int, layers: int) -> list[int]:
    """One dynamics member: ``(s, a)`` to mean and log-variance of ``[delta_s, r]``."""
    return mlp_dims(obs_dim + act_dim, hidden, layers, 2 * (obs_dim + 1))


def ensemble_step(members: int, batch: int, obs_dim: int, act_dim: int, hidden: int, layers: int) -> int:
    """One gradient step of the ensemble: ``members * batch * train(member)``."""
    return members * batch * train(dynamics_dims(obs_dim, act_dim, hidden, layers))


def rollout_transition(members: int, obs_dim: int, act_dim: int, hidden: int, layers: int,
                       sac_hidden: int, sac_layers: int) -> int:
    """One model transition: every member's forward plus the actor's:
    ``members * F_member + F_actor`` (the penalty, sampling and termination rule are elementwise)."""
    member = forward(dynamics_dims(obs_dim, act_dim, hidden, layers))
    actor = forward(mlp_dims(obs_dim, sac_hidden, sac_layers, 2 * act_dim))
    return members * member + actor


def pool_epoch(members: int, n_train: int, n_holdout: int, obs_dim: int, act_dim: int, hidden: int,
               layers: int) -> int:
    """One epoch of ``fit``: every member trains on all ``n_train`` rows and predicts the holdout set."""
    dims = dynamics_dims(obs_dim, act_dim, hidden, layers)
    return members * (n_train * train(dims) + n_holdout * forward(dims))
