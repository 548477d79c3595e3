//! `oneo`: the command line. Each command is thin wiring over the library crates.

use anyhow::Context;
use clap::{Parser, Subcommand};
use oneo_api::Application;
use oneo_api::config::{DatabaseConfig, HttpConfig};
use shutdown::shutdown_token;

mod shutdown;

#[derive(Parser)]
#[command(
    name = "oneo",
    version,
    about = "Oneo: an analytics-first CRM data platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the PostgreSQL migrations (a no-op when they are current).
    Migrate {
        #[command(flatten)]
        db: DatabaseConfig,
    },
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Run the server.
    Serve {
        #[command(flatten)]
        db: DatabaseConfig,
        #[command(flatten)]
        http: HttpConfig,
        /// Serve without the replication consumer.
        #[arg(long)]
        no_ingest: bool,
    },
    /// From nothing to a running platform: database, migrations, a workspace, the server.
    Demo {
        #[command(flatten)]
        http: HttpConfig,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace with the standard objects; prints its id and admin API key.
    Create {
        name: String,
        #[command(flatten)]
        db: DatabaseConfig,
    },
}

mod demo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Migrate { db } => {
            let pool = oneo_api::db::connect(&db)
                .await
                .context("connecting to PostgreSQL (DATABASE_URL)")?;
            oneo_api::db::migrate(&pool)
                .await
                .context("applying migrations")?;
            eprintln!("migrations are current");
        }
        Command::Workspace {
            command: WorkspaceCommand::Create { name, db },
        } => {
            let pool = oneo_api::db::connect(&db)
                .await
                .context("connecting to PostgreSQL (DATABASE_URL)")?;
            oneo_api::db::migrate(&pool)
                .await
                .context("applying migrations")?;
            let created = oneo_api::db::workspace::create_workspace(&pool, &name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string(&created)?);
        }
        Command::Serve {
            db,
            http,
            no_ingest,
        } => {
            if !no_ingest {
                tracing::info!("ingest is not built yet; serving the REST API only");
            }
            let app = Application::build(&db, &http).await?;
            tracing::info!(addr = %app.local_addr(), "REST API listening");
            app.run_until_stopped(shutdown_token()).await?;
        }
        Command::Demo { http } => demo::run(http).await?,
    }
    Ok(())
}
