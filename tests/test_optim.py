"""alexnet/optim.py: the paper's SGD, fused where PyTorch has it, with the same update as the default form."""
import torch

from alexnet.optim import is_fused, paper_sgd


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*shape, generator=g)) for shape in ((7, 5), (5,), (3, 2, 3, 3))]


def test_fused_on_the_cpu_with_the_default_forms_update():
    fused_params, plain_params = _params(), _params()
    fused = paper_sgd(fused_params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    plain = torch.optim.SGD(plain_params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    assert is_fused(fused) and not is_fused(plain)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        for a, b in zip(fused_params, plain_params):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for a, b in zip(fused_params, plain_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_falls_back_where_no_fused_kernel_exists():
    ints = [torch.zeros(3, dtype=torch.int64)]  # not floating point: fused SGD refuses it
    opt = paper_sgd(ints, lr=0.1)
    assert not is_fused(opt)
