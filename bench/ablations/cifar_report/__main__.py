"""``python -m bench.ablations.cifar_report [OUT] [--update-readme README.md]``: re-render the study's report."""
import sys

from bench.ablations.cifar_report.render import cli

sys.exit(cli())
