"""Record tests/fixtures/deliveries by posting a set of deliveries to a receiver started with RECORD_DIR.

Usage: RECORD_DIR=/tmp/rec lockhook serve ...   then
       python scripts/record-fixtures.py --url http://127.0.0.1:8000 --secret whsec_... \
           --record-dir /tmp/rec --out tests/fixtures/deliveries
Each recorded file is copied to --out with a numeric prefix so a folder replay keeps the sending order.
A retried delivery (same svix-id) is answered `duplicate` and not recorded again, so its fixture is a
copy of the first recording under the next number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from pathlib import Path

import httpx

from lockhook.ingest.signatures import signature_headers

WS = "5d1b8f4e-2c3a-4b7d-9e0f-1a2b3c4d5e6f"
CA = "c0a1b2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b"
FRONT = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
BACK = "2b3c4d5e-6f70-4a81-9b2c-3d4e5f6a7b8c"


def iso(offset_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE + offset_s)) + ".000Z"


BASE = time.time() - 600


def seam(event_type: str, at: float, **fields) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "workspace_id": WS,
            "connected_account_id": CA, "created_at": iso(at + 0.4), "occurred_at": iso(at), **fields}


def deliveries() -> list[tuple[str, str, dict, str]]:
    """(name, endpoint, event, header prefix) in sending order."""
    aa_lock, aa_unlock, aa_lock_fail, aa_unlock_fail = (str(uuid.uuid4()) for _ in range(4))
    return [
        ("lock_locked", "seam", seam("lock.locked", 0, device_id=FRONT, method="keycode",
                                      access_code_id=str(uuid.uuid4())), "svix"),
        ("lock_locked_retry", "seam", None, "svix"),  # Svix retry of the previous delivery: same svix-id
        ("lock_unlocked_seamapi", "seam", seam("lock.unlocked", 20, device_id=FRONT, method="seamapi",
                                                action_attempt_id=aa_unlock), "svix"),
        ("lock_unlocked_no_device", "seam", seam("lock.unlocked", 25, method="manual"), "svix"),
        ("lock_access_denied", "seam", seam("lock.access_denied", 30, device_id=FRONT,
                                            access_code_id=str(uuid.uuid4())), "svix"),
        ("action_attempt_lock_succeeded", "seam",
         seam("action_attempt.lock_door.succeeded", 40, device_id=FRONT, action_attempt_id=aa_lock,
              action_type="LOCK_DOOR", status="success"), "svix"),
        ("action_attempt_lock_failed", "seam",
         seam("action_attempt.lock_door.failed", 45, device_id=BACK, action_attempt_id=aa_lock_fail,
              action_type="LOCK_DOOR", status="error"), "svix"),
        ("action_attempt_unlock_succeeded", "seam",
         seam("action_attempt.unlock_door.succeeded", 50, device_id=FRONT, action_attempt_id=aa_unlock,
              action_type="UNLOCK_DOOR", status="success"), "svix"),
        ("action_attempt_unlock_failed", "seam",
         seam("action_attempt.unlock_door.failed", 55, device_id=BACK, action_attempt_id=aa_unlock_fail,
              action_type="UNLOCK_DOOR", status="error"), "svix"),
        ("device_connected", "seam", seam("device.connected", 60, device_id=BACK), "svix"),
        ("access_code_created", "seam", seam("access_code.created", 62, device_id=FRONT,
                                             access_code_id=str(uuid.uuid4())), "svix"),
        # out-of-order pair on the back door: the newer event is delivered first
        ("ooo_newer_lock_locked", "seam", seam("lock.locked", 90, device_id=BACK, method="manual"), "svix"),
        ("ooo_older_lock_unlocked", "seam", seam("lock.unlocked", 80, device_id=BACK, method="manual"), "svix"),
        ("action_completed_success", "device-cloud",
         {"event_type": "lock.action_completed", "device_id": "lock_491829", "action_id": "act_39102",
          "custom_id": "req_39102", "action": "unlock", "status": "success", "performed_via": "pin_code",
          "timestamp": iso(100)[:-5] + "Z"}, "webhook"),
        ("action_completed_failed", "device-cloud",
         {"event_type": "lock.action_completed", "device_id": "lock_491829", "action_id": "act_39103",
          "custom_id": "req_39103", "action": "unlock", "status": "failed", "error_code": "LOCK_JAMMED",
          "message": "The deadbolt could not retract.", "timestamp": iso(110)[:-5] + "Z"}, "svix"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--record-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    previous: tuple[str, str, bytes, str, Path] | None = None
    with httpx.Client(timeout=10) as client:
        for number, (name, endpoint, event, prefix) in enumerate(deliveries(), 1):
            if event is None:  # resend the previous delivery with its id, newly signed
                endpoint, delivery_id, body, prefix, recorded = previous
            else:
                delivery_id, body = "msg_" + uuid.uuid4().hex[:24], json.dumps(event, indent=None).encode()
                recorded = args.record_dir / f"{endpoint}_{delivery_id}.json"
            headers = {"content-type": "application/json", "user-agent": "Svix-Webhooks/1.21",
                       **signature_headers(args.secret, delivery_id, body, prefix=prefix)}
            response = client.post(f"{args.url}/webhooks/{endpoint}", content=body, headers=headers)
            print(f"{number:02d} {name:34s} {response.status_code} {response.json().get('status')}")
            if not recorded.exists():
                print(f"   not recorded: {recorded}", file=sys.stderr)
                return 1
            shutil.copyfile(recorded, args.out / f"{number:02d}_{name}.json")
            previous = (endpoint, delivery_id, body, prefix, recorded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
