"""`jumpgate discover` across regions and accounts: where to scan, and which found endpoints serve one model.

- `scopes(regions, role_arns)`: every (region, role) pair to scan; role None is the caller's own account.
- `assume(session, role_arn)`: a boto3 session for another account, from STS AssumeRole with the caller's
  credentials (STS honours AWS_ENDPOINT_URL_STS like every AWS tool, which is how tests point it at moto).
- `model_identity(found)`: what the endpoint serves. Endpoints with the same JumpStart model id (the
  `sagemaker-sdk:jumpstart-model-id` tag the SageMaker Python SDK puts on what it deploys), or the same image
  (repository and tag: the registry differs per region) and model data (S3 URI with the region spelled out in
  bucket names neutralised, or the Hub model id the container loads), serve one model: one jumpgate model with a
  target per endpoint. Anything else stays one model per SageMaker endpoint (over its variants) or component.
- `group(found)`: the models, with weights: a single SageMaker endpoint keeps its variants' traffic weights;
  several endpoints share the model equally, each splitting its share by its own variant weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from service.discover.rules import Found, split_image

#: The tag the SageMaker Python SDK puts on JumpStart deployments (sagemaker/jumpstart/enums.py, JumpStartTag).
JUMPSTART_MODEL_ID_TAG = "sagemaker-sdk:jumpstart-model-id"
SESSION_NAME = "jumpgate-discover"


@dataclass(frozen=True)
class Scope:
    region: str
    role_arn: str | None = None

    def describe(self) -> str:
        return f"{self.region} ({'through role ' + self.role_arn if self.role_arn else 'own account'})"


def scopes(regions: Sequence[str], role_arns: Sequence[str]) -> list[Scope]:
    return [Scope(region, role) for role in (None, *dict.fromkeys(role_arns)) for region in dict.fromkeys(regions)]


def assume(session: Any, role_arn: str) -> Any:
    """A boto3 session with the role's temporary credentials (one AssumeRole call)."""
    import boto3

    answer = session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
    return boto3.Session(aws_access_key_id=answer["AccessKeyId"], aws_secret_access_key=answer["SecretAccessKey"],
                         aws_session_token=answer["SessionToken"], region_name=session.region_name)


def jumpstart_id(tags: Sequence[dict[str, str]]) -> str:
    return next((t.get("Value", "") for t in tags if t.get("Key") == JUMPSTART_MODEL_ID_TAG), "")


def model_identity(found: Found) -> tuple[str, ...]:
    if found.jumpstart_id:
        return ("jumpstart", found.jumpstart_id)
    if found.model_data:
        repo, tag = split_image(found.image)
        data = found.model_data.replace(found.region, "{region}") if found.region else found.model_data
        return ("image-and-data", f"{repo}:{tag}", data)
    return ("endpoint", found.region, found.role_arn or "", found.component or found.endpoint_name)


@dataclass(frozen=True)
class Group:
    name: str  # the first endpoint's (or component's) name
    members: tuple[tuple[Found, str], ...]  # (found, jumpgate endpoint id)
    merged: bool  # several SageMaker endpoints or components serve it

    def targets(self) -> Iterator[tuple[str, float]]:
        """(endpoint id, weight) per member. Alone, a SageMaker endpoint's variants keep their traffic weights (a
        component weighs 1); merged, each SageMaker endpoint or component gets an equal share, split by its
        variants' weights. All zero would route nothing: equal weights then."""
        weights = [1.0 if f.component else max(f.weight, 0.0) for f, _ in self.members]
        if self.merged:
            totals: dict[tuple[str, ...], float] = {}
            counts: dict[tuple[str, ...], int] = {}
            for (f, _), w in zip(self.members, weights, strict=True):
                totals[_origin(f)] = totals.get(_origin(f), 0.0) + w
                counts[_origin(f)] = counts.get(_origin(f), 0) + 1
            weights = [w / totals[_origin(f)] if totals[_origin(f)] > 0 else 1 / counts[_origin(f)]
                       for (f, _), w in zip(self.members, weights, strict=True)]
        some = any(w > 0 for w in weights)
        for (_, eid), w in zip(self.members, weights, strict=True):
            yield eid, round(w, 6) if some else 1.0

    def comment(self) -> str:
        if not self.merged:
            return ""
        where = sorted({f"{f.endpoint_name} in {f.region or '?'}" + _via(f) for f, _ in self.members})
        kind = self.members[0][0].jumpstart_id or "the same image and model data"
        return f"serves {kind}: {', '.join(where)}"


def group(members: Sequence[tuple[Found, str]]) -> list[Group]:
    by_identity: dict[tuple[str, ...], list[tuple[Found, str]]] = {}
    for found, eid in members:
        by_identity.setdefault(model_identity(found), []).append((found, eid))
    groups = []
    for items in by_identity.values():
        first = items[0][0]
        merged = len({_origin(f) for f, _ in items}) > 1
        groups.append(Group(first.component or first.endpoint_name, tuple(items), merged))
    return groups


def _via(found: Found) -> str:
    return f" via role {found.role_arn.rsplit('/', 1)[-1]}" if found.role_arn else ""


def _origin(found: Found) -> tuple[str, ...]:
    """One SageMaker endpoint (or component) in one region and account."""
    return (found.region, found.role_arn or "", found.endpoint_name, found.component or "")
