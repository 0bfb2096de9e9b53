"""The reference CTC forward-backward agrees with torch's ctc_loss, loss and gradient."""

import pytest
import torch
import torch.nn.functional as F

from asr.ctc import ctc_forward_backward, min_ctc_frames


@pytest.mark.parametrize("seed", range(6))
def test_reference_matches_torch(seed):
    g = torch.Generator().manual_seed(seed)
    T = int(torch.randint(4, 20, (), generator=g))
    V = int(torch.randint(2, 6, (), generator=g))
    U = int(torch.randint(1, 4, (), generator=g))
    targets = torch.randint(1, V, (U,), generator=g)
    if min_ctc_frames(targets.tolist()) > T:
        pytest.skip("infeasible draw")
    logits = torch.randn(T, V, generator=g, dtype=torch.float64, requires_grad=True)
    log_probs = logits.log_softmax(-1)
    loss_torch = F.ctc_loss(
        log_probs[:, None, :], targets[None], torch.tensor([T]), torch.tensor([U]),
        blank=0, reduction="sum",
    )
    loss_torch.backward()
    loss_ref, grad_ref = ctc_forward_backward(log_probs.detach(), targets)
    assert torch.allclose(loss_ref, loss_torch.detach(), atol=1e-9)
    assert torch.allclose(grad_ref, logits.grad, atol=1e-9)


def test_repeated_labels_need_a_blank_between():
    # "AA" needs 3 frames: A, blank, A. With exactly 3 frames only that path exists.
    assert min_ctc_frames([1, 1]) == 3
    assert min_ctc_frames([1, 2, 2, 2]) == 6
    assert min_ctc_frames([]) == 0
    log_probs = torch.full((3, 2), 0.5).log()
    loss, _ = ctc_forward_backward(log_probs, torch.tensor([1, 1]))
    assert torch.isclose(loss, torch.tensor(3 * -torch.tensor(0.5).log().item(), dtype=loss.dtype))


def test_single_label_hand_worked():
    # T=2, V=2, target [1]: paths (1,1), (0,1), (1,0) -> p = 3/4 with uniform 1/2 probabilities.
    log_probs = torch.full((2, 2), 0.5).log()
    loss, _ = ctc_forward_backward(log_probs, torch.tensor([1]))
    assert torch.isclose(loss, -torch.tensor(0.75, dtype=torch.float64).log())
