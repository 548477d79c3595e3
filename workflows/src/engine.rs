//! Where a run is and where it goes next, and the values its templates read: the pure part
//! of running a workflow. The worker (in `api`) does the steps' work and keeps a run's
//! [`Position`] and outputs in PostgreSQL, so a run resumes where it stopped.
//!
//! ```
//! use oneo_workflows::{Next, Position, WorkflowSpec};
//! let spec: WorkflowSpec = serde_json::from_value(serde_json::json!({
//!     "name": "Two steps",
//!     "trigger": {"type": "webhook"},
//!     "steps": [{"key": "a", "type": "wait", "seconds": 1},
//!               {"key": "b", "type": "wait", "seconds": 1}],
//! })).unwrap();
//! let first = Position::start();
//! assert_eq!(spec.path_of(&first).as_deref(), Some("a"));
//! let Next::At(second) = spec.after(&first, None, 0) else { panic!() };
//! assert_eq!(spec.path_of(&second).as_deref(), Some("b"));
//! assert_eq!(spec.after(&second, None, 0), Next::End);
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::{Action, END, Step, WorkflowSpec};

/// A step of a run: its index among the workflow's steps and, inside a loop, the item's
/// index and the index among the loop's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<(usize, usize)>,
}

impl Position {
    pub fn start() -> Self {
        Self {
            step: 0,
            item: None,
        }
    }
}

/// Where a run goes after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    At(Position),
    End,
}

impl WorkflowSpec {
    /// The step at `p`, if the position is inside this workflow.
    pub fn step_at(&self, p: &Position) -> Option<&Step> {
        let top = self.steps.get(p.step)?;
        match (p.item, &top.action) {
            (None, _) => Some(top),
            (Some((_, inner)), Action::Loop { steps, .. }) => steps.get(inner),
            (Some(_), _) => None,
        }
    }

    /// The step's name in the run's log: its key, or `loop[item].key` inside a loop, so each
    /// item's step is kept (and done) once.
    pub fn path_of(&self, p: &Position) -> Option<String> {
        let step = self.step_at(p)?;
        Some(match p.item {
            None => step.key.clone(),
            Some((item, _)) => format!("{}[{item}].{}", self.steps[p.step].key, step.key),
        })
    }

    /// Where the run goes after the step at `p`: `jump` (a condition's branch, an approval's
    /// path), else the step's `next`, else the step after it. Inside a loop the last step
    /// leads to the next of the loop's `items` items, and after the last item the run goes on
    /// after the loop; a jump to a step outside the loop leaves it. `end` ends the run.
    pub fn after(&self, p: &Position, jump: Option<&str>, items: usize) -> Next {
        let Some(step) = self.step_at(p) else {
            return Next::End;
        };
        let target = jump.or(step.next.as_deref());
        if target == Some(END) {
            return Next::End;
        }
        let top_index = |key: &str| self.steps.iter().position(|s| s.key == key);
        match p.item {
            None => {
                let i = match target {
                    Some(k) => top_index(k),
                    None => Some(p.step + 1),
                };
                match i {
                    Some(i) if i < self.steps.len() => Next::At(Position {
                        step: i,
                        item: None,
                    }),
                    _ => Next::End,
                }
            }
            Some((item, inner)) => {
                let Action::Loop { steps, .. } = &self.steps[p.step].action else {
                    return Next::End;
                };
                let i = match target {
                    Some(k) => match steps.iter().position(|s| s.key == k) {
                        Some(i) => i,
                        None => {
                            return match top_index(k) {
                                Some(i) => Next::At(Position {
                                    step: i,
                                    item: None,
                                }),
                                None => Next::End,
                            };
                        }
                    },
                    None => inner + 1,
                };
                if i < steps.len() {
                    Next::At(Position {
                        step: p.step,
                        item: Some((item, i)),
                    })
                } else if item + 1 < items {
                    Next::At(Position {
                        step: p.step,
                        item: Some((item + 1, 0)),
                    })
                } else {
                    self.after(
                        &Position {
                            step: p.step,
                            item: None,
                        },
                        None,
                        0,
                    )
                }
            }
        }
    }

    /// A loop step at `p` with `items` items: its first item's first step, or past the loop
    /// when there is nothing to loop over.
    pub fn enter_loop(&self, p: &Position, items: usize) -> Next {
        if items == 0 {
            return self.after(p, None, 0);
        }
        Next::At(Position {
            step: p.step,
            item: Some((0, 0)),
        })
    }
}

/// What templates read: `{{trigger.x}}`, `{{steps.k.x}}` (and deeper, `{{steps.call.body.id}}`)
/// and `{{item.x}}`.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The trigger record (or webhook body) as JSON.
    pub trigger: &'a Value,
    /// Each done step's output by key.
    pub steps: &'a Map<String, Value>,
    /// Inside a loop, the current item.
    pub item: Option<&'a Value>,
}

impl Scope<'_> {
    fn lookup(&self, reference: &str) -> Value {
        let mut parts = reference.split('.');
        let root = match parts.next() {
            Some("trigger") => Some(self.trigger),
            Some("steps") => parts.next().and_then(|k| self.steps.get(k)),
            Some("item") => self.item,
            _ => None,
        };
        let mut at = root;
        for part in parts {
            at = at.and_then(|v| match v {
                Value::Object(m) => m.get(part),
                Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            });
        }
        at.cloned().unwrap_or(Value::Null)
    }

    /// `text` with its templates filled in. A text that is one template alone keeps the
    /// value's JSON type (a number stays a number); otherwise values are written as text,
    /// a null as nothing.
    pub fn render_text(&self, text: &str) -> Value {
        let trimmed = text.trim();
        if let Some(inner) = trimmed
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .filter(|t| !t.contains("{{") && !t.contains("}}"))
        {
            return self.lookup(inner.trim());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            match self.lookup(rest[start + 2..start + len].trim()) {
                Value::Null => {}
                Value::String(s) => out.push_str(&s),
                v => out.push_str(&v.to_string()),
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        Value::String(out)
    }

    /// Every string inside `v` rendered.
    pub fn render(&self, v: &Value) -> Value {
        match v {
            Value::String(s) if s.contains("{{") => self.render_text(s),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.render(v)).collect()),
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), self.render(v))).collect())
            }
            v => v.clone(),
        }
    }

    /// A rendered text as a string (a number written out).
    pub fn text(&self, text: &str) -> String {
        match self.render_text(text) {
            Value::String(s) => s,
            Value::Null => String::new(),
            v => v.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(steps: Value) -> WorkflowSpec {
        serde_json::from_value(json!({"name": "t", "trigger": {"type": "webhook"}, "steps": steps}))
            .unwrap()
    }

    fn at(step: usize, item: Option<(usize, usize)>) -> Next {
        Next::At(Position { step, item })
    }

    #[test]
    fn steps_follow_order_next_and_jumps() {
        let s = spec(json!([
            {"key": "a", "type": "wait", "seconds": 1, "next": "c"},
            {"key": "b", "type": "wait", "seconds": 1},
            {"key": "c", "type": "condition", "when": "true", "then": "b", "else": "end"},
        ]));
        let p = |step| Position { step, item: None };
        assert_eq!(s.after(&p(0), None, 0), at(2, None));
        assert_eq!(s.after(&p(2), Some("b"), 0), at(1, None));
        assert_eq!(s.after(&p(2), Some("end"), 0), Next::End);
        assert_eq!(s.after(&p(1), None, 0), at(2, None));
        assert_eq!(s.path_of(&p(1)).as_deref(), Some("b"));
        assert_eq!(s.step_at(&p(3)), None);
    }

    #[test]
    fn loops_run_their_steps_per_item_then_go_on() {
        let s = spec(json!([
            {"key": "each", "type": "loop", "object": "activity", "via": "deal", "max": 5,
             "steps": [{"key": "x", "type": "wait", "seconds": 1},
                       {"key": "y", "type": "wait", "seconds": 1}]},
            {"key": "after", "type": "wait", "seconds": 1},
        ]));
        let loop_at = Position::start();
        assert_eq!(s.enter_loop(&loop_at, 2), at(0, Some((0, 0))));
        assert_eq!(s.enter_loop(&loop_at, 0), at(1, None));
        let x1 = Position {
            step: 0,
            item: Some((1, 0)),
        };
        assert_eq!(s.path_of(&x1).as_deref(), Some("each[1].x"));
        assert_eq!(s.after(&x1, None, 2), at(0, Some((1, 1))));
        let y0 = Position {
            step: 0,
            item: Some((0, 1)),
        };
        assert_eq!(s.after(&y0, None, 2), at(0, Some((1, 0))));
        let y1 = Position {
            step: 0,
            item: Some((1, 1)),
        };
        assert_eq!(s.after(&y1, None, 2), at(1, None));
        // A jump out of the loop leaves it; `end` ends the run.
        assert_eq!(s.after(&x1, Some("after"), 2), at(1, None));
        assert_eq!(s.after(&x1, Some("end"), 2), Next::End);
    }

    #[test]
    fn templates_read_the_trigger_steps_and_item() {
        let trigger = json!({"name": "Acme", "amount": 1200});
        let steps = json!({"call": {"status": 201, "body": {"id": "t-9", "tags": ["a", "b"]}}});
        let item = json!({"subject": "Call"});
        let scope = Scope {
            trigger: &trigger,
            steps: steps.as_object().unwrap(),
            item: Some(&item),
        };
        assert_eq!(scope.render_text("{{trigger.amount}}"), json!(1200));
        assert_eq!(
            scope.render_text(
                "Won {{ trigger.name }} for {{trigger.amount}} ({{steps.call.body.id}})"
            ),
            json!("Won Acme for 1200 (t-9)")
        );
        assert_eq!(scope.render_text("{{steps.call.body.tags.1}}"), json!("b"));
        assert_eq!(scope.text("x{{trigger.missing}}y"), "xy");
        assert_eq!(scope.render_text("{{item.subject}}"), json!("Call"));
        assert_eq!(
            scope.render(&json!({"ids": ["{{steps.call.body.id}}", 3]})),
            json!({"ids": ["t-9", 3]})
        );
    }
}
