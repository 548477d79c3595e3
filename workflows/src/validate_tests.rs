//! Validation cases: one workflow using every step, and each kind of mistake named by its
//! place.

use serde_json::json;

use super::*;

struct Crm;

impl SchemaView for Crm {
    fn fields_of(&self, object: &str) -> Option<Vec<FieldDef>> {
        let lookup = |name: &str, target: &str| FieldDef {
            target: Some(target.into()),
            ..FieldDef::new(name, name, FieldType::Lookup)
        };
        match object {
            "deal" => Some(vec![
                FieldDef::new("name", "Name", FieldType::Text),
                FieldDef::new("stage", "Stage", FieldType::Text),
                FieldDef::new("amount", "Amount", FieldType::Currency),
                FieldDef::new("close_date", "Close date", FieldType::Date),
                lookup("company", "company"),
            ]),
            "activity" => Some(vec![
                FieldDef::new("subject", "Subject", FieldType::Text),
                FieldDef::new("done", "Done", FieldType::Boolean),
                lookup("deal", "deal"),
                lookup("company", "company"),
            ]),
            _ => None,
        }
    }
}

fn spec(steps: serde_json::Value) -> WorkflowSpec {
    serde_json::from_value(json!({
        "name": "Won deals",
        "trigger": {"type": "field_changed", "object": "deal", "field": "stage", "to": "closed_won",
                    "filter": "amount > 1000"},
        "steps": steps,
    }))
    .expect("parses")
}

fn fields(spec: &WorkflowSpec) -> Vec<String> {
    spec.validate(&Crm)
        .err()
        .map(|e| e.0.into_iter().map(|i| i.field).collect())
        .unwrap_or_default()
}

#[test]
fn a_workflow_using_every_step_validates() {
    let s = spec(json!([
        {"key": "big", "type": "condition", "when": "amount >= 50000", "then": "ask", "else": "follow_up"},
        {"key": "ask", "type": "approval", "role": "admin", "timeout_seconds": 86400,
         "on_reject": "end", "on_timeout": "follow_up"},
        {"key": "follow_up", "type": "create_record", "object": "activity",
         "values": {"subject": "Kick-off for {{trigger.name}}", "deal": "{{trigger.id}}", "done": false}},
        {"key": "pause", "type": "wait", "seconds": 2},
        {"key": "notify", "type": "http_request", "url": "https://hooks.example.com/won",
         "body": {"deal": "{{trigger.id}}", "task": "{{steps.follow_up.id}}"},
         "on_error": {"do": "retry", "max_attempts": 5, "backoff_ms": 500}},
        {"key": "each", "type": "loop", "object": "activity", "via": "deal", "max": 50,
         "steps": [{"key": "close", "type": "update_record", "object": "activity",
                    "record": "{{item.id}}", "values": {"done": true}}]},
        {"key": "mark", "type": "update_record", "values": {"name": "{{trigger.name}} (won)"},
         "on_error": {"do": "continue"}},
        {"key": "tell", "type": "send_email", "to": ["sales@example.com"],
         "subject": "Won: {{trigger.name}}", "body": "Task {{steps.follow_up.id}}"},
    ]));
    assert_eq!(fields(&s), Vec::<String>::new(), "{:?}", s.validate(&Crm));
}

#[test]
fn each_mistake_is_named_by_its_place() {
    let s = spec(json!([
        {"key": "check", "type": "condition", "when": "amount + ", "then": "nowhere"},
        {"key": "write", "type": "update_record", "values": {"colour": "red", "amount": "lots"}},
        {"key": "each", "type": "loop", "object": "activity", "via": "subject",
         "steps": [{"key": "mail", "type": "send_email", "to": ["not-an-address"], "subject": "{{steps.later.id}}"}]},
        {"key": "stop", "type": "wait", "seconds": 1, "next": "end"},
        {"key": "orphan", "type": "create_record", "object": "activity", "values": {"subject": "x"}},
        {"key": "write", "type": "wait", "seconds": 0},
    ]));
    let got = fields(&s);
    for want in [
        "steps[0].when",
        "steps[0].then",
        "steps[1].values.colour",
        "steps[1].values.amount",
        "steps[2].via",
        "steps[2].steps[0].to[0]",
        "steps[2].steps[0].subject",
        "steps[4]",
        "steps[5].key",
        "steps[5].seconds",
    ] {
        assert!(got.iter().any(|g| g == want), "no issue at {want}: {got:?}");
    }
}

#[test]
fn the_trigger_is_checked_against_its_object() {
    let bad: WorkflowSpec = serde_json::from_value(json!({
        "name": "x",
        "trigger": {"type": "time_based", "object": "deal", "field": "stage", "offset_minutes": -4320,
                    "filter": "amount"},
        "steps": [{"key": "a", "type": "wait", "seconds": 1}],
    }))
    .expect("parses");
    assert_eq!(fields(&bad), ["trigger.field", "trigger.filter"]);
    let nowhere: WorkflowSpec = serde_json::from_value(json!({
        "name": "x", "trigger": {"type": "record_created", "object": "invoice"},
        "steps": [{"key": "a", "type": "wait", "seconds": 1}],
    }))
    .expect("parses");
    assert_eq!(fields(&nowhere), ["trigger.object"]);
}

#[test]
fn an_unknown_field_of_a_step_is_refused_with_the_step_named() {
    let e = serde_json::from_value::<WorkflowSpec>(json!({
        "name": "x", "trigger": {"type": "webhook"},
        "steps": [{"key": "a", "type": "wait", "seconds": 1, "minutes": 2}],
    }))
    .expect_err("unknown field");
    assert!(
        e.to_string().contains("step `a`") && e.to_string().contains("minutes"),
        "{e}"
    );
}

#[test]
fn a_jump_into_a_loop_is_refused_and_a_jump_out_is_allowed() {
    let s = spec(json!([
        {"key": "check", "type": "condition", "when": "amount > 5", "then": "close"},
        {"key": "each", "type": "loop", "object": "activity", "via": "deal",
         "steps": [{"key": "close", "type": "update_record", "object": "activity",
                    "record": "{{item.id}}", "values": {"done": true}, "next": "after"}]},
        {"key": "after", "type": "wait", "seconds": 1},
    ]));
    let e = s.validate(&Crm).expect_err("a jump into a loop");
    assert_eq!(fields(&s), ["steps[0].then"]);
    assert!(e.0[0].reason.contains("inside a loop"), "{e:?}");
}
