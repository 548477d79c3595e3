//! The three kinds of model read from the lake, each label and count checked against the
//! generator, each trained to the bar.

use std::collections::HashMap;

use oneo_models::{FeatureSpec, ModelKind, Purpose, Requirements, Scorer, extract};
use serde_json::{Value, json};

use crate::harness::{Env, SCALE, numbers, win};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn win_probability_learns_the_planted_signal_from_point_in_time_history() {
    let before = chrono::Utc::now().date_naive();
    let env = Env::start().await;
    let load_days = [before, chrono::Utc::now().date_naive()];
    // A field only set once a deal has closed, saying how it ended: the leak a model
    // reading today's values would learn from.
    let positions = env.deal_positions();
    let closed: Vec<Value> = env
        .data
        .deals
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let last = *d.stages.last()?;
            last.starts_with("closed_").then(
                || json!({"id": env.ids["deal"][i], "post_mortem": u8::from(last == "closed_won")}),
            )
        })
        .collect();
    for chunk in closed.chunks(1000) {
        let (status, body) = env
            .post(
                "/v1/records/deal/bulk",
                &json!({"operation": "update", "records": chunk}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    env.wait_for_lake().await;

    let session = env.session().await;
    let rows = extract(&session, &win(&[]), Purpose::Training)
        .await
        .expect("features");
    assert_eq!(
        rows.len(),
        closed.len(),
        "every closed deal is one training row"
    );
    // Labels and point-in-time counts agree with what the generator made. A deal's cutoff
    // is its close date, or the day it was closed (today) where that is earlier; meetings
    // count when logged by then (all were committed before the deal closed).
    let meetings = numbers(&rows, "meetings");
    let epoch = chrono::NaiveDate::default();
    for (k, id) in rows.ids.iter().enumerate() {
        let i = positions[id];
        let deal = &env.data.deals[i];
        assert_eq!(
            rows.labels[k],
            Some(deal.stages.last() == Some(&"closed_won")),
            "label of deal {i}"
        );
        let cutoff = epoch + chrono::Duration::days(rows.cutoffs[k].into());
        assert!(
            cutoff == deal.close_date || (cutoff < deal.close_date && load_days.contains(&cutoff)),
            "deal {i} closing on {} was cut off on {cutoff}",
            deal.close_date
        );
        let expected = env
            .data
            .activities
            .iter()
            .filter(|a| a.deal == Some(i) && a.kind == "meeting" && a.occurred_at.date() <= cutoff)
            .count();
        assert_eq!(meetings[k], Some(expected as f64), "meetings of deal {i}");
    }
    assert!(
        rows.versions.keys().any(|p| p.ends_with("/history/")),
        "the history tables' versions are recorded: {:?}",
        rows.versions
    );

    let trained = Scorer::train(
        &win(&[]),
        &rows,
        &Requirements::default(),
        Default::default(),
    )
    .expect("trained");
    eprintln!(
        "win_probability: {} training rows, {} validation rows, AUC {:.4}, PR AUC {:.4}, log loss {:.4}, Brier {:.4}",
        trained.train_rows,
        trained.validation_rows,
        trained.metrics.roc_auc,
        trained.metrics.pr_auc,
        trained.metrics.log_loss,
        trained.metrics.brier
    );
    assert!(
        trained.metrics.roc_auc >= 0.80,
        "validation AUC {}",
        trained.metrics.roc_auc
    );

    // The post-mortem was written after each outcome, so at every cutoff it was unset: it
    // carries nothing into training, and the model is the same without it.
    let leaky = extract(&session, &win(&["post_mortem"]), Purpose::Training)
        .await
        .expect("features");
    assert!(
        numbers(&leaky, "deal.post_mortem")
            .iter()
            .all(Option::is_none),
        "no training row sees a value written after its outcome"
    );
    let with_leak = Scorer::train(
        &win(&["post_mortem"]),
        &leaky,
        &Requirements::default(),
        Default::default(),
    )
    .expect("trained");
    let share = with_leak
        .importance
        .iter()
        .find(|(f, _)| f == "deal.post_mortem")
        .map(|(_, s)| *s);
    assert_eq!(share, Some(0.0), "{:?}", with_leak.importance);
    assert!(
        (with_leak.metrics.roc_auc - trained.metrics.roc_auc).abs() < 1e-9,
        "AUC {} with the late field, {} without",
        with_leak.metrics.roc_auc,
        trained.metrics.roc_auc
    );

    // Same data, same model; same model and input, same scores.
    let again = Scorer::train(
        &win(&[]),
        &rows,
        &Requirements::default(),
        Default::default(),
    )
    .expect("trained");
    assert_eq!(again.scorer, trained.scorer);
    let today = chrono::Utc::now().date_naive();
    let open = extract(&session, &win(&[]), Purpose::Scoring { today })
        .await
        .expect("open deals");
    let open_deals = env
        .data
        .deals
        .iter()
        .filter(|d| !d.stages.last().is_some_and(|s| s.starts_with("closed_")))
        .count();
    assert_eq!(open.len(), open_deals, "every open deal is scored");
    let scores = trained.scorer.score(&open);
    assert_eq!(scores, again.scorer.score(&open));
    assert!(scores.iter().all(|s| (1..=99).contains(&s.score)));
    // A deal in negotiation (the stage every won deal passed) scores above one still
    // prospecting, on average.
    let stage_of = |id: &str| env.data.deals[positions[id]].stages.last().copied();
    let mean = |stage: &str| {
        let s: Vec<f64> = scores
            .iter()
            .filter(|s| stage_of(&s.id) == Some(stage))
            .map(|s| s.probability)
            .collect();
        s.iter().sum::<f64>() / s.len().max(1) as f64
    };
    assert!(mean("negotiation") > mean("prospecting"));
    let explained = &scores[0];
    assert!(
        !explained.factors.is_empty() && explained.factors.iter().all(|f| !f.text.is_empty()),
        "{explained:?}"
    );
    eprintln!(
        "a score: {}",
        serde_json::to_string(explained).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lead_score_learns_who_wins_next_from_activity_before_each_cutoff() {
    let env = Env::start().await;
    env.wait_for_lake().await;
    let today = chrono::Utc::now().date_naive();
    let spec = FeatureSpec {
        kind: ModelKind::LeadScore,
        horizon_days: 90,
        fields: vec![],
    };
    let session = env.session().await;
    let rows = extract(&session, &spec, Purpose::Training)
        .await
        .expect("features");
    // Labels agree with the generator: a deal of the contact won (on its close date, or
    // today where that is earlier) in the 90 days after the cutoff.
    let contact_of: HashMap<String, usize> = env.ids["contact"]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), i))
        .collect();
    let epoch = chrono::NaiveDate::default();
    let activities = numbers(&rows, "activities");
    let mut positives = 0;
    for (k, id) in rows.ids.iter().enumerate() {
        let c = contact_of[id];
        let cutoff = epoch + chrono::Duration::days(rows.cutoffs[k].into());
        assert!(
            cutoff + chrono::Duration::days(90) <= today,
            "{cutoff}: its window has not passed"
        );
        let won = env.data.deals.iter().any(|d| {
            let day = d.close_date.min(today);
            d.contact == c
                && d.stages.last() == Some(&"closed_won")
                && day > cutoff
                && day <= cutoff + chrono::Duration::days(90)
        });
        assert_eq!(rows.labels[k], Some(won), "contact {c} at {cutoff}");
        positives += usize::from(won);
        let dated = env
            .data
            .activities
            .iter()
            .filter(|a| a.contact == Some(c) && a.occurred_at.date() <= cutoff)
            .count();
        assert_eq!(
            activities[k],
            Some(dated as f64),
            "activities of contact {c} by {cutoff}"
        );
    }
    let trained =
        Scorer::train(&spec, &rows, &Requirements::default(), Default::default()).expect("trained");
    eprintln!(
        "lead_score: {} rows ({positives} positive), {} training, {} validation, AUC {:.4}, PR AUC {:.4}",
        rows.len(),
        trained.train_rows,
        trained.validation_rows,
        trained.metrics.roc_auc,
        trained.metrics.pr_auc
    );
    assert!(
        trained.metrics.roc_auc > 0.70,
        "validation AUC {}",
        trained.metrics.roc_auc
    );
    let open = extract(&session, &spec, Purpose::Scoring { today })
        .await
        .expect("contacts");
    assert_eq!(
        open.len(),
        env.data.contacts.len(),
        "every contact is scored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_risk_learns_which_customers_go_quiet() {
    // Twice the usual scale: 1,200 companies, so that the customers at four cutoffs make the
    // 1,000 rows training needs.
    let env = Env::start_with(2 * SCALE).await;
    env.wait_for_lake().await;
    let today = chrono::Utc::now().date_naive();
    let spec = FeatureSpec {
        kind: ModelKind::ChurnRisk,
        horizon_days: 90,
        fields: vec![],
    };
    let session = env.session().await;
    let rows = extract(&session, &spec, Purpose::Training)
        .await
        .expect("features");
    let company_of: HashMap<String, usize> = env.ids["company"]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), i))
        .collect();
    let epoch = chrono::NaiveDate::default();
    let days = chrono::Duration::days;
    let mut quiet = 0;
    for (k, id) in rows.ids.iter().enumerate() {
        let c = company_of[id];
        let cutoff = epoch + days(rows.cutoffs[k].into());
        let won_on = |d: &oneo_data::Deal| {
            (d.company == c && d.stages.last() == Some(&"closed_won"))
                .then(|| d.close_date.min(today))
        };
        assert!(
            env.data
                .deals
                .iter()
                .filter_map(won_on)
                .any(|day| day <= cutoff),
            "company {c} at {cutoff} had won nothing yet"
        );
        let won_after = env
            .data
            .deals
            .iter()
            .filter_map(won_on)
            .any(|day| day > cutoff && day <= cutoff + days(90));
        let active_after = env.data.activities.iter().any(|a| {
            a.contact.is_some_and(|p| env.data.contacts[p].company == c)
                && a.occurred_at.date() > cutoff
                && a.occurred_at.date() <= cutoff + days(90)
        });
        let churned = !won_after && !active_after;
        assert_eq!(rows.labels[k], Some(churned), "company {c} at {cutoff}");
        quiet += usize::from(churned);
    }
    let trained =
        Scorer::train(&spec, &rows, &Requirements::default(), Default::default()).expect("trained");
    eprintln!(
        "churn_risk: {} rows ({quiet} quiet), {} training, {} validation, AUC {:.4}, PR AUC {:.4}",
        rows.len(),
        trained.train_rows,
        trained.validation_rows,
        trained.metrics.roc_auc,
        trained.metrics.pr_auc
    );
    assert!(
        trained.metrics.roc_auc > 0.70,
        "validation AUC {}",
        trained.metrics.roc_auc
    );
    let customers = extract(&session, &spec, Purpose::Scoring { today })
        .await
        .expect("customers");
    let expected = (0..env.data.companies.len())
        .filter(|c| {
            env.data
                .deals
                .iter()
                .any(|d| d.company == *c && d.stages.last() == Some(&"closed_won"))
        })
        .count();
    assert_eq!(customers.len(), expected, "every customer is scored");
}
