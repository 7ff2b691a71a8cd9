"""An independent float64 implementation of the paper's formulas, written from the equations with
explicit loops (no torch.nn.functional), used to check the eager reference itself."""
import torch


def paper_lrn_float64(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta over channels i."""
    a = a.to(torch.float64)
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        window_sum = (a[:, lo : hi + 1] ** 2).sum(dim=1)
        out[:, i] = a[:, i] / (k + alpha * window_sum) ** beta
    return out


def max_pool_float64(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Unpadded floor-mode max-pool by explicit window loops (NaN propagates, like ATen)."""
    x = x.to(torch.float64)
    out_h = (x.shape[2] - kernel_size) // stride + 1
    out_w = (x.shape[3] - kernel_size) // stride + 1
    out = torch.empty(x.shape[0], x.shape[1], out_h, out_w, dtype=torch.float64)
    for oh in range(out_h):
        for ow in range(out_w):
            window = x[:, :, oh * stride : oh * stride + kernel_size, ow * stride : ow * stride + kernel_size]
            flat = window.reshape(x.shape[0], x.shape[1], -1)
            best = flat.amax(dim=-1)
            has_nan = flat.isnan().any(dim=-1)
            out[:, :, oh, ow] = torch.where(has_nan, torch.full_like(best, float("nan")), best)
    return out
