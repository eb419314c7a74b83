"""Tests of moe_vla_ros/ros/domain.py: evaluations on one machine get domain ids no other process holds."""

import subprocess
import sys

import pytest

from moe_vla_ros.ros.domain import EVALUATION_DOMAINS, MAX_DOMAIN_ID, lease_domain


def test_leases_are_exclusive_until_closed(tmp_path):
    domains = range(210, 213)
    with lease_domain(domains, tmp_path) as first, lease_domain(domains, tmp_path) as second:
        assert (first.domain_id, second.domain_id) == (210, 211)
        third = lease_domain(domains, tmp_path)
        assert third.domain_id == 212
        with pytest.raises(RuntimeError, match="210..212"):
            lease_domain(domains, tmp_path)
        third.close()
        with lease_domain(domains, tmp_path) as again:
            assert again.domain_id == 212  # given back
    with lease_domain(domains, tmp_path) as after:
        assert after.domain_id == 210


def test_a_domain_held_by_another_process_is_skipped_and_freed_when_it_exits(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from moe_vla_ros.ros.domain import lease_domain; "
         f"lease = lease_domain(range(220, 222), Path({str(tmp_path)!r})); print(lease.domain_id, flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "220"
        with lease_domain(range(220, 222), tmp_path) as lease:
            assert lease.domain_id == 221
    finally:
        holder.kill()  # not a clean exit: the kernel releases its lock
        holder.wait()
    with lease_domain(range(220, 222), tmp_path) as lease:
        assert lease.domain_id == 220


def test_evaluation_domains_are_valid_and_clear_of_robots_and_test_runs():
    assert EVALUATION_DOMAINS.start > 199 and EVALUATION_DOMAINS.stop - 1 == MAX_DOMAIN_ID
