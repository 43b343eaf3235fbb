"""The fuzz table: every CLI subcommand and public entry point, with a strategy for its
arguments (files included) and a check of what a successful run may return.

Adding an entry point: append an :class:`EntryPoint` to ``ENTRY_POINTS`` (CLI: a
``cli_entry("llm calibrate", strategy, check)`` with a strategy that draws
``{"argv": [...], "files": {...}}``; API: ``api_entry("distalloc.x.f", strategy, call,
check)`` whose strategy draws plain data and ``call(case)`` builds the objects and calls the
function in the worker).  The runner judges every outcome the same way (fuzz_runner.py).
"""
from __future__ import annotations

from fuzz_api import api_entries
from fuzz_cli import CLI_ENTRIES
from fuzz_llm_online import LLM_ONLINE_ENTRIES
from fuzz_more import more_entries
from fuzz_runner import EntryPoint

ENTRY_POINTS: list[EntryPoint] = (CLI_ENTRIES + api_entries() + more_entries()
                                  + LLM_ONLINE_ENTRIES)
BY_NAME = {e.name: e for e in ENTRY_POINTS}
