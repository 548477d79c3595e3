//! The planted signal: the known truth a model trained on this data should recover.
//! `data/README.md` states the same numbers for people; tests check they show in the data.

/// Lead sources with their share of contacts and the base win rate of their deals.
pub const LEAD_SOURCES: &[(&str, f64, f64)] = &[
    ("web", 0.30, 0.22),
    ("referral", 0.12, 0.45),
    ("event", 0.12, 0.30),
    ("partner", 0.08, 0.38),
    ("outbound", 0.20, 0.12),
    ("advertising", 0.12, 0.15),
    ("other", 0.06, 0.18),
];

/// Sales owners and how much each multiplies a deal's win rate.
pub const OWNERS: &[(&str, f64)] = &[
    ("Ana Ortiz", 1.35),
    ("Ben Cole", 1.20),
    ("Chen Wei", 1.10),
    ("Dana Fox", 1.00),
    ("Eli Stone", 1.00),
    ("Fay Lund", 0.90),
    ("Gus Hale", 0.80),
    ("Hana Ito", 0.65),
];

/// Each meeting on a deal multiplies its win rate by `MEETING_BASE + MEETING_STEP * meetings`
/// (meetings are Poisson with mean `MEETINGS_MEAN`), so engagement drives winning.
pub const MEETINGS_MEAN: f64 = 2.0;
pub const MEETING_BASE: f64 = 0.55;
pub const MEETING_STEP: f64 = 0.15;

/// Share of deals that are closed (won or lost); the rest sit in an open stage.
pub const CLOSED_SHARE: f64 = 0.70;

/// Win probability of a closed deal, clamped to a sane band.
pub fn win_probability(source_rate: f64, owner_factor: f64, meetings: u32) -> f64 {
    (source_rate * owner_factor * (MEETING_BASE + MEETING_STEP * f64::from(meetings)))
        .clamp(0.02, 0.95)
}

/// Contacts with a senior title convert (become qualified or customers) this much more often.
pub const SENIOR_CONVERSION_FACTOR: f64 = 2.0;
/// Base conversion rate of a contact, before the title factor and the lead source's win rate.
pub const BASE_CONVERSION: f64 = 0.5;

/// Customers churn with this probability when their company is small (< 50 employees) and
/// they had fewer than 3 activities, and with the others' rate otherwise.
pub const CHURN_SMALL_QUIET: f64 = 0.45;
pub const CHURN_OTHERS: f64 = 0.08;
