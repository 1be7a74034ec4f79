//! `cargo run -p local` serves the whole API on one machine.
//! `cargo run -p local -- token --sub alice --email alice@example.com [--groups committee]`
//! prints a token the server accepts.

use anyhow::Context;
use clap::{Parser, Subcommand};
use community::config::Settings;
use community::store::embedded::EmbeddedTable;
use community::App;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "local",
    about = "The community API on one machine, no AWS account needed"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route (the default).
    Serve,
    /// Print a bearer token signed with COMMUNITY_LOCAL_JWT_SECRET.
    Token {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        email: Option<String>,
        /// Comma-separated groups: committee, moderator, marketing.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
    /// Check campaign files (contests, product tests): every error names its file and field.
    Campaigns {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Recompute a contest draw or tester selection from its published
    /// response (a file, or standard input): exits 0 when it checks out.
    VerifyDraw {
        /// The JSON response of POST /contests/{id}/draw (or of a selection).
        file: Option<PathBuf>,
    },
    /// Soft-launch invite codes (written to the local store; stop the server first).
    Invites {
        #[command(subcommand)]
        command: InviteCommand,
    },
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Validate every campaign file under DIR (default infra/campaigns).
    Validate { dir: Option<PathBuf> },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Create invite codes for a cohort and print them, one per line.
    Create {
        #[arg(long)]
        cohort: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Members each code admits.
        #[arg(long, default_value_t = 1)]
        max_uses: i64,
    },
}

fn secret() -> String {
    std::env::var("COMMUNITY_LOCAL_JWT_SECRET")
        .unwrap_or_else(|_| local::auth::DEFAULT_SECRET.into())
}

fn data_dir() -> PathBuf {
    std::env::var_os("COMMUNITY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".community"))
}

fn campaigns_dir() -> Option<PathBuf> {
    Settings::campaigns_dir_from_env().or_else(|| {
        let d = Path::new("infra/campaigns");
        d.join(community::config::CAMPAIGN_FILE)
            .exists()
            .then(|| d.to_path_buf())
    })
}

/// `COMMUNITY_SCHEDULE_EVERY_SECS`: how often the local server runs the
/// scheduled jobs (hourly on AWS).
fn schedule_every() -> anyhow::Result<std::time::Duration> {
    match std::env::var("COMMUNITY_SCHEDULE_EVERY_SECS") {
        Err(_) => Ok(std::time::Duration::from_secs(
            local::DEFAULT_SCHEDULE_EVERY_SECS,
        )),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "COMMUNITY_SCHEDULE_EVERY_SECS: {v:?} is not a whole number of seconds >= 1"
                )
            }),
    }
}

fn open_store() -> anyhow::Result<EmbeddedTable> {
    let dir = data_dir();
    EmbeddedTable::open(&dir).with_context(|| {
        format!(
            "cannot open the local store in {} (is another local server using it?)",
            dir.display()
        )
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token {
            sub,
            email,
            groups,
            ttl,
        } => {
            println!(
                "{}",
                local::auth::sign(&secret(), &sub, email.as_deref(), &groups, ttl)?
            );
            Ok(())
        }
        Command::Invites {
            command:
                InviteCommand::Create {
                    cohort,
                    count,
                    max_uses,
                },
        } => {
            let table = open_store()?;
            let codes = community::members::create_invites(&table, &cohort, count, max_uses)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {e:?}"))?;
            for c in codes {
                println!("{c}");
            }
            Ok(())
        }
        Command::Serve => serve().await,
        Command::Campaigns {
            command: CampaignCommand::Validate { dir },
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("infra/campaigns"));
            match community::campaigns::load_dir(&dir) {
                Ok(c) => {
                    println!(
                        "{}: {} contest(s), {} product test(s), all valid",
                        dir.display(),
                        c.contests.len(),
                        c.product_tests.len()
                    );
                    Ok(())
                }
                Err(errs) => {
                    for e in &errs {
                        eprintln!("{e}");
                    }
                    anyhow::bail!("{} problem(s) in {}", errs.len(), dir.display())
                }
            }
        }
        Command::VerifyDraw { file } => {
            let text = match file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                None => std::io::read_to_string(std::io::stdin())?,
            };
            let v: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
            let proof_json = if v.get("proof").is_some() {
                v["proof"].clone()
            } else {
                v
            };
            let proof: community::draw::Proof =
                serde_json::from_value(proof_json).context("no draw proof in this JSON")?;
            community::draw::verify(&proof)
                .map_err(|e| anyhow::anyhow!("the draw does NOT check out: {e}"))?;
            println!(
                "the draw checks out: {} entries, seed matches its published hash, winners:",
                proof.entries.len()
            );
            for (i, w) in proof.winners.iter().enumerate() {
                println!("  {}. {w}", i + 1);
            }
            Ok(())
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COMMUNITY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let dir = campaigns_dir();
    let mut settings = Settings::load(dir.as_deref())?;
    let table = open_store()?;
    let addr = std::env::var("COMMUNITY_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set COMMUNITY_ADDR)"))?;
    let bound = listener.local_addr()?;
    if std::env::var("COMMUNITY_PUBLIC_URL").is_err() {
        settings.public_url = format!("http://{bound}");
    }
    let invite_only = settings.invite_only;
    if let Some(d) = &dir {
        let campaigns = community::campaigns::load_dir(d).map_err(|errs| {
            anyhow::anyhow!(
                "invalid campaign files:\n{}",
                errs.iter()
                    .map(|e| format!("  {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        let applied = community::campaigns::apply(&table, &campaigns).await?;
        tracing::info!(campaigns = applied.len(), "campaigns applied");
    }
    let node = local::Local::new(App::new(table, settings), &data_dir())?;
    node.pipeline.clone().spawn();
    node.spawn_schedules(schedule_every()?);
    let router = node.router(local::auth::Verifier::new(&secret()));
    println!("Community API listening on http://{bound}");
    println!("  API docs: http://{bound}/docs   OpenAPI: http://{bound}/openapi.json");
    println!("  mails sent: http://{bound}/local/mailbox   dead letters: http://{bound}/local/dead-letters");
    println!(
        "  data: {}   campaigns: {}   launch: {}",
        data_dir().display(),
        dir.map(|d| d.display().to_string())
            .unwrap_or_else(|| "built-in".into()),
        if invite_only {
            "soft launch (invite only)"
        } else {
            "public"
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
