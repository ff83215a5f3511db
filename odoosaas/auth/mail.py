"""Outgoing mail: SMTP when configured, else `.eml` files in `<data dir>/outbox/`.

Bodies may hold single-use links, so they are never logged; file names carry no secret.
"""
import logging
import smtplib
import uuid
from datetime import datetime, timezone
from email.message import EmailMessage

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings):
        self.settings = settings
        self.outbox = settings.data_dir / "outbox"

    def send(self, to: str, subject: str, body: str) -> None:
        s = self.settings
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = s.mail_from, to, subject
        message.set_content(body)
        if s.smtp_host:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30) as smtp:
                if s.smtp_user:
                    smtp.starttls()
                    smtp.login(s.smtp_user, s.smtp_password)
                smtp.send_message(message)
        else:
            self.outbox.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            (self.outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml").write_bytes(bytes(message))
        log.info("mail %r sent", subject)
