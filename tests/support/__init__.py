"""What the tests share: signed deliveries, waits on observable state, child processes and local HTTP servers."""
