"""deltalake's own allocator is told to give freed memory back at once, for the moment it
is imported only (polars' allocator and child processes read the same variable and never
see it); a process that set the variable keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# the variable as deltalake's first import sees it, then as it is once the import is done
CODE = (
    "import builtins, os, sys\n"
    "assert 'deltalake' not in sys.modules\n"
    "seen = []\n"
    "real = builtins.__import__\n"
    "def watch(name, *args, **kwargs):\n"
    "    if name.split('.')[0] == 'deltalake' and not seen:\n"
    "        seen.append(os.environ.get('_RJEM_MALLOC_CONF', '-'))\n"
    "    return real(name, *args, **kwargs)\n"
    "builtins.__import__ = watch\n"
    "import dfs_analytics.dataset\n"
    "assert 'deltalake' in sys.modules\n"
    "print(seen[0], os.environ.get('_RJEM_MALLOC_CONF', '-'))\n"
)


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if env_value is not None:
        env["_RJEM_MALLOC_CONF"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "dirty_decay_ms:0 -"),  # set while deltalake loads, then gone again
        ("narenas:2", "narenas:2 narenas:2"),  # the process's own setting is kept
    ],
    ids=["default", "the-process-setting"],
)
def test_the_allocator_setting_lasts_only_while_deltalake_loads(
    given: str | None, expected: str
) -> None:
    assert _run(given) == expected
