"""Names of every Redis key lockhook writes (RQ's own `rq:*` keys aside), in one place.

The Lua scripts spell none of their own: `lockhook.scripts` hands them these names (and these functions,
translated to Lua) in a generated header, so a key renamed here is renamed for the scripts too.
"""

PREFIX = "lh:"

INBOX = PREFIX + "inbox"                # stream of accepted deliveries (raw headers + body)
INBOX_GROUP = "workers"                 # consumer group of the drain jobs
QUARANTINE = PREFIX + "quarantine"      # stream of verified deliveries that are not events
INBOX_DEAD = PREFIX + "inbox:dead"      # stream: inbox entries that failed INBOX_MAX_FAILURES times (re-processable)
INBOX_FAILURES = PREFIX + "inbox:failures"  # hash: inbox stream id -> failed attempts so far
DRAIN_FLAG = PREFIX + "drain:scheduled"  # set while a drain job is queued or running
MAINTENANCE_FLAG = PREFIX + "maintenance:scheduled"  # refreshed by each worker's maintenance thread: a worker is up
OUTBOX = PREFIX + "outbox"              # stream of outcomes (command.*, lock.state_changed)
OUTBOX_GROUP = "dispatch"
DEADLINES = PREFIX + "deadlines"        # zset: pending command id -> deadline ms
COMMANDS = PREFIX + "cmds"              # zset: command id -> created ms
DEVICES = PREFIX + "devices"            # zset: device id -> last event ms
RECENT_EVENTS = PREFIX + "events:recent"
ANOMALIES = PREFIX + "anomalies"
EVENT_STATS = PREFIX + "stats:events"   # hash: event_type -> count
COMMAND_STATS = PREFIX + "stats:commands"  # hash: status -> count
DELIVERY_STATS = PREFIX + "stats:deliveries"  # hash: "<endpoint>:<outcome>" -> count
DUPLICATES = PREFIX + "duplicates:recent"  # list: newest duplicate deliveries (capped), for the dashboard


def dedupe(endpoint: str, delivery_id: str) -> str:
    """Set by the ingest script for each stored delivery: a redelivery within the dedupe window is a duplicate."""
    return f"{PREFIX}dedupe:{endpoint}:{delivery_id}"


def command(command_id: str) -> str:
    return f"{PREFIX}cmd:{command_id}"


def command_timeline(command_id: str) -> str:
    return f"{PREFIX}cmd:{command_id}:timeline"


def command_channel(command_id: str) -> str:
    """Pub/sub channel announcing that a command left `pending`."""
    return f"{PREFIX}cmd:{command_id}:done"


COMMAND_CHANNELS = command_channel("*")  # PSUBSCRIBE pattern matching every command's channel


def id_index(kind: str, value: str) -> str:
    """kind: custom_id | action_id | action_attempt_id | idempotency_key."""
    return f"{PREFIX}idx:{kind}:{value}"


# lock watch: unlocks nobody commanded, doors left unlocked, auto-relock, device health
LOCK_WATCH = PREFIX + "watch:unlocked"  # zset: "<check>:<device_id>" (check: left_unlocked|auto_relock) -> due ms


def event_record(event_key: str) -> str:
    """JSON: an event's log entry, kept for the payload of the outcome it caused (unlock without command, health)."""
    return f"{PREFIX}event_record:{event_key}"


def device_commands(device_id: str) -> str:
    return f"{PREFIX}device:{device_id}:cmds"


def device_events(device_id: str) -> str:
    return f"{PREFIX}device:{device_id}:events"


def lock_state(device_id: str) -> str:
    return f"{PREFIX}lock:{device_id}"


def processed(endpoint: str, event_key: str) -> str:
    """Set when an event is applied (kept `defaults.PROCESSED_TTL_S`): the same event again is a duplicate.

    Per endpoint: one sender's event ids never make another's duplicates. The value is a digest of the body,
    so the same id with another body is told apart (an `event_id_conflict` anomaly).
    """
    return f"{PREFIX}processed:{endpoint}:{event_key}"


def access_denials(device_id: str) -> str:
    """Zset: this lock's recent `lock.access_denied` events -> ms (kept ACCESS_DENIED_WINDOW_MS)."""
    return f"{PREFIX}device:{device_id}:denials"


def access_denied_alerted(device_id: str) -> str:
    """Set for ACCESS_DENIED_WINDOW_MS once `lock.access_denied_repeatedly` was sent for this lock."""
    return f"{PREFIX}device:{device_id}:denials:alerted"


def parked(kind: str, value: str) -> str:
    """List: events that arrived before a command with this id (kind as in `id_index`) was known."""
    return f"{PREFIX}parked:{kind}:{value}"


def pending_commands(device_id: str, action: str) -> str:
    """Zset: pending command id -> created ms, per device and action (for id-less lock events)."""
    return f"{PREFIX}pending:{device_id}:{action}"

NOTIFY_STATS = PREFIX + "stats:notifications"  # hash: "<outcome>" (delivered|failed|retried|skipped) -> count
NOTIFY_FAILED = PREFIX + "notifications:failed"  # failed notifications, re-sendable from the CLI
NOTIFY_DUE = PREFIX + "notifications:due"  # zset: target label -> earliest score in that target's due set
NOTIFY_CIRCUITS = PREFIX + "notifications:circuits"  # hash: target label -> circuit breaker state (JSON)
NOTIFY_TARGET_STATS = PREFIX + "stats:notifications:targets"  # hash: "<target>|<result>" -> attempts
NOTIFY_INFLIGHT = PREFIX + "notifications:inflight"  # zset of an older release: its unfinished ids, moved to due
LATENCY_STATS = PREFIX + "stats:latency"        # confirmation latency buckets, written by the resolve script


def notification(notification_id: str) -> str:
    """Hash: one (outcome, target) notification: target, body, status, attempts, last error."""
    return f"{PREFIX}ntf:{notification_id}"


def notify_due(label: str) -> str:
    """Zset: one target's notification ids -> when to send (a lease moves it to when the lease runs out)."""
    return f"{NOTIFY_DUE}:{label}"


def notification_guard(outcome_id: str) -> str:
    """Set once when an outcome with no target was logged (one log line per outcome)."""
    return f"{PREFIX}ntf:outcome:{outcome_id}"

RECONCILE_WATERMARK = PREFIX + "reconcile:watermark"  # ms: newest Seam event created_at reconciled so far
RECONCILE_LOCK = PREFIX + "reconcile:running"  # held by the one process running a periodic reconcile
RECONCILE_STATS = PREFIX + "stats:reconciled"  # hash: result (stored|duplicate) -> count


def dashboard_session(session_digest: str) -> str:
    """String: a dashboard session (keyed by the SHA-256 of its id) -> digest of the token it was made with."""
    return f"{PREFIX}session:{session_digest}"


def auth_failures(client_address: str) -> str:
    """Counter: failed sign-ins / bearer tokens from one client address in the current window (expires)."""
    return f"{PREFIX}throttle:auth:{client_address}"
