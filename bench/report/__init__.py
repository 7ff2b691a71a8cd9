"""The benchmark report: saved pytest-benchmark JSON (``results``) -> derived tables (``tables``,
``targets``, ``paper_claims``, ``compare``) and plots (``plots``), written by ``render``
(``python -m bench.report``)."""
