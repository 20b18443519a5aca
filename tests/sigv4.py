"""Check a recorded request's SigV4 Authorization by recomputing it with botocore."""

from __future__ import annotations

import re

from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>[0-9a-f]{64})$")


def signed_headers(headers: dict[str, str]) -> list[str]:
    match = _AUTH.match(headers["authorization"])
    assert match, headers["authorization"]
    return match["signed"].split(";")


def verify(method: str, path: str, headers: dict[str, str], body: bytes, access_key: str,
           secret: str) -> dict[str, str]:
    """Return the parsed credential scope; fail the test if the signature does not match."""
    trouble = problem(method, path, headers, body, access_key, secret)
    assert trouble is None, trouble
    match = _AUTH.match(headers["authorization"])
    assert match
    return {"service": match["service"], "region": match["region"]}


def problem(method: str, path: str, headers: dict[str, str], body: bytes, access_key: str,
            secret: str) -> str | None:
    """Why the request's SigV4 signature is not valid for these credentials, or None when it is.

    `headers` are the received ones, names in lower case. Servers (tests/bench/paced_upstream.py) answer
    403 on a problem; tests assert there is none."""
    match = _AUTH.match(headers.get("authorization", ""))
    if not match:
        return f"not a SigV4 Authorization header: {headers.get('authorization', '')[:80]!r}"
    if match["key"] != access_key:
        return f"signed with access key {match['key'][:24]!r}, not the expected one"
    names = match["signed"].split(";")
    missing = [name for name in [*names, "host", "x-amz-date"] if name not in headers]
    if missing:
        return f"signed or required headers missing from the request: {', '.join(missing)}"
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={name: headers[name] for name in names})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(access_key, secret), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if expected != match["sig"]:
        return "SigV4 signature does not match the request as received"
    return None
