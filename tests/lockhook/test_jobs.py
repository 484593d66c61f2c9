"""Every RQ job named by string in lockhook.jobs is a function in workers/jobs.py."""

from __future__ import annotations

import importlib

from lockhook import jobs


def test_every_job_name_resolves_to_a_job_function():
    prefix = jobs.JOBS_MODULE + "."
    names = [v for k, v in vars(jobs).items() if k.isupper() and isinstance(v, str) and v.startswith(prefix)]
    assert len(names) >= 3
    module = importlib.import_module(jobs.JOBS_MODULE)
    for name in names:
        assert callable(getattr(module, name.removeprefix(prefix), None)), f"{name} is not a job function"
