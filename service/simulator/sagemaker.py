"""The SageMaker runtime's own answers (wire-formats.md section 1): auth checks and error shapes.

The account id 123456789012 and the CloudWatch links in messages are deliberate: real messages carry them
and the gateway must not pass them on to its clients.
"""

from __future__ import annotations

import uuid

import orjson
from starlette.responses import Response

ACCOUNT = "123456789012"
REGION = "us-east-1"
CORAL = ":http://internal.amazon.com/coral/com.amazon.sagemaker/"
VARIANT = "AllTraffic"
MAX_ORIGINAL_MESSAGE = 2048


def request_id() -> str:
    return str(uuid.uuid4())


def base_headers() -> dict[str, str]:
    return {"x-Amzn-Invoked-Production-Variant": VARIANT, "x-amzn-RequestId": request_id()}


def aws_error(status: int, error_type: str, body: dict[str, object]) -> Response:
    headers = {"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id()}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def check_sigv4(authorization: str | None, amz_date: str | None) -> Response | None:
    """Presence and shape only: the simulator cannot know the secret, so the signature itself is not checked."""
    if not authorization:
        return aws_error(403, "MissingAuthenticationTokenException", {"message": "Missing Authentication Token"})
    problem = _authorization_problem(authorization)
    if problem is None and not amz_date:
        problem = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    if problem is None:
        return None
    return aws_error(403, "IncompleteSignatureException", {"message": problem})


def _authorization_problem(authorization: str) -> str | None:
    prefix = "AWS4-HMAC-SHA256 Credential="
    if not authorization.startswith(prefix):
        return f"Authorization header requires '{prefix}...' (SigV4). Authorization={authorization[:40]}"
    scope = authorization[len(prefix):].split(",", 1)[0].strip()
    if not scope.endswith("/sagemaker/aws4_request"):
        return f"Credential should be scoped to correct service: 'sagemaker'. Credential scope: {scope!r}"
    if "SignedHeaders=" not in authorization or "Signature=" not in authorization:
        return "Authorization header requires 'SignedHeaders' and 'Signature' parameters."
    return None


def endpoint_not_found(name: str) -> Response:
    return aws_error(400, "ValidationError" + CORAL, {"message": f"Endpoint {name} of account {ACCOUNT} not found."})


def throttled() -> Response:
    return aws_error(400, "ThrottlingException", {"message": "Rate exceeded"})


_SERVICE_FAULTS = {
    "unavailable": (503, "ServiceUnavailable", "Service is unavailable. Try your request again."),
    "internal": (500, "InternalFailure", "An internal failure occurred. Try your request again."),
    "not_ready": (429, "ModelNotReadyException", "Model is not ready to serve requests. Wait and try again."),
}


def service_fault(kind: str) -> Response:
    status, code, message = _SERVICE_FAULTS[kind]
    return aws_error(status, code + CORAL, {"message": message})


def model_error(endpoint: str, status: int, original: bytes) -> Response:
    """A container's non-2xx answer as SageMaker's ModelError (424) with the original status and body."""
    text = original.decode("utf-8", "replace")[:MAX_ORIGINAL_MESSAGE]
    side = "client" if status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    console = f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:group={group}"
    body: dict[str, object] = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500 else "SERVER_ERROR_FROM_MODEL",
        "LogStreamArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}",
        "Message": f"Received {side} error ({status}) from primary with message \"{text}\". "
                   f"See {console} in account {ACCOUNT} for more information.",
        "OriginalMessage": text,
        "OriginalStatusCode": status,
    }
    return aws_error(424, "ModelError" + CORAL, body)


def stream_exception_payload(kind: str) -> bytes:
    if kind == "ModelStreamError":
        return orjson.dumps({"Message": "Model stream was broken by the container.", "ErrorCode": "StreamBroken"})
    return orjson.dumps({"Message": "An internal stream failure occurred. Try your request again."})


# --- estates: regions, keys, inference components, serverless (service/simulator/estate.py) -------------------
def invalid_signature_region() -> Response:
    """Signed for another region than the one called. AWS answers 403 InvalidSignatureException with this message
    (aws/aws-sdk-js-v3#5576: 403 from a rest-json service; the same check on the SageMaker runtime's service
    scope: aws/aws-sdk-go#1836)."""
    return aws_error(403, "InvalidSignatureException", {"message": "Credential should be scoped to a valid region. "})


def unrecognized_client() -> Response:
    """An access key the account does not know (403 UnrecognizedClientException, as rest-json AWS services answer)."""
    return aws_error(403, "UnrecognizedClientException",
                     {"message": "The security token included in the request is invalid."})


def no_capacity() -> Response:
    """An inference component with no copy: ValidationError (400) with the message AWS shows for a component scaled
    to zero (AWS Machine Learning Blog, "Unlock cost savings with the new scale down to zero feature in SageMaker
    Inference", 2024-12-03, "Test the solution")."""
    return aws_error(400, "ValidationError" + CORAL, {"message": (
        "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress "
        "(if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API.")})


def component_required() -> Response:
    # Wording not verified: wire-formats.md 1.2 has only its first sentence (the one LiteLLM's hints key on).
    return aws_error(400, "ValidationError" + CORAL, {"message": (
        "Inference Component Name header is required for endpoints to which you plan to deploy inference "
        "components. Please include Inference Component Name header or consider using SageMaker models.")})


def component_not_found(component: str, endpoint: str) -> Response:
    # Wording not verified: a ValidationError like the endpoint's own "not found".
    return aws_error(400, "ValidationError" + CORAL, {
        "message": f"Inference component {component[:63]} of endpoint {endpoint} of account {ACCOUNT} not found."})


def serverless_stream_refused() -> Response:
    # Not verified: no AWS source found states the answer of InvokeEndpointWithResponseStream on a serverless
    # endpoint. AWS documents streaming for real-time endpoints only; we answer a ValidationError, the runtime's
    # error for requests its endpoint cannot take, so a gateway that tries it fails visibly.
    return aws_error(400, "ValidationError" + CORAL, {
        "message": "InvokeEndpointWithResponseStream is not supported for serverless endpoints."})
