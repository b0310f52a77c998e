"""Verifies one signed delivery with `standardwebhooks`, the reference Python implementation of
Standard Webhooks, for tests/standard_webhooks_verifier.rs.

Reads {"secret": "whsec_...", "headers": {name: value}, "body": "..."} as JSON on stdin.
Exit status: 0 verified; 3 rejected (the library's reason on stderr). Any other status means the
check itself did not run (no package, bad input) and must fail the test, not pass as "rejected".
"""

import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError

REJECTED = 3


def main() -> int:
    request = json.load(sys.stdin)
    webhook = Webhook(request["secret"])
    try:
        webhook.verify(request["body"].encode("utf-8"), request["headers"])
    except WebhookVerificationError as error:
        print(f"rejected: {error}", file=sys.stderr)
        return REJECTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
