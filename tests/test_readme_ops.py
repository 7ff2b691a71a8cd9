"""README's table of the ops follows ``kernels.catalog``: one row per public op, with its signature and
the paper's settings as the op takes them, so an op added to the table and not to the README fails here."""
import re
from pathlib import Path

from kernels.catalog import OPS, PUBLIC_OPS

README = Path(__file__).resolve().parents[1] / "README.md"


def _signature(op: str) -> str:
    settings = ", ".join(f"{name}={value!r}" for name, value in OPS[op].defaults.items())
    return f"{op}(x, {settings})"


def _op_rows() -> dict[str, str]:
    """The first column of each row of the table under "## The ops": op name -> the signature shown."""
    section = README.read_text().split("## The ops", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)\((.*?)\)` \|", section, flags=re.MULTILINE)
    return {name: f"{name}({args})" for name, args in rows}


def test_readme_lists_every_public_op_with_its_signature():
    rows = _op_rows()
    assert list(rows) == list(PUBLIC_OPS), "README's op table must list the public ops in kernels.catalog's order"
    for op in PUBLIC_OPS:
        assert rows[op] == _signature(op), f"README shows {rows[op]}, the op is {_signature(op)}"
