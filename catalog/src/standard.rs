//! The standard objects every workspace starts with (see API.md). Users may add fields to
//! them but not remove these.

use crate::field::{FieldDef, FieldType};

/// A standard object: API name, label, and its fields in order.
pub struct StandardObject {
    pub api_name: &'static str,
    pub label: &'static str,
    pub fields: Vec<FieldDef>,
}

fn f(api_name: &str, label: &str, t: FieldType) -> FieldDef {
    FieldDef::new(api_name, label, t)
}

fn required(mut d: FieldDef) -> FieldDef {
    d.required = true;
    d
}

fn unique(mut d: FieldDef) -> FieldDef {
    d.unique = true;
    d
}

fn picklist(api_name: &str, label: &str, options: &[&str]) -> FieldDef {
    let mut d = f(api_name, label, FieldType::Picklist);
    d.options = Some(options.iter().map(|s| s.to_string()).collect());
    d
}

fn whole(mut d: FieldDef) -> FieldDef {
    d.scale = Some(0);
    d.min = Some(0.into());
    d
}

fn lookup(api_name: &str, label: &str, target: &str) -> FieldDef {
    let mut d = f(api_name, label, FieldType::Lookup);
    d.target = Some(target.into());
    d
}

pub const LEAD_SOURCES: &[&str] = &[
    "web",
    "referral",
    "event",
    "partner",
    "outbound",
    "advertising",
    "other",
];
pub const DEAL_STAGES: &[&str] = &[
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
];

/// In creation order: each object's lookups point only to objects before it.
pub fn standard_objects() -> Vec<StandardObject> {
    use FieldType::*;
    vec![
        StandardObject {
            api_name: "company",
            label: "Company",
            fields: vec![
                required(f("name", "Name", Text)),
                f("domain", "Domain", Url),
                picklist(
                    "industry",
                    "Industry",
                    &[
                        "technology",
                        "finance",
                        "healthcare",
                        "manufacturing",
                        "retail",
                        "education",
                        "energy",
                        "media",
                        "real_estate",
                        "other",
                    ],
                ),
                whole(f("employees", "Employees", Number)),
                f("annual_revenue", "Annual revenue", Currency),
                f("country", "Country", Text),
            ],
        },
        StandardObject {
            api_name: "contact",
            label: "Contact",
            fields: vec![
                f("first_name", "First name", Text),
                f("last_name", "Last name", Text),
                unique(f("email", "Email", Email)),
                f("phone", "Phone", Phone),
                f("title", "Title", Text),
                picklist("lead_source", "Lead source", LEAD_SOURCES),
                picklist(
                    "status",
                    "Status",
                    &[
                        "new",
                        "working",
                        "qualified",
                        "unqualified",
                        "customer",
                        "churned",
                    ],
                ),
                lookup("company", "Company", "company"),
            ],
        },
        StandardObject {
            api_name: "deal",
            label: "Deal",
            fields: vec![
                required(f("name", "Name", Text)),
                f("amount", "Amount", Currency),
                picklist("stage", "Stage", DEAL_STAGES),
                f("close_date", "Close date", Date),
                f("probability", "Probability", Percent),
                picklist("lead_source", "Lead source", LEAD_SOURCES),
                f("owner", "Owner", Text),
                lookup("company", "Company", "company"),
                lookup("contact", "Contact", "contact"),
            ],
        },
        StandardObject {
            api_name: "activity",
            label: "Activity",
            fields: vec![
                picklist(
                    "type",
                    "Type",
                    &["call", "email", "meeting", "task", "note"],
                ),
                f("subject", "Subject", Text),
                f("occurred_at", "Occurred at", Datetime),
                whole(f("duration_minutes", "Duration (minutes)", Number)),
                lookup("contact", "Contact", "contact"),
                lookup("deal", "Deal", "deal"),
            ],
        },
    ]
}
