//! Delivery mail over SMTP (lettre): a plain-text summary and the files attached.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// An SMTP transport and the sender it writes as.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// One message: who gets it, what it says, what it carries.
pub(crate) struct Mail<'a> {
    /// The Message-ID without its brackets (`<delivery id>@oneo.delivery`), so a receiver can
    /// tell one message from another and a resend from a new one.
    pub message_id: String,
    pub to: &'a [String],
    pub subject: String,
    pub body: String,
    /// (file name, content type, bytes).
    pub attachments: Vec<(String, &'static str, &'a [u8])>,
}

impl Mailer {
    pub(crate) fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("ONEO_SMTP_URL `{url}` is not an SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("ONEO_SMTP_FROM `{from}` is not a mailbox: {e}"))?;
        Ok(Self { transport, from })
    }

    /// Sends `mail`; the SMTP server's refusal or the connection's failure as text.
    pub(crate) async fn send(&self, mail: Mail<'_>) -> Result<(), String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject)
            .message_id(Some(format!("<{}>", mail.message_id)));
        for r in mail.to {
            let to: Mailbox = r
                .trim()
                .parse()
                .map_err(|e| format!("recipient `{r}`: {e}"))?;
            builder = builder.to(to);
        }
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(mail.body));
        for (name, content_type, bytes) in mail.attachments {
            let ct = ContentType::parse(content_type)
                .map_err(|e| format!("content type {content_type}: {e}"))?;
            parts = parts.singlepart(Attachment::new(name).body(bytes.to_vec(), ct));
        }
        let message = builder
            .multipart(parts)
            .map_err(|e| format!("the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| format!("SMTP: {e}"))
    }
}
