//! Whether a record change starts a run: the trigger's kind, its `from`/`to` values and its
//! filter, decided on the record's typed values (before and after the change). The engine
//! feeds it every change of the ordered stream, so the decision is a pure function of the
//! change and the definition, and replaying a change after a crash decides the same.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, Utc};
use oneo_catalog::formula::Formula;
use oneo_catalog::{FieldDef, Value};

use crate::spec::Trigger;

/// A record's values by field name.
pub type Record = BTreeMap<String, Value>;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    Created,
    Updated,
    Deleted,
}

/// One committed change of a record of `object`.
#[derive(Debug, Clone, Copy)]
pub struct RecordChange<'a> {
    pub object: &'a str,
    pub op: RecordOp,
    /// Before the change (updates, deletes).
    pub old: Option<&'a Record>,
    /// After it (creates, updates).
    pub new: Option<&'a Record>,
}

fn get<'r>(record: Option<&'r Record>, field: &str) -> &'r Value {
    record.and_then(|r| r.get(field)).unwrap_or(&Value::Null)
}

/// A filter or condition holds when its formula is true on `record` (a null is not true).
pub fn holds(filter: Option<&str>, record: Option<&Record>) -> Result<bool, String> {
    let Some(src) = filter else { return Ok(true) };
    let f = Formula::parse(src)?;
    Ok(f.eval(&|name| get(record, name).clone()) == Value::Boolean(true))
}

/// `want` (as the definition writes it) read as `def`'s value and compared with `actual`.
fn is(def: &FieldDef, want: Option<&serde_json::Value>, actual: &Value) -> Result<bool, String> {
    match want {
        None => Ok(true),
        Some(serde_json::Value::Null) => Ok(actual == &Value::Null),
        Some(w) => Ok(&def.parse_value(w)? == actual),
    }
}

impl Trigger {
    /// Whether `change` starts a run; `fields` are the object's. An error is a definition
    /// the workspace no longer matches (a field since removed), kept with the change.
    pub fn fires_on(&self, change: &RecordChange<'_>, fields: &[FieldDef]) -> Result<bool, String> {
        if self.object() != Some(change.object) {
            return Ok(false);
        }
        match self {
            Self::RecordCreated { filter, .. } => {
                Ok(change.op == RecordOp::Created && holds(filter.as_deref(), change.new)?)
            }
            Self::RecordUpdated { filter, .. } => {
                Ok(change.op == RecordOp::Updated && holds(filter.as_deref(), change.new)?)
            }
            Self::RecordDeleted { filter, .. } => {
                Ok(change.op == RecordOp::Deleted && holds(filter.as_deref(), change.old)?)
            }
            Self::FieldChanged {
                field,
                from,
                to,
                filter,
                ..
            } => {
                // A record created with the value counts as changed to it (from null).
                if change.op == RecordOp::Deleted {
                    return Ok(false);
                }
                let def = fields
                    .iter()
                    .find(|f| &f.api_name == field)
                    .ok_or_else(|| format!("the object has no field `{field}` any more"))?;
                let (before, after) = (get(change.old, field), get(change.new, field));
                Ok(before != after
                    && is(def, from.as_ref(), before)?
                    && is(def, to.as_ref(), after)?
                    && holds(filter.as_deref(), change.new)?)
            }
            // Time-based runs start from the clock (see `due_at`), not from the change.
            Self::TimeBased { .. } | Self::Schedule { .. } | Self::Webhook { .. } => Ok(false),
        }
    }

    /// For a schedule: its first fire strictly after `after`, in its zone (`None` for an
    /// expression that never fires again, or any other trigger).
    pub fn next_fire_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Schedule { cron, time_zone } = self else {
            return None;
        };
        let zone: chrono_tz::Tz = time_zone.parse().ok()?;
        let cron = croner::Cron::from_str(cron.trim()).ok()?;
        let next = cron
            .find_next_occurrence(&after.with_timezone(&zone), false)
            .ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// For a time-based trigger: when `record` is due (its date field moved by the offset; a
    /// date counts from midnight UTC), or `None` when the field is empty or the filter fails.
    pub fn due_at(&self, record: &Record) -> Result<Option<DateTime<Utc>>, String> {
        let Self::TimeBased {
            field,
            offset_minutes,
            filter,
            ..
        } = self
        else {
            return Ok(None);
        };
        if !holds(filter.as_deref(), Some(record))? {
            return Ok(None);
        }
        let at = match get(Some(record), field) {
            Value::Datetime(t) => *t,
            Value::Date(d) => d.and_time(NaiveTime::MIN).and_utc(),
            _ => return Ok(None),
        };
        Ok(Some(at + chrono::Duration::minutes(*offset_minutes)))
    }
}

#[cfg(test)]
mod tests {
    use oneo_catalog::FieldType;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schedule_fires_in_its_zone() {
        let t: Trigger = serde_json::from_value(
            json!({"type": "schedule", "cron": "0 9 * * 1-5", "time_zone": "Europe/Paris"}),
        )
        .unwrap();
        // Friday 2026-12-04 10:00 UTC (11:00 in Paris): next is Monday 09:00 Paris = 08:00 UTC.
        let after = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            t.next_fire_after(after).map(|d| d.to_rfc3339()),
            Some("2026-12-07T08:00:00+00:00".to_string())
        );
    }

    fn fields() -> Vec<FieldDef> {
        vec![
            FieldDef::new("stage", "Stage", FieldType::Text),
            FieldDef::new("amount", "Amount", FieldType::Currency),
            FieldDef::new("close_date", "Close date", FieldType::Date),
        ]
    }

    fn deal(stage: &str, amount: i64) -> Record {
        Record::from([
            ("stage".into(), Value::Text(stage.into())),
            ("amount".into(), Value::Decimal(amount.into())),
            (
                "close_date".into(),
                Value::Date("2026-12-20".parse().expect("date")),
            ),
        ])
    }

    fn trigger(t: serde_json::Value) -> Trigger {
        serde_json::from_value(t).expect("a trigger")
    }

    #[test]
    fn a_stage_change_to_won_fires_once_and_only_on_the_change() {
        let won = trigger(
            json!({"type": "field_changed", "object": "deal", "field": "stage",
                                 "to": "closed_won", "filter": "amount > 1000"}),
        );
        let small_open = deal("proposal", 10);
        let (open, closed, small) = (
            deal("proposal", 5000),
            deal("closed_won", 5000),
            deal("closed_won", 10),
        );
        let update = |old, new| RecordChange {
            object: "deal",
            op: RecordOp::Updated,
            old: Some(old),
            new: Some(new),
        };
        assert_eq!(won.fires_on(&update(&open, &closed), &fields()), Ok(true));
        // Already won: another write to the record is no change of stage.
        assert_eq!(
            won.fires_on(&update(&closed, &closed), &fields()),
            Ok(false)
        );
        assert_eq!(
            won.fires_on(&update(&closed, &open), &fields()),
            Ok(false),
            "to another stage"
        );
        assert_eq!(
            won.fires_on(&update(&small_open, &small), &fields()),
            Ok(false),
            "the filter"
        );
        let created = RecordChange {
            object: "deal",
            op: RecordOp::Created,
            old: None,
            new: Some(&closed),
        };
        assert_eq!(won.fires_on(&created, &fields()), Ok(true), "created won");
        let other = RecordChange {
            object: "company",
            ..update(&open, &closed)
        };
        assert_eq!(won.fires_on(&other, &fields()), Ok(false));
        let from = trigger(
            json!({"type": "field_changed", "object": "deal", "field": "stage", "from": "negotiation"}),
        );
        assert_eq!(
            from.fires_on(&update(&open, &closed), &fields()),
            Ok(false),
            "not from negotiation"
        );
    }

    #[test]
    fn creates_updates_and_deletes_fire_their_own_triggers() {
        let d = deal("proposal", 5000);
        let created = RecordChange {
            object: "deal",
            op: RecordOp::Created,
            old: None,
            new: Some(&d),
        };
        let deleted = RecordChange {
            object: "deal",
            op: RecordOp::Deleted,
            old: Some(&d),
            new: None,
        };
        let on_create = trigger(json!({"type": "record_created", "object": "deal"}));
        let on_delete = trigger(
            json!({"type": "record_deleted", "object": "deal", "filter": "stage = 'proposal'"}),
        );
        assert_eq!(on_create.fires_on(&created, &fields()), Ok(true));
        assert_eq!(on_create.fires_on(&deleted, &fields()), Ok(false));
        assert_eq!(
            on_delete.fires_on(&deleted, &fields()),
            Ok(true),
            "the filter reads the deleted row"
        );
    }

    #[test]
    fn a_time_based_trigger_is_due_relative_to_its_date() {
        let before = trigger(
            json!({"type": "time_based", "object": "deal", "field": "close_date",
                                    "offset_minutes": -4320}),
        );
        let due = before.due_at(&deal("proposal", 1)).expect("due");
        assert_eq!(
            due.map(|d| d.to_rfc3339()),
            Some("2026-12-17T00:00:00+00:00".into())
        );
        let mut undated = deal("proposal", 1);
        undated.insert("close_date".into(), Value::Null);
        assert_eq!(before.due_at(&undated), Ok(None));
    }
}
