"""Every tunable that is not an environment setting, named and explained once."""

SIGNATURE_TOLERANCE_S = 300
"""Svix/Standard Webhooks: a delivery's timestamp may differ from our clock by at most this."""

BODY_READ_TIMEOUT_S = 10.0
"""A webhook body must arrive within this; a client trickling bytes is cut off with 408."""

REDIS_SOCKET_TIMEOUT_S = 2.0
"""Redis calls on the ack path give up after this, so a dead Redis is a quick 503, never a hang."""

RETRY_AFTER_S = 5
"""`Retry-After` sent with 503 storage_unavailable."""

INBOX_BATCH_MAX = 256
"""Most deliveries written by one inbox script call (concurrent requests share a call)."""

EVENT_FUTURE_TOLERANCE_S = 24 * 3600
"""An event timestamp further ahead than this is invalid (clocks drift; a year-10000 date is a bug)."""

CORRELATION_CANDIDATES = 10
"""Rule 4 looks at most this many pending commands in the window for one its sender may confirm."""

DEVICE_RETENTION_S = 90 * 24 * 3600
"""Default of DEVICE_RETENTION_DAYS: a silent device's lock state and event log expire after this."""

ACCESS_DENIED_ALERT_COUNT = 3
"""Default of ACCESS_DENIED_ALERT_COUNT: this many denials on one lock within the window send one alert."""

ACCESS_DENIED_WINDOW_MS = 10 * 60 * 1000
"""The window those denials are counted in; one `lock.access_denied_repeatedly` per lock per window."""

SEAM_READ_TIMEOUT_S = 3.0
"""Seam's `locks.get` before a left-unlocked alarm or an auto-relock waits at most this (then events decide)."""

INBOX_MAX_FAILURES = 5
"""An inbox entry whose processing fails this many times moves to the dead-letter stream: the inbox drains."""

INBOX_FAILURES_TTL_S = 24 * 3600
"""Failure counts of inbox entries are forgotten after this (the entries themselves have moved on by then)."""

DRAIN_BATCH = 200
"""Inbox entries a drain job reads per XREADGROUP."""

DRAIN_MAX_SECONDS = 20.0
"""A drain job re-enqueues itself after this long, so other jobs get a turn."""

DRAIN_FLAG_TTL_S = 60
"""A 'drain scheduled' flag expires after this, so a lost drain job is replaced."""

RECLAIM_IDLE_MS = 15_000
"""Inbox entries delivered to a consumer but unacknowledged this long are reclaimed (worker died)."""

MAINTENANCE_INTERVAL_S = 2.0
"""How often the maintenance thread reclaims stale inbox entries and expires overdue commands."""

PROCESSED_TTL_S = 7 * 24 * 3600
"""How long an event's 'processed' mark is kept (covers Svix's ~28 h retry window many times)."""

PARK_TTL_S = 3600
"""An event that arrives before its command waits this long for the command to register."""

CORRELATION_WINDOW_MS = 300_000
"""Rule 4: an id-less lock event matches a pending command created at most this long before it."""

CORRELATION_CLOCK_SKEW_MS = 30_000
"""Rule 4: ... or created at most this long after it (a lock's clock may run behind ours by seconds)."""

DEVICE_EVENT_LOG_CAP = 100
"""Events kept per device (newest first) for the API and dashboard."""

RECENT_CAP = 1000
"""Entries kept in the global recent-events and anomalies logs (newest first)."""

DUPLICATES_CAP = 200
"""Duplicate deliveries kept (newest first) for the dashboard."""

COMMAND_TIMELINE_CAP = 200
"""Entries kept in one command's timeline (the newest)."""

LATENCY_BUCKETS_MS = (250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)
"""Upper bounds of the confirmation latency histogram (kept by the resolve script, exposed on /metrics)."""

COMMAND_TTL_S = 30 * 24 * 3600
"""A resolved command is kept this long."""

COMMAND_TTL_MS = COMMAND_TTL_S * 1000
"""The same in ms (the unit of command creation times in the per-device index)."""

DEFAULT_COMMAND_TIMEOUT_S = 60
"""A command with no `timeout_s` times out after this."""

EVENT_LOG_ENTRY_MAX_BYTES = 4096
"""Largest event-log entry (JSON): past it an event's longest extra fields are dropped, attribution last."""

EVENT_LOG_ENTRY_RESERVE_BYTES = 256
"""Room kept in an entry for what the processing script adds (command_id, lock, parked, outcome)."""

EVENT_RECORD_TTL_S = 7 * 24 * 3600
"""How long an event that caused a lock-watch or device-health outcome is kept for its notification's payload."""

UNLOCK_EXPLAIN_SCAN = 20
"""An id-less or parked unlock looks at most this many of its device's commands inside the window to explain it."""

LOCK_WATCH_SWEEP_BATCH = 200
"""Due lock-watch checks (left unlocked, auto-relock) one maintenance round handles."""

AUTO_RELOCK_TIMEOUT_S = 60
"""An auto-relock command times out after this, like a POST /commands without `timeout_s`."""

MAX_WAIT_S = 30
"""The longest `GET /commands/{id}?wait=N` holds a request."""

QUEUE_EVENTS = "events"
"""RQ queue for drain, maintenance and deadline jobs."""

QUEUE_POLLS = "polls"
"""RQ queue for Seam polls, served after the events queue by the same worker."""

NOTIFY_RETRY_DELAYS_S = (5, 60, 300, 1800, 7200, 18000, 57600)
"""Waits between notification attempts (8 attempts over ~23.6 h); the last repeats if more are allowed."""

NOTIFY_RETRY_AFTER_MAX_S = 86400
"""A target's `Retry-After` is honoured up to this."""

NOTIFIER_PROCESSES = 1
"""Notifier processes per `lockhook worker` (each an outbox consumer and a sender, with its own per-target caps)."""

NOTIFY_CONCURRENCY = 64
"""Notification sends in flight per notifier process."""

NOTIFY_TARGET_CONCURRENCY = 32
"""Sends in flight to one target (kind + host + port) per notifier process: a hanging target holds no more."""

NOTIFY_LEASE_MARGIN_S = 5
"""A lease lasts NOTIFY_TIMEOUT_S plus this: past it, a record whose sender died is sent again."""

NOTIFY_POLL_S = 0.1
"""The sender looks for due records this often when nothing woke it (retries, other processes' records)."""

NOTIFY_CIRCUIT_FAILURES = 5
"""Consecutive retryable failures of one target that open its circuit (its records wait, none is sent)."""

NOTIFY_CIRCUIT_COOLDOWN_S = 30.0
"""An open circuit lets one probe through after this; its success closes the circuit."""

OUTBOX_BATCH = 200
"""Outbox entries the notifier reads per XREADGROUP."""

OUTBOX_RECLAIM_IDLE_MS = 3_000
"""Outbox entries read but unacknowledged this long belong to a dead notifier: claimed and created again."""

NOTIFY_GUARD_TTL_S = 7 * 24 * 3600
"""How long each notification record (and a target-less outcome's log guard) is kept."""

DASHBOARD_POLL_S = 0.5
"""The dashboard's live stream checks Redis for changes this often (one small pipeline per open page)."""

DASHBOARD_STREAM_QUEUE = 8
"""Updates waiting for one live stream; a stream this far behind is dropped (its browser reconnects)."""

DASHBOARD_STREAM_MAX_S = 300
"""A live stream ends after this; the browser reconnects at once (bounds a forgotten tab's cost)."""

RECONCILE_OVERLAP_S = 300
"""Each reconcile asks Seam for events since the watermark minus this (events can be listed late)."""

RECONCILE_FIRST_SINCE_S = 3600
"""With no watermark yet, the periodic reconcile looks back this far."""

RECONCILE_PAGE = 500
"""Events asked of Seam's `events.list` per call."""

RECONCILE_MAX_PAGES = 200
"""One reconcile reads at most this many pages (a run that hits it says so; the next run goes on)."""

DASHBOARD_SESSION_TTL_S = 7 * 24 * 3600
"""A dashboard sign-in lasts this long (the session's Redis key and its cookie expire together)."""

DASHBOARD_SESSION_RECHECK_S = 5.0
"""An open live stream checks its session this often, so signing out (or a token rotation) ends it."""

AUTH_FAILURES_MAX = 10
"""Failed sign-ins and wrong bearer tokens allowed per client address in one window; then 429."""

AUTH_FAILURE_WINDOW_S = 60
"""The fixed window the failures are counted in, from an address's first failure; `Retry-After` is its rest."""
