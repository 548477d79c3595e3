//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    dashboard_page, dashboards, health, ingest, keys, models, objects, records, reports, saved,
    schedules, workflow_runs, workflows, workspace,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Oneo", description = "Analytics-first CRM data platform: objects, fields and records. Every /v1 call needs `Authorization: Bearer <api key>`. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`; writes return `Oneo-Lsn`."),
    paths(
        health::healthz, health::readyz, health::openapi,
        objects::list, objects::create, objects::get, objects::update, objects::delete,
        objects::add_field, objects::update_field, objects::delete_field,
        records::list, records::create, records::get, records::update, records::delete, records::bulk,
        keys::list, keys::create, keys::revoke,
        ingest::status, ingest::metrics, ingest::resync,
        reports::run, reports::sql,
        saved::list, saved::create, saved::get, saved::replace, saved::delete, saved::run, saved::export,
        workspace::get, workspace::update,
        dashboards::list, dashboards::create, dashboards::get, dashboards::replace, dashboards::delete,
        dashboards::data, dashboards::refresh, dashboards::export, dashboard_page::share,
        schedules::list, schedules::create, schedules::get, schedules::replace, schedules::delete,
        schedules::run, schedules::deliveries,
        workflows::list, workflows::create, workflows::get, workflows::replace, workflows::delete,
        workflows::enable, workflows::disable, workflows::versions, workflow_runs::list,
        workflow_runs::get, workflow_runs::approve, workflow_runs::reject,
        models::list, models::create, models::get, models::train, models::deploy, models::score,
        models::record_scores,
    ),
    modifiers(&BearerKey)
)]
struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("a workspace API key"))
                    .build(),
            ),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
