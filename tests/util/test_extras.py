"""Optional extras (minilm/util/extras.py): a missing optional package names the feature and the pip extra."""

import sys

import pytest

from minilm.util.extras import MissingExtra, require


def test_require_imports_or_names_the_extra(monkeypatch):
    assert require("json", "none", "reading JSON").dumps([1]) == "[1]"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtra, match=r"minilm plot needs .*matplotlib.* pip install 'minilm\[plot\]'"):
        require("matplotlib", "plot", "minilm plot")
    assert issubclass(MissingExtra, ImportError)  # `except ImportError` still catches it
