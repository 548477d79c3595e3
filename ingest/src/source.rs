//! The replication source: pgoutput over the streaming replication protocol.
//!
//! `pg_walstream` (pinned to an exact version; its API changes often) is used only in this
//! file. The rest of the crate sees [`Change`], [`Tuple`], [`SlotSnapshot`] and the
//! [`ChangeSource`] trait, so replacing the client touches nothing else.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pg_walstream::{
    ChangeEvent, EventType, LogicalReplicationStream, ReplicationSlotOptions,
    ReplicationStreamConfig, RetryConfig, RowData, SharedLsnFeedback, SnapshotOutcome,
    SnapshotRows, StreamingMode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;

/// A position in PostgreSQL's write-ahead log.
pub type Lsn = u64;

pub use oneo_catalog::lake::{format_lsn, parse_lsn};

/// What a row change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One decoded message of the change stream, in commit order.
#[derive(Debug)]
pub enum Change {
    /// A transaction starts; `commit_lsn` is where its commit record is.
    Begin {
        commit_lsn: Lsn,
        commit_ts: DateTime<Utc>,
    },
    /// Boxed: a decoded tuple is large and most messages are begins and commits.
    Row(Box<RowChange>),
    /// The transaction is committed; `end_lsn` is the position to acknowledge once it is durable.
    Commit { commit_lsn: Lsn, end_lsn: Lsn },
}

/// A row inserted, updated or deleted in a published table.
#[derive(Debug)]
pub struct RowChange {
    pub schema: Arc<str>,
    pub table: Arc<str>,
    pub op: Op,
    /// The row after the change (insert, update).
    pub new: Option<Tuple>,
    /// The row before it (update, delete; the whole row, as record tables are REPLICA IDENTITY FULL).
    pub old: Option<Tuple>,
}

/// A row's column values as PostgreSQL's text output.
#[derive(Debug, Clone)]
pub struct Tuple(RowData);

/// One column of a [`Tuple`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Not in the message: an unchanged TOASTed value, or a column the row didn't have then.
    Absent,
    Null,
    Text(&'a str),
}

impl Tuple {
    pub fn get(&self, column: &str) -> Cell<'_> {
        match self.0.get(column) {
            None => Cell::Absent,
            Some(v) if v.is_null() => Cell::Null,
            // pgoutput's text mode is UTF-8 (the database encoding is); anything else is null.
            Some(v) => v.as_str().map_or(Cell::Null, Cell::Text),
        }
    }

    /// The columns present in the message, in its order, with their values.
    pub fn cells(&self) -> impl Iterator<Item = (&Arc<str>, Cell<'_>)> {
        self.0.iter().map(|(name, v)| {
            let cell = if v.is_null() {
                Cell::Null
            } else {
                v.as_str().map_or(Cell::Null, Cell::Text)
            };
            (name, cell)
        })
    }

    /// The names of the columns present in the message.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_ref())
    }
}

/// Where the stream comes from and where acknowledgements go.
pub trait ChangeSource: Send {
    /// The next changes in commit order, at least one; waits until there are some.
    /// Cancel-safe: a chunk is either returned whole or left for the next call.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Vec<Change>, IngestError>> + Send;
    /// Everything up to `lsn` is durable in the lake: the slot may release it.
    fn acknowledge(&self, lsn: Lsn);
    /// Stops reading and sends the last acknowledgement.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// How to reach the slot.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    /// A libpq URL; `replication=database` is added here.
    pub database_url: String,
    pub slot: String,
    pub publication: String,
}

/// Where PostgreSQL puts its Unix sockets on Debian and by default elsewhere.
const SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

impl SlotConfig {
    /// The replication connection's URLs, in the order to try. When the database is on this
    /// machine its Unix socket comes first: the walsender streams to it about twice as fast
    /// as over loopback TCP (measured: `pg_recvlogical` took 2.2 s on the socket and 4.8 s on
    /// 127.0.0.1 for the same 312k changes). The URL as given is the fallback, for servers
    /// whose socket authentication differs.
    fn replication_urls(&self) -> Result<Vec<String>, IngestError> {
        let mut url = url::Url::parse(&self.database_url)
            .map_err(|e| IngestError::Replication(format!("DATABASE_URL is not a URL: {e}")))?;
        url.query_pairs_mut().append_pair("replication", "database");
        if !url.query_pairs().any(|(k, _)| k == "options") {
            // pgoutput prints `timestamptz` in the session's zone; in UTC every offset is
            // `+00`, never a zone's historical `+00:53:28`, which the decoder doesn't take.
            // Written by hand: form encoding would make the space a `+`, which libpq keeps.
            let query = format!(
                "{}&options=-c%20TimeZone%3DUTC",
                url.query().unwrap_or_default()
            );
            url.set_query(Some(&query));
        }
        let mut urls = Vec::with_capacity(2);
        // `postgres:` is not a special scheme to the URL parser, so an IP stays host text.
        let loopback = matches!(
            url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
        );
        let explicit_host = url
            .query_pairs()
            .any(|(k, _)| k == "host" || k == "hostaddr");
        if loopback && !explicit_host {
            let port = url.port().unwrap_or(5432);
            if let Some(dir) = SOCKET_DIRS
                .iter()
                .find(|d| std::path::Path::new(&format!("{d}/.s.PGSQL.{port}")).exists())
            {
                let mut local = url.clone();
                local.query_pairs_mut().append_pair("host", dir);
                urls.push(local.to_string());
            }
        }
        urls.push(url.to_string());
        Ok(urls)
    }

    /// A replication connection for `slot`, on the first URL that connects.
    async fn connect(&self, slot: &str) -> Result<LogicalReplicationStream, IngestError> {
        let urls = self.replication_urls()?;
        let mut last = None;
        for (i, url) in urls.iter().enumerate() {
            match LogicalReplicationStream::new(url, self.stream_config(slot)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    if i + 1 < urls.len() {
                        tracing::debug!(error = %e, "replication over the local socket failed; trying the URL as given");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.map_or_else(
            || IngestError::Replication("no replication URL to connect to".into()),
            IngestError::from,
        ))
    }

    fn stream_config(&self, slot: &str) -> ReplicationStreamConfig {
        // Protocol 1 without streaming: a transaction arrives whole, after its commit, so a
        // batch only ever holds committed work. `messages` lets the idle heartbeat through.
        ReplicationStreamConfig::builder(slot, self.publication.clone())
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_messages(true)
            .with_feedback_interval(Duration::from_secs(1))
            .with_connection_timeout(Duration::from_secs(30))
            .with_health_check_interval(Duration::from_secs(60))
            .with_retry_config(RetryConfig::default())
            .with_slot_options(ReplicationSlotOptions {
                temporary: false,
                snapshot: Some("export".into()),
                ..Default::default()
            })
    }
}

/// A replication connection whose slot exists but which is not streaming yet.
pub struct Slot {
    // Boxed: the client's state is a couple of kilobytes and slots are moved around.
    stream: Box<LogicalReplicationStream>,
}

/// The slot, as [`open_slot`] found it.
pub enum OpenedSlot {
    /// It existed: stream from its confirmed position.
    Existing(Slot),
    /// This call created it: copy the tables from its exported snapshot first, then
    /// [`SlotSnapshot::finish`] gives the stream back, which continues with no gap and no
    /// duplicate.
    Created(SlotSnapshot),
}

/// Opens the slot, creating it if needed.
pub async fn open_slot(cfg: &SlotConfig) -> Result<OpenedSlot, IngestError> {
    let stream = cfg.connect(&cfg.slot).await?;
    match stream.snapshot().await? {
        SnapshotOutcome::Unavailable(stream) => Ok(OpenedSlot::Existing(Slot {
            stream: Box::new(stream),
        })),
        SnapshotOutcome::Available(mut snap) => {
            snap.retain_tables(|t| t.relation().namespace.as_ref() == RECORD_SCHEMA);
            let lsn = snap.consistent_point().value();
            Ok(OpenedSlot::Created(SlotSnapshot {
                rows: Some(Box::new(snap.rows())),
                lsn,
                scratch: false,
            }))
        }
    }
}

/// Opens the slot (creating it if needed) to stream from its position on, without copying
/// the tables: for consumers that react to changes (workflow triggers), not mirror rows.
/// A slot created here sees every transaction that commits after it exists.
pub async fn open_stream(cfg: &SlotConfig) -> Result<Slot, IngestError> {
    let stream = cfg.connect(&cfg.slot).await?;
    let stream = match stream.snapshot().await? {
        SnapshotOutcome::Unavailable(stream) => stream,
        SnapshotOutcome::Available(snap) => snap.abandon().await?,
    };
    Ok(Slot {
        stream: Box::new(stream),
    })
}

/// A snapshot of some record tables at `lsn` from a scratch slot, for resynchronising
/// tables while the main slot keeps its position (which is behind `lsn`, so every change
/// after the snapshot is still to come on the main stream).
///
/// The scratch slot is an ordinary one, not a temporary one: the replication client refuses
/// to export a snapshot from a temporary slot (a reconnect would re-create it at a later
/// point). Nothing ever streams from it; the caller drops it after the copy, finding it (and
/// any a crash left) by [`scratch_slot_pattern`].
pub async fn resync_snapshot(
    cfg: &SlotConfig,
    tables: &[String],
) -> Result<SlotSnapshot, IngestError> {
    let name = format!("{}_resync_{}", cfg.slot, std::process::id());
    let stream = cfg.connect(&name).await?;
    match stream.snapshot().await? {
        SnapshotOutcome::Available(mut snap) => {
            snap.retain_tables(|t| {
                t.relation().namespace.as_ref() == RECORD_SCHEMA
                    && tables
                        .iter()
                        .any(|n| n == t.relation().relation_name.as_ref())
            });
            let lsn = snap.consistent_point().value();
            Ok(SlotSnapshot {
                rows: Some(Box::new(snap.rows())),
                lsn,
                scratch: true,
            })
        }
        SnapshotOutcome::Unavailable(stream) => {
            drop(stream);
            Err(IngestError::Replication(format!(
                "the resync slot {name} already existed, so it exported no snapshot; it is dropped at the next start"
            )))
        }
    }
}

/// A `LIKE` pattern (escape `\\`) matching the scratch slots of `slot`'s resyncs.
pub fn scratch_slot_pattern(slot: &str) -> String {
    let escaped = slot
        .replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%");
    format!("{escaped}\\_resync\\_%")
}

/// The schema holding one table per object.
pub const RECORD_SCHEMA: &str = "oneo_records";

/// Rows of the snapshot a slot exported, table after table.
pub struct SlotSnapshot {
    // Boxed: the snapshot reader holds the replication client, a couple of kilobytes.
    rows: Option<Box<SnapshotRows>>,
    lsn: Lsn,
    /// It came from a scratch slot (dropped by the caller after the copy), not the main one.
    scratch: bool,
}

impl SlotSnapshot {
    /// The slot's consistent point: the snapshot holds every transaction committed before it,
    /// the stream every transaction committed at or after it.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The next row: its table's name and values; `None` when every table is copied.
    pub async fn next_row(&mut self) -> Result<Option<(Arc<str>, Tuple)>, IngestError> {
        let Some(rows) = self.rows.as_mut() else {
            return Ok(None);
        };
        Ok(rows
            .next_row()
            .await?
            .map(|r| (r.relation.relation_name.clone(), Tuple(r.data))))
    }

    /// Ends the copy. For the main slot this returns the stream, ready to start; a scratch
    /// slot's connection is closed (the slot itself is the caller's to drop).
    pub async fn finish(mut self) -> Result<Option<Slot>, IngestError> {
        let Some(rows) = self.rows.take() else {
            return Ok(None);
        };
        if self.scratch {
            drop(rows.abandon().await);
            return Ok(None);
        }
        Ok(Some(Slot {
            stream: Box::new(rows.finish().await?),
        }))
    }
}

impl Slot {
    /// Starts streaming from the slot's confirmed position. Changes are read on their own task
    /// into a bounded queue, so decoding overlaps with writing the lake.
    pub async fn start(mut self, cancel: CancellationToken) -> Result<PgChangeSource, IngestError> {
        self.stream.start(None).await?;
        let feedback = Arc::clone(&self.stream.shared_lsn_feedback);
        let mut events = self.stream.into_stream(cancel.clone());
        let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
        let reader = tokio::spawn(async move {
            // Changes go to the pipeline in chunks, each ending at a commit or at
            // `CHUNK_CHANGES`: one hand-over (and at most one wake-up of the pipeline) per
            // chunk rather than per change. Nothing waits in a chunk that could be used
            // sooner: the pipeline acts on whole transactions only, and a commit ends a chunk.
            let mut chunk = Vec::new();
            loop {
                match events.next_event().await {
                    Ok(ev) => {
                        let Some(change) = convert(ev) else { continue };
                        let commit = matches!(change, Change::Commit { .. });
                        chunk.push(change);
                        if (commit || chunk.len() >= CHUNK_CHANGES)
                            && tx.send(Ok(std::mem::take(&mut chunk))).await.is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        let stopped = matches!(e, pg_walstream::ReplicationError::Cancelled(_));
                        if !stopped {
                            drop(tx.send(Err(e.into())).await);
                        }
                        break;
                    }
                }
            }
            // Sends the last acknowledgement and closes the connection.
            drop(events.shutdown().await);
        });
        Ok(PgChangeSource {
            rx,
            feedback,
            cancel,
            reader: AbortOnDrop(Some(reader)),
        })
    }
}

/// Changes per chunk handed from the reader to the pipeline, at most.
const CHUNK_CHANGES: usize = 1024;
/// Chunks queued between them: up to 64k changes of large transactions, fewer of small ones.
const QUEUED_CHUNKS: usize = 64;

/// The live change stream of the slot.
pub struct PgChangeSource {
    rx: mpsc::Receiver<Result<Vec<Change>, IngestError>>,
    feedback: Arc<SharedLsnFeedback>,
    cancel: CancellationToken,
    reader: AbortOnDrop,
}

/// The reader task dies with its source, whichever way the source goes.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl ChangeSource for PgChangeSource {
    async fn next_chunk(&mut self) -> Result<Vec<Change>, IngestError> {
        match self.rx.recv().await {
            Some(result) => result,
            None => Err(IngestError::Stopped),
        }
    }

    fn acknowledge(&self, lsn: Lsn) {
        self.feedback.update_flushed_lsn(lsn);
        self.feedback.update_applied_lsn(lsn);
    }

    async fn close(mut self) {
        self.cancel.cancel();
        // The reader may be blocked on a full queue; draining lets it see the cancellation.
        self.rx.close();
        if let Some(task) = self.reader.0.take() {
            drop(tokio::time::timeout(Duration::from_secs(5), task).await);
        }
    }
}

fn convert(ev: ChangeEvent) -> Option<Change> {
    Some(match ev.event_type {
        EventType::Begin {
            final_lsn,
            commit_timestamp,
            ..
        } => Change::Begin {
            commit_lsn: final_lsn.value(),
            commit_ts: commit_timestamp,
        },
        EventType::Commit {
            commit_lsn,
            end_lsn,
            ..
        } => Change::Commit {
            commit_lsn: commit_lsn.value(),
            end_lsn: end_lsn.value(),
        },
        EventType::Insert {
            schema,
            table,
            data,
            ..
        } => Change::Row(Box::new(RowChange {
            schema,
            table,
            op: Op::Insert,
            new: Some(Tuple(data)),
            old: None,
        })),
        EventType::Update {
            schema,
            table,
            old_data,
            new_data,
            ..
        } => Change::Row(Box::new(RowChange {
            schema,
            table,
            op: Op::Update,
            new: Some(Tuple(new_data)),
            old: old_data.map(Tuple),
        })),
        EventType::Delete {
            schema,
            table,
            old_data,
            ..
        } => Change::Row(Box::new(RowChange {
            schema,
            table,
            op: Op::Delete,
            new: None,
            old: Some(Tuple(old_data)),
        })),
        // Relation and type messages are decoded by the client into column names; the
        // heartbeat message only needs its transaction's begin and commit.
        _ => return None,
    })
}

/// A tuple built by hand, for tests of the code that reads tuples.
#[cfg(test)]
pub fn test_tuple(cells: &[(&str, Option<&str>)]) -> Tuple {
    use pg_walstream::ColumnValue;
    Tuple(RowData::from_pairs(
        cells
            .iter()
            .map(|(k, v)| (*k, v.map_or(ColumnValue::Null, ColumnValue::text)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_slot_pattern_matches_only_this_slots_resyncs() {
        assert_eq!(scratch_slot_pattern("oneo_a_b"), r"oneo\_a\_b\_resync\_%");
    }

    #[test]
    fn replication_prefers_the_local_socket_and_keeps_the_url() {
        let cfg = SlotConfig {
            database_url: "postgres://postgres@127.0.0.1:5432/oneo".into(),
            slot: "s".into(),
            publication: "p".into(),
        };
        let urls = cfg.replication_urls().unwrap();
        let last = urls.last().unwrap();
        assert_eq!(
            last,
            "postgres://postgres@127.0.0.1:5432/oneo?replication=database&options=-c%20TimeZone%3DUTC"
        );
        let has_socket = SOCKET_DIRS
            .iter()
            .any(|d| std::path::Path::new(&format!("{d}/.s.PGSQL.5432")).exists());
        assert_eq!(urls.len(), if has_socket { 2 } else { 1 });
        let remote = SlotConfig {
            database_url: "postgres://postgres@db.example.com:5432/oneo".into(),
            ..cfg
        };
        assert_eq!(remote.replication_urls().unwrap().len(), 1);
    }
}
