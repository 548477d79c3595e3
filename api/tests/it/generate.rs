use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::harness::TestApp;

/// Every record of `object`, paged through the REST API.
async fn all(app: &TestApp, object: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .get(&format!("/v1/records/{object}?limit=1000{cursor}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.extend(r.body["records"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// A scale-10,000 load is exactly what the API then returns, lookups included, and the
/// planted signal shows through the API.
#[tokio::test]
async fn a_generated_load_equals_what_the_api_returns() {
    let app = TestApp::new().await;
    let data = oneo_data::generate(10_000, 7);
    let loaded = oneo_api::load::load(&app.pool, app.workspace, &data, &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(loaded.records["contact"], 10_000);

    let companies = all(&app, "company").await;
    let got: HashSet<String> = companies
        .iter()
        .map(|c| {
            format!(
                "{}|{}|{}|{}|{}|{}",
                c["name"],
                c["domain"],
                c["industry"],
                c["employees"],
                c["annual_revenue"],
                c["country"]
            )
        })
        .collect();
    let want: HashSet<String> = data
        .companies
        .iter()
        .map(|c| {
            format!(
                "\"{}\"|\"{}\"|\"{}\"|\"{}\"|\"{}.{:02}\"|\"{}\"",
                c.name,
                c.domain,
                c.industry,
                c.employees,
                c.annual_revenue_cents / 100,
                c.annual_revenue_cents % 100,
                c.country
            )
        })
        .collect();
    assert_eq!(got, want);
    let company_name: HashMap<String, String> = companies
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    let contacts = all(&app, "contact").await;
    assert_eq!(contacts.len(), data.contacts.len());
    let by_email: HashMap<&str, &Value> = contacts
        .iter()
        .map(|c| (c["email"].as_str().unwrap(), c))
        .collect();
    for c in &data.contacts {
        let api = by_email[c.email.as_str()];
        assert_eq!(
            (
                api["status"].as_str().unwrap(),
                api["lead_source"].as_str().unwrap(),
                api["title"].as_str().unwrap()
            ),
            (c.status, c.lead_source, c.title)
        );
        assert_eq!(
            company_name[api["company"].as_str().unwrap()],
            data.companies[c.company].name,
            "contact's company lookup"
        );
    }

    let deals = all(&app, "deal").await;
    let by_name: HashMap<&str, &Value> = deals
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d))
        .collect();
    assert_eq!(by_name.len(), data.deals.len());
    for d in &data.deals {
        let api = by_name[d.name.as_str()];
        let stage = *d.stages.last().unwrap();
        assert_eq!(
            api["stage"], stage,
            "the stage history was replayed to the end"
        );
        assert_eq!(
            api["version"],
            d.stages.len() as i64,
            "one update per stage change"
        );
        assert_eq!(
            api["amount"],
            format!("{}.{:02}", d.amount_cents / 100, d.amount_cents % 100)
        );
        assert_eq!(api["owner"], d.owner);
        assert_eq!(
            company_name[api["company"].as_str().unwrap()],
            data.companies[d.company].name,
            "deal's company lookup"
        );
    }
    assert_eq!(all(&app, "activity").await.len(), data.activities.len());

    // The signal documented in data/README.md, read back through the API.
    let won_rate = |source: &str| {
        let closed: Vec<&Value> = deals
            .iter()
            .filter(|d| {
                d["lead_source"] == source && d["stage"].as_str().unwrap().starts_with("closed")
            })
            .collect();
        closed.iter().filter(|d| d["stage"] == "closed_won").count() as f64 / closed.len() as f64
    };
    assert!(
        won_rate("referral") > won_rate("outbound") + 0.15,
        "referral {} outbound {}",
        won_rate("referral"),
        won_rate("outbound")
    );
}

/// The relational copy holds the same records under the same ids: aggregates over it equal
/// the same aggregates over what the API returns.
#[tokio::test]
async fn the_relational_copy_answers_like_the_api() {
    let app = TestApp::new().await;
    // A field beyond the standard deal object: the loader writes the data set's values into
    // it (other tests load into standard workspaces, which leave it out).
    let r = app
        .post(
            "/v1/objects/deal/fields",
            json!({"api_name": "opened_on", "label": "Opened on", "type": "date"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let data = oneo_data::generate(2_000, 5);
    let loaded = oneo_api::load::load(&app.pool, app.workspace, &data, &|_, _, _| {})
        .await
        .unwrap();
    oneo_api::relational::write_relational_copy(&app.pool, "crm_copy", &data, &loaded)
        .await
        .unwrap();

    let deals = all(&app, "deal").await;
    let mut api: HashMap<String, (i64, rust_decimal::Decimal)> = HashMap::new();
    for d in &deals {
        let e = api
            .entry(format!(
                "{}|{}",
                d["stage"].as_str().unwrap(),
                d["company"].as_str().unwrap()
            ))
            .or_default();
        e.0 += 1;
        e.1 += d["amount"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap();
    }
    let rows: Vec<(String, String, i64, rust_decimal::Decimal)> = sqlx::query_as(
        "SELECT stage, company_id::text, count(*), sum(amount) FROM crm_copy.deal GROUP BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let sql: HashMap<String, (i64, rust_decimal::Decimal)> = rows
        .into_iter()
        .map(|(s, c, n, a)| (format!("{s}|{c}"), (n, a)))
        .collect();
    assert_eq!(sql, api, "deal count and amount per stage and company");

    let mut cycles: Vec<(String, i64)> = deals
        .iter()
        .map(|d| {
            let day = |f: &str| {
                chrono::NaiveDate::parse_from_str(d[f].as_str().unwrap(), "%Y-%m-%d").unwrap()
            };
            (
                d["id"].as_str().unwrap().to_string(),
                (day("close_date") - day("opened_on")).num_days(),
            )
        })
        .collect();
    cycles.sort();
    let sql_cycles: Vec<(String, i32)> =
        sqlx::query_as("SELECT id::text, close_date - opened_on FROM crm_copy.deal ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let sql_cycles: Vec<(String, i64)> = sql_cycles
        .into_iter()
        .map(|(i, c)| (i, i64::from(c)))
        .collect();
    assert_eq!(
        sql_cycles, cycles,
        "each deal's cycle, opened_on to close_date"
    );
    assert!(
        cycles.iter().all(|(_, c)| *c >= 0),
        "no deal closes before it opens"
    );

    let contacts = all(&app, "contact").await;
    let churned_api = contacts.iter().filter(|c| c["status"] == "churned").count() as i64;
    let churned_sql: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crm_copy.contact WHERE status = 'churned'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(churned_sql, churned_api);
    let activities: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM crm_copy.activity a JOIN crm_copy.deal d ON d.id = a.deal_id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let api_on_deals = all(&app, "activity")
        .await
        .iter()
        .filter(|a| !a["deal"].is_null())
        .count() as i64;
    assert_eq!(activities, api_on_deals);

    let again = oneo_api::relational::write_relational_copy(&app.pool, "crm_copy", &data, &loaded)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let bad =
        oneo_api::relational::write_relational_copy(&app.pool, "x; DROP TABLE y", &data, &loaded)
            .await
            .unwrap_err();
    assert!(bad.to_string().contains("can't be used"), "{bad}");
}
