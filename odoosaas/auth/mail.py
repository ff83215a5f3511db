"""Outgoing mail: SMTP when configured, else `.eml` files in `<data dir>/outbox/`.

Bodies may hold single-use links, so they are never logged; file names carry no secret.
"""
import logging
import secrets
import smtplib
from datetime import datetime, timezone
from email.message import EmailMessage

log = logging.getLogger(__name__)


def send(settings, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.mail_from, to, subject
    message.set_content(body)
    if settings.smtp_host:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_user:
                smtp.starttls()
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    else:
        outbox = settings.data_dir / "outbox"
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / f"{datetime.now(timezone.utc):%Y%m%d%H%M%S%f}-{secrets.token_hex(3)}.eml").write_bytes(bytes(message))
    log.info("mail %r sent", subject)
