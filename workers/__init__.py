"""RQ jobs and the worker process: drain the inbox, resolve commands, expire deadlines, notify."""
