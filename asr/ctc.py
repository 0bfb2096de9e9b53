"""What CTC computes, written out: a reference forward-backward in log space.

Training uses `torch.nn.functional.ctc_loss`; this module documents the algorithm and the tests
check that both agree on loss and gradient.

For labels y (length U) the extended sequence is l' = [blank, y1, blank, y2, ..., yU, blank]
(length S = 2U + 1). A path through T frames emits one symbol of l' per frame, moving from s to
s, s+1, or s+2 (the last only onto a label that differs from the one two back). The loss is
-log of the summed probability of all paths that end in the last label or the final blank.
"""

from __future__ import annotations

import torch

BLANK_ID = 0


def min_ctc_frames(targets: list[int] | tuple[int, ...]) -> int:
    """Fewest output frames that can emit `targets`: one per label, plus one blank between each
    pair of equal neighbours (T' >= U + repeats)."""
    repeats = sum(1 for a, b in zip(targets, targets[1:]) if a == b)
    return len(targets) + repeats


def _extend(targets: torch.Tensor) -> torch.Tensor:
    """[U] -> [2U + 1]: blanks around and between the labels."""
    ext = torch.full((2 * len(targets) + 1,), BLANK_ID, dtype=torch.long)
    ext[1::2] = targets
    return ext


def ctc_forward_backward(log_probs: torch.Tensor, targets: torch.Tensor):
    """One utterance. log_probs [T, V] (log-softmax output), targets [U] (no blanks).

    Returns (loss, grad): loss = -log p(targets | x); grad [T, V] = d loss / d logits, where
    log_probs = log_softmax(logits): softmax minus the label posterior (Graves et al. 2006,
    eq. 16). `torch.nn.functional.ctc_loss` also back-propagates this quantity (it assumes its
    input came out of a log-softmax), so autograd through the log-softmax gives the same.
    """
    T, V = log_probs.shape
    lp = log_probs.double()
    ext = _extend(targets)
    S = len(ext)
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64)

    # may s be reached from s-2? only onto a label that differs from the label two back
    skip = torch.zeros(S, dtype=torch.bool)
    skip[2:] = (ext[2:] != BLANK_ID) & (ext[2:] != ext[:-2])

    alpha = torch.full((T, S), float("-inf"), dtype=torch.float64)
    alpha[0, 0] = lp[0, ext[0]]
    if S > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        prev = alpha[t - 1]
        stay = prev
        step = torch.cat([neg_inf.view(1), prev[:-1]])
        jump = torch.where(skip, torch.cat([neg_inf.repeat(2), prev[:-2]]), neg_inf)
        alpha[t] = torch.logsumexp(torch.stack([stay, step, jump]), dim=0) + lp[t, ext]

    beta = torch.full((T, S), float("-inf"), dtype=torch.float64)
    beta[T - 1, S - 1] = lp[T - 1, ext[S - 1]]
    if S > 1:
        beta[T - 1, S - 2] = lp[T - 1, ext[S - 2]]
    # can s+2 be reached from s? exactly when skip[s+2]
    skip_from = torch.cat([skip[2:], torch.zeros(2, dtype=torch.bool)])
    for t in range(T - 2, -1, -1):
        nxt = beta[t + 1]
        stay = nxt
        step = torch.cat([nxt[1:], neg_inf.view(1)])
        jump = torch.where(skip_from, torch.cat([nxt[2:], neg_inf.repeat(2)]), neg_inf)
        beta[t] = torch.logsumexp(torch.stack([stay, step, jump]), dim=0) + lp[t, ext]

    ends = alpha[T - 1, S - 1:] if S == 1 else alpha[T - 1, S - 2:]
    log_likelihood = torch.logsumexp(ends, dim=0)

    # alpha[t, s] + beta[t, s] counts lp[t, ext[s]] twice: the posterior of being at s at t is
    # exp(alpha + beta - lp - log_likelihood); a token's posterior sums over the s that emit it.
    occupancy = alpha + beta - lp[:, ext] - log_likelihood  # [T, S]
    posterior = torch.zeros(T, V, dtype=torch.float64)
    posterior.index_add_(1, ext, occupancy.exp())
    grad = lp.exp() - posterior
    return -log_likelihood, grad
