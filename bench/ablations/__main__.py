"""``python -m bench.ablations``: the AlexNet ablation study (``bench.ablations.alexnet_study``)."""
import sys

from bench.ablations.alexnet_study import cli

sys.exit(cli())
