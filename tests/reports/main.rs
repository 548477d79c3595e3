//! Reports and SQL from the lake, end to end: the synthetic data set is loaded through the
//! API's loader, ingested into a real Delta lake, and every report answered over HTTP must
//! equal a hand-written SQL query on PostgreSQL over the same data (schema `rel`).

mod cases;
#[path = "../common/mod.rs"]
mod common;
mod export;
mod grouped;
mod harness;

use cases::cases;
use harness::{Env, Row, report_rows};
use serde_json::{Value, json};

/// Rows in a stable order, for set equality where a report leaves order unspecified.
pub(crate) fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_equal_postgres_and_refuse_bad_input() {
    let env = Env::with_data(2_000).await;
    for (name, expression) in cases::DEAL_FORMULAS {
        let field =
            json!({"api_name": name, "label": name, "type": "formula", "expression": expression});
        let (status, body) = env.post("/v1/objects/deal/fields", &field).await;
        assert_eq!(status, 201, "formula field {name}: {body}");
    }
    for (name, rollup) in cases::company_rollups() {
        let field = json!({"api_name": name, "label": name, "type": "rollup", "rollup": rollup});
        let (status, body) = env.post("/v1/objects/company/fields", &field).await;
        assert_eq!(status, 201, "rollup field {name}: {body}");
    }

    for case in cases() {
        let answer = env.report(&case.spec).await;
        let got = sorted(report_rows(&answer));
        let want = sorted(env.pg(case.sql).await);
        assert!(
            !want.is_empty(),
            "{}: the oracle returned no rows, so the case tests nothing",
            case.name
        );
        assert_eq!(got.len(), want.len(), "{}: row count", case.name);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{}", case.name);
        }
        assert_eq!(answer["truncated"], json!(false), "{}", case.name);
        assert!(
            answer["freshness"]["lsn"].is_string(),
            "{}: freshness {}",
            case.name,
            answer["freshness"]
        );
    }

    ordered_and_truncated(&env).await;
    grouped::summary_subtotals_and_totals(&env).await;
    grouped::matrix_cells_subtotals_and_totals(&env).await;
    grouped::formulas_cover_subtotals_and_totals(&env).await;
    grouped::comparisons_cover_subtotals(&env).await;
    grouped::distinct_counts_cover_subtotals(&env).await;
    grouped::joined_equals_its_blocks_outer_joined(&env).await;
    sql_reads_the_lake_read_only(&env).await;
    bad_specs_are_refused_precisely(&env).await;
    other_workspaces_stay_invisible(&env).await;
    saved_reports_run_export_and_stay_in_their_workspace(&env).await;
    export::tabular_csv_streams_every_row(&env).await;
    export::xlsx_exports_typed_cells_and_a_pivot(&env).await;
    relative_dates_follow_the_workspace_settings(&env).await;
    // Last, as it writes to the workspace the oracle compares with.
    as_of_reads_the_lake_as_it_was(&env).await;
}

async fn saved_reports_run_export_and_stay_in_their_workspace(env: &Env) {
    use reqwest::Method;
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}, {"field": "owner"}],
                      "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}]});
    let bad = json!({"name": "Pipeline", "spec": {"type": "summary", "object": "deal", "groupings": [{"field": "stag"}]}});
    let (status, body) = env.send(Method::POST, "/v1/reports", Some(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("groupings[0].field"), "{body}");
    let (status, body) = env.send(Method::GET, "/v1/reports", None).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "[]"),
        "a refused report is not saved"
    );

    let (status, body) = env
        .send(
            Method::POST,
            "/v1/reports",
            Some(&json!({"name": "Pipeline / owner", "spec": spec})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let saved: Value = serde_json::from_str(&body).expect("json");
    let id = saved["id"].as_str().expect("id").to_string();
    let (_, list) = env.send(Method::GET, "/v1/reports", None).await;
    assert!(list.contains(&id));

    let (status, body) = env
        .send(Method::POST, &format!("/v1/reports/{id}/run"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let ran: Value = serde_json::from_str(&body).expect("json");
    let adhoc = env.report(&spec).await;
    assert_eq!(
        ran["rows"], adhoc["rows"],
        "a saved report answers as the same spec ad hoc"
    );

    let run = json!({"filters": [{"field": "stage", "op": "equals", "value": "closed_won"}]});
    let (status, body) = env
        .send(Method::POST, &format!("/v1/reports/{id}/run"), Some(&run))
        .await;
    assert_eq!(status, 200, "{body}");
    let won: Value = serde_json::from_str(&body).expect("json");
    let want = env
        .pg("SELECT stage, owner, sum(amount) AS sum_amount, count(*) AS count FROM rel.deal WHERE stage = 'closed_won' GROUP BY 1, 2")
        .await;
    assert_eq!(
        sorted(report_rows(&won)),
        sorted(want),
        "runtime filters narrow the run"
    );

    let (status, csv_text) = env
        .send(
            Method::GET,
            &format!("/v1/reports/{id}/export?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{csv_text}");
    let (header, records) = harness::read_csv(&csv_text);
    assert_eq!(header, ["stage", "owner", "sum_amount", "count"]);
    let json_rows: Vec<Vec<String>> = ran["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect()
        })
        .collect();
    assert_eq!(records, json_rows, "the CSV holds the report's rows");
    let (status, body) = env
        .send(
            Method::GET,
            &format!("/v1/reports/{id}/export?format=docx"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Another workspace neither sees nor runs it.
    let other = oneo_api::db::workspace::create_workspace(&env.pool, "Initech")
        .await
        .expect("workspace");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/reports/{id}/run", env.base))
        .bearer_auth(&other.api_key)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);

    let renamed = json!({"name": "Pipeline by stage", "spec": spec});
    let (status, body) = env
        .send(Method::PUT, &format!("/v1/reports/{id}"), Some(&renamed))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Pipeline by stage"));
    let (status, _) = env
        .send(Method::DELETE, &format!("/v1/reports/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = env
        .send(Method::GET, &format!("/v1/reports/{id}"), None)
        .await;
    assert_eq!(status, 404);
}

async fn as_of_reads_the_lake_as_it_was(env: &Env) {
    // Every commit of the writes below comes after this moment (ingest batches them).
    let before = chrono::Utc::now();
    let deals: Vec<Value> = (0..3)
        .map(|i| json!({"name": format!("late {i}"), "amount": 5, "stage": "prospecting"}))
        .collect();
    let (status, body) = env
        .post(
            "/v1/records/deal/bulk",
            &json!({"operation": "create", "records": deals}),
        )
        .await;
    assert!(status < 300, "{body}");
    env.wait_for_lake().await;
    let count = json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                       "filters": [{"field": "stage", "op": "equals", "value": "prospecting"}], "aggregates": [{"fn": "count"}]});
    let then = env
        .post(
            &format!(
                "/v1/reports/run?as_of={}",
                before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
            &count,
        )
        .await;
    assert_eq!(then.0, 200, "{}", then.1);
    let now = env.report(&count).await;
    let n = |v: &Value| v["rows"][0][1].as_i64().expect("count");
    let want = env
        .pg("SELECT count(*) AS n FROM rel.deal WHERE stage = 'prospecting'")
        .await;
    let want: i64 = want[0]["n"].as_deref().expect("n").parse().expect("int");
    assert_eq!(n(&then.1), want, "as of before the writes");
    assert_eq!(n(&now), want + 3, "now");
    let bad = env.post("/v1/reports/run?as_of=yesterday", &count).await;
    assert_eq!(bad.0, 400, "{}", bad.1);
}

async fn ordered_and_truncated(env: &Env) {
    let spec = json!({"type": "tabular", "object": "deal", "columns": ["id", "amount"],
                      "sort": [{"by": "amount", "desc": true}, {"by": "id"}], "limit": 25});
    let answer = env.report(&spec).await;
    let want = env
        .pg("SELECT id::text AS id, amount FROM rel.deal ORDER BY amount DESC NULLS LAST, id::text LIMIT 25")
        .await;
    assert_eq!(report_rows(&answer), want, "sorted rows in order");
    let total = env.pg("SELECT count(*) AS n FROM rel.deal").await;
    assert_eq!(answer["truncated"], json!(true));
    assert_eq!(Some(answer["total"].to_string()), total[0]["n"]);
    assert_eq!(answer["row_count"], json!(25));

    // A summary cut by its limit: subtotals only for the groups it shows, totals over all.
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "owner"}, {"field": "stage"}],
                      "aggregates": [{"fn": "count"}], "sort": [{"by": "count", "desc": true}], "limit": 3});
    let answer = env.report(&spec).await;
    assert_eq!(answer["truncated"], json!(true), "{answer}");
    let owners =
        |rows: &Value, key: &dyn Fn(&Value) -> Value| -> std::collections::BTreeSet<String> {
            rows.as_array()
                .expect("a list")
                .iter()
                .map(|r| key(r).to_string())
                .collect()
        };
    let shown = owners(&answer["rows"], &|r| r[0].clone());
    assert!(!shown.is_empty());
    assert_eq!(
        owners(&answer["subtotals"], &|s| s["groups"][0].clone()),
        shown,
        "subtotals of the owners shown, no others"
    );
    assert_eq!(Some(answer["totals"][0].to_string()), total[0]["n"]);
}

async fn sql_reads_the_lake_read_only(env: &Env) {
    let (status, answer) = env
        .post("/v1/sql", &json!({"sql": "SELECT d.stage, count(*) AS n, sum(d.amount) AS total FROM crm.deal d JOIN crm.company c ON c.id = d.company GROUP BY d.stage"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let want = env
        .pg("SELECT d.stage, count(*) AS n, sum(d.amount) AS total FROM rel.deal d JOIN rel.company c ON c.id = d.company_id GROUP BY d.stage")
        .await;
    assert_eq!(sorted(report_rows(&answer)), sorted(want));
    for refused in [
        "DROP TABLE crm.deal",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO crm.deal (id) VALUES ('x')",
        "DELETE FROM crm.deal",
        "COPY crm.deal TO '/tmp/deals.csv'",
        "CREATE EXTERNAL TABLE f STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM oneo_records.o1",
    ] {
        let (status, body) = env.post("/v1/sql", &json!({"sql": refused})).await;
        assert_eq!(status, 400, "{refused} must be refused: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

async fn bad_specs_are_refused_precisely(env: &Env) {
    let cases = [
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stag"}]}),
            "groupings[0].field",
            "no field `stag`",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}], "aggregates": [{"fn": "sum", "field": "stage"}]}),
            "aggregates[0].fn",
            "sum needs a number",
        ),
        (
            json!({"type": "tabular", "object": "deal", "columns": ["name"], "filters": [{"field": "stage", "op": "equals", "value": "wonn"}]}),
            "filters[0].value",
            "closed_won",
        ),
        (
            json!({"type": "tabular", "object": "deal", "columns": ["name"], "filters": [{"field": "amount", "op": "gt", "value": "lots"}]}),
            "filters[0].value",
            "",
        ),
        (
            json!({"type": "tabular", "object": "deal", "columns": ["stage.name"]}),
            "columns[0]",
            "not a lookup",
        ),
        (
            json!({"type": "tabular", "object": "deal", "columns": ["name"], "filters": [{"field": "name", "op": "equals", "value": "x"}], "filter_logic": "1 OR 2"}),
            "filter_logic",
            "there is no filter 2",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "name", "date": "month"}]}),
            "groupings[0].date",
            "date periods",
        ),
        (
            json!({"type": "tabular", "object": "nope", "columns": ["name"]}),
            "object",
            "no object `nope`",
        ),
        (
            json!({"type": "pivot", "object": "deal"}),
            "spec",
            "unknown variant",
        ),
        (
            json!({"type": "tabular", "object": "deal", "columns": ["name"], "limit": 0}),
            "limit",
            "from 1",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}], "sort": [{"by": "amount"}]}),
            "sort[0].by",
            "not an output column",
        ),
        (
            json!({"type": "tabular", "object": "deal", "columns": ["close_date"], "filters": [{"field": "close_date", "op": "equals", "value": "LAST_N_DAYS:0"}]}),
            "filters[0].value",
            "number of days",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}], "aggregates": [{"fn": "count"}],
                   "formulas": [{"as": "a", "formula": "b + count"}, {"as": "b", "formula": "c * 2"}, {"as": "c", "formula": "a / 2"}]}),
            "formulas[0].formula",
            "cyclic: a → b → c → a",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}], "aggregates": [{"fn": "count"}],
                   "formulas": [{"as": "rate", "formula": "sum_amount / count"}]}),
            "formulas[0].formula",
            "`sum_amount` is not an aggregate or formula of this report (they are: count, rate)",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                   "aggregates": [{"fn": "max", "field": "close_date"}],
                   "formulas": [{"as": "x", "formula": "max_close_date * 2"}]}),
            "formulas[0].formula",
            "needs numbers",
        ),
        (
            json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                   "aggregates": [{"fn": "sum", "field": "amount", "where": [{"field": "stage", "op": "equals", "value": "won"}]}]}),
            "aggregates[0].where[0].value",
            "closed_won",
        ),
        (
            json!({"type": "joined", "object": "deal", "groupings": [{"field": "stage"}],
                   "blocks": [{"name": "deals"}, {"name": "acts", "object": "activity"}]}),
            "groupings[0].field",
            "in block `acts`",
        ),
        (
            json!({"type": "joined", "object": "deal", "groupings": [{"field": "lead_source"}],
                   "blocks": [{"name": "deals"}, {"name": "acts", "object": "activity", "grouping_fields": ["occurred_at"]}]}),
            "groupings[0].field",
            "a shared grouping needs one type",
        ),
        (
            json!({"type": "joined", "object": "deal", "groupings": [{"field": "stage"}],
                   "blocks": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "e"}, {"name": "f"}]}),
            "blocks",
            "1 to 5 blocks",
        ),
        (
            json!({"type": "joined", "object": "deal", "groupings": [{"field": "stage"}], "filters": [{"field": "stage", "op": "is_null"}],
                   "blocks": [{"name": "a"}]}),
            "filters",
            "go in its blocks",
        ),
        (
            json!({"type": "joined", "object": "deal", "groupings": [{"field": "stage"}],
                   "blocks": [{"name": "a", "filters": [{"field": "amount", "op": "gt", "value": "x"}]}]}),
            "blocks[0].filters[0].value",
            "",
        ),
        (
            json!({"type": "joined", "object": "deal", "groupings": [{"field": "stage"}],
                   "blocks": [{"name": "a"}], "formulas": [{"as": "f", "formula": "b.count / a.count"}]}),
            "formulas[0].formula",
            "`b.count` is not an aggregate",
        ),
    ];
    for (spec, part, reason) in cases {
        let (status, body) = env.post("/v1/reports/run", &spec).await;
        assert_eq!(status, 400, "{spec}: {body}");
        let detail = &body["error"]["details"][0];
        assert_eq!(detail["field"], json!(part), "{spec}: {body}");
        assert!(
            detail["reason"]
                .as_str()
                .is_some_and(|r| r.contains(reason)),
            "{spec}: `{reason}` not in {body}"
        );
    }
}

async fn other_workspaces_stay_invisible(env: &Env) {
    // Another workspace with a custom object and deals of its own.
    let other = oneo_api::db::workspace::create_workspace(&env.pool, "Globex")
        .await
        .expect("workspace");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", env.base))
            .bearer_auth(&other.api_key)
            .json(&body)
            .send()
    };
    let r = post("/v1/objects", json!({"api_name": "secret", "label": "Secret", "fields": [{"api_name": "code", "label": "Code", "type": "text"}]}))
        .await
        .expect("object");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let deals: Vec<Value> = (0..7)
        .map(|i| json!({"name": format!("g{i}"), "amount": 1, "stage": "closed_won"}))
        .collect();
    let r = post(
        "/v1/records/deal/bulk",
        json!({"operation": "create", "records": deals}),
    )
    .await
    .expect("bulk");
    assert!(r.status().is_success());
    env.wait_for_lake().await;

    let count = json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}], "aggregates": [{"fn": "count"}]});
    let mine = env.report(&count).await;
    let want = env
        .pg("SELECT stage, count(*) AS count FROM rel.deal GROUP BY stage")
        .await;
    assert_eq!(
        sorted(report_rows(&mine)),
        sorted(want),
        "the other workspace's deals are not counted"
    );
    let theirs = post("/v1/reports/run", count).await.expect("report");
    let theirs: Value = theirs.json().await.expect("json");
    assert_eq!(theirs["rows"], json!([["closed_won", 7]]));

    let (status, body) = env
        .post(
            "/v1/reports/run",
            &json!({"type": "tabular", "object": "secret", "columns": ["code"]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = env
        .post("/v1/sql", &json!({"sql": "SELECT * FROM crm.secret"}))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = env
        .post("/v1/sql", &json!({"sql": "SELECT table_name FROM information_schema.tables WHERE table_schema = 'crm' ORDER BY 1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rows"],
        // The objects, and the model scores, workflow runs and steps every workspace streams
        // to its lake.
        json!([
            ["activity"],
            ["company"],
            ["contact"],
            ["deal"],
            ["score"],
            ["workflow_run"],
            ["workflow_step"]
        ])
    );
}

/// `THIS_FISCAL_YEAR` in the workspace's time zone and fiscal year, against PostgreSQL's own
/// calendar arithmetic in that zone.
async fn relative_dates_follow_the_workspace_settings(env: &Env) {
    use reqwest::Method;
    let spec = json!({"type": "summary", "object": "deal", "groupings": [{"field": "stage"}],
                      "filters": [{"field": "close_date", "op": "equals", "value": "THIS_FISCAL_YEAR"}],
                      "aggregates": [{"fn": "count"}]});
    let oracle = |zone: &str, start_month: u32| {
        format!(
            "WITH t AS (SELECT (now() AT TIME ZONE '{zone}')::date AS today),
                  fy AS (SELECT make_date(extract(year FROM today - interval '{back} months')::int, {start_month}, 1) AS start FROM t)
             SELECT stage, count(*) AS count FROM rel.deal, fy
              WHERE close_date >= fy.start AND close_date < fy.start + interval '1 year' GROUP BY stage",
            back = start_month - 1
        )
    };
    let calendar = sorted(env.pg(&oracle("UTC", 1)).await);
    assert_eq!(
        sorted(report_rows(&env.report(&spec).await)),
        calendar,
        "the default: calendar years in UTC"
    );

    let settings = json!({"time_zone": "Pacific/Auckland", "fiscal_year_start_month": 4});
    let (status, body) = env
        .send(Method::PATCH, "/v1/workspace", Some(&settings))
        .await;
    assert_eq!(status, 200, "{body}");
    let fiscal = sorted(env.pg(&oracle("Pacific/Auckland", 4)).await);
    assert_eq!(
        sorted(report_rows(&env.report(&spec).await)),
        fiscal,
        "April fiscal years in Auckland"
    );
    // Datetimes group by the periods of the workspace's zone: Auckland's months and weeks.
    let periods = json!({"type": "summary", "object": "activity",
                         "groupings": [{"field": "occurred_at", "date": "month"}, {"field": "occurred_at", "date": "week", "as": "week"}],
                         "aggregates": [{"fn": "count"}]});
    let local = |zone: &str| {
        format!(
            "SELECT date_trunc('month', occurred_at AT TIME ZONE '{zone}') AT TIME ZONE '{zone}' AS \"occurred_at:month\",
                    date_trunc('week', occurred_at AT TIME ZONE '{zone}') AT TIME ZONE '{zone}' AS week, count(*) AS count
               FROM rel.activity GROUP BY 1, 2"
        )
    };
    let auckland = sorted(env.pg(&local("Pacific/Auckland")).await);
    assert_eq!(
        sorted(report_rows(&env.report(&periods).await)),
        auckland,
        "months and weeks in Auckland"
    );
    assert_ne!(auckland, sorted(env.pg(&local("UTC")).await));
    // The data set's close dates span the two years around 2026-11-01: while today is among
    // them, the two years hold different deals, so the setting visibly mattered.
    if !fiscal.is_empty() && !calendar.is_empty() {
        assert_ne!(fiscal, calendar);
    }
    let defaults = json!({"time_zone": "UTC", "fiscal_year_start_month": 1});
    let (status, body) = env
        .send(Method::PATCH, "/v1/workspace", Some(&defaults))
        .await;
    assert_eq!(status, 200, "{body}");
}
