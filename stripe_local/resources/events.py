"""Events: every state change the server makes is recorded as an Event, newest first."""

from __future__ import annotations

from ..core import Ctx, ListPage, Obj, page_bounds
from ..errors import invalid, missing
from ..params import EXPAND, LIST_PARAMS, Arr, Bool, IntOrRange, Str

LIST = {
    **LIST_PARAMS,
    "type": Str(),
    "types": Arr(Str()),
    "created": IntOrRange(),
    "delivery_success": Bool(),
}
RETRIEVE = {"expand": EXPAND}


def retrieve(ctx: Ctx, p: Obj, event: str) -> Obj:
    found = ctx.db.get_event(event)
    if found is None:
        raise missing("event", event, param="id")
    return found


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    limit, after, before = page_bounds(p)
    if p.get("type") and p.get("types"):
        raise invalid("You may only specify one of these parameters: type, types.")
    types, prefix = p.get("types") or None, None
    if p.get("type"):
        # ``payment_intent.*`` is a wildcard over one resource's events.
        if p["type"].endswith(".*"):
            prefix = p["type"][:-1]
        else:
            types = [p["type"]]
    seqs: dict[str, int | None] = {"starting_after": None, "ending_before": None}
    for param, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor is not None:
            seqs[param] = ctx.db.seq_of(cursor, table="events")
            if seqs[param] is None:
                raise missing("event", cursor, param=param, status=400)
    rows = ctx.db.page_events(
        types=types,
        prefix=prefix,
        created=p.get("created"),
        object_id=None,
        after_seq=seqs["starting_after"],
        before_seq=seqs["ending_before"],
        limit=limit + 1,
    )
    has_more = len(rows) > limit
    if has_more:
        rows = rows[1:] if before is not None else rows[:limit]
    return ListPage(rows, has_more, "/v1/events")
