"""lpn-arc's XLA defaults: added once, never over a user's own setting, and reaching XLA."""

import os
import subprocess
import sys

import pytest
from lpn_arc import xla_flags
from lpn_arc.xla_flags import CPU_FLAGS, apply_xla_defaults

FLAG = CPU_FLAGS[0]


NAME = FLAG.split("=", 1)[0]


def test_added_to_an_empty_environment_once():
    env = {}
    assert apply_xla_defaults(env) == [FLAG]
    assert env["XLA_FLAGS"] == FLAG
    assert apply_xla_defaults(env) == []
    assert env["XLA_FLAGS"] == FLAG


def test_a_users_own_value_wins():
    env = {"XLA_FLAGS": f"{NAME}=true --xla_cpu_use_thunk_runtime=true"}
    assert apply_xla_defaults(env) == []
    assert env["XLA_FLAGS"] == f"{NAME}=true --xla_cpu_use_thunk_runtime=true"


def test_opt_out():
    env = {"LPN_ARC_XLA_DEFAULTS": "0"}
    assert apply_xla_defaults(env) == []
    assert "XLA_FLAGS" not in env


@pytest.mark.parametrize("version", [(0, 4), (0, 9), (0, 11), (1, 0), None])
def test_untested_jaxlib_keeps_xlas_own_defaults(monkeypatch, version):
    monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: version)
    env = {}
    assert apply_xla_defaults(env) == []
    assert env == {}


def test_importing_lpn_arc_sets_the_flag_before_jax_starts():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "LPN_ARC_XLA_DEFAULTS")}
    code = (
        "import os, lpn_arc, jax.numpy as jnp\n"
        "assert float(jnp.ones(3).sum()) == 3.0\n"  # XLA accepted the flag
        "print(os.environ['XLA_FLAGS'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [FLAG]
