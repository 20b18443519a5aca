"""Check a recorded request's SigV4 Authorization by recomputing it with botocore."""

from __future__ import annotations

import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

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
    match = _AUTH.match(headers["authorization"])
    assert match, f"not a SigV4 Authorization header: {headers['authorization']!r}"
    assert match["key"] == access_key
    names = match["signed"].split(";")
    request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                         headers={name: headers[name] for name in names})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(access_key, secret), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert expected == match["sig"], "SigV4 signature does not match the request as received"
    return {"service": match["service"], "region": match["region"]}
