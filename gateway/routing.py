"""The routing table: which service owns which public path, and which routes may be called anonymously.

Only paths listed here are forwarded; everything else (``/internal/...`` above all) is a 404 at the gateway.
A public route still goes through the service's own checks: the service decides what an anonymous caller
may see (disclosure policy), the gateway only lets the request through without a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PublicRule:
    method: str
    pattern: re.Pattern[str]
    reason: str


@dataclass(frozen=True)
class ServiceRoute:
    prefix: str
    service: str
    public: tuple[PublicRule, ...] = field(default_factory=tuple)

    def owns(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


def _public(method: str, pattern: str, reason: str) -> PublicRule:
    return PublicRule(method, re.compile(pattern + r"\Z"), reason)


ROUTES: tuple[ServiceRoute, ...] = (
    ServiceRoute(
        "/v1/campaigns",
        "campaigns",
        public=(_public("GET", r"/v1/campaigns(/.*)?", "campaign pages are public; figures redacted by policy"),),
    ),
    ServiceRoute("/v1/pledges", "pledges"),
    ServiceRoute(
        "/v1/webhooks/stripe/pledges",
        "pledges",
        public=(_public("POST", r"/v1/webhooks/stripe/pledges", "authenticated by the Stripe-Signature header"),),
    ),
    ServiceRoute("/v1/refund-batches", "refunds"),
    ServiceRoute("/v1/refunds", "refunds"),
    ServiceRoute(
        "/v1/webhooks/stripe/refunds",
        "refunds",
        public=(_public("POST", r"/v1/webhooks/stripe/refunds", "authenticated by the Stripe-Signature header"),),
    ),
)


@dataclass(frozen=True)
class Match:
    service: str
    public: bool


def has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.split("/"))


def resolve(method: str, path: str, routes: tuple[ServiceRoute, ...] = ROUTES) -> Match | None:
    if has_dot_segment(path):
        return None
    best: ServiceRoute | None = None
    for route in routes:
        if route.owns(path) and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    if best is None:
        return None
    method = "GET" if method == "HEAD" else method
    public = any(rule.method == method and rule.pattern.match(path) for rule in best.public)
    return Match(best.service, public)


def is_public_operation(method: str, path_template: str) -> bool:
    """For the merged OpenAPI document: is this operation callable without a token?"""
    concrete = re.sub(r"\{[^}]+\}", "x", path_template)
    match = resolve(method.upper(), concrete)
    return bool(match and match.public)
