"""``kernels.catalog`` agrees with the ops it describes: each entry's settings are its function's keyword
arguments with the same defaults (a default changed in one place only fails here), and every declared
custom op has a catalog entry."""
import inspect

import pytest

from kernels.catalog import CUSTOM_OPS, OPS, PUBLIC_OPS, OpSpec


@pytest.mark.parametrize("op", list(OPS))
def test_settings_are_the_functions_keywords_with_its_defaults(op):
    spec = OPS[op]
    params = inspect.signature(spec.function).parameters
    keywords = {name: p.default for name, p in params.items() if name not in ("x", "backend")
                and p.kind is not inspect.Parameter.KEYWORD_ONLY}
    if spec.fused:  # the unfused chain takes the settings without defaults
        assert keywords == spec.defaults, f"{op}: function defaults {keywords} vs catalog {spec.defaults}"
    else:
        assert list(keywords) == list(spec.defaults)


def test_every_public_op_is_declared_with_its_steps_settings():
    assert set(CUSTOM_OPS) == set(PUBLIC_OPS)
    spec = OPS["relu_lrn_pool"]  # a declaration whose settings are not its steps' is refused
    with pytest.raises(ValueError, match="declared as relu_lrn"):
        OpSpec("relu_lrn_pool", spec.function, spec.steps, spec.alexnet_sites, custom=OPS["relu_lrn"].custom)
