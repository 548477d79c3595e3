"""An SMTP server for the delivery tests (aiosmtpd): every message it accepts is written to
OUT/<n>/ as message.json (envelope, headers, text body, attachment names) plus each attachment's
bytes, so the Rust test reads what a mail client would see.

    python3 tests/smtp_sink.py PORT OUT

Prints "ready" once it listens; runs until killed.
"""
import json
import os
import sys
import time
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        name = f"{os.getpid()}-{self.n:05d}"
        tmp = os.path.join(self.out, f".{name}")
        os.makedirs(tmp)
        msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        body = msg.get_body(preferencelist=("plain",))
        attachments = []
        for part in msg.iter_attachments():
            fname = part.get_filename()
            data = part.get_payload(decode=True) or b""
            with open(os.path.join(tmp, fname), "wb") as f:
                f.write(data)
            attachments.append({"name": fname, "content_type": part.get_content_type(), "bytes": len(data)})
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": [str(a) for a in msg["To"].addresses] if msg["To"] else [],
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "body": body.get_content() if body is not None else "",
            "attachments": attachments,
        }
        with open(os.path.join(tmp, "message.json"), "w") as f:
            json.dump(meta, f)
        # Whole messages only: the folder appears complete.
        os.rename(tmp, os.path.join(self.out, name))
        return "250 Message accepted for delivery"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
