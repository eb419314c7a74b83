"""test/evaluation: hand-made records (eval_records.py) importable by the tests here."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from eval_records import sample_records


@pytest.fixture
def records():
    """Two reach episodes (one success) and one push episode, with different expert loads."""
    return sample_records()
