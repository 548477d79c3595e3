//! The synthetic CRM data set: companies (N/10), contacts (N), deals (N/2) and activities
//! (about 5N), deterministic for a seed, with realistic shapes and a planted signal
//! ([`signal`]) that models can be judged against.
//!
//! ```
//! let a = oneo_data::generate(200, 7);
//! let b = oneo_data::generate(200, 7);
//! assert_eq!(a.contacts.len(), 200);
//! assert_eq!(a.deals.len(), 100);
//! assert_eq!(a.records("deal", 0, 5), b.records("deal", 0, 5));
//! ```
//!
//! Records refer to one another by position (`company: 3` is the fourth company); a loader
//! turns positions into the ids the database assigns.

pub mod signal;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};
use serde_json::{Map, Value, json};

pub use signal::{LEAD_SOURCES, OWNERS};

/// Fields the data set carries beyond the standard objects (API.md), by object: written
/// only where a workspace defines them (the reports bench adds `deal.opened_on` to time the
/// median deal cycle).
pub const OPTIONAL_FIELDS: &[(&str, &str)] = &[("deal", "opened_on")];

/// The day the data set is "taken": every date lies in the two years before it.
pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default()
}

const INDUSTRIES: &[(&str, f64)] = &[
    ("technology", 0.28),
    ("finance", 0.12),
    ("healthcare", 0.11),
    ("manufacturing", 0.13),
    ("retail", 0.10),
    ("education", 0.06),
    ("energy", 0.05),
    ("media", 0.06),
    ("real_estate", 0.04),
    ("other", 0.05),
];
const COUNTRIES: &[(&str, f64)] = &[
    ("US", 0.45),
    ("GB", 0.12),
    ("DE", 0.12),
    ("FR", 0.08),
    ("CA", 0.07),
    ("NL", 0.05),
    ("BR", 0.06),
    ("JP", 0.05),
];
const FIRST: &[&str] = &[
    "Ava", "Noah", "Mia", "Liam", "Zoe", "Omar", "Ines", "Kai", "Lena", "Raj", "Sara", "Tom",
    "Yuki", "Ivan", "Nora", "Leo", "Maya", "Emil", "Aria", "Hugo",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Müller", "Khan", "Rossi", "Novak", "Silva", "Tanaka", "Dubois", "Olsen",
    "Brown", "Kowalski", "Jensen", "Moreau", "Lopez", "Weber",
];
const TITLES: &[(&str, bool)] = &[
    ("CEO", true),
    ("VP Sales", true),
    ("Director of IT", true),
    ("Head of Operations", true),
    ("Engineer", false),
    ("Analyst", false),
    ("Manager", false),
    ("Consultant", false),
    ("Coordinator", false),
    ("Specialist", false),
];
const NAME_PARTS: &[&str] = &[
    "Acme", "Blue", "Nova", "Peak", "Iron", "Bright", "Terra", "Quant", "Silver", "Echo", "Vertex",
    "Orbit", "Cedar", "Pixel", "Harbor", "Atlas",
];
const NAME_ENDS: &[&str] = &[
    "Labs",
    "Systems",
    "Group",
    "Works",
    "Partners",
    "Health",
    "Capital",
    "Logistics",
    "Media",
    "Energy",
];
/// Open stages in order; a deal walks them and, if closed, ends won or lost.
pub const OPEN_STAGES: &[&str] = &["prospecting", "qualification", "proposal", "negotiation"];

#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub name: String,
    pub domain: String,
    pub industry: &'static str,
    pub employees: u32,
    pub annual_revenue_cents: i64,
    pub country: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: String,
    pub phone: String,
    pub title: &'static str,
    pub lead_source: &'static str,
    pub status: &'static str,
    pub company: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub name: String,
    pub amount_cents: i64,
    /// Every stage the deal went through, in order; the last one is its current stage.
    pub stages: Vec<&'static str>,
    pub close_date: NaiveDate,
    /// The day the deal was opened: its sales cycle ends at `close_date`. Not a standard
    /// field; a loader writes it where the workspace's deal object has an `opened_on` date.
    pub opened_on: NaiveDate,
    pub lead_source: &'static str,
    pub owner: &'static str,
    pub company: usize,
    pub contact: usize,
    /// The planted engagement driver: meetings logged on this deal.
    pub meetings: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub kind: &'static str,
    pub subject: String,
    pub occurred_at: NaiveDateTime,
    pub duration_minutes: u32,
    pub contact: Option<usize>,
    pub deal: Option<usize>,
}

/// A whole generated data set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    pub companies: Vec<Company>,
    pub contacts: Vec<Contact>,
    pub deals: Vec<Deal>,
    pub activities: Vec<Activity>,
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    *items.choose(rng).unwrap_or(&items[0])
}

fn days_before(rng: &mut ChaCha8Rng, max_days: i64) -> NaiveDate {
    as_of() - Duration::days(rng.random_range(0..max_days.max(1)))
}

/// Generates the data set for `scale` contacts from `seed`.
pub fn generate(scale: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_companies = (scale / 10).max(1);
    // Company sizes are heavy-tailed: most are small, a few are very large.
    let size = LogNormal::new(3.6, 1.3).expect("constant parameters are valid");
    let companies: Vec<Company> = (0..n_companies)
        .map(|i| {
            let name = format!(
                "{} {} {i}",
                pick(&mut rng, NAME_PARTS),
                pick(&mut rng, NAME_ENDS)
            );
            let employees = (size.sample(&mut rng) as u32).clamp(1, 200_000);
            let per_head = rng.random_range(80_000..250_000i64);
            Company {
                domain: format!(
                    "{}{i}.example.com",
                    name.split(' ').next().unwrap_or("co").to_lowercase()
                ),
                name,
                industry: weighted(&mut rng, INDUSTRIES),
                employees,
                annual_revenue_cents: i64::from(employees) * per_head * 100,
                country: weighted(&mut rng, COUNTRIES),
            }
        })
        .collect();

    let sources: Vec<(&str, f64)> = LEAD_SOURCES
        .iter()
        .map(|(s, share, _)| (*s, *share))
        .collect();
    let mut contacts: Vec<Contact> = (0..scale)
        .map(|i| {
            let company = rng.random_range(0..n_companies);
            let (first_name, last_name) = (pick(&mut rng, FIRST), pick(&mut rng, LAST));
            let (title, _) = pick(&mut rng, TITLES);
            Contact {
                first_name,
                last_name,
                email: format!(
                    "{}.{}{i}@{}",
                    first_name.to_lowercase(),
                    ascii(last_name),
                    companies[company].domain
                ),
                phone: format!("+1 555 {:07}", rng.random_range(0..10_000_000u32)),
                title,
                lead_source: weighted(&mut rng, &sources),
                status: "new",
                company,
            }
        })
        .collect();

    let meetings_dist = Poisson::new(signal::MEETINGS_MEAN).expect("constant parameters are valid");
    let n_deals = scale / 2;
    let mut customer = vec![false; scale];
    // Cycle lengths come from a stream of their own, so adding them left every other value
    // of a seed's data set as it was.
    let mut cycle_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6f70_656e_6564_5f6f);
    let cycle = LogNormal::new(60f64.ln(), 0.6).expect("constant parameters are valid");
    let deals: Vec<Deal> = (0..n_deals)
        .map(|i| {
            let contact = rng.random_range(0..scale.max(1));
            let c = &contacts[contact];
            let (owner, owner_factor) = pick(&mut rng, OWNERS);
            let source_rate = LEAD_SOURCES
                .iter()
                .find(|(s, _, _)| *s == c.lead_source)
                .map_or(0.2, |(_, _, r)| *r);
            let meetings = meetings_dist.sample(&mut rng) as u32;
            let employees = f64::from(companies[c.company].employees);
            let amount = LogNormal::new((5000.0f64).ln() + 0.35 * (employees / 50.0).ln(), 0.8)
                .map(|d| d.sample(&mut rng))
                .unwrap_or(5000.0);
            let mut stages = vec![OPEN_STAGES[0]];
            if rng.random::<f64>() < signal::CLOSED_SHARE {
                let won = rng.random::<f64>()
                    < signal::win_probability(source_rate, owner_factor, meetings);
                let reached = if won {
                    OPEN_STAGES.len()
                } else {
                    rng.random_range(1..=OPEN_STAGES.len())
                };
                stages.extend_from_slice(&OPEN_STAGES[1..reached]);
                stages.push(if won { "closed_won" } else { "closed_lost" });
                if won {
                    customer[contact] = true;
                }
            } else {
                let reached = rng.random_range(1..=OPEN_STAGES.len());
                stages = OPEN_STAGES[..reached].to_vec();
            }
            let close_date = days_before(&mut rng, 600) + Duration::days(90);
            let days = (cycle.sample(&mut cycle_rng) as i64).clamp(3, 400);
            Deal {
                name: format!("{} deal {i}", companies[c.company].name),
                amount_cents: (amount * 100.0).round() as i64,
                stages,
                close_date,
                opened_on: (close_date - Duration::days(days)).min(as_of()),
                lead_source: c.lead_source,
                owner,
                company: c.company,
                contact,
                meetings,
            }
        })
        .collect();

    // Activities cluster around deals: each deal's planted meetings plus calls and emails;
    // the rest of the budget (5 per contact) goes to contacts directly.
    let mut activities = Vec::with_capacity(scale * 5);
    let mut per_contact = vec![0u32; scale];
    for (d, deal) in deals.iter().enumerate() {
        let base = deal.close_date - Duration::days(120);
        let extra = rng.random_range(2..7u32);
        for k in 0..(deal.meetings + extra) {
            let kind = if k < deal.meetings {
                "meeting"
            } else {
                pick(&mut rng, &["call", "email", "task", "note"])
            };
            activities.push(activity(&mut rng, kind, base, Some(deal.contact), Some(d)));
            per_contact[deal.contact] += 1;
        }
    }
    while activities.len() < scale * 5 && scale > 0 {
        let contact = rng.random_range(0..scale);
        let kind = pick(&mut rng, &["call", "email", "email", "task", "note"]);
        activities.push(activity(
            &mut rng,
            kind,
            as_of() - Duration::days(700),
            Some(contact),
            None,
        ));
        per_contact[contact] += 1;
    }

    // Contact status: conversion depends on lead source and seniority; customers of small,
    // quiet accounts churn.
    for (i, c) in contacts.iter_mut().enumerate() {
        let senior = TITLES.iter().any(|(t, s)| *t == c.title && *s);
        let source_rate = LEAD_SOURCES
            .iter()
            .find(|(s, _, _)| *s == c.lead_source)
            .map_or(0.2, |(_, _, r)| *r);
        let convert = signal::BASE_CONVERSION
            * source_rate
            * if senior {
                signal::SENIOR_CONVERSION_FACTOR
            } else {
                1.0
            };
        c.status = if customer[i] {
            let small_quiet = companies[c.company].employees < 50 && per_contact[i] < 3;
            let churn = if small_quiet {
                signal::CHURN_SMALL_QUIET
            } else {
                signal::CHURN_OTHERS
            };
            if rng.random::<f64>() < churn {
                "churned"
            } else {
                "customer"
            }
        } else if rng.random::<f64>() < convert {
            "qualified"
        } else {
            pick(&mut rng, &["new", "working", "unqualified"])
        };
    }
    Dataset {
        companies,
        contacts,
        deals,
        activities,
    }
}

fn activity(
    rng: &mut ChaCha8Rng,
    kind: &'static str,
    from: NaiveDate,
    contact: Option<usize>,
    deal: Option<usize>,
) -> Activity {
    let day = from + Duration::days(rng.random_range(0..150));
    let time = NaiveTime::from_hms_opt(rng.random_range(7..19), rng.random_range(0..60), 0)
        .unwrap_or_default();
    Activity {
        kind,
        subject: format!(
            "{kind} about {}",
            pick(
                rng,
                &[
                    "pricing",
                    "demo",
                    "renewal",
                    "onboarding",
                    "contract",
                    "roadmap"
                ]
            )
        ),
        occurred_at: day.and_time(time),
        duration_minutes: if kind == "meeting" {
            rng.random_range(15..90)
        } else {
            rng.random_range(1..30)
        },
        contact,
        deal,
    }
}

fn ascii(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_lowercase()
}

fn cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// A lookup to the record at a position, resolved by the loader: `{"$ref": object, "index": i}`.
fn reference(object: &str, index: usize) -> Value {
    json!({"$ref": object, "index": index})
}

impl Dataset {
    pub fn len(&self, object: &str) -> usize {
        match object {
            "company" => self.companies.len(),
            "contact" => self.contacts.len(),
            "deal" => self.deals.len(),
            "activity" => self.activities.len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.companies.is_empty()
    }

    /// Records `start..start+count` of `object` as API record bodies; lookups are `$ref`s to
    /// positions. Deals carry [`OPTIONAL_FIELDS`] too, which a loader drops where the
    /// workspace doesn't define them. Deals come at their first stage;
    /// [`Dataset::stage_updates`] replays the rest.
    pub fn records(&self, object: &str, start: usize, count: usize) -> Vec<Map<String, Value>> {
        let end = (start + count).min(self.len(object));
        (start..end)
            .map(|i| {
                let v = match object {
                    "company" => {
                        let c = &self.companies[i];
                        json!({"name": c.name, "domain": c.domain, "industry": c.industry, "employees": c.employees,
                               "annual_revenue": cents(c.annual_revenue_cents), "country": c.country})
                    }
                    "contact" => {
                        let c = &self.contacts[i];
                        json!({"first_name": c.first_name, "last_name": c.last_name, "email": c.email, "phone": c.phone,
                               "title": c.title, "lead_source": c.lead_source, "status": c.status, "company": reference("company", c.company)})
                    }
                    "deal" => {
                        let d = &self.deals[i];
                        json!({"name": d.name, "amount": cents(d.amount_cents), "stage": d.stages[0], "close_date": d.close_date.to_string(),
                               "opened_on": d.opened_on.to_string(),
                               "probability": stage_probability(d.stages[0]), "lead_source": d.lead_source, "owner": d.owner,
                               "company": reference("company", d.company), "contact": reference("contact", d.contact)})
                    }
                    _ => {
                        let a = &self.activities[i];
                        json!({"type": a.kind, "subject": a.subject, "occurred_at": format!("{}Z", a.occurred_at.format("%Y-%m-%dT%H:%M:%S")),
                               "duration_minutes": a.duration_minutes,
                               "contact": a.contact.map_or(Value::Null, |c| reference("contact", c)),
                               "deal": a.deal.map_or(Value::Null, |d| reference("deal", d))})
                    }
                };
                match v {
                    Value::Object(m) => m,
                    _ => Map::new(),
                }
            })
            .collect()
    }

    /// The stage changes after creation, step by step: step `k` moves every deal with more
    /// than `k` stages to its stage `k` (as `(deal position, stage, probability)`).
    pub fn stage_updates(&self) -> Vec<Vec<(usize, &'static str, u32)>> {
        let steps = self.deals.iter().map(|d| d.stages.len()).max().unwrap_or(0);
        (1..steps)
            .map(|k| {
                self.deals
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.stages.len() > k)
                    .map(|(i, d)| (i, d.stages[k], stage_probability(d.stages[k])))
                    .collect()
            })
            .collect()
    }
}

/// The probability sales ops attach to a stage.
pub fn stage_probability(stage: &str) -> u32 {
    match stage {
        "prospecting" => 10,
        "qualification" => 25,
        "proposal" => 50,
        "negotiation" => 75,
        "closed_won" => 100,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(generate(500, 1), generate(500, 1));
        assert_ne!(generate(500, 1).deals, generate(500, 2).deals);
    }

    #[test]
    fn proportions_follow_the_scale() {
        let d = generate(1_000, 3);
        assert_eq!(
            (d.companies.len(), d.contacts.len(), d.deals.len()),
            (100, 1_000, 500)
        );
        assert_eq!(d.activities.len(), 5_000);
        let emails: std::collections::HashSet<_> = d.contacts.iter().map(|c| &c.email).collect();
        assert_eq!(emails.len(), 1_000, "emails are unique");
    }

    fn won_rate(deals: &[&Deal]) -> f64 {
        let closed: Vec<_> = deals
            .iter()
            .filter(|d| d.stages.last().is_some_and(|s| s.starts_with("closed")))
            .collect();
        closed
            .iter()
            .filter(|d| d.stages.last() == Some(&"closed_won"))
            .count() as f64
            / closed.len().max(1) as f64
    }

    #[test]
    fn the_planted_signal_is_there() {
        let d = generate(40_000, 11);
        let by = |src: &str| {
            won_rate(
                &d.deals
                    .iter()
                    .filter(|x| x.lead_source == src)
                    .collect::<Vec<_>>(),
            )
        };
        assert!(
            by("referral") > by("web") + 0.1,
            "referral {} web {}",
            by("referral"),
            by("web")
        );
        assert!(
            by("web") > by("outbound") + 0.05,
            "web {} outbound {}",
            by("web"),
            by("outbound")
        );
        let owner =
            |o: &str| won_rate(&d.deals.iter().filter(|x| x.owner == o).collect::<Vec<_>>());
        assert!(owner("Ana Ortiz") > owner("Hana Ito") + 0.1);
        let many = won_rate(
            &d.deals
                .iter()
                .filter(|x| x.meetings >= 4)
                .collect::<Vec<_>>(),
        );
        let few = won_rate(
            &d.deals
                .iter()
                .filter(|x| x.meetings <= 1)
                .collect::<Vec<_>>(),
        );
        assert!(many > few + 0.1, "many meetings {many} few {few}");
    }
}
