//! `oneo`: the command line. Each command is thin wiring over the library crates.

use anyhow::Context;
use clap::{Parser, Subcommand};
use oneo_api::config::{
    DatabaseConfig, DeliveryConfig, FlightConfig, HttpConfig, LakeConfig, WorkflowConfig,
};
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
    /// Load the synthetic CRM data set (N contacts; companies, deals, activities in proportion).
    Generate {
        #[command(flatten)]
        db: DatabaseConfig,
        /// The workspace to load into.
        #[arg(long)]
        workspace: uuid::Uuid,
        /// Number of contacts (companies N/10, deals N/2, activities 5N).
        #[arg(long, default_value_t = 10_000)]
        scale: usize,
        /// Seed: the same seed gives the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also write the data set as plain typed, indexed tables in this new schema (for
        /// comparing Oneo with PostgreSQL on the same questions).
        #[arg(long, value_name = "SCHEMA")]
        relational_copy: Option<String>,
    },
    /// Stream every committed change into the lake (what `serve` also runs), without the API.
    Ingest {
        #[command(flatten)]
        db: DatabaseConfig,
        #[command(flatten)]
        lake: LakeConfig,
    },
    /// Run the server: the REST API and Flight SQL, and ingest beside them.
    Serve {
        #[command(flatten)]
        db: DatabaseConfig,
        #[command(flatten)]
        http: HttpConfig,
        #[command(flatten)]
        flight: FlightConfig,
        #[command(flatten)]
        lake: LakeConfig,
        #[command(flatten)]
        delivery: DeliveryConfig,
        #[command(flatten)]
        workflows: WorkflowConfig,
        /// Serve without the replication consumer (and so without a lake or deliveries).
        #[arg(long)]
        no_ingest: bool,
    },
    /// From nothing to a running platform: database, migrations, a workspace, sample data in the lake, the server.
    Demo {
        #[command(flatten)]
        http: HttpConfig,
        #[command(flatten)]
        flight: FlightConfig,
        #[command(flatten)]
        lake: LakeConfig,
        #[command(flatten)]
        delivery: DeliveryConfig,
        #[command(flatten)]
        workflows: WorkflowConfig,
        /// Contacts in the sample data loaded into a new demo workspace.
        #[arg(long, default_value_t = 50_000)]
        scale: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
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
mod embedded;
mod generate;
mod serve;

/// Connects to `DATABASE_URL` and brings its schema up to date.
async fn open_database(db: &DatabaseConfig) -> anyhow::Result<sqlx::PgPool> {
    let pool = oneo_api::db::connect(db)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    oneo_api::db::migrate(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,sqlx=warn,buoyant_kernel=off,deltalake_core=error,pg_walstream=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Migrate { db } => {
            open_database(&db).await?;
            eprintln!("migrations are current");
        }
        Command::Workspace {
            command: WorkspaceCommand::Create { name, db },
        } => {
            let pool = open_database(&db).await?;
            let created = oneo_api::db::workspace::create_workspace(&pool, &name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string(&created)?);
        }
        Command::Ingest { db, lake } => {
            let pool = open_database(&db).await?;
            let ingest = oneo_ingest::Ingest::new(lake.ingest_config(&db), pool)?;
            ingest.run(shutdown_token()).await?;
        }
        Command::Serve {
            db,
            http,
            flight,
            lake,
            delivery,
            workflows,
            no_ingest,
        } => {
            let lake = (!no_ingest).then_some(&lake);
            serve::run(&db, &http, &flight, lake, delivery, workflows).await?
        }
        Command::Generate {
            db,
            workspace,
            scale,
            seed,
            relational_copy,
        } => {
            let pool = open_database(&db).await?;
            generate::run(&pool, workspace, scale, seed, relational_copy.as_deref()).await?;
        }
        Command::Demo {
            http,
            flight,
            lake,
            delivery,
            workflows,
            scale,
            seed,
        } => demo::run(http, flight, lake, (delivery, workflows), scale, seed).await?,
    }
    Ok(())
}
