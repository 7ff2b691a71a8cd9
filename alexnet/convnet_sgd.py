"""cuda-convnet's weight update, as an optimizer: per-layer ``eps``, ``mom``, ``wc``, momentum on the step.

From cuda-convnet (``github.com/dnouri/cuda-convnet`` commit ``e4ac0c1f``): ``src/layer.cu`` accumulates
``inc = mom * inc + (eps / numCases) * sum_over_cases(dlogp/dW)`` (``scaleGrad = getEps() / numCases``
in ``bpropWeights``; the cost layer's gradient is of the log-probability, i.e. minus the loss), then
``include/weights.cuh`` ``Weights::update`` adds ``-wc * eps * W`` to ``inc`` and ``W += inc``. Biases are
``Weights(..., epsB, wc=0, momB)``: never decayed.

So with a mean-reduced loss gradient ``g`` (``F.cross_entropy``'s default is exactly ``sum / numCases``):

    inc = mom * inc - eps * (g + wc * W);   W += inc

For a constant ``eps`` this is ``torch.optim.SGD(lr=eps, momentum=mom, weight_decay=wc)`` step for step
(PyTorch keeps ``buf = mom * buf + g'`` and subtracts ``lr * buf``); the two differ after ``eps`` changes:
cuda-convnet's ``inc`` keeps the steps taken at the old rate (the learning rate is lowered by editing the
layer-params file and resuming, which restores ``weightsInc``), PyTorch rescales its whole buffer. This
class keeps cuda-convnet's behaviour. ``lr_scale`` on a group multiplies its ``eps`` (the schedule's drops).
"""
from __future__ import annotations

import torch


class ConvnetSGD(torch.optim.Optimizer):
    """Param groups carry ``eps``, ``mom``, ``wc`` (and ``lr_scale``, default 1); state holds ``inc``."""

    def __init__(self, params, eps: float = 0.001, mom: float = 0.9, wc: float = 0.0):
        if eps < 0 or not 0 <= mom < 1 or wc < 0:
            raise ValueError(f"ConvnetSGD: need eps >= 0, 0 <= mom < 1, wc >= 0; got eps={eps}, mom={mom}, wc={wc}")
        super().__init__(params, {"eps": eps, "mom": mom, "wc": wc, "lr_scale": 1.0})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            eps = group["eps"] * group["lr_scale"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "inc" not in state:
                    state["inc"] = torch.zeros_like(p)
                inc = state["inc"]
                inc.mul_(group["mom"]).add_(p.grad, alpha=-eps)
                if group["wc"] > 0:
                    inc.add_(p, alpha=-group["wc"] * eps)
                p.add_(inc)
        return loss


def convnet_param_groups(layers: dict, params: dict) -> list[dict]:
    """Param groups for ``ConvnetSGD`` from ``{name: module with .weight/.bias}`` and the layer-params
    table ``{name: {epsW, epsB, momW, momB, wc}}``: the weight with ``epsW/momW/wc``, the bias with
    ``epsB/momB`` and no decay."""
    missing = sorted(set(layers) ^ set(params))
    if missing:
        raise ValueError(f"convnet_param_groups: layers and layer-params disagree on {missing}")
    groups = []
    for name, layer in layers.items():
        p = params[name]
        groups.append({"params": [layer.weight], "eps": p["epsW"], "mom": p["momW"], "wc": p["wc"], "name": f"{name}.weight"})
        groups.append({"params": [layer.bias], "eps": p["epsB"], "mom": p["momB"], "wc": 0.0, "name": f"{name}.bias"})
    return groups
