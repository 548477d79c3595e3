//! A randomised, seeded workload over companies and deals through the REST API: inserts,
//! updates, deletes (with lookups cleared by cascade), fields added midway, and one
//! multi-thousand-row transaction.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Env;

const STAGES: &[&str] = &[
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
];
const INDUSTRIES: &[&str] = &["technology", "finance", "retail", "energy"];

pub struct Workload {
    rng: ChaCha8Rng,
    companies: Vec<String>,
    deals: Vec<String>,
    fields_added: bool,
    pub steps: usize,
}

impl Workload {
    pub fn new(seed: u64, steps: usize) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            companies: Vec::new(),
            deals: Vec::new(),
            fields_added: false,
            steps,
        }
    }

    fn company(&mut self, i: usize) -> Value {
        json!({
            "name": format!("Company {i} ’ü"),
            "industry": *INDUSTRIES.choose(&mut self.rng).expect("industries"),
            "employees": self.rng.random_range(1..50_000),
            "annual_revenue": format!("{}.{:02}", self.rng.random_range(0..10_000_000), self.rng.random_range(0..100)),
        })
    }

    fn deal(&mut self, i: usize) -> Value {
        let mut d = json!({
            "name": format!("Deal {i}"),
            "amount": format!("{}.{:02}", self.rng.random_range(0..1_000_000), self.rng.random_range(0..100)),
            "stage": *STAGES.choose(&mut self.rng).expect("stages"),
            "close_date": format!("2026-{:02}-{:02}", self.rng.random_range(1..13), self.rng.random_range(1..29)),
        });
        if let Some(c) = self.companies.choose(&mut self.rng) {
            d["company"] = json!(c);
        }
        if self.fields_added {
            let regions: Vec<&str> = ["emea", "amer", "apac"]
                .into_iter()
                .filter(|_| self.rng.random_bool(0.5))
                .collect();
            d["region"] = json!(regions);
            d["is_key"] = json!(self.rng.random_bool(0.3));
            d["last_touch"] = json!(format!(
                "2026-11-{:02}T{:02}:15:30.25Z",
                self.rng.random_range(1..29),
                self.rng.random_range(0..24)
            ));
        }
        d
    }

    /// Loads `n` companies in one bulk request (before ingest starts, for the snapshot).
    pub async fn preload(&mut self, env: &Env, n: usize) {
        let records: Vec<Value> = (0..n).map(|i| self.company(i)).collect();
        env.bulk_create("company", records).await;
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id::text FROM oneo_records.o{} ORDER BY id",
            env.objects().await["company"].object_id
        )))
        .fetch_all(&env.pool)
        .await
        .expect("ids");
        self.companies = ids;
    }

    async fn update(&mut self, env: &Env, object: &str, id: &str, patch: Value) {
        let path = format!("/v1/records/{object}/{id}");
        let current = env.call(Method::GET, &path, None).await;
        let mut body = patch;
        body["version"] = current["version"].clone();
        env.call(Method::PATCH, &path, Some(body)).await;
    }

    pub async fn step(&mut self, env: &Env, i: usize) {
        if i == self.steps / 2 {
            for field in [
                json!({"api_name": "region", "label": "Region", "type": "multiselect", "options": ["emea", "amer", "apac"]}),
                json!({"api_name": "is_key", "label": "Key account", "type": "boolean"}),
                json!({"api_name": "last_touch", "label": "Last touch", "type": "datetime"}),
            ] {
                env.call(Method::POST, "/v1/objects/deal/fields", Some(field))
                    .await;
            }
            self.fields_added = true;
        }
        if i == self.steps * 3 / 4 {
            let deals: Vec<Value> = (0..3_000).map(|k| self.deal(100_000 + k)).collect();
            env.bulk_create("deal", deals).await;
        }
        let roll = self.rng.random_range(0..100);
        match roll {
            0..20 => {
                let c = self.company(i);
                let r = env.create("company", c).await;
                self.companies
                    .push(r["id"].as_str().expect("id").to_string());
            }
            20..50 => {
                let d = self.deal(i);
                let r = env.create("deal", d).await;
                self.deals.push(r["id"].as_str().expect("id").to_string());
            }
            50..75 if !self.deals.is_empty() => {
                let id = self.deals[self.rng.random_range(0..self.deals.len())].clone();
                let stage = *STAGES.choose(&mut self.rng).expect("stages");
                let amount = format!("{}.5", self.rng.random_range(0..1_000_000));
                self.update(env, "deal", &id, json!({"stage": stage, "amount": amount}))
                    .await;
            }
            75..85 if !self.companies.is_empty() => {
                let id = self.companies[self.rng.random_range(0..self.companies.len())].clone();
                let employees = self.rng.random_range(1..50_000);
                self.update(env, "company", &id, json!({"employees": employees}))
                    .await;
            }
            85..95 if !self.deals.is_empty() => {
                let id = self
                    .deals
                    .swap_remove(self.rng.random_range(0..self.deals.len()));
                env.call(Method::DELETE, &format!("/v1/records/deal/{id}"), None)
                    .await;
            }
            95..100 if !self.companies.is_empty() => {
                // Deals pointing at it have their lookup cleared by PostgreSQL (an update each).
                let id = self
                    .companies
                    .swap_remove(self.rng.random_range(0..self.companies.len()));
                env.call(Method::DELETE, &format!("/v1/records/company/{id}"), None)
                    .await;
            }
            _ => {
                let c = self.company(i);
                let r = env.create("company", c).await;
                self.companies
                    .push(r["id"].as_str().expect("id").to_string());
            }
        }
    }
}
