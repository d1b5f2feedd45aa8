"""Sending a mail through the server of SUPPORTSWARM_SMTP_URL, with the standard library's smtplib.

smtplib blocks, so each mail is sent in a worker thread. `smtp://` upgrades with STARTTLS when the server
offers it; a password is only sent over TLS, or to a server on this machine; `smtps://` is TLS from the start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

TIMEOUT_S = 20
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


class MailError(Exception):
    """The mail server could not be used as configured."""


async def send(smtp_url: str, message: EmailMessage) -> None:
    await asyncio.to_thread(_send, smtp_url, message)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _send(smtp_url: str, message: EmailMessage) -> None:
    url = urlsplit(smtp_url)
    if url.scheme not in DEFAULT_PORTS or not url.hostname:
        raise MailError("SUPPORTSWARM_SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
    port = url.port or DEFAULT_PORTS[url.scheme]
    if url.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(url.hostname, port, timeout=TIMEOUT_S,
                                               context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(url.hostname, port, timeout=TIMEOUT_S)
    with client:
        client.ehlo()
        encrypted = url.scheme == "smtps"
        if not encrypted and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
            encrypted = True
        if url.username:
            if not encrypted and not _is_loopback(url.hostname):
                raise MailError(f"{url.hostname} offers no STARTTLS: the SMTP password is not sent in the clear")
            client.login(unquote(url.username), unquote(url.password or ""))
        client.send_message(message)
