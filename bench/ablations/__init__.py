"""The paper's error-rate claims, measured: the AlexNet ablation study (``python -m bench.ablations``) and
the CPU-scale CIFAR-10 experiments on the paper's four-layer CNN (``python -m bench.ablations.cifar``)."""
