"""Replay buffers as preallocated torch tensors on the trial's device: filled once (real data) or as a
ring (online SAC, model rollouts), sampled with a seeded generator, no host round trips when sampling."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    """A ring buffer of transitions ``(obs, act, rew, next_obs, done)``.

    ``done`` holds true terminations only (time-limit truncations bootstrap), as float for the TD target.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu") -> None:
        self.capacity = int(capacity)
        self.device = torch.device(device)
        kw = {"dtype": torch.float32, "device": self.device}
        self.obs = torch.empty(self.capacity, obs_dim, **kw)
        self.act = torch.empty(self.capacity, act_dim, **kw)
        self.rew = torch.empty(self.capacity, **kw)
        self.next_obs = torch.empty(self.capacity, obs_dim, **kw)
        self.done = torch.empty(self.capacity, **kw)
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add_batch(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
                  done: torch.Tensor) -> None:
        """Append ``n`` transitions (tensors on any device), overwriting the oldest when full."""
        n = obs.shape[0]
        if n == 0:
            return
        if n > self.capacity:  # keep the newest
            obs, act, rew, next_obs, done = (x[-self.capacity:] for x in (obs, act, rew, next_obs, done))
            n = self.capacity
        first = min(n, self.capacity - self.ptr)
        for dst, src in ((self.obs, obs), (self.act, act), (self.rew, rew), (self.next_obs, next_obs),
                         (self.done, done)):
            dst[self.ptr:self.ptr + first] = src[:first]
            if first < n:
                dst[:n - first] = src[first:]
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def add(self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray, done: bool) -> None:
        """Append one transition from numpy (online interaction)."""
        i = self.ptr
        self.obs[i] = torch.as_tensor(obs)
        self.act[i] = torch.as_tensor(act)
        self.rew[i] = float(rew)
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.done[i] = float(done)
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample_idx(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.size, (n,), generator=gen, device=self.device)

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.obs[idx], self.act[idx], self.rew[idx], self.next_obs[idx], self.done[idx]

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        return self.gather(self.sample_idx(n, gen))
