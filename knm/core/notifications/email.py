"""The email target: a plain-text mail over SMTP (STARTTLS, implicit TLS, or plain for a
relay on a trusted network), sent by the standard library in a thread."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

import msgspec

from knm.core.notifications.targets import Message, Outcome, summary


def build(target: dict[str, Any], message: Message) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = summary(message)
    mail["From"] = target["from_addr"]
    mail["To"] = ", ".join(target["to"])
    # Stable across retries, so mail systems (and people) can tell a re-send from a new event.
    mail["Message-ID"] = f"<{message.idempotency_key}@knm>"
    mail["Idempotency-Key"] = message.idempotency_key
    mail["X-Knm-Event"] = message.event
    pretty = msgspec.json.format(message.body, indent=2).decode()
    mail.set_content(f"{summary(message)}\n\n{pretty}\n")
    return mail


def _send(target: dict[str, Any], password: str, mail: EmailMessage, timeout: float) -> None:
    host, port, security = target["host"], int(target["port"]), target.get("security", "starttls")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if target.get("username"):
            smtp.login(target["username"], password)
        smtp.send_message(mail)


class EmailSender:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def __call__(self, target: dict[str, Any], secret: str, message: Message) -> Outcome:
        mail = build(target, message)
        try:
            # smtplib's timeout bounds each socket operation; the outer one the whole exchange.
            await asyncio.wait_for(
                asyncio.to_thread(_send, target, secret, mail, self.timeout), self.timeout * 3
            )
        except TimeoutError:
            return Outcome(ok=False, error="timed out talking to the SMTP server")
        except smtplib.SMTPResponseException as exc:
            return Outcome(ok=False, status_code=exc.smtp_code, error=_smtp_error(exc))
        except smtplib.SMTPRecipientsRefused as exc:
            return Outcome(ok=False, error=f"recipients refused: {', '.join(exc.recipients)}")
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        return Outcome(ok=True, status_code=250)


def _smtp_error(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode(errors="replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return f"SMTP {exc.smtp_code} {text}"[:500]
