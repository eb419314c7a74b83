"""Tests of moe_vla_ros/cli.py: repeated KEY<sep>VALUE arguments."""

import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.cli import parse_pairs


def test_pairs_keep_their_order_and_split_at_the_first_separator():
    assert parse_pairs(["b=x", "a=y=z"], "=", "--camera NAME=TOPIC") == {"b": "x", "a": "y=z"}
    assert parse_pairs(["/a:=/b"], ":=", "--remap FROM:=TO") == {"/a": "/b"}
    assert parse_pairs([], "=", "--camera NAME=TOPIC") == {}


@pytest.mark.parametrize("item", ["wrist", "=topic", "wrist=", ""])
def test_a_malformed_item_is_named(item):
    with pytest.raises(BagError, match=f"--camera takes NAME=TOPIC, got {item!r}"):
        parse_pairs([item], "=", "--camera NAME=TOPIC", BagError)
    with pytest.raises(ValueError):
        parse_pairs([item], "=", "--camera NAME=TOPIC")
