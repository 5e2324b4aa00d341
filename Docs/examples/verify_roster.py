#!/usr/bin/env python3
"""Rebuild a Custody archive's roster from its public log and check every event against it, as an outside auditor:
no keys, no Custody code. Written from Docs/LEDGER.md sections 2-4, 14 and 18 and Docs/FORMAT.md section 4.1;
PyNaCl for Ed25519, plus the other examples decrypt_item.py (frames, entry form) and verify_bundle.py (names).

    python3 verify_roster.py ARCHIVE

It reads ARCHIVE/archive.json (signing_key, origin) and ARCHIVE/journal/entries, and prints one JSON report:

    {"ok": bool, "problems": [{"entry": n, "kind": "...", "detail": "..."}], "warnings": [...],
     "roster": [{"id", "name", "role", "added", "removed"}], "threshold": n, "version": n, "founded": n | null}

`kind` is one of LEDGER.md section 14: journal-damaged, bad-entry, member-unknown, member-removed,
member-signature-invalid, member-signature-missing, role-not-allowed, roster-change-invalid. `roster` lists every
member there has been, in the order they were added, with their last role; `removed` is null for a current one.
Exit 0 when ok, 1 when a problem was found, 2 for unusable input (no archive.json, unreadable journal).
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nacl.exceptions  # noqa: E402
import nacl.signing  # noqa: E402

from decrypt_item import Archive, is_hex, member_id, split_entry  # noqa: E402
from verify_bundle import is_display_name, is_int  # noqa: E402

EVENT_DOMAIN = b"custody/event/v1\n"
MEMBER_DOMAIN = b"custody/member-event/v1\n"
ROSTER_TYPES = ("member-add", "member-role", "member-remove", "recovery-split", "recovery")
SUBJECT_FIELDS = {"box_key", "id", "name", "role", "signing_key"}
ROLES = ("admin", "records-officer", "investigator", "field-staff")
MAX_THRESHOLD = 16
MAX_APPROVALS = 64
MAX_JOURNAL = 1 << 40

# LEDGER.md section 18.2, rule 3: the action an event type records, and the roles that allow each action.
ACTION_OF = {
    "ingest": "ingest",
    "import": "share", "grant": "share", "revoke": "share", "access": "share", "revocation-received": "share",
    "extract": "extract",
    "tag": "annotate", "note": "annotate",
    "passphrase": "own passphrase",
    "member-add": "manage members", "member-role": "manage members", "member-remove": "manage members",
    "recovery-split": "manage members",
}
ALLOWED = {
    "admin": {"ingest", "share", "extract", "annotate", "own passphrase", "manage members"},
    "records-officer": {"share", "own passphrase"},
    "investigator": {"ingest", "extract", "annotate", "own passphrase"},
    "field-staff": {"ingest", "own passphrase"},
}


class Refused(Exception):
    """An event breaks a rule of section 18: (kind, detail). A roster event that raises it is not applied."""

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def invalid(detail):
    """A roster event that breaks a rule of section 18.2 about the change itself."""
    return Refused("roster-change-invalid", detail)


def key_bytes(text):
    """A 32-byte key in standard base64, or None."""
    if not isinstance(text, str):
        return None
    try:
        key = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return key if len(key) == 32 else None


def verifies(key_text, message, signature):
    key = key_bytes(key_text)
    if key is None or signature is None:
        return False
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False


def subject_fault(subject):
    """Section 18.1: `subject` is {box_key, id, name, role, signing_key} with id the member id of the two keys."""
    if not isinstance(subject, dict) or not SUBJECT_FIELDS <= set(subject):
        return "its subject is not {box_key, id, name, role, signing_key}"
    if not all(isinstance(subject[k], str) for k in SUBJECT_FIELDS):
        return "its subject's fields are not strings"
    if subject["role"] not in ROLES:
        return "its subject's role is not one of %s" % ", ".join(ROLES)
    if not is_display_name(subject["name"]):
        return "its subject's name is not a display name"
    signing, box = key_bytes(subject["signing_key"]), key_bytes(subject["box_key"])
    if signing is None or box is None:
        return "its subject's keys are not 32-byte base64 keys"
    if not is_hex(subject["id"], 16) or member_id(signing, box) != subject["id"]:
        return "its subject's id is not the member id of its keys"
    return None


def signature_bytes(text):
    """An approval's `sig`: standard base64 of 64 bytes, or None."""
    if not isinstance(text, str):
        return None
    try:
        sig = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return sig if len(sig) == 64 else None


class Roster:
    def __init__(self, origin):
        self.origin = origin
        self.members = {}  # id -> {"member": subject, "added": index, "removed": index or None}, in order added
        self.version = 0
        self.threshold = 1
        self.founded = None
        self.recovery_key = None  # of the latest applied recovery-split

    def current(self, member):
        entry = self.members.get(member)
        return entry["member"] if entry is not None and entry["removed"] is None else None

    def admins(self, members=None):
        members = self.members if members is None else members
        return [e for e in members.values() if e["removed"] is None and e["member"]["role"] == "admin"]

    def statement(self, event):
        """Section 18.1: the lines an administrator approves."""
        threshold = str(event["threshold"]) if "threshold" in event else "-"
        lines = ["custody/roster/v1", self.origin, str(event["roster"]), event["type"]]
        if event["type"] == "recovery-split":
            lines += ["-", "-", "-", "-", "-", threshold, event["recovery_key"]]
        else:
            s = event["subject"]
            lines += [s["id"], s["name"], s["role"], s["signing_key"], s["box_key"], threshold]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    def acting_member(self, event, body, member_signature, what):
        """Rule 3 (and rule 2's `by`): the current member the event names, signed by their key, or Refused."""
        by = event.get("by")
        if by is None:
            raise Refused("member-signature-missing", "%s names no member (`by`) after the roster was founded" % what)
        entry = self.members.get(by)
        if entry is None:
            raise Refused("member-unknown", "%s names %s, who was never a member" % (what, by))
        if entry["removed"] is not None:
            raise Refused(
                "member-removed",
                "%s is signed by %s (%s), removed at entry %d" % (what, entry["member"]["name"], by, entry["removed"]),
            )
        if not verifies(entry["member"]["signing_key"], MEMBER_DOMAIN + body, member_signature):
            raise Refused(
                "member-signature-invalid",
                "%s names %s (%s) but its member signature is not by their key" % (what, entry["member"]["name"], by),
            )
        return entry["member"]

    def check_role(self, member, event_type, what):
        action = ACTION_OF.get(event_type)
        if action is not None and action not in ALLOWED[member["role"]]:
            raise Refused(
                "role-not-allowed",
                "%s by %s (%s), whose role %s does not allow %s"
                % (what, member["name"], member["id"], member["role"], action),
            )

    def check_event(self, index, event, body, member_signature):
        """Rules 1 (no `by` before the founding) and 3, for an event that is no roster change."""
        what = "a %s event" % event["type"]
        if self.founded is None:
            if "by" in event:
                raise Refused("member-unknown", "%s names member %s before the archive had a roster" % (what, event["by"]))
            return
        if "by" not in event:
            raise Refused("member-signature-missing", "%s names no member (`by`) after the roster was founded" % what)
        # Rule 3: a grant carries the roster version in force (SHARING.md section 4, step 6); any event that
        # names a version must name the one in force.
        if event["type"] == "grant" and "roster" not in event:
            raise invalid("%s by a member names no roster version" % what)
        if "roster" in event and event["roster"] != self.version:
            raise invalid("%s claims roster version %r; the roster is at %d there" % (what, event["roster"], self.version))
        member = self.acting_member(event, body, member_signature, what)
        self.check_role(member, event["type"], what)

    def approvers(self, event, statement, eligible):
        """The distinct members whose approvals verify over `statement`; Refused when one is not a valid signature by
        a member `eligible` allows, or an approver appears twice."""
        approvals = event.get("approvals")
        if not isinstance(approvals, list) or len(approvals) > MAX_APPROVALS:
            raise invalid("its approvals are not a list of at most %d" % MAX_APPROVALS)
        seen = []
        for a in approvals:
            if not isinstance(a, dict) or not isinstance(a.get("by"), str) or not isinstance(a.get("sig"), str):
                raise invalid("an approval is not {by, sig}")
            member = eligible(a["by"])
            if member is None or not verifies(member["signing_key"], statement, signature_bytes(a["sig"])):
                raise invalid("its approval by %s is not a valid administrator's" % a["by"][:16])
            if a["by"] in seen:
                raise invalid("it carries two approvals by %s (they must be distinct)" % a["by"])
            seen.append(a["by"])
        return seen

    def apply(self, index, event, body, member_signature):
        """Rules 1 and 2 for a roster event: applies it, or raises Refused and leaves the roster as it was."""
        kind = event["type"]
        what = "a %s event" % kind
        if kind == "recovery-split":
            return self.apply_recovery_split(event, body, member_signature, what)
        fault = subject_fault(event.get("subject"))
        if fault is not None:
            raise invalid("%s: %s" % (what, fault))
        subject = {k: event["subject"][k] for k in SUBJECT_FIELDS}  # a reader ignores fields it does not know
        if not is_int(event.get("roster")) or event["roster"] != self.version:
            raise invalid("%s is bound to roster version %r, not %d" % (what, event.get("roster"), self.version))
        if "threshold" in event and not is_int(event["threshold"]):
            raise invalid("%s has a threshold that is not an integer" % what)
        statement = self.statement(event)
        if self.founded is None:
            # Rule 1: an administrator adding themselves, signed and approved by themselves.
            if kind != "member-add" or subject["role"] != "admin" or event.get("by") != subject["id"]:
                raise invalid("%s founds the roster but is not an administrator adding themselves" % what)
            if "threshold" not in event or not 1 <= event["threshold"] <= MAX_THRESHOLD:
                raise invalid("%s founds the roster without a threshold from 1 to %d" % (what, MAX_THRESHOLD))
            if not verifies(subject["signing_key"], MEMBER_DOMAIN + body, member_signature):
                raise invalid("%s founds the roster but is not signed by the member it adds" % what)
            approved = self.approvers(event, statement, lambda m: subject if m == subject["id"] else None)
            if subject["id"] not in approved:
                raise invalid("%s founds the roster but is not approved by the member it adds" % what)
            self.members[subject["id"]] = {"member": dict(subject), "added": index, "removed": None}
            self.threshold = event["threshold"]
            self.founded = index
            self.version += 1
            return
        if kind == "recovery":
            return self.apply_recovery(index, event, body, member_signature, subject, statement, what)
        # Rule 2: recorded by a current administrator, approved by the threshold of current administrators.
        by = self.acting_member(event, body, member_signature, what)
        self.check_role(by, kind, what)
        if "threshold" in event:
            raise invalid("%s sets a threshold, which only the founding event does" % what)

        admins_before = self.approved_by_admins(event, statement, by, what)
        members = {k: dict(v, member=dict(v["member"])) for k, v in self.members.items()}
        current = self.current(subject["id"])
        if kind == "member-add":
            if subject["id"] in self.members:
                raise invalid("%s adds %s, who was a member before" % (what, subject["id"]))
            if any(e["removed"] is None and e["member"]["name"] == subject["name"] for e in self.members.values()):
                raise invalid("%s adds a second current member named %s" % (what, subject["name"]))
            members[subject["id"]] = {"member": dict(subject), "added": index, "removed": None}
        elif kind == "member-role":
            if current is None or any(current[k] != subject[k] for k in ("name", "signing_key", "box_key")) \
                    or current["role"] == subject["role"]:
                raise invalid(
                    "%s changes the role of %s, who is not a current member as named with another role"
                    % (what, subject["id"])
                )
            members[subject["id"]]["member"]["role"] = subject["role"]
        else:
            if current is None or current != subject:
                raise invalid("%s removes %s, who is not a current member as named" % (what, subject["id"]))
            members[subject["id"]]["removed"] = index
        # Never the last administrator, nor below the threshold once it was reached.
        left, floor = len(self.admins(members)), max(1, min(self.threshold, admins_before))
        if left < floor:
            raise invalid(
                "%s would leave %d administrators; the roster keeps at least %d (its threshold is %d)"
                % (what, left, floor, self.threshold),
            )
        self.members = members
        self.version += 1

    def approved_by_admins(self, event, statement, by, what):
        """Rule 2's approvals: valid, distinct, by current administrators, including `by`, at least
        min(threshold, current administrators) of them. Returns how many administrators there were."""

        def admin(m):
            current = self.current(m)
            return current if current is not None and current["role"] == "admin" else None

        approved = self.approvers(event, statement, admin)
        if by["id"] not in approved:
            raise invalid("%s is not approved by the member who recorded it" % what)
        admins = len(self.admins())
        if len(approved) < min(self.threshold, admins):
            raise invalid(
                "%s has %d administrators' approvals; the roster needs %d"
                % (what, len(approved), min(self.threshold, admins))
            )
        return admins

    def apply_recovery_split(self, event, body, member_signature, what):
        """Rule 2 for a recovery-split: no subject, no threshold, a 32-byte recovery_key, approved like any change;
        it sets the key that may sign a later recovery."""
        if self.founded is None:
            raise invalid("%s comes before the roster was founded (the first roster event is a member-add)" % what)
        if "subject" in event or "threshold" in event or key_bytes(event.get("recovery_key")) is None:
            raise invalid("%s must have no subject, no threshold and a 32-byte recovery_key" % what)
        if not is_int(event.get("roster")) or event["roster"] != self.version:
            raise invalid("%s is bound to roster version %r, not %d" % (what, event.get("roster"), self.version))
        by = self.acting_member(event, body, member_signature, what)
        self.check_role(by, "recovery-split", what)
        self.approved_by_admins(event, self.statement(event), by, what)
        self.recovery_key = event["recovery_key"]
        self.version += 1

    def apply_recovery(self, index, event, body, member_signature, subject, statement, what):
        """Rule 2 for a recovery: no approvals, signed by the latest split's recovery key; a new administrator
        adding themselves."""
        if event.get("approvals") not in (None, []):
            raise invalid("%s must carry no approvals" % what)
        if "threshold" in event:
            raise invalid("%s sets a threshold, which only the founding event does" % what)
        recovery_sig = signature_bytes(event.get("recovery_sig"))
        if self.recovery_key is None or not verifies(self.recovery_key, statement, recovery_sig):
            raise invalid("%s is not signed by the recovery key of the latest recovery split" % what)
        if subject["role"] != "admin" or event.get("by") != subject["id"] \
                or not verifies(subject["signing_key"], MEMBER_DOMAIN + body, member_signature):
            raise invalid("%s is not an administrator adding themselves, signed by their own key" % what)
        if subject["id"] in self.members or any(
            e["removed"] is None and e["member"]["name"] == subject["name"] for e in self.members.values()
        ):
            raise invalid("%s adds a member id or name the roster already has" % what)
        self.members[subject["id"]] = {"member": dict(subject), "added": index, "removed": None}
        self.version += 1

    def listing(self):
        return [
            {"id": k, "name": e["member"]["name"], "role": e["member"]["role"], "added": e["added"], "removed": e["removed"]}
            for k, e in self.members.items()
        ]


def parse_event(entry, signing_key):
    """LEDGER.md section 4: (event, body, member signature or None), or None for an entry that is not an event signed
    by the archive: the archive signature is checked over the exact body bytes first, then the JSON parsed; the
    member signature line must be there exactly when the body has `by`, a member id (16 hex)."""
    parts = split_entry(entry)
    if parts is None:
        return None
    body, signature, member_signature = parts
    if not verifies(signing_key, EVENT_DOMAIN + body, signature):
        return None
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    if ("by" in event) != (member_signature is not None) or ("by" in event and not is_hex(event["by"], 16)):
        return None
    return event, body, member_signature


def frames(data):
    """LEDGER.md sections 2, 3: yields ("entry", entry) for each valid frame, then at most one of ("torn", offset)
    or ("damaged", offset)."""
    offset = 0
    while offset < len(data):
        kind, entry = Archive.read_frame(data, offset)
        if kind == "valid":
            yield "entry", entry
            offset += len(entry) + 40
            continue
        if kind == "incomplete":
            later = data.find(b"CJ1\n", offset + 1)
            while later >= 0:
                if Archive.read_frame(data, later)[0] == "valid":
                    yield "damaged", offset
                    return
                later = data.find(b"CJ1\n", later + 1)
            yield "torn", offset
            return
        yield "damaged", offset
        return


def check_archive(root):
    with open(os.path.join(root, "archive.json"), "rb") as f:
        config = json.loads(f.read(64 << 10))
    if not isinstance(config, dict) or config.get("format") != "custody-archive" or config.get("version") != 1:
        raise ValueError("archive.json is not a Custody archive's")
    signing_key, origin = config.get("signing_key"), config.get("origin")
    if key_bytes(signing_key) is None or not isinstance(origin, str):
        raise ValueError("archive.json has no valid signing_key and origin")
    path = os.path.join(root, "journal", "entries")
    if os.path.getsize(path) > MAX_JOURNAL:
        raise ValueError("journal/entries is larger than this script reads")
    with open(path, "rb") as f:
        data = f.read()
    roster = Roster(origin)
    problems, warnings = [], []
    index = 0
    for kind, value in frames(data):
        if kind == "torn":
            warnings.append("the journal ends with a torn tail at byte %d (an interrupted append)" % value)
            break
        if kind == "damaged":
            problems.append({"entry": index, "kind": "journal-damaged",
                             "detail": "an invalid frame at byte %d: later entries cannot be read" % value})
            break
        parsed = parse_event(value, signing_key)
        if parsed is None:
            problems.append({"entry": index, "kind": "bad-entry",
                             "detail": "entry %d is not an event signed by the archive (LEDGER.md section 4)" % index})
        else:
            event, body, member_signature = parsed
            try:
                if event["type"] in ROSTER_TYPES:
                    roster.apply(index, event, body, member_signature)
                else:
                    roster.check_event(index, event, body, member_signature)
            except Refused as refused:
                problems.append({"entry": index, "kind": refused.kind, "detail": refused.detail})
        index += 1
    return {
        "ok": not problems,
        "problems": problems,
        "warnings": warnings,
        "roster": roster.listing(),
        "threshold": roster.threshold,
        "version": roster.version,
        "founded": roster.founded,
        "entries": index,
    }


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: python3 verify_roster.py ARCHIVE", file=sys.stderr)
        return 2
    try:
        report = check_archive(sys.argv[1])
    except (OSError, ValueError) as error:
        print("unusable input: %s" % error, file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=True))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
