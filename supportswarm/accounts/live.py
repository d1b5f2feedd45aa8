"""An admin's change to an account reaches that user's open websockets, on every replica.

Deactivating a user (or changing their role) ends their sessions for HTTP at once (sessions.py checks
the session generation on each request), but a websocket authenticates only when it opens. So the
change is announced on the broker, and each web process closes that user's sockets with `reconnect` +
4001: the client comes straight back through authentication and the room's permission check, which
refuses a deactivated user (4401) or a demoted one (4403), and resumes everyone else without loss.
"""

from __future__ import annotations

import asyncio
import logging

from supportswarm.realtime.broker import Broker, BrokerUnavailable, SubscriptionLost
from supportswarm.realtime.hub import Hub
from supportswarm.realtime.protocol import ACCOUNT_EVENT, ACCOUNTS_CHANNEL, Envelope

log = logging.getLogger(__name__)

RETRY_S = 1.0


async def announce_account_change(broker: Broker, user_id: int) -> None:
    """After the change is committed. If the broker is down, the sockets end at their maximum lifetime."""
    try:
        await broker.publish(Envelope(channel=ACCOUNTS_CHANNEL, type=ACCOUNT_EVENT, op="update",
                                      data={"user_id": user_id}))
    except BrokerUnavailable as exc:
        log.warning("could not announce the change of user %s: %s", user_id, exc)


async def follow_account_changes(broker: Broker, hub: Hub) -> None:
    """For the web process's lifetime: close the sockets of each changed user held by `hub`."""
    while True:
        try:
            async with await broker.subscribe([ACCOUNTS_CHANNEL]) as sub:
                async for envelope in sub:
                    user_id = envelope.data.get("user_id")
                    if isinstance(user_id, int):
                        await hub.close_user(user_id, "account")
            return  # the broker closed: the process is stopping
        except SubscriptionLost:
            continue  # announcements are hints; the sockets end at their maximum lifetime at the latest
        except BrokerUnavailable:
            await asyncio.sleep(RETRY_S)
