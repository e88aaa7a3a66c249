"""The images of an external set that an audit found near duplicates of in the train split: what `gan-aug rescore
--exclude AUDIT.json` leaves out, so that a claim is also scored on images no model has seen a copy of."""

import json
from pathlib import Path

from gan_aug.errors import UserError, first_line


def read_audit(path):
    path = Path(path)
    try:
        audit = json.loads(path.read_text())
        if not isinstance(audit, dict) or not isinstance(audit.get("pairs"), list):
            raise ValueError("no list of pairs")
        return audit
    except (OSError, ValueError) as err:
        raise UserError(f"--exclude {path} is not a gan-aug audit.json: {first_line(err)}") from None


def flagged_external_ids(audit, path, name, fingerprint):
    """{image id} of external set `name` with a confirmed near duplicate in the train split that `audit` (the
    parsed audit.json at `path`) searched; refused unless it audited this set against the same prepared set."""
    if audit.get("fingerprint") != fingerprint:
        raise UserError(f"--exclude {path} audited another prepared set (fingerprint "
                        f"{str(audit.get('fingerprint'))[:12]}, the bundle's {fingerprint[:12]})")
    if f"external:{name}" not in audit.get("candidates", {}):
        raise UserError(f"--exclude {path} did not search an external set named {name}: audit it with "
                        f"--external {name}=SOURCE:ROOT")
    try:
        return {str(pair["a"]["id"]) for pair in audit["pairs"] if pair["kind"] == f"external:{name}"}
    except (KeyError, TypeError) as err:
        raise UserError(f"--exclude {path}: a damaged pair ({first_line(err)})") from None
