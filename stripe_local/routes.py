"""The Stripe API surface this server implements: method, path, parameter schema, handler."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .params import Spec
from .resources import (
    charges,
    customers,
    events,
    payment_intents,
    payment_methods,
    refunds,
    search,
    setup_intents,
    webhook_endpoints,
)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]
    spec: dict[str, Spec]
    # The object type returned, for validating ``expand[]`` before the handler runs.
    returns: str
    is_list: bool = False

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


def _r(
    method: str, template: str, handler: Callable[..., Any], spec: dict[str, Any], returns: str, is_list: bool = False
) -> Route:
    return Route(method, template, _compile(template), handler, spec, returns, is_list)


ROUTES: list[Route] = [
    _r("POST", "/v1/customers", customers.create, customers.CREATE, "customer"),
    _r("GET", "/v1/customers", customers.list_all, customers.LIST, "customer", True),
    _r("GET", "/v1/customers/search", search.customers, search.SEARCH, "customer", True),
    _r("GET", "/v1/customers/{customer}", customers.retrieve, customers.RETRIEVE, "customer"),
    _r("POST", "/v1/customers/{customer}", customers.update, customers.UPDATE, "customer"),
    _r("DELETE", "/v1/customers/{customer}", customers.delete, customers.DELETE, "customer"),
    _r(
        "GET",
        "/v1/customers/{customer}/payment_methods",
        payment_methods.list_for_customer,
        payment_methods.LIST,
        "payment_method",
        True,
    ),
    _r(
        "GET",
        "/v1/customers/{customer}/payment_methods/{payment_method}",
        payment_methods.retrieve_for_customer,
        payment_methods.RETRIEVE,
        "payment_method",
    ),
    _r("POST", "/v1/payment_methods", payment_methods.create, payment_methods.CREATE, "payment_method"),
    _r("GET", "/v1/payment_methods", payment_methods.list_all, payment_methods.LIST, "payment_method", True),
    _r(
        "GET",
        "/v1/payment_methods/{payment_method}",
        payment_methods.retrieve,
        payment_methods.RETRIEVE,
        "payment_method",
    ),
    _r(
        "POST", "/v1/payment_methods/{payment_method}", payment_methods.update, payment_methods.UPDATE, "payment_method"
    ),
    _r(
        "POST",
        "/v1/payment_methods/{payment_method}/attach",
        payment_methods.attach_route,
        payment_methods.ATTACH,
        "payment_method",
    ),
    _r(
        "POST",
        "/v1/payment_methods/{payment_method}/detach",
        payment_methods.detach,
        payment_methods.DETACH,
        "payment_method",
    ),
    _r("POST", "/v1/setup_intents", setup_intents.create, setup_intents.CREATE, "setup_intent"),
    _r("GET", "/v1/setup_intents", setup_intents.list_all, setup_intents.LIST, "setup_intent", True),
    _r("GET", "/v1/setup_intents/{intent}", setup_intents.retrieve, setup_intents.RETRIEVE, "setup_intent"),
    _r("POST", "/v1/setup_intents/{intent}", setup_intents.update, setup_intents.UPDATE, "setup_intent"),
    _r("POST", "/v1/setup_intents/{intent}/confirm", setup_intents.confirm, setup_intents.CONFIRM, "setup_intent"),
    _r("POST", "/v1/setup_intents/{intent}/cancel", setup_intents.cancel, setup_intents.CANCEL, "setup_intent"),
    _r(
        "POST",
        "/v1/setup_intents/{intent}/verify_microdeposits",
        setup_intents.verify_microdeposits,
        setup_intents.VERIFY,
        "setup_intent",
    ),
    _r("POST", "/v1/payment_intents", payment_intents.create, payment_intents.CREATE, "payment_intent"),
    _r("GET", "/v1/payment_intents", payment_intents.list_all, payment_intents.LIST, "payment_intent", True),
    _r("GET", "/v1/payment_intents/search", search.payment_intents, search.SEARCH, "payment_intent", True),
    _r("GET", "/v1/payment_intents/{intent}", payment_intents.retrieve, payment_intents.RETRIEVE, "payment_intent"),
    _r("POST", "/v1/payment_intents/{intent}", payment_intents.update, payment_intents.UPDATE, "payment_intent"),
    _r(
        "POST",
        "/v1/payment_intents/{intent}/confirm",
        payment_intents.confirm,
        payment_intents.CONFIRM,
        "payment_intent",
    ),
    _r(
        "POST",
        "/v1/payment_intents/{intent}/capture",
        payment_intents.capture,
        payment_intents.CAPTURE,
        "payment_intent",
    ),
    _r("POST", "/v1/payment_intents/{intent}/cancel", payment_intents.cancel, payment_intents.CANCEL, "payment_intent"),
    _r("POST", "/v1/charges", charges.create, charges.CREATE, "charge"),
    _r("GET", "/v1/charges", charges.list_all, charges.LIST, "charge", True),
    _r("GET", "/v1/charges/search", search.charges, search.SEARCH, "charge", True),
    _r("GET", "/v1/charges/{charge}", charges.retrieve, charges.RETRIEVE, "charge"),
    _r("POST", "/v1/charges/{charge}", charges.update, charges.UPDATE, "charge"),
    _r("POST", "/v1/charges/{charge}/capture", charges.capture_route, charges.CAPTURE, "charge"),
    _r("POST", "/v1/charges/{charge}/refund", refunds.charge_refund, refunds.CHARGE_REFUND, "charge"),
    _r("POST", "/v1/charges/{charge}/refunds", refunds.charge_refunds_create, refunds.CHARGE_REFUND, "refund"),
    _r("GET", "/v1/charges/{charge}/refunds", refunds.charge_refunds_list, refunds.LIST, "refund", True),
    _r("GET", "/v1/charges/{charge}/refunds/{refund}", refunds.charge_refunds_retrieve, refunds.RETRIEVE, "refund"),
    _r("POST", "/v1/refunds", refunds.create, refunds.CREATE, "refund"),
    _r("GET", "/v1/refunds", refunds.list_all, refunds.LIST, "refund", True),
    _r("GET", "/v1/refunds/{refund}", refunds.retrieve, refunds.RETRIEVE, "refund"),
    _r("POST", "/v1/refunds/{refund}", refunds.update, refunds.UPDATE, "refund"),
    _r("POST", "/v1/refunds/{refund}/cancel", refunds.cancel, refunds.CANCEL, "refund"),
    _r("GET", "/v1/events", events.list_all, events.LIST, "event", True),
    _r("GET", "/v1/events/{event}", events.retrieve, events.RETRIEVE, "event"),
    _r("POST", "/v1/webhook_endpoints", webhook_endpoints.create, webhook_endpoints.CREATE, "webhook_endpoint"),
    _r("GET", "/v1/webhook_endpoints", webhook_endpoints.list_all, webhook_endpoints.LIST, "webhook_endpoint", True),
    _r(
        "GET",
        "/v1/webhook_endpoints/{webhook_endpoint}",
        webhook_endpoints.retrieve,
        webhook_endpoints.RETRIEVE,
        "webhook_endpoint",
    ),
    _r(
        "POST",
        "/v1/webhook_endpoints/{webhook_endpoint}",
        webhook_endpoints.update,
        webhook_endpoints.UPDATE,
        "webhook_endpoint",
    ),
    _r(
        "DELETE",
        "/v1/webhook_endpoints/{webhook_endpoint}",
        webhook_endpoints.delete,
        webhook_endpoints.DELETE,
        "webhook_endpoint",
    ),
]

_BY_METHOD: dict[str, list[Route]] = {}
for _route in ROUTES:
    _BY_METHOD.setdefault(_route.method, []).append(_route)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in _BY_METHOD.get(method, ()):
        found = route.pattern.match(path)
        if found is not None:
            return route, found.groupdict()
    return None
