//! Scheduled deliveries in the server: a scheduler that claims due fires, a sender that
//! renders and mails them, and the delivery log both write. State lives in PostgreSQL, so
//! any number of server processes share the work: a fire is claimed once (`FOR UPDATE SKIP
//! LOCKED` on its schedule, and a unique index on `(schedule, fire)`), and a delivery is held
//! by the one process sending it; a process that dies mid-send releases it to the others.
//!
//! Mail goes out after the files render and before the delivery is marked sent; a process
//! killed between the two sends that fire again on the next attempt (at least once over a
//! crash, exactly once otherwise).

pub(crate) mod mail;
mod render;
mod store;

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::config::DeliveryConfig;
use crate::error::{ApiError, Result};

pub(crate) use store::{Delivery, insert_manual, list_deliveries, load_delivery};

/// How this server delivers: its settings and its SMTP transport.
pub struct DeliveryService {
    pub config: DeliveryConfig,
    mailer: std::result::Result<mail::Mailer, String>,
    /// Where download links point.
    public_url: String,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService")
            .field("config", &self.config)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl DeliveryService {
    /// The service for `config`; `rest_addr` is the default base of download links. A bad
    /// SMTP URL or sender is an error at startup, not at the first fire.
    pub fn new(
        config: DeliveryConfig,
        rest_addr: std::net::SocketAddr,
    ) -> std::result::Result<Self, String> {
        let mailer = match &config.smtp_url {
            Some(url) => Ok(mail::Mailer::new(url, &config.smtp_from)?),
            None => Err("no SMTP server is configured (set ONEO_SMTP_URL)".to_string()),
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{rest_addr}"))
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            config,
            mailer,
            public_url,
        })
    }

    /// A fire this much late was missed while no server ran.
    fn grace(&self) -> chrono::Duration {
        let tick = i64::try_from(self.config.tick().as_millis()).unwrap_or(i64::MAX);
        chrono::Duration::milliseconds(tick.saturating_mul(3).max(60_000))
    }
}

pub(crate) fn service(state: &AppState) -> Result<&Arc<DeliveryService>> {
    state.deliveries.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "this server runs no deliveries (it has no lake, or was started without them)".into(),
        )
    })
}

/// Runs the scheduler and the sender until `stop`.
pub(crate) async fn run(state: AppState, stop: CancellationToken) {
    let Some(service) = state.deliveries.clone() else {
        return;
    };
    if state.lake.is_none() {
        tracing::info!("no lake, so no scheduled deliveries");
        return;
    }
    let tick = service.config.tick();
    let claims = {
        let (state, service, stop) = (state.clone(), service.clone(), stop.clone());
        async move {
            loop {
                let claimed = store::claim_due_fires(&state.pool, &service)
                    .instrument(tracing::info_span!("schedule_claims"))
                    .await;
                match claimed {
                    Ok(n) if n > 0 => tracing::info!(fires = n, "schedule fires claimed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "claiming schedule fires failed"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(tick) => {}
                }
            }
        }
    };
    let sends = async move {
        loop {
            // Everything due, one delivery at a time, then wait for the next tick.
            loop {
                match attempt_next(&state, &service, None).await {
                    Ok(Some(_)) if !stop.is_cancelled() => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "sending deliveries failed");
                        break;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
        }
    };
    tokio::join!(claims, sends);
}

/// Takes the next due delivery (or, with `only`, that one if it is due and free), tries it
/// once, and records the outcome; the delivery as it now stands, or `None` when nothing was
/// free to try.
pub(crate) async fn attempt_next(
    state: &AppState,
    service: &DeliveryService,
    only: Option<Uuid>,
) -> Result<Option<Delivery>> {
    let mut tx = state.pool.begin().await?;
    let Some(held) = store::hold_due(&mut tx, only).await? else {
        return Ok(None);
    };
    let span = tracing::info_span!("delivery", id = %held.id, schedule = ?held.schedule_id, attempt = held.attempts + 1);
    let outcome = send(state, service, &held).instrument(span).await;
    let id = held.id;
    store::record(&mut tx, &held, outcome, &service.config, Utc::now()).await?;
    tx.commit().await?;
    Ok(load_delivery(&state.pool, held.workspace_id, id).await?)
}

/// What one attempt came to.
pub(crate) enum Outcome {
    Sent(render::Sent),
    /// The condition was not met; the reason.
    Skipped(String),
    Failed(String),
}

async fn send(state: &AppState, service: &DeliveryService, held: &store::Held) -> Outcome {
    let spec = match serde_json::from_value::<oneo_dashboards::ScheduleSpec>(held.spec.clone()) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("the stored schedule no longer parses: {e}")),
    };
    let rendered = match render::render(state, held, &spec).await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("rendering failed: {e}")),
    };
    if let Some(why) = rendered.unmet.clone() {
        return Outcome::Skipped(why);
    }
    let mailer = match &service.mailer {
        Ok(m) => m,
        Err(why) => return Outcome::Failed(why.clone()),
    };
    match render::finish(state, service, held, &spec, rendered, mailer).await {
        Ok(sent) => Outcome::Sent(sent),
        Err(e) => Outcome::Failed(e),
    }
}
