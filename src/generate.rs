//! `oneo generate`: the synthetic data set into a workspace, with a progress bar.

use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use uuid::Uuid;

pub async fn run(
    pool: &PgPool,
    workspace: Uuid,
    scale: usize,
    seed: u64,
    relational_copy: Option<&str>,
) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oneo.workspaces WHERE id = $1)")
            .bind(workspace)
            .fetch_one(pool)
            .await?;
    anyhow::ensure!(
        exists,
        "there is no workspace {workspace}; create one with `oneo workspace create NAME`"
    );
    if let Some(schema) = relational_copy {
        oneo_api::relational::check_schema_name(schema).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let existing = oneo_api::load::existing_records(pool, workspace)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        existing == 0,
        "workspace {workspace} already holds {existing} company, contact, deal and activity records; generate into a new workspace (`oneo workspace create NAME`)"
    );
    let started = Instant::now();
    let data = tokio::task::spawn_blocking(move || oneo_data::generate(scale, seed))
        .await
        .context("generating")?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = |phase: &str, done: u64, total: u64| {
        if bar.message() != phase {
            bar.set_message(phase.to_string());
            bar.set_length(total);
        }
        bar.set_position(done);
    };
    let loaded = oneo_api::load::load(pool, workspace, &data, &progress)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let writes: usize = loaded.records.values().sum::<usize>() + loaded.stage_updates;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded scale {scale} (seed {seed}): {} companies, {} contacts, {} deals, {} activities, {} deal stage changes in {secs:.1} s ({:.0} writes/s)",
        loaded.records["company"],
        loaded.records["contact"],
        loaded.records["deal"],
        loaded.records["activity"],
        loaded.stage_updates,
        writes as f64 / secs
    );
    if let Some(schema) = relational_copy {
        let t = Instant::now();
        oneo_api::relational::write_relational_copy(pool, schema, &data, &loaded)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!(
            "wrote the relational copy to schema {schema} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
