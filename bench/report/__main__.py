"""``python -m bench.report``: re-make the benchmark report from saved pytest-benchmark JSON."""
import sys

from bench.report.render import main

sys.exit(main())
