"""A faithful PyTorch AlexNet (Krizhevsky et al. 2012) whose memory-bound layers run on a chosen kernels
backend, plus its data pipeline, device placement and training entry point (``python -m alexnet.train``)."""
from alexnet.model import PRESETS, AlexNet, AlexNetConfig, build_model, config_from_preset

__all__ = ["PRESETS", "AlexNet", "AlexNetConfig", "build_model", "config_from_preset"]
