//! A workflow checked against the workspace's objects before it is saved: every issue names
//! its place (`trigger.field`, `steps[2].values.amount`, `steps[3].steps[0].to[1]`).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use oneo_catalog::formula::{Formula, FormulaType, operand_type};
use oneo_catalog::{FieldDef, FieldType, Issue, Issues, SchemaView, check_api_name};
use serde_json::Value;

use crate::spec::{Action, END, MAX_STEPS, OnError, Step, Trigger, WorkflowSpec};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const ROLES: [&str; 4] = ["viewer", "analyst", "member", "admin"];

/// What a check knows while it walks the steps.
struct Walk<'a> {
    schema: &'a dyn SchemaView,
    /// The trigger record's fields (a webhook's declared fields; none for a schedule).
    trigger: Option<Vec<FieldDef>>,
    /// Every step's key and the order it appears in (loops' steps included).
    order: BTreeMap<String, usize>,
    /// The keys of the workflow's own (not loops') steps.
    top: BTreeSet<String>,
    issues: Vec<Issue>,
}

impl WorkflowSpec {
    /// Every issue with the definition, or none.
    pub fn validate(&self, schema: &dyn SchemaView) -> Result<(), Issues> {
        let mut w = Walk {
            schema,
            trigger: None,
            order: BTreeMap::new(),
            top: self.steps.iter().map(|s| s.key.clone()).collect(),
            issues: Vec::new(),
        };
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            w.push("name", "must be 1 to 200 characters");
        }
        if !(1..=10).contains(&self.max_depth) {
            w.push("max_depth", "must be 1 to 10");
        }
        w.trigger = w.check_trigger(&self.trigger);
        if self.steps.is_empty() {
            w.push("steps", "a workflow needs at least one step");
        }
        let mut n = 0;
        collect_keys(&self.steps, "steps", &mut w, &mut n);
        if n > MAX_STEPS {
            w.push(
                "steps",
                format!("at most {MAX_STEPS} steps, loops' steps included ({n} given)"),
            );
        }
        w.check_steps(&self.steps, "steps", self.trigger.object(), None);
        reachable(&self.steps, "steps", &mut w);
        if w.issues.is_empty() {
            Ok(())
        } else {
            Err(Issues(w.issues))
        }
    }
}

fn collect_keys(steps: &[Step], at: &str, w: &mut Walk<'_>, n: &mut usize) {
    for (i, s) in steps.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if s.key == END {
            w.push(format!("{here}.key"), "`end` is reserved: it ends the run");
        } else if let Err(e) = check_api_name(&s.key) {
            w.push(format!("{here}.key"), e);
        } else if w.order.insert(s.key.clone(), *n).is_some() {
            w.push(
                format!("{here}.key"),
                format!("another step is also `{}`", s.key),
            );
        }
        *n += 1;
        if let Action::Loop { steps, .. } = &s.action {
            collect_keys(steps, &format!("{here}.steps"), w, n);
        }
    }
}

/// Steps no path from the first reaches; a loop's steps are checked among themselves.
fn reachable(steps: &[Step], at: &str, w: &mut Walk<'_>) {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        if i >= steps.len() || !seen.insert(i) {
            continue;
        }
        let s = &steps[i];
        let mut targets: Vec<Option<&str>> = vec![];
        let default = steps.get(i + 1).map(|n| n.key.as_str());
        match &s.action {
            Action::Condition {
                then, otherwise, ..
            } => {
                targets.push(Some(then));
                targets.push(otherwise.as_deref().or(default));
            }
            Action::Approval {
                on_reject,
                on_timeout,
                ..
            } => {
                targets.push(s.next.as_deref().or(default));
                targets.push(on_reject.as_deref());
                targets.push(on_timeout.as_deref());
            }
            _ => targets.push(s.next.as_deref().or(default)),
        }
        todo.extend(
            targets
                .into_iter()
                .flatten()
                .filter_map(|k| index.get(k).copied()),
        );
    }
    for (i, s) in steps.iter().enumerate() {
        if !seen.contains(&i) {
            w.push(
                format!("{at}[{i}]"),
                format!(
                    "step `{}` is unreachable: no path from the first step leads to it",
                    s.key
                ),
            );
        }
        if let Action::Loop { steps, .. } = &s.action {
            reachable(steps, &format!("{at}[{i}].steps"), w);
        }
    }
}

impl Walk<'_> {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.issues.push(Issue::new(field, reason));
    }

    fn fields(&mut self, object: &str, at: &str) -> Option<Vec<FieldDef>> {
        let found = self.schema.fields_of(object);
        if found.is_none() {
            self.push(
                at,
                format!("there is no object `{object}` in this workspace"),
            );
        }
        found
    }

    /// A boolean formula over `fields`.
    fn condition(&mut self, src: &str, fields: &[FieldDef], at: &str) {
        match Formula::parse(src).and_then(|f| f.check(&|name| operand_type(fields, name))) {
            Ok(FormulaType::Boolean) => {}
            Ok(other) => self.push(
                at,
                format!("`{src}` is a {other:?} formula; a condition must be true or false")
                    .to_lowercase(),
            ),
            Err(e) => self.push(at, format!("`{src}`: {e}")),
        }
    }

    fn check_trigger(&mut self, t: &Trigger) -> Option<Vec<FieldDef>> {
        let fields = match t {
            Trigger::Schedule { cron, time_zone } => {
                if croner::Cron::from_str(cron.trim()).is_err() {
                    self.push("trigger.cron", format!("`{cron}` is not a cron expression (five fields, or six with seconds first)"));
                }
                if chrono_tz::Tz::from_str(time_zone.trim()).is_err() {
                    self.push(
                        "trigger.time_zone",
                        format!("`{time_zone}` is not an IANA time zone name"),
                    );
                }
                return None;
            }
            Trigger::Webhook { fields } => {
                let mut names = BTreeSet::new();
                for (i, f) in fields.iter().enumerate() {
                    if let Err(e) = check_api_name(&f.name) {
                        self.push(format!("trigger.fields[{i}].name"), e);
                    } else if !names.insert(f.name.as_str()) {
                        self.push(
                            format!("trigger.fields[{i}].name"),
                            format!("`{}` is declared twice", f.name),
                        );
                    }
                }
                return Some(
                    fields
                        .iter()
                        .map(|f| FieldDef::new(&f.name, &f.name, f.field_type))
                        .collect(),
                );
            }
            other => {
                let object = other.object().unwrap_or_default();
                self.fields(object, "trigger.object")?
            }
        };
        match t {
            Trigger::FieldChanged {
                field, from, to, ..
            } => match fields.iter().find(|f| &f.api_name == field) {
                None => self.push(
                    "trigger.field",
                    format!("`{field}` is not a field of this object"),
                ),
                Some(def) => {
                    for (name, v) in [("from", from), ("to", to)] {
                        if let Some(v) = v.as_ref().filter(|v| !v.is_null())
                            && let Err(e) = def.parse_value(v)
                        {
                            self.push(format!("trigger.{name}"), e);
                        }
                    }
                }
            },
            Trigger::TimeBased {
                field,
                offset_minutes,
                ..
            } => {
                match fields.iter().find(|f| &f.api_name == field) {
                    Some(f) if matches!(f.field_type, FieldType::Date | FieldType::Datetime) => {}
                    Some(f) => self.push("trigger.field", format!("`{field}` is a {} field; a time-based trigger needs a date or datetime", f.field_type.as_str())),
                    None => self.push("trigger.field", format!("`{field}` is not a field of this object")),
                }
                if offset_minutes.abs() > 366 * 24 * 60 {
                    self.push("trigger.offset_minutes", "at most a year before or after");
                }
            }
            _ => {}
        }
        let filter = match t {
            Trigger::RecordCreated { filter, .. }
            | Trigger::RecordUpdated { filter, .. }
            | Trigger::FieldChanged { filter, .. }
            | Trigger::RecordDeleted { filter, .. }
            | Trigger::TimeBased { filter, .. } => filter.as_deref(),
            _ => None,
        };
        if let Some(f) = filter {
            self.condition(f, &fields, "trigger.filter");
        }
        Some(fields)
    }

    /// A step key a step jumps to: a step of its own list (or, from inside a loop, of the
    /// workflow's top list, which leaves the loop), or `end`.
    fn target(&mut self, key: &str, at: String, list: &[Step]) {
        if key == END || list.iter().any(|s| s.key == key) || self.top.contains(key) {
            return;
        }
        let reason = if self.order.contains_key(key) {
            format!(
                "step `{key}` is inside a loop; a jump can't enter a loop (jump to the loop's own key)"
            )
        } else {
            format!("there is no step `{key}` (name a step's key, or \"end\")")
        };
        self.push(at, reason);
    }

    /// `{{trigger.x}}`, `{{steps.k.x}}` and `{{item.x}}` references in a text.
    fn references(&mut self, text: &str, at: &str, own: usize, item: Option<&[FieldDef]>) {
        for r in text
            .split("{{")
            .skip(1)
            .filter_map(|s| s.split_once("}}").map(|(r, _)| r.trim()))
        {
            let mut parts = r.split('.');
            let ok = match (parts.next(), parts.next()) {
                (Some("trigger"), Some(f)) => match &self.trigger {
                    Some(fields) => f == "id" || fields.iter().any(|d| d.api_name == f),
                    None => false,
                },
                (Some("steps"), Some(k)) => self.order.get(k).is_some_and(|&n| n < own),
                (Some("item"), Some(f)) => {
                    item.is_some_and(|fields| f == "id" || fields.iter().any(|d| d.api_name == f))
                }
                _ => false,
            };
            if !ok {
                self.push(at, format!("`{{{{{r}}}}}` names nothing here: use trigger.<field>, steps.<an earlier step>.<output>, or item.<field> inside a loop"));
            }
        }
    }

    fn values(
        &mut self,
        object: &str,
        values: &serde_json::Map<String, Value>,
        at: &str,
        own: usize,
        item: Option<&[FieldDef]>,
    ) {
        let Some(fields) = self.fields(object, &format!("{at}.object")) else {
            return;
        };
        if values.is_empty() {
            self.push(format!("{at}.values"), "name at least one field to write");
        }
        for (name, v) in values {
            let here = format!("{at}.values.{name}");
            match fields.iter().find(|f| &f.api_name == name) {
                None => self.push(here, format!("`{object}` has no field `{name}`")),
                Some(f) if !f.field_type.is_stored() || f.field_type == FieldType::Autonumber => {
                    self.push(
                        here,
                        format!(
                            "`{name}` is computed ({}); it can't be written",
                            f.field_type.as_str()
                        ),
                    );
                }
                Some(f) => match v {
                    Value::String(s) if s.contains("{{") => self.references(s, &here, own, item),
                    v => {
                        if let Err(e) = f.parse_value(v) {
                            self.push(here, e);
                        }
                    }
                },
            }
        }
    }

    fn check_steps(
        &mut self,
        steps: &[Step],
        at: &str,
        trigger_object: Option<&str>,
        item: Option<&[FieldDef]>,
    ) {
        for (i, s) in steps.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let own = self.order.get(&s.key).copied().unwrap_or(usize::MAX);
            if let Some(n) = &s.next {
                self.target(n, format!("{here}.next"), steps);
            }
            if let OnError::Retry {
                max_attempts,
                backoff_ms,
            } = s.on_error
            {
                if !(1..=20).contains(&max_attempts) {
                    self.push(format!("{here}.on_error.max_attempts"), "must be 1 to 20");
                }
                if !(1..=3_600_000).contains(&backoff_ms) {
                    self.push(
                        format!("{here}.on_error.backoff_ms"),
                        "must be 1 ms to an hour",
                    );
                }
            }
            match &s.action {
                Action::UpdateRecord {
                    object,
                    record,
                    values,
                } => {
                    let object = object.as_deref().or(trigger_object);
                    match (object, record) {
                        (None, _) => self.push(format!("{here}.object"), "this trigger has no record; name the `object` and the `record` to update"),
                        (Some(_), None) if trigger_object.is_none() || object != trigger_object => {
                            self.push(format!("{here}.record"), "name the record to update (an id or a template such as {{steps.create.id}})");
                        }
                        _ => {}
                    }
                    if let Some(r) = record {
                        self.references(r, &format!("{here}.record"), own, item);
                    }
                    if let Some(o) = object {
                        self.values(o, values, &here, own, item);
                    }
                }
                Action::CreateRecord { object, values } => {
                    self.values(object, values, &here, own, item)
                }
                Action::SendEmail { to, subject, body } => {
                    if to.is_empty() {
                        self.push(format!("{here}.to"), "name at least one recipient");
                    }
                    for (j, r) in to.iter().enumerate() {
                        if r.contains("{{") {
                            self.references(r, &format!("{here}.to[{j}]"), own, item);
                        } else if !email_address::EmailAddress::is_valid(r.trim()) {
                            self.push(
                                format!("{here}.to[{j}]"),
                                format!("`{r}` is not an email address"),
                            );
                        }
                    }
                    if subject.trim().is_empty() {
                        self.push(format!("{here}.subject"), "must not be empty");
                    }
                    self.references(subject, &format!("{here}.subject"), own, item);
                    self.references(body, &format!("{here}.body"), own, item);
                }
                Action::HttpRequest {
                    method,
                    url,
                    timeout_ms,
                    body,
                    ..
                } => {
                    if !METHODS.contains(&method.to_ascii_uppercase().as_str()) {
                        self.push(
                            format!("{here}.method"),
                            format!("`{method}` is not one of {}", METHODS.join(", ")),
                        );
                    }
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        self.push(format!("{here}.url"), "must be an http:// or https:// URL");
                    }
                    self.references(url, &format!("{here}.url"), own, item);
                    if let Some(b) = body {
                        self.references(&b.to_string(), &format!("{here}.body"), own, item);
                    }
                    if !(1..=60_000).contains(timeout_ms) {
                        self.push(format!("{here}.timeout_ms"), "must be 1 to 60000");
                    }
                }
                Action::Condition {
                    when,
                    then,
                    otherwise,
                } => {
                    match self.trigger.clone() {
                        Some(fields) => self.condition(when, &fields, &format!("{here}.when")),
                        None => self.push(
                            format!("{here}.when"),
                            "this trigger has no record whose fields a condition could read",
                        ),
                    }
                    self.target(then, format!("{here}.then"), steps);
                    if let Some(o) = otherwise {
                        self.target(o, format!("{here}.else"), steps);
                    }
                }
                Action::Wait {
                    seconds,
                    until,
                    until_condition,
                } => {
                    let given = [
                        seconds.is_some(),
                        until.is_some(),
                        until_condition.is_some(),
                    ];
                    if given.iter().filter(|g| **g).count() != 1 {
                        self.push(
                            here.clone(),
                            "a wait takes exactly one of `seconds`, `until` or `until_condition`",
                        );
                    }
                    if seconds.is_some_and(|s| s == 0 || s > 366 * 86_400) {
                        self.push(format!("{here}.seconds"), "must be 1 second to a year");
                    }
                    if let Some(u) = until {
                        self.references(u, &format!("{here}.until"), own, item);
                    }
                    if let (Some(c), Some(fields)) = (until_condition, self.trigger.clone()) {
                        self.condition(c, &fields, &format!("{here}.until_condition"));
                    }
                }
                Action::Loop {
                    object,
                    via,
                    max,
                    steps,
                } => {
                    if item.is_some() {
                        self.push(format!("{here}.type"), "loops do not nest");
                    }
                    if !(1..=1000).contains(max) {
                        self.push(format!("{here}.max"), "must be 1 to 1000");
                    }
                    let related = self.fields(object, &format!("{here}.object"));
                    if let Some(fields) = &related {
                        match fields.iter().find(|f| &f.api_name == via) {
                            Some(f) if f.field_type == FieldType::Lookup && f.target.as_deref() == trigger_object && trigger_object.is_some() => {}
                            Some(f) if f.field_type == FieldType::Lookup => self.push(format!("{here}.via"), format!(
                                "`{object}.{via}` looks up `{}`, not the trigger's object `{}`",
                                f.target.as_deref().unwrap_or("?"), trigger_object.unwrap_or("(none)")
                            )),
                            Some(f) => self.push(format!("{here}.via"), format!(
                                "`{object}.{via}` is a {} field; a loop runs over the records whose lookup points at the trigger record",
                                f.field_type.as_str()
                            )),
                            None => self.push(format!("{here}.via"), format!("`{object}` has no field `{via}`")),
                        }
                    }
                    if steps.is_empty() {
                        self.push(format!("{here}.steps"), "a loop needs at least one step");
                    }
                    let fields = related.unwrap_or_default();
                    self.check_steps(
                        steps,
                        &format!("{here}.steps"),
                        trigger_object,
                        Some(&fields),
                    );
                }
                Action::Approval {
                    role,
                    timeout_seconds,
                    on_reject,
                    on_timeout,
                } => {
                    if !ROLES.contains(&role.as_str()) {
                        self.push(
                            format!("{here}.role"),
                            format!("`{role}` is not one of {}", ROLES.join(", ")),
                        );
                    }
                    if timeout_seconds.is_some_and(|t| t == 0) {
                        self.push(format!("{here}.timeout_seconds"), "must be at least 1");
                    }
                    if on_timeout.is_some() && timeout_seconds.is_none() {
                        self.push(format!("{here}.on_timeout"), "give `timeout_seconds` too");
                    }
                    for (name, k) in [("on_reject", on_reject), ("on_timeout", on_timeout)] {
                        if let Some(k) = k {
                            self.target(k, format!("{here}.{name}"), steps);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
